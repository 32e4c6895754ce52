from django.urls import path

from transcoding.web import download_views, playback_views, upload_views, views

app_name = "transcoding"

urlpatterns = [
    path("videos/", views.video_list, name="list"),
    path("videos/<int:pk>/", views.player, name="player"),
    path("videos/<int:pk>/embed/", views.embed, name="embed"),
    path("api/videos/", views.api_video_list, name="api-list"),
    path("api/videos/<int:pk>/", views.api_video, name="api-video"),
    # Direct uploads to S3 (STORAGE=s3), used by the admin's add form; staff only.
    path("api/uploads/create/", upload_views.create, name="upload-create"),
    path("api/uploads/sign/", upload_views.sign, name="upload-sign"),
    path("api/uploads/parts/", upload_views.list_parts, name="upload-parts"),
    path("api/uploads/complete/", upload_views.complete, name="upload-complete"),
    path("api/uploads/abort/", upload_views.abort, name="upload-abort"),
    # Signed playback of private videos (docs/private-playback.md) and staff downloads.
    path("videos/<int:pk>/play/master.m3u8", playback_views.master, name="play-master"),
    path("videos/<int:pk>/play/manifest.mpd", playback_views.mpd, name="play-mpd"),
    path("videos/<int:pk>/play/storyboard.vtt", playback_views.storyboard, name="play-storyboard"),
    path(
        "videos/<int:pk>/play/subtitles/<slug:track>.vtt", playback_views.subtitle_vtt, name="play-subtitle"
    ),
    path(
        "videos/<int:pk>/play/subtitles/<slug:track>/index.m3u8",
        playback_views.subtitle_playlist,
        name="play-subtitle-playlist",
    ),
    path(
        "videos/<int:pk>/play/<slug:name>/index.m3u8",
        playback_views.rendition_playlist,
        name="play-rendition",
    ),
    path("videos/<int:pk>/original/", playback_views.original, name="original"),
    # MP4 downloads of videos not served by plain URLs (docs/downloads.md).
    path("videos/<int:pk>/download/<str:name>.mp4", download_views.download, name="download"),
]
