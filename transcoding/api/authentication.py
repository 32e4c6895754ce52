"""`Authorization: Bearer vpk_...`: the request acts as the key's user, with the key as
`request.auth` (its scope is checked by `permissions.ApiPermission`). Without that header the
next authenticator (the admin's session, with CSRF) is tried."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from transcoding.api.keys import KeyRefused, api_key_check


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        try:
            key = api_key_check(credentials.strip())
        except KeyRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc))
        return key.user, key

    def authenticate_header(self, request):
        """Makes a missing or refused key answer 401 (with `WWW-Authenticate`), not 403."""
        return f'{self.keyword} realm="api"'


class ApiKeySchema(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes the key: HTTP bearer authentication."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "vpk_<prefix>_<secret>"}
