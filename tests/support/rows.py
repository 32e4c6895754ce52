"""Videos written as rows (no encode), for tests that count what reading them costs."""

from transcoding.models import Poster, Rendition, Storyboard, Subtitle, Video
from transcoding.storage.objects import video_prefix


def ready_rows(count: int, *, linked_to=None) -> list[int]:
    """Videos with every part a status document names (rungs, audio, poster, storyboard,
    subtitles), written as rows: what is counted is the API's queries, not an encode."""
    ids = []
    for i in range(count):
        video = Video.objects.create(
            title=f"v{i}", status="ready", playable=True, published=True, private=i % 2 == 1,
            duration=10.0,
            outputs_from=linked_to if i % 3 == 0 else None,
        )  # fmt: skip
        prefix = video_prefix(video.pk)
        Video.objects.filter(pk=video.pk).update(
            hls_path=f"{prefix}/master.m3u8", dash_path=f"{prefix}/manifest.mpd"
        )
        for name in ("720p", "360p"):
            Rendition.objects.create(video=video, name=name, status="ready", width=640, height=360)
        Rendition.objects.create(video=video, name="audio", kind=Rendition.Kind.AUDIO, status="ready")
        Poster.objects.create(video=video, status="ready", path=f"{prefix}/poster.jpg")
        Storyboard.objects.create(
            video=video, status="ready", vtt_path=f"{prefix}/sb.vtt", image_paths=[f"{prefix}/sb_1.jpg"]
        )
        for language in ("en", "fr"):
            Subtitle.objects.create(
                video=video, language=language, status="ready", vtt_path=f"{prefix}/{language}.vtt"
            )
        ids.append(video.pk)
    return ids
