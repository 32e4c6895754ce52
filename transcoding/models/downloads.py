"""MP4 downloads: one file per chosen rung of a video, made by remuxing that rung's stored
segments and the audio (no re-encode), with the same status fields as every other part."""

import re

from django.db import models

from transcoding.models.parts import PartMixin
from transcoding.models.videos import Video

# What a rung's name looks like ("720p"): the only names a download, its stored key and its URL
# may carry, so nothing a client sends can reach a path.
RUNG_NAME = re.compile(r"\A[1-9][0-9]{1,3}p\Z")


class Download(PartMixin):
    """The MP4 of one rung, stored under the video's prefix (`downloads/<rung>.mp4`)."""

    video = models.ForeignKey(Video, related_name="downloads", on_delete=models.CASCADE)
    name = models.CharField(max_length=16, help_text="The rung: 720p, 480p...")
    path = models.CharField(max_length=300, blank=True, help_text="The stored MP4.")
    size = models.BigIntegerField(null=True, blank=True, help_text="Bytes.")
    duration = models.FloatField(null=True, blank=True, help_text="Seconds, as probed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["video", "name"]
        constraints = [models.UniqueConstraint(fields=["video", "name"], name="unique_download_name")]

    def __str__(self):
        return f"{self.name}.mp4"
