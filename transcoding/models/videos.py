"""Videos, the ladder (Preset) they are encoded to, and the status vocabulary every part
shares."""

import re
import unicodedata
import uuid

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse

from transcoding.conf import settings
from transcoding.media.ladder import PresetSpec, RungSpec
from transcoding.storage.backends import media_store

# BCP 47, as far as players and speech engines need: "en", "pt-BR", "spa", "zh-Hant".
LANGUAGE_CODE = re.compile(r"\A[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")
validate_language_code = RegexValidator(LANGUAGE_CODE, "Enter a language code such as en, pt-BR or spa.")


def validate_one_line(value: str) -> None:
    """Text written into a manifest line (a track's label): no line breaks or control characters."""
    if any(unicodedata.category(c)[0] == "C" for c in value or ""):
        raise ValidationError("The label must be one line of text, without control characters.")


class VideoStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class PartStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


PART_DONE = (PartStatus.READY, PartStatus.FAILED, PartStatus.SKIPPED)


class PartKind(models.TextChoices):
    """The kinds of part, as named by `reprocess --only` and the admin actions."""

    RENDITIONS = "renditions", "Video renditions"
    AUDIO = "audio", "Audio"
    STORYBOARD = "storyboard", "Storyboard"
    POSTER = "poster", "Poster"
    SUBTITLES = "subtitles", "Subtitles"
    DOWNLOADS = "downloads", "MP4 downloads"


# The parts one encode job produces; subtitles and downloads are jobs of their own.
ENCODE_PARTS = (PartKind.RENDITIONS, PartKind.AUDIO, PartKind.STORYBOARD, PartKind.POSTER)


class DownloadRungs(models.TextChoices):
    """Which rungs get an MP4 download after an encode (`Preset.download_rungs`)."""

    NONE = "none", "None"
    HIGHEST = "highest", "The highest rung"
    ALL = "all", "Every rung"


def download_rungs_default() -> str:
    """New presets start from TRANSCODING_DOWNLOAD_RUNGS (docs/downloads.md)."""
    return DownloadRungs(settings.DOWNLOAD_RUNGS).value


class Preset(models.Model):
    """A ladder as data: its rungs and the options every rung shares."""

    name = models.CharField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False, help_text="Used when a video picks none.")
    x264_preset = models.CharField(
        max_length=16,
        default="veryfast",
        choices=[(p, p) for p in ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")],
        help_text="x264 speed/efficiency trade-off.",
    )
    # Bounds on every number: each one sizes work ffmpeg does for every video on the preset.
    audio_bitrate = models.PositiveIntegerField(
        default=128_000,
        validators=[MinValueValidator(32_000), MaxValueValidator(512_000)],
        help_text="AAC-LC stereo, bits/s.",
    )
    max_fps = models.PositiveSmallIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(120)]
    )
    low_rung_max_fps = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(120)],
        help_text="Frame-rate cap for rungs below 720p.",
    )
    storyboard_tile_width = models.PositiveSmallIntegerField(
        default=160, validators=[MinValueValidator(32), MaxValueValidator(640)]
    )
    storyboard_min_tiles = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    storyboard_max_tiles = models.PositiveSmallIntegerField(
        default=200, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    storyboard_columns = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    storyboard_rows = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    generate_subtitles = models.BooleanField(
        null=True,
        blank=True,
        default=None,
        choices=[(None, "As TRANSCODING_GENERATE_SUBTITLES says"), (True, "Yes"), (False, "No")],
        help_text="Generate subtitles (speech recognition) for every new upload on this preset.",
    )
    download_rungs = models.CharField(
        max_length=8,
        choices=DownloadRungs.choices,
        default=download_rungs_default,
        help_text="MP4 downloads made after every encode (remuxed, no re-encode).",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_preset"
            )
        ]

    def __str__(self):
        return self.name


class PresetRung(models.Model):
    """One rung: the short side in pixels (720 means 1280x720, or 720x1280 in portrait)."""

    preset = models.ForeignKey(Preset, related_name="rungs", on_delete=models.CASCADE)
    height = models.PositiveSmallIntegerField(validators=[MinValueValidator(64), MaxValueValidator(4320)])
    max_bitrate = models.PositiveIntegerField(
        validators=[MinValueValidator(50_000), MaxValueValidator(100_000_000)],
        help_text="Bitrate cap (VBV maxrate), bits/s.",
    )
    crf = models.PositiveSmallIntegerField(default=23, validators=[MaxValueValidator(51)])

    class Meta:
        ordering = ["-height"]
        constraints = [models.UniqueConstraint(fields=["preset", "height"], name="unique_rung_height")]

    def __str__(self):
        return f"{self.height}p"


def source_upload_to(instance, filename):
    """Originals live under a key chosen here, with no extension: nothing of the client's file
    name reaches a path, and nothing can make the file look like a page or a playlist to a
    server or a demuxer guessing by extension (the name is kept as `original_filename`)."""
    return f"{settings.SOURCE_PREFIX}/{uuid.uuid4().hex}/source"


def subtitle_upload_to(instance, filename):
    """Uploaded subtitle files, kept as sent (bytes), under a key chosen here."""
    return f"subtitles/{uuid.uuid4().hex}/original"


def private_default() -> bool:
    """New videos are private unless TRANSCODING_PRIVATE_DEFAULT says otherwise; by default
    they are private when the outputs are in S3 (docs/private-playback.md)."""
    if settings.PRIVATE_DEFAULT is not None:
        return bool(settings.PRIVATE_DEFAULT)
    return media_store().remote


class Video(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source = models.FileField(upload_to=source_upload_to, max_length=500)
    original_filename = models.CharField(max_length=255, blank=True)
    import_url = models.URLField(
        max_length=2000, blank=True, help_text="Imported from this URL (the server fetched the original)."
    )
    preset = models.ForeignKey(Preset, null=True, blank=True, on_delete=models.PROTECT)
    poster_time = models.FloatField(
        null=True, blank=True, help_text="Seconds into the video; empty picks a representative frame."
    )
    published = models.BooleanField(default=False)
    private = models.BooleanField(
        default=private_default,
        help_text="Play through short-lived signed URLs only (no permanent or CDN links).",
    )
    speech_language = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_language_code],
        help_text="Language spoken in the video (e.g. en), for generated subtitles; empty detects it.",
    )

    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who uploaded it (through the admin or the API); may always see it.",
    )

    status = models.CharField(max_length=16, choices=VideoStatus.choices, default=VideoStatus.UPLOADED)
    playable = models.BooleanField(default=False)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    # What the probe found; `probe` keeps the whole report.
    duration = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True, help_text="Displayed width.")
    height = models.PositiveIntegerField(null=True, blank=True, help_text="Displayed height.")
    source_size = models.BigIntegerField(null=True, blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    container = models.CharField(max_length=64, blank=True)
    video_codec = models.CharField(max_length=32, blank=True)
    audio_codec = models.CharField(max_length=32, blank=True)
    fps = models.FloatField(null=True, blank=True)
    probe = models.JSONField(default=dict, blank=True)

    output_prefix = models.CharField(max_length=200, blank=True)
    hls_path = models.CharField(max_length=300, blank=True)
    dash_path = models.CharField(max_length=300, blank=True)
    outputs_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="output_links",
        help_text="Same source bytes: this video plays that video's outputs instead of encoding again.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processing_finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["published", "-created_at"])]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("transcoding:player", args=[self.pk])


def preset_spec(preset: Preset | None):
    """The pure planning input for a preset (the built-in ladder when there is none)."""
    if preset is None:
        return PresetSpec(
            rungs=(
                RungSpec(1080, 6_000_000, 23),
                RungSpec(720, 3_000_000, 23),
                RungSpec(480, 1_500_000, 24),
                RungSpec(360, 800_000, 25),
                RungSpec(240, 400_000, 26),
            )
        )
    return PresetSpec(
        rungs=tuple(RungSpec(r.height, r.max_bitrate, r.crf) for r in preset.rungs.all()),
        x264_preset=preset.x264_preset,
        audio_bitrate=preset.audio_bitrate,
        max_fps=preset.max_fps,
        low_rung_max_fps=preset.low_rung_max_fps,
        storyboard_tile_width=preset.storyboard_tile_width,
        storyboard_min_tiles=preset.storyboard_min_tiles,
        storyboard_max_tiles=preset.storyboard_max_tiles,
        storyboard_columns=preset.storyboard_columns,
        storyboard_rows=preset.storyboard_rows,
    )


def generates_subtitles(preset: Preset | None) -> bool:
    """Whether a new upload on this preset (None: the built-in ladder) gets generated
    subtitles: the preset's choice, or TRANSCODING_GENERATE_SUBTITLES when it has none."""
    choice = preset.generate_subtitles if preset is not None else None
    return bool(settings.GENERATE_SUBTITLES) if choice is None else choice
