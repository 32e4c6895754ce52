"""API v1 (/api/v1/), Django REST framework. docs/api.md is the user's guide.

keys.py            making, revoking and checking API keys (the secret is shown once)
authentication.py  `Authorization: Bearer vpk_...` (sessions work too, with CSRF)
permissions.py     a key's scope, then its user's Django permissions
throttling.py      write endpoints rate-limited per key
problems.py        every error as RFC 9457 problem details, one line
serializers.py     the video document (selectors.video_document) and what may be changed
views.py           videos: list, retrieve, update, delete, reprocess, cancel
urls.py            the routes, the OpenAPI schema and its docs pages
"""
