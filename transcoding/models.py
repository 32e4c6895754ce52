"""Videos, the ladder they are encoded to, their parts and the jobs that make them.

A video's outputs are *parts*: each rendition (video rungs and the audio), the storyboard,
the poster and each subtitle track. Every part carries the same status fields (`PartMixin`),
so the admin, the API and the commands show them alike. A `ProcessingJob` is one unit of
dispatched work; it is the queue for the local backend and the idempotency record for all.
"""

import re
import unicodedata
import uuid

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

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


# The parts one encode job produces; subtitles are a job of their own.
ENCODE_PARTS = (PartKind.RENDITIONS, PartKind.AUDIO, PartKind.STORYBOARD, PartKind.POSTER)


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


class PartMixin(models.Model):
    """Status fields every part has."""

    status = models.CharField(max_length=16, choices=PartStatus.choices, default=PartStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cpu_seconds = models.FloatField(
        null=True, blank=True, help_text="Share of the encoding process's CPU time."
    )
    bytes_written = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class Rendition(PartMixin):
    """One rung of the ladder, or the audio (encoded once, shared by every rung)."""

    class Kind(models.TextChoices):
        VIDEO = "video", "Video"
        AUDIO = "audio", "Audio"

    video = models.ForeignKey(Video, related_name="renditions", on_delete=models.CASCADE)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.VIDEO)
    name = models.CharField(max_length=32, help_text="720p, 480p... or audio.")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    crf = models.PositiveSmallIntegerField(null=True, blank=True)
    bitrate = models.PositiveIntegerField(null=True, blank=True, help_text="Cap (target), bits/s.")
    average_bitrate = models.PositiveIntegerField(null=True, blank=True, help_text="Measured, bits/s.")
    peak_bitrate = models.PositiveIntegerField(null=True, blank=True, help_text="Measured, bits/s.")
    codec = models.CharField(max_length=32, blank=True, help_text="RFC 6381 codec string.")
    duration = models.FloatField(null=True, blank=True)
    playlist_path = models.CharField(max_length=300, blank=True)
    init_path = models.CharField(max_length=300, blank=True)
    segments = models.JSONField(default=list, blank=True, help_text="[[file, duration], ...]")

    class Meta:
        ordering = ["kind", "-height", "name"]
        constraints = [models.UniqueConstraint(fields=["video", "name"], name="unique_rendition_name")]

    def __str__(self):
        return self.name


class Storyboard(PartMixin):
    video = models.OneToOneField(Video, related_name="storyboard", on_delete=models.CASCADE)
    interval = models.FloatField(null=True, blank=True, help_text="Seconds between tiles.")
    tile_width = models.PositiveSmallIntegerField(null=True, blank=True)
    tile_height = models.PositiveSmallIntegerField(null=True, blank=True)
    columns = models.PositiveSmallIntegerField(null=True, blank=True)
    rows = models.PositiveSmallIntegerField(null=True, blank=True)
    tile_count = models.PositiveIntegerField(null=True, blank=True)
    vtt_path = models.CharField(max_length=300, blank=True)
    image_paths = models.JSONField(default=list, blank=True)

    def __str__(self):
        return f"Storyboard of {self.video}"


class Poster(PartMixin):
    video = models.OneToOneField(Video, related_name="poster", on_delete=models.CASCADE)
    time = models.FloatField(null=True, blank=True, help_text="Where the frame was taken, seconds.")
    path = models.CharField(max_length=300, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self):
        return f"Poster of {self.video}"


class Subtitle(PartMixin):
    class Kind(models.TextChoices):
        SUBTITLES = "subtitles", "Subtitles"
        CAPTIONS = "captions", "Captions"

    class Origin(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        GENERATED = "generated", "Generated by speech recognition"

    video = models.ForeignKey(Video, related_name="subtitles", on_delete=models.CASCADE)
    language = models.CharField(
        max_length=16, validators=[validate_language_code], help_text="BCP 47 code, e.g. en, pt-BR."
    )
    label = models.CharField(max_length=64, blank=True, validators=[validate_one_line])
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SUBTITLES)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.UPLOADED)
    is_default = models.BooleanField(default=False)
    file = models.FileField(upload_to=subtitle_upload_to, blank=True, max_length=300)
    vtt_path = models.CharField(max_length=300, blank=True, help_text="The whole track, UTF-8 WebVTT.")
    playlist_path = models.CharField(max_length=300, blank=True, help_text="Segmented WebVTT for HLS.")
    cue_count = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(fields=["video", "language", "kind"], name="unique_subtitle_track")
        ]

    def __str__(self):
        return self.label or self.language


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING)


class ProcessingJobQuerySet(models.QuerySet):
    """The job states every part of the code asks about, each defined once."""

    def active(self):
        """Queued or running: work not yet over."""
        return self.filter(state__in=ACTIVE_JOB_STATES)

    def stuck(self, now=None):
        """Running, but the worker stopped heart-beating: its lease expired."""
        return self.filter(stuck_q(now))

    def claimable(self, now=None):
        """Waiting and due, or stuck: what a worker may claim now."""
        now = now or timezone.now()
        due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        return self.filter((Q(state=JobState.QUEUED) & due) | stuck_q(now))

    def batch(self, root_id: int):
        """An encode's root job and its chunk jobs, in time order."""
        return self.filter(Q(pk=root_id) | Q(parent_id=root_id)).order_by("chunk", "pk")


def stuck_q(now=None, prefix: str = "") -> Q:
    """Running with an expired lease; `prefix` for a relation ("jobs__" from a video)."""
    return Q(**{f"{prefix}state": JobState.RUNNING, f"{prefix}lease_expires_at__lt": now or timezone.now()})


class ProcessingJob(models.Model):
    """One unit of dispatched work. Claimed by a conditional UPDATE, so a duplicate delivery
    of the same job finds it claimed or done and does nothing."""

    class Step(models.TextChoices):
        ENCODE = "encode", "Probe, encode and package"
        SUBTITLES = "subtitles", "Generate subtitles"

    video = models.ForeignKey(Video, related_name="jobs", on_delete=models.CASCADE)
    step = models.CharField(max_length=16, choices=Step.choices, default=Step.ENCODE)
    parts = models.JSONField(default=list, help_text="Part kinds this job produces.")
    options = models.JSONField(default=dict, blank=True, help_text="Step options, e.g. the language.")
    chunk = models.PositiveIntegerField(
        null=True, blank=True, help_text="Which chunk of the video this encode makes (0 is the first)."
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        related_name="chunk_jobs",
        on_delete=models.CASCADE,
        help_text="The encode that planned the chunks and makes chunk 0; null for that one.",
    )
    progress = models.PositiveSmallIntegerField(default=0, help_text="This job's own encode, 0-100.")
    result = models.JSONField(
        default=dict,
        blank=True,
        help_text="What a chunk made: each rung's segments, init checksum and storyboard sheets.",
    )
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    attempt = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=500, blank=True)
    log_tail = models.TextField(blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    peak_rss_bytes = models.BigIntegerField(null=True, blank=True, help_text="ffmpeg's peak memory.")
    peak_temp_bytes = models.BigIntegerField(null=True, blank=True, help_text="Most local disk used at once.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ProcessingJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(fields=["parent", "chunk"], name="one_job_per_chunk"),
        ]

    def __str__(self):
        chunk = f" chunk {self.chunk}" if self.chunk is not None else ""
        return f"{self.get_step_display()}{chunk} of video {self.video_id} ({self.state})"

    @property
    def is_stuck(self) -> bool:
        """Running, but its lease expired (its worker stopped)."""
        return (
            self.state == JobState.RUNNING
            and self.lease_expires_at is not None
            and (self.lease_expires_at < timezone.now())
        )


class PendingUpload(models.Model):
    """A multipart upload straight from the browser to S3 that the server started
    (`uploads.upload_create`). It is the server's record of which key and upload id it handed to
    whom: signing part URLs, listing parts and completing accept only a key and upload id
    recorded here, for the user who started it. Deleted when the video is created or the
    upload is aborted; `cleanup_uploads` aborts those left behind."""

    key = models.CharField(max_length=500, unique=True, help_text="Storage name under uploads/.")
    upload_id = models.CharField(max_length=1024)
    size = models.BigIntegerField(help_text="Declared size in bytes; the stored object must match.")
    part_size = models.BigIntegerField()
    filename = models.CharField(max_length=255, blank=True, help_text="The client's file name, a label.")
    content_type = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completing = models.BooleanField(
        default=False, help_text="A completion request is checking the object (claimed once)."
    )

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.key


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
