"""Learn about an original: probe it (`media.probe`, with every input rule and limit) and keep
what was learned on the video. Used by the encode step and the subtitles step alike."""

from dataclasses import asdict

from transcoding.ingest.hashing import sha256_of_stored
from transcoding.media.ladder import SourceInfo
from transcoding.media.probe import probe_source
from transcoding.models import Video
from transcoding.storage import objects


def probe_and_record(video: Video) -> SourceInfo:
    """Probe the original and keep what was learned on the video (its container, from then on
    the only demuxer any command may open it with)."""
    info = probe_source(
        objects.source_location(video.source.name),
        size=video.source_size if video.source_size is not None else video.source.size,
    )
    width, height = info.display_size
    report = {
        k: (str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v)
        for k, v in asdict(info).items()
    }
    video.duration, video.width, video.height = info.duration, width, height
    video.container, video.video_codec, video.audio_codec = info.container, info.video_codec, info.audio_codec
    video.fps = round(float(info.fps), 3)
    video.probe = report
    if not video.source_sha256 and objects.local_path(video.source.name):
        # Uploads are hashed as they stream in; this covers files placed in local storage by
        # other means. A remote original is never downloaded just to hash it.
        video.source_sha256 = sha256_of_stored(video.source.name)
    video.save(
        update_fields=[
            "duration", "width", "height", "container", "video_codec", "audio_codec", "fps",
            "probe", "source_sha256", "updated_at",
        ]
    )  # fmt: skip
    return info


def probe_as_recorded(video: Video) -> SourceInfo:
    """Probe again an original a root job probed and recorded (a chunk job needs the plan):
    with the demuxer it found, and no second timestamp scan."""
    return probe_source(
        objects.source_location(video.source.name, video.container), size=video.source_size or 0, scan=False
    )
