"""`TRANSCODING_*` settings: the one table of their names, types, defaults and meanings.

`videoproject/settings.py` reads each from the environment (`environment_settings`), so every
setting here can be set by an environment variable of the same name; `settings.X` reads
Django's `TRANSCODING_X` lazily (tests override it) and falls back to the default.
"""

from dataclasses import dataclass

from django.conf import settings as django_settings

DISPATCH_ALIASES = {
    "local": "transcoding.jobs.dispatch.local.LocalDispatcher",
    "celery": "transcoding.jobs.dispatch.celery.CeleryDispatcher",
    "zappa": "transcoding.jobs.dispatch.zappa.ZappaDispatcher",
    "recording": "transcoding.jobs.dispatch.recording.RecordingDispatcher",
}

GIB = 1024**3


@dataclass(frozen=True)
class Setting:
    default: object
    type: type  # how the environment variable is read: str, int, float or bool
    meaning: str


SETTINGS: dict[str, Setting] = {
    # --- dispatch and workers
    "DISPATCH": Setting("local", str, "`local`, `celery`, `zappa`, `recording` (tests) or a dotted path"),
    "LEASE_SECONDS": Setting(120, int, "a job whose worker stops heart-beating this long is claimable again"),
    "MAX_ATTEMPTS": Setting(3, int, "attempts per job before a transient failure fails it for good"),
    "RETRY_BASE_SECONDS": Setting(
        10, float, "backoff before the 2nd attempt (doubles, with jitter, up to 900 s)"
    ),
    "REDISPATCH_GRACE_SECONDS": Setting(
        120, float, "the watchdog dispatches again a queued job this late being claimed"
    ),
    "MAX_CHUNKS_IN_FLIGHT": Setting(
        120, int, "most encode jobs (chunks) of one video running at once; 0: no cap (docs/scaling.md)"
    ),
    "MAX_ENCODES_IN_FLIGHT": Setting(
        800, int, "most encode jobs running at once in the deployment; 0: no cap (docs/scaling.md)"
    ),
    "LOCAL_CONCURRENCY": Setting(1, int, "jobs a local worker runs at once (ffmpeg already uses every core)"),
    "LOCAL_IDLE_SECONDS": Setting(60, float, "a local worker started on demand exits after this long idle"),
    "WORK_DIR": Setting(None, str, "where ffmpeg writes before files are stored (default: system temp)"),
    "RUN_DIR": Setting(None, str, "the local worker's lock file and log (default: ./run)"),
    "PROGRESS_INTERVAL": Setting(1.0, float, "progress is written at most this often while ffmpeg runs"),
    "ZAPPA_WORKER_FUNCTION": Setting(
        "", str, "`zappa`: the Lambda function jobs run on (the encoder stage's); empty: the calling function"
    ),
    "DB_CONNECT_WAIT_SECONDS": Setting(
        300.0,
        float,
        "a worker that cannot connect to the database (connection limit, pool exhausted, restart) "
        "retries with jittered backoff this long before giving the delivery back (docs/database.md)",
    ),
    # --- encoding
    "FFMPEG_BINARY": Setting(None, str, "path to ffmpeg (default: the imageio-ffmpeg wheel's ffmpeg 9)"),
    "SEGMENT_SECONDS": Setting(4.0, float, "CMAF segment and GOP length"),
    "CHUNK_SECONDS": Setting(None, float, "chunk length for split encoding (default 120, 30 with `zappa`)"),
    "CHUNK_THRESHOLD_SECONDS": Setting(
        None, float, "videos up to this long are one chunk (default 1.5 chunks)"
    ),
    # --- limits on what a source may cost (SECURITY.md)
    "MAX_UPLOAD_BYTES": Setting(50 * GIB, int, "largest upload; refused as soon as it is passed"),
    "MAX_WIDTH": Setting(7680, int, "largest width (long side), coded and as displayed"),
    "MAX_HEIGHT": Setting(4320, int, "largest height (short side), coded and as displayed"),
    "MAX_DURATION_SECONDS": Setting(12 * 3600.0, float, "longest video"),
    "MAX_FRAME_RATE": Setting(1000.0, float, "highest source frame rate"),
    "MAX_TIMESTAMP_GAP_SECONDS": Setting(60.0, float, "largest jump in time between two frames"),
    "MAX_CHUNKS": Setting(1500, int, "most chunk jobs one video may plan"),
    "FFMPEG_TIMEOUT_SECONDS": Setting(2 * 3600.0, float, "wall time one ffmpeg process may take"),
    "FFMPEG_MAX_MEMORY_MB": Setting(6144, int, "resident memory one ffmpeg process may use"),
    # --- storage and uploads
    "OUTPUT_PREFIX": Setting("videos", str, "storage prefix of the outputs (`videos/<id>/`)"),
    "SOURCE_PREFIX": Setting("originals", str, "storage prefix of uploaded originals"),
    "SERVE_MEDIA": Setting(None, bool, "Django serves `/media/` itself (default: with local storage)"),
    "UPLOAD_PART_BYTES": Setting(
        8 * 1024**2, int, "uploads in parts: the part size (S3: at least 5 MiB, in whole MiB)"
    ),
    "UPLOAD_URL_SECONDS": Setting(3600, int, "direct S3 uploads: how long a presigned part URL is valid"),
    "UPLOAD_EXPIRY_HOURS": Setting(
        24.0, float, "an upload not completed this long after it started is removed by `cleanup_uploads`"
    ),
    "UPLOAD_PART_RATE": Setting(
        "600/min", str, "API uploads to the site: part PUTs per key (not the write rate)"
    ),
    # --- outbound requests: URL imports and webhooks (docs/url-import.md)
    "URL_IMPORT_ALLOW_HTTP": Setting(False, bool, "URL imports may use plain http (default: https only)"),
    "URL_IMPORT_ALLOW_INTERNAL": Setting(
        False, bool, "URL imports may reach internal addresses (loopback, private, link-local...)"
    ),
    "URL_IMPORT_MAX_REDIRECTS": Setting(5, int, "redirects a URL import follows, each one checked"),
    "URL_IMPORT_TIMEOUT": Setting(30.0, float, "URL imports: seconds to connect, and between two reads"),
    "WEBHOOK_ALLOW_INTERNAL": Setting(False, bool, "webhook destinations may be internal addresses"),
    "OUTBOUND_ALLOW_ADDRESSES": Setting(
        "",
        str,
        "IP addresses or networks, comma-separated, that imports and webhooks may reach although internal",
    ),
    # --- playback (docs/private-playback.md)
    "PRIVATE_DEFAULT": Setting(None, bool, "whether new videos are private (default: with S3 storage)"),
    "PUBLIC_BASE_URL": Setting("", str, "base URL (a CDN) for public videos' files"),
    "SIGNED_URL_SECONDS": Setting(600, int, "a signed URL's lifetime after the player may first need it"),
    # --- downloads (docs/downloads.md)
    "DOWNLOAD_RUNGS": Setting(
        "none", str, "MP4 downloads a new preset (and a video without one) makes: `none`, `highest` or `all`"
    ),
    # --- generated subtitles
    "SPEECH_ENGINE": Setting("faster-whisper", str, "`faster-whisper`, `aws-transcribe` or a dotted path"),
    "WHISPER_MODEL": Setting("small", str, "a model name (from the hub) or a local CTranslate2 model dir"),
    "WHISPER_COMPUTE_TYPE": Setting("int8", str, "CTranslate2 compute type"),
    "TRANSCRIBE_BUCKET": Setting("", str, "aws-transcribe: the bucket for audio and transcripts"),
    "GENERATE_SUBTITLES": Setting(
        False, bool, "new uploads get generated subtitles, unless their preset says otherwise"
    ),
    "TRANSCRIBE_POLL_SECONDS": Setting(
        30.0, float, "aws-transcribe: a subtitles job looks at its Transcribe job this often"
    ),
    "TRANSCRIBE_MAX_WAIT_SECONDS": Setting(
        4 * 3600.0, float, "aws-transcribe: the track fails when Transcribe has not finished by then"
    ),
    # --- webhooks (docs/webhooks.md)
    "WEBHOOK_ALLOW_HTTP": Setting(
        False, bool, "webhook endpoints may be plain `http://` (always so with internal ones allowed)"
    ),
    "WEBHOOK_TIMEOUT_SECONDS": Setting(10.0, float, "a webhook attempt's connect and read timeout"),
    "WEBHOOK_LEASE_SECONDS": Setting(
        60, int, "a webhook delivery whose worker stopped this long ago is sent again (> the timeout)"
    ),
}
DEFAULTS = {name: setting.default for name, setting in SETTINGS.items()}


def environment_settings(environ) -> dict:
    """`TRANSCODING_*` Django settings for every variable set in `environ` (a mapping of
    strings, e.g. os.environ), read with the setting's type. Unset ones are left out, so the
    defaults above apply."""
    values = {}
    for name, setting in SETTINGS.items():
        raw = environ.get(f"TRANSCODING_{name}")
        if raw is None or raw == "":
            continue
        if setting.type is bool:
            value = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            value = setting.type(raw)
        values[f"TRANSCODING_{name}"] = value
    return values


@dataclass(frozen=True)
class _Settings:
    def __getattr__(self, name):
        if name not in SETTINGS:
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
