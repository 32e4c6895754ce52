"""`TRANSCODING_*` settings with their defaults, read lazily so tests can override them."""

from dataclasses import dataclass

from django.conf import settings as django_settings

DISPATCH_ALIASES = {
    "local": "transcoding.dispatch.local.LocalDispatcher",
    "celery": "transcoding.dispatch.celery.CeleryDispatcher",
    "zappa": "transcoding.dispatch.zappa.ZappaDispatcher",
    "recording": "transcoding.dispatch.recording.RecordingDispatcher",
}

DEFAULTS = {
    "DISPATCH": "local",
    # None: the ffmpeg shipped by the imageio-ffmpeg wheel.
    "FFMPEG_BINARY": None,
    "SEGMENT_SECONDS": 4.0,
    # Long videos are encoded in chunks of about this many seconds (whole segments), in
    # parallel. None: 30 on Lambda (TRANSCODING_DISPATCH=zappa: many small invocations, each well
    # inside the 15-minute limit), 120 on servers (fewer seeks and encoder start-ups).
    "CHUNK_SECONDS": None,
    # Videos up to this long are one chunk. None: one and a half chunks.
    "CHUNK_THRESHOLD_SECONDS": None,
    # A job whose worker stops heart-beating for this long is claimable again.
    "LEASE_SECONDS": 120,
    "MAX_ATTEMPTS": 3,
    "RETRY_BASE_SECONDS": 10,
    # The watchdog dispatches again a queued job that is this late being claimed.
    "REDISPATCH_GRACE_SECONDS": 120,
    "MAX_UPLOAD_BYTES": 50 * 1024**3,
    # Direct uploads to S3 (STORAGE=s3): the part size the browser sends (raised for files that
    # would need more than S3's 10,000 parts; S3's minimum is 5 MiB) and how long a presigned
    # part URL is valid (the browser signs again when one expires).
    "UPLOAD_PART_BYTES": 8 * 1024**2,
    "UPLOAD_URL_SECONDS": 3600,
    "MAX_WIDTH": 7680,
    "MAX_HEIGHT": 4320,
    "LOCAL_CONCURRENCY": 1,
    # Seconds a worker started on demand by the local backend waits for work before exiting.
    "LOCAL_IDLE_SECONDS": 60,
    "WORK_DIR": None,
    "RUN_DIR": None,
    "OUTPUT_PREFIX": "videos",
    "SOURCE_PREFIX": "originals",
    "SERVE_MEDIA": True,
    # Playback (docs/private-playback.md). New videos are private (signed, short-lived URLs
    # through Django) by default; None means "when STORAGE=s3".
    "PRIVATE_DEFAULT": None,
    # Public videos' outputs from this base URL + key (a CDN), else from the storage's URLs.
    "PUBLIC_BASE_URL": "",
    # How long a signed URL is valid after the player may first need it.
    "SIGNED_URL_SECONDS": 600,
    # Progress is written to the database at most this often while ffmpeg runs.
    "PROGRESS_INTERVAL": 1.0,
    # Generated subtitles: "faster-whisper" (on the worker), "aws-transcribe", or a dotted path
    # to an engine class (transcoding.speech_engines.Engine).
    "SPEECH_ENGINE": "faster-whisper",
    # A model name (downloaded from the Hugging Face hub once) or a local CTranslate2 model dir.
    "WHISPER_MODEL": "small",
    "WHISPER_COMPUTE_TYPE": "int8",
    # aws-transcribe: the bucket the audio is uploaded to and the transcripts are written to.
    "TRANSCRIBE_BUCKET": "",
    "TRANSCRIBE_POLL_SECONDS": 5.0,
}


@dataclass(frozen=True)
class _Settings:
    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown transcoding setting: {name}")
        value = getattr(django_settings, f"TRANSCODING_{name}", None)
        return DEFAULTS[name] if value is None else value


settings = _Settings()


def ffmpeg_binary() -> str:
    if settings.FFMPEG_BINARY:
        return settings.FFMPEG_BINARY
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def dispatch_path() -> str:
    name = settings.DISPATCH
    return DISPATCH_ALIASES.get(name, name)


def chunk_seconds() -> float:
    if settings.CHUNK_SECONDS:
        return float(settings.CHUNK_SECONDS)
    return 30.0 if dispatch_path() == DISPATCH_ALIASES["zappa"] else 120.0


def chunk_threshold_seconds() -> float:
    if settings.CHUNK_THRESHOLD_SECONDS is not None:
        return float(settings.CHUNK_THRESHOLD_SECONDS)
    return 1.5 * chunk_seconds()
