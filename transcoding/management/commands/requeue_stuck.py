"""The watchdog: requeue jobs whose worker stopped, fail those with no attempts left.
Safe to run from cron at any interval."""

from django.core.management.base import BaseCommand

from transcoding import services


class Command(BaseCommand):
    help = (
        "Requeue running jobs whose lease expired (their worker stopped) and dispatch them again; "
        "fail those with no attempts left, and their videos."
    )

    def handle(self, *args, **options):
        requeued, failed = services.jobs_recover_stuck()
        for job_id in requeued:
            self.stdout.write(f"job {job_id}: requeued")
        for job_id in failed:
            self.stdout.write(f"job {job_id}: failed (no attempts left)")
        self.stdout.write(f"requeued {len(requeued)}, failed {len(failed)}")
