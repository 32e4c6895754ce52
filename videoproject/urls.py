from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from transcoding.web import media_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("transcoding.api.urls")),
    path("", include("transcoding.web.urls")),
]

# Local storage: Django serves the outputs itself, access-checked (transcoding/web/media_views.py,
# which answers 404 when TRANSCODING_SERVE_MEDIA is off, as it is with S3: the files then come
# from the bucket, presigned, or a CDN).
if settings.MEDIA_URL.startswith("/"):
    urlpatterns += [re_path(rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$", media_views.serve)]
