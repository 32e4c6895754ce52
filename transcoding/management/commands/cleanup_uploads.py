"""Remove uploads left behind: uploads in parts started more than --older-than hours ago
(default `TRANSCODING_UPLOAD_EXPIRY_HOURS`) and never completed. With S3 storage their
multipart uploads are aborted (S3 keeps, and bills, their parts until then; the bucket's
lifecycle rule, docs/s3-uploads.md, is the backstop); with local storage their parts under
uploads/ are deleted (never a video's original). The records of uploads completed through the
API as long ago are forgotten too (kept only to answer a repeated completion). Safe to run from
cron."""

from datetime import UTC, timedelta

from django.core.management.base import CommandError

from transcoding.conf import settings
from transcoding.ingest import chunked_uploads, direct_uploads, uploads
from transcoding.management.base import ProjectCommand


class Command(ProjectCommand):
    help = "Remove uploads under uploads/ never completed and older than --older-than hours."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=float, default=None, metavar="HOURS",
            help="Remove uploads started more than HOURS ago (default TRANSCODING_UPLOAD_EXPIRY_HOURS, 24).",
        )  # fmt: skip
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be removed.")

    def handle(self, *args, older_than, dry_run, **options):
        older_than = float(settings.UPLOAD_EXPIRY_HOURS) if older_than is None else older_than
        if older_than < 0:
            raise CommandError("--older-than must be zero or more hours.", returncode=2)
        mode = uploads.storage_mode()
        if mode is None:
            raise CommandError("Uploads need S3 storage or storage on the server's disk.", returncode=2)
        service = direct_uploads if mode == uploads.Mode.S3 else chunked_uploads
        verb = "would abort" if dry_run else "aborted"
        age = timedelta(hours=older_than)
        abandoned = service.uploads_abandoned(age)
        for item in abandoned:
            if not dry_run:
                service.upload_discard(item)
            by = item.record.created_by if item.record is not None else None
            who = f" by {by}" if by else "" if item.record is not None else " (no record)"
            gone = "" if item.in_storage else " (parts already gone)"
            self.stdout.write(
                f"{verb} {item.key}{who}, started {item.started.astimezone(UTC):%Y-%m-%d %H:%M} UTC{gone}"
            )
        if not dry_run and (forgotten := uploads.uploads_forget_completed(age)):
            self.stdout.write(f"forgot {forgotten} completed upload record{'' if forgotten == 1 else 's'}")
        self.stdout.write(f"{verb} {len(abandoned)} upload{'' if len(abandoned) == 1 else 's'} "
                          f"older than {older_than:g} h")  # fmt: skip
