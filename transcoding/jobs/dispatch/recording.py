"""Records job ids instead of delivering them; tests run them when and how they like."""

from transcoding.jobs import tasks
from transcoding.jobs.dispatch.base import BaseDispatcher

outbox: list[int] = []


class RecordingDispatcher(BaseDispatcher):
    def enqueue(self, job_id: int) -> None:
        outbox.append(job_id)

    def while_waiting(self, video_ids: list[int]) -> None:
        """Nothing else would ever run the recorded jobs: a waiting command runs them."""
        run_recorded()


def run_recorded() -> list[str]:
    """Deliver everything recorded so far, in order, as a worker would."""
    results = []
    while outbox:
        results.append(tasks.process_job(outbox.pop(0)))
    return results
