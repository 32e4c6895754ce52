from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("transcoding.urls")),
]


def serve_media(request, path):
    """Local storage in development: Django serves the outputs itself (read at request time,
    so a changed MEDIA_ROOT is followed). With S3 they come from the bucket or a CDN."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)


if getattr(settings, "TRANSCODING_SERVE_MEDIA", False):
    urlpatterns += [re_path(rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$", serve_media)]
