"""The watchdog: requeue jobs whose worker stopped, fail those with no attempts left, and
dispatch again queued jobs that are due but unclaimed. Safe to run from cron at any interval."""

from transcoding.jobs.watchdog import jobs_recover_stuck
from transcoding.management.base import ProjectCommand


class Command(ProjectCommand):
    help = (
        "Requeue running jobs whose lease expired (their worker stopped) and dispatch them again; "
        "fail those with no attempts left, and their videos."
    )

    def handle(self, *args, **options):
        requeued, failed, redispatched = jobs_recover_stuck()
        for job_id in requeued:
            self.stdout.write(f"job {job_id}: requeued")
        for job_id in failed:
            self.stdout.write(f"job {job_id}: failed (no attempts left)")
        for job_id in redispatched:
            self.stdout.write(f"job {job_id}: dispatched again (due, unclaimed)")
        self.stdout.write(
            f"requeued {len(requeued)}, failed {len(failed)}, dispatched again {len(redispatched)}"
        )
