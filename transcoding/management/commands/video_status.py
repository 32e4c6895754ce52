"""Show videos and every part's status: a table, or the API's JSON document per line."""

from django.core.management.base import CommandError

from transcoding import selectors
from transcoding.management import waiting
from transcoding.management.base import ProjectCommand
from transcoding.models import Video

COLUMNS = ("ID", "STATUS", "PROGRESS", "PLAYABLE", "DURATION", "RESOLUTION", "TITLE", "ERROR")
TITLE_WIDTH = 40


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _clip(text: str, width: int) -> str:
    text = waiting.one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def video_row(video: Video) -> tuple[str, ...]:
    return (
        str(video.pk),
        video.status,
        f"{video.progress}%",
        "yes" if video.playable else "no",
        format_duration(video.duration),
        f"{video.width}x{video.height}" if video.width and video.height else "-",
        _clip(video.title, TITLE_WIDTH),
        waiting.one_line(video.error),
    )


def part_line(part: dict, width: int) -> str:
    error = waiting.one_line(part["error"])
    return f"    {part['part']:<{width}}  {part['status']:<8} {part['progress']:>3}%  {error}".rstrip()


class Command(ProjectCommand):
    help = "Show the status of videos (all of them without IDs) and of each of their parts."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="Videos to show (default: all).")
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="One JSON document (the API's) per video per line.",
        )

    def handle(self, *args, ids, as_json, **options):
        if ids:
            videos, missing = selectors.videos_by_ids(ids)
            if missing:
                raise CommandError(f"No video with id {', '.join(map(str, missing))}.", returncode=2)
        else:
            videos = list(
                Video.objects.order_by("pk")
                .select_related("storyboard", "poster")
                .prefetch_related("renditions", "subtitles")
            )
        if as_json:
            for video in videos:
                self.stdout.write(waiting.status_json(video))
            return
        if not videos:
            self.stdout.write("No videos.")
            return
        self.write_table(videos)

    def write_table(self, videos: list[Video]) -> None:
        rows = [video_row(v) for v in videos]
        widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
        right = {0, 2}  # id and progress read better right-aligned

        def line(cells) -> str:
            return "  ".join(
                cell.rjust(w) if i in right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(cells, widths))
            ).rstrip()

        self.stdout.write(line(COLUMNS))
        for video, row in zip(videos, rows):
            self.stdout.write(line(row))
            parts = selectors.video_parts(video)
            width = max((len(p["part"]) for p in parts), default=0)
            for part in parts:
                self.stdout.write(part_line(part, width))
