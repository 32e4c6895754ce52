"""/api/v1/: the resources, the OpenAPI 3 schema and its documentation pages (Swagger UI and
Redoc, from this site's static files)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from transcoding.api import problems, uploads, views

router = DefaultRouter()
router.register("videos", views.VideoViewSet, basename="video")
router.register("uploads", uploads.UploadViewSet, basename="upload")

app_name = "api"

urlpatterns = [
    path(
        "schema/", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="api:schema", permission_classes=[], authentication_classes=[]
        ),
        name="docs",
    ),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="api:schema", permission_classes=[], authentication_classes=[]),
        name="redoc",
    ),
    path("", include(router.urls)),
    re_path(r"^.*$", problems.not_found),
]
