"""A `ProcessingJob` is one unit of dispatched work; it is the queue for the local backend and
the idempotency record for all."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from transcoding.models.videos import Video


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

    def in_flight(self, now=None):
        """Encodes running under a live lease: what the caps on work in flight count (a job whose
        worker died holds no slot)."""
        now = now or timezone.now()
        return self.filter(step=ProcessingJob.Step.ENCODE, state=JobState.RUNNING, lease_expires_at__gte=now)

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
        DOWNLOAD = "download", "Make MP4 downloads"
        IMPORT = "import", "Import the original from a URL"

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
    progress = models.PositiveSmallIntegerField(
        default=0, help_text="This job's own encode, 0-100; 100 for a chunk only once its result is complete."
    )
    progress_aggregated_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The root of chunks: when the chunks' mean progress was last written to the parts.",
    )
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
    held = models.BooleanField(
        default=False,
        help_text="Waiting for a slot: the caps on encodes in flight held it back; it is dispatched "
        "when a running encode ends (or by the watchdog).",
    )
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
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            # The chunks not yet complete, and only those: "is any chunk of this video still
            # incomplete (before this one)?" is asked as every chunk ends and as it publishes
            # (`stitch.fan_in`, `live.is_frontier`), and must not read the finished ones.
            models.Index(
                fields=["parent", "chunk"], condition=Q(progress__lt=100), name="incomplete_chunk_jobs"
            ),
            # The held jobs, and only those: every encode's end asks for them (`slots.release`),
            # and must not read the job table.
            models.Index(fields=["chunk", "created_at"], condition=Q(held=True), name="held_jobs"),
        ]
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
