"""Run queued jobs on this machine (the `local` dispatch backend's worker)."""

import signal

from transcoding.conf import settings
from transcoding.jobs.dispatch.local import run_worker
from transcoding.management.base import ProjectCommand


class Command(ProjectCommand):
    help = "Process queued transcoding jobs on this machine until stopped."

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="Jobs at once (default TRANSCODING_LOCAL_CONCURRENCY).",
        )
        parser.add_argument(
            "--idle-exit", type=float, default=None, help="Exit after this many idle seconds."
        )
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between queue polls.")

    def handle(self, *args, concurrency, idle_exit, poll, **options):
        # Ctrl-C (SIGINT) stops the worker even when whoever started it ignored SIGINT: a shell
        # starts background jobs that way, and Python then installs no KeyboardInterrupt
        # handler, so the worker would never stop on SIGINT.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        concurrency = concurrency or settings.LOCAL_CONCURRENCY
        self.stdout.write(f"Worker started ({concurrency} at once); Ctrl-C to stop.")
        self.stdout.flush()
        try:
            if not run_worker(concurrency=concurrency, idle_exit=idle_exit, poll=poll):
                self.stdout.write("Another worker is already running on this machine; exiting.")
        except KeyboardInterrupt:
            # Ctrl-C before its threads ran (while it took the lock or started them): nothing
            # was claimed yet, so it simply stops.
            self.stdout.write("Worker stopped.")
