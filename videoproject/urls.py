from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from transcoding import media_views
from transcoding.conf import serve_media

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("transcoding.urls")),
]

# Local storage: Django serves the outputs itself, access-checked (transcoding/media_views.py);
# with S3 they come from the bucket (presigned) or a CDN.
if serve_media() and settings.MEDIA_URL.startswith("/"):
    urlpatterns += [re_path(rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$", media_views.serve)]
