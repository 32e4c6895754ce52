"""Uploads in progress."""

from django.conf import settings as django_settings
from django.db import models


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
