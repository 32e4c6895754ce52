"""Queue videos for processing again: chosen by id, or the failed, stuck or all of them."""

from django.core.management.base import CommandError

from transcoding import selectors, services
from transcoding.errors import InvalidRequest
from transcoding.management import waiting
from transcoding.management.base import ProjectCommand
from transcoding.models import PartKind


def parse_parts(text: str | None) -> list[str] | None:
    """`renditions,storyboard` -> ["renditions", "storyboard"]; None means every part."""
    if text is None:
        return None
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PartKind.values]
    if unknown or not names:
        what = f"Unknown part {', '.join(map(repr, unknown))}" if unknown else "No parts given"
        raise CommandError(f"{what} in --only; choose from {','.join(PartKind.values)}.", returncode=2)
    return list(dict.fromkeys(names))


class Command(ProjectCommand):
    help = (
        "Queue videos for processing again. Select them by ID and/or --failed, --stuck, --all. "
        "Exit status: 0 when all went well (with --wait: all ready), 1 when any failed, 2 on usage errors."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="Videos to reprocess.")
        parser.add_argument("--failed", action="store_true", help="Select every failed video.")
        parser.add_argument(
            "--stuck", action="store_true", help="Select videos whose worker stopped (lease expired)."
        )
        parser.add_argument("--all", dest="everything", action="store_true", help="Select every video.")
        parser.add_argument(
            "--only", metavar="PARTS", help=f"Comma list of parts to remake: {','.join(PartKind.values)}."
        )
        parser.add_argument(
            "--force", action="store_true", help="Cancel a queued or running job and start anew."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be queued; change nothing."
        )
        parser.add_argument("--wait", action="store_true", help="Wait until each video is ready or failed.")
        parser.add_argument(
            "--timeout", type=float, metavar="SECONDS", help="With --wait: give up after this long (exit 1)."
        )

    def handle(self, *args, ids, failed, stuck, everything, only, force, dry_run, wait, timeout, **options):
        if not (ids or failed or stuck or everything):
            raise CommandError("Nothing selected: give video IDs, --failed, --stuck or --all.", returncode=2)
        parts = parse_parts(only)
        _, missing = selectors.videos_by_ids(ids)
        if missing:
            raise CommandError(f"No video with id {', '.join(map(str, missing))}.", returncode=2)
        videos = selectors.videos_for_reprocess(ids=ids, failed=failed, stuck=stuck, everything=everything)
        if not videos:
            self.stdout.write("Nothing to reprocess.")
            return
        if dry_run:
            self.dry_run(videos, parts, force)
            return

        queued, errors = [], 0
        for video in videos:
            active = selectors.video_active_job(video, parts)
            replace = active is not None and (force or active.is_stuck)
            if active is not None and not replace:
                self.stdout.write(
                    f"video {video.pk}: already queued (job {active.pk}, {active.state}); left alone "
                    "(--force starts it anew)."
                )
                queued.append(video)
                continue
            try:
                job = services.video_request_processing(video, parts=parts, force=replace)
            except InvalidRequest as exc:
                errors += 1
                self.stderr.write(f"video {video.pk}: {waiting.one_line(exc)}")
                continue
            replaced = f", replacing job {active.pk}" if replace else ""
            self.stdout.write(f"video {video.pk}: queued job {job.pk} ({','.join(job.parts)}){replaced}.")
            queued.append(video)

        if wait:
            done = waiting.wait_or_interrupt(queued, self.stderr, timeout=timeout)
            errors += waiting.report(done, self.stdout, self.stderr, as_json=False, waited=True)
        if errors:
            what = "failed" if wait else "could not be queued"
            raise CommandError(f"{errors} of {len(videos)} videos {what}.", returncode=1)

    def dry_run(self, videos, parts, force) -> None:
        try:
            label = ",".join(services.processing_parts(parts))
            problem = ""
        except InvalidRequest as exc:
            label, problem = ",".join(parts or ()), waiting.one_line(exc)
        for video in videos:
            active = selectors.video_active_job(video, parts)
            if problem:
                action = f"would fail: {problem}"
            elif active is None:
                action = "would queue"
            elif force or active.is_stuck:
                action = f"would replace job {active.pk}"
            else:
                action = f"already queued (job {active.pk}); would be left alone"
            self.stdout.write(f"{video.pk}\t{video.status}\t{label}\t{video.title}\t{action}")
        self.stdout.write(f"Dry run: {len(videos)} video(s) selected; nothing changed.")
