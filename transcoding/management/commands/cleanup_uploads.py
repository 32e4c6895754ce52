"""Abort direct uploads left behind: multipart uploads under uploads/ that were started more
than --older-than hours ago and never completed (S3 keeps, and bills, their parts until
then). Safe to run from cron; the bucket's lifecycle rule (docs/s3-uploads.md) is the backstop."""

from datetime import UTC, timedelta

from django.core.management.base import BaseCommand, CommandError

from transcoding.ingest import direct_uploads


class Command(BaseCommand):
    help = "Abort multipart uploads under uploads/ older than --older-than hours, and forget them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=float, default=24.0, metavar="HOURS",
            help="Abort uploads started more than HOURS ago (default 24).",
        )  # fmt: skip
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be aborted.")

    def handle(self, *args, older_than, dry_run, **options):
        if older_than < 0:
            raise CommandError("--older-than must be zero or more hours.", returncode=2)
        if not direct_uploads.enabled():
            raise CommandError("Direct uploads need S3 storage (STORAGE=s3).", returncode=2)
        verb = "would abort" if dry_run else "aborted"
        abandoned = direct_uploads.uploads_abandoned(timedelta(hours=older_than))
        for item in abandoned:
            if not dry_run:
                direct_uploads.upload_discard(item)
            by = item.record.created_by if item.record is not None else None
            who = f" by {by}" if by else "" if item.record is not None else " (no record)"
            gone = "" if item.in_storage else " (parts already gone)"
            self.stdout.write(
                f"{verb} {item.key}{who}, started {item.started.astimezone(UTC):%Y-%m-%d %H:%M} UTC{gone}"
            )
        self.stdout.write(f"{verb} {len(abandoned)} upload{'' if len(abandoned) == 1 else 's'} "
                          f"older than {older_than:g} h")  # fmt: skip
