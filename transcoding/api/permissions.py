"""Who may do what through the API: first the key's scope (a read-only key reads), then its
user's Django model permissions, the same ones the admin obeys. Which videos a user sees at all
is `access.videos_visible_to` (the views' querysets), so a video the user may not see is a 404,
not a 403."""

from rest_framework import exceptions, permissions

from transcoding.models import ApiKey

# What each kind of request needs, by the view's `required_permission` (set per action).
METHOD_PERMISSIONS = {
    "POST": "transcoding.change_video",
    "PUT": "transcoding.change_video",
    "PATCH": "transcoding.change_video",
    "DELETE": "transcoding.delete_video",
}


class ApiPermission(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            raise exceptions.NotAuthenticated("Send an API key: Authorization: Bearer vpk_...")
        if request.method in permissions.SAFE_METHODS:
            return True
        if isinstance(request.auth, ApiKey) and not request.auth.can_write:
            raise exceptions.PermissionDenied(f"API key {request.auth.prefix} is read-only.")
        needed = getattr(view, "required_permission", None) or METHOD_PERMISSIONS.get(request.method)
        if needed and not user.has_perm(needed):
            raise exceptions.PermissionDenied(f"User {user.get_username()} lacks the permission {needed}.")
        return True
