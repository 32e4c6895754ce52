"""Uploads in progress: one resumable protocol (`ingest.uploads`), two storages."""

from django.conf import settings as django_settings
from django.db import models

from transcoding.models.videos import Video


class PendingUpload(models.Model):
    """An upload the server started, in parts: straight from the client to S3 by multipart
    upload (`mode` s3: `ingest.direct_uploads`), or to the site itself, part by part
    (`mode` local: `ingest.chunked_uploads`). It is the server's record of which key (and S3
    upload id) it handed to whom: every later step accepts only an upload recorded here, for
    the user who started it. `details` are the new video's fields, validated when the upload
    started, used when it completes.

    The admin's uploads are deleted when their video is created; the API's are kept, marked
    completed with their `video`, so completing again (a client retrying after a lost
    response) answers with the same video. `cleanup_uploads` removes what is left behind."""

    class Mode(models.TextChoices):
        S3 = "s3", "Straight to S3 (presigned parts)"
        LOCAL = "local", "To the site, part by part"

    key = models.CharField(max_length=500, unique=True, help_text="Storage name under uploads/.")
    upload_id = models.CharField(max_length=1024, blank=True, help_text="S3's multipart upload id.")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.S3)
    size = models.BigIntegerField(help_text="Declared size in bytes; the stored object must match.")
    part_size = models.BigIntegerField()
    filename = models.CharField(max_length=255, blank=True, help_text="The client's file name, a label.")
    content_type = models.CharField(max_length=100, blank=True)
    details = models.JSONField(
        default=dict, blank=True, help_text="The video's fields as the client sent them (validated)."
    )
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completing = models.BooleanField(
        default=False, help_text="A completion request is checking the object (claimed once)."
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    video = models.ForeignKey(
        Video, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The video this upload became.",
    )  # fmt: skip

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.key

    @property
    def public_id(self) -> str:
        """The id the API shows: the random hex of the key (`uploads/<hex>/source`)."""
        return self.key.split("/")[1]


class UploadPart(models.Model):
    """A part the site received for a local upload (`ingest.chunked_uploads`): its file is
    `uploads/<hex>/parts/<number>`, written whole or not at all; this row is what a client
    resuming is told (number, size, and the SHA-256 the server computed)."""

    upload = models.ForeignKey(PendingUpload, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["upload", "number"], name="upload_part_unique")]

    def __str__(self):
        return f"{self.upload.key} part {self.number}"
