from django.urls import path

from . import views

app_name = "transcoding"

urlpatterns = [
    path("videos/", views.video_list, name="list"),
    path("videos/<int:pk>/", views.player, name="player"),
    path("videos/<int:pk>/embed/", views.embed, name="embed"),
    path("api/videos/", views.api_video_list, name="api-list"),
    path("api/videos/<int:pk>/", views.api_video, name="api-video"),
]
