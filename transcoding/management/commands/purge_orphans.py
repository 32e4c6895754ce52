"""List stored objects that belong to no video, and delete them with --yes.

Orphans: outputs under `videos/<id>/` of a video that no longer exists (and that no other video
plays), originals no video's `source` is, uploaded subtitle files no track's `file` is. Objects
younger than --min-age-hours are left alone: they may belong to an upload or a video being
created right now. With S3 the listing is flat and deletion goes in batches of 1000 keys."""

from collections import defaultdict
from datetime import timedelta

from django.core.management.base import CommandError
from django.template.defaultfilters import filesizeformat

from transcoding.management.base import ProjectCommand
from transcoding.storage import objects, references


class Command(ProjectCommand):
    help = (
        "List stored objects that belong to no video (outputs, originals, subtitle files); "
        "--yes deletes them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--yes", action="store_true", help="Delete the orphans (otherwise only list them)."
        )
        parser.add_argument(
            "--min-age-hours",
            type=float,
            default=24.0,
            help="Only objects older than this (default 24): younger ones may be uploads in flight.",
        )
        parser.add_argument(
            "--quiet-keys", action="store_true", help="Print one line per group, not per key."
        )

    def handle(self, *args, yes=False, min_age_hours=24.0, quiet_keys=False, **options):
        if min_age_hours < 0:
            raise CommandError("--min-age-hours must not be negative.")
        orphans = list(references.find_orphans(min_age=timedelta(hours=min_age_hours)))
        groups: dict[str, list] = defaultdict(list)
        for orphan in orphans:
            groups[orphan.reason].append(orphan.object)
        for reason, found in sorted(groups.items()):
            size = sum(o.size or 0 for o in found)
            self.stdout.write(f"{reason}: {len(found)} object(s), {filesizeformat(size)}")
            if not quiet_keys:
                for obj in found:
                    self.stdout.write(f"  {obj.key}")
        total = sum(o.object.size or 0 for o in orphans)
        if not orphans:
            self.stdout.write("No orphans.")
            return
        if not yes:
            self.stdout.write(
                f"{len(orphans)} orphan object(s), {filesizeformat(total)}: nothing deleted (run with --yes)."
            )
            return
        deleted = objects.delete_keys([o.object.key for o in orphans])
        self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} orphan object(s), {filesizeformat(total)}."))
