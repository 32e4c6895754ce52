"""Create videos from local files and queue them; optionally wait for them to finish."""

from pathlib import Path

from django.core.management.base import CommandError

from transcoding import selectors, services
from transcoding.errors import InvalidRequest
from transcoding.ingest.create import video_create
from transcoding.management import waiting
from transcoding.management.base import ProjectCommand


class Command(ProjectCommand):
    help = (
        "Create videos from local files and queue them for processing. Exit status: 0 when all "
        "are ready (without --wait: all queued), 1 when any failed, 2 on usage errors."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", metavar="PATH", help="Video files to ingest.")
        parser.add_argument(
            "--title", default="", help="Title (default: the file name); used for every PATH."
        )
        parser.add_argument(
            "--preset", metavar="NAME", help="Preset (ladder) name (default: the default preset)."
        )
        parser.add_argument("--wait", action="store_true", help="Wait until each video is ready or failed.")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print one JSON document per video on stdout."
        )
        parser.add_argument(
            "--timeout", type=float, metavar="SECONDS", help="With --wait: give up after this long (exit 1)."
        )

    def handle(self, *args, paths, title, preset, wait, as_json, timeout, **options):
        if not paths:
            raise CommandError("Give at least one file to ingest.", returncode=2)
        for path in map(Path, paths):
            if not path.exists():
                raise CommandError(f"No such file: {path}", returncode=2)
            if not path.is_file():
                raise CommandError(f"Not a regular file: {path}", returncode=2)
        preset_obj = None
        if preset:
            presets = selectors.presets_by_name()
            if preset not in presets:
                known = ", ".join(sorted(presets)) or "none"
                raise CommandError(f"Unknown preset {preset!r} (known: {known}).", returncode=2)
            preset_obj = presets[preset]

        videos, errors = [], 0
        for path in paths:
            try:
                video = video_create(source=path, title=title, preset=preset_obj)
            except (InvalidRequest, OSError) as exc:
                errors += 1
                self.stderr.write(f"{path}: {waiting.one_line(exc)}")
                continue
            services.video_request_processing(video)
            videos.append(video)

        if wait:
            videos = waiting.wait_or_interrupt(videos, self.stderr, timeout=timeout)
        else:
            videos, _ = selectors.videos_by_ids(v.pk for v in videos)
        failed = errors + waiting.report(videos, self.stdout, self.stderr, as_json=as_json, waited=wait)
        if failed:
            what = "failed" if wait else "could not be queued"
            raise CommandError(f"{failed} of {len(paths)} videos {what}.", returncode=1)
