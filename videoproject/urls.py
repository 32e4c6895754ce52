from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("transcoding.urls")),
]

if getattr(settings, "TRANSCODING_SERVE_MEDIA", False):
    # Local storage: Django serves the outputs itself. With S3 they come from the bucket/CDN.
    prefix = settings.MEDIA_URL.lstrip("/")
    urlpatterns += [re_path(rf"^{prefix}(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})]
