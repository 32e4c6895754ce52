"""Records job ids instead of delivering them; tests run them when and how they like."""

from transcoding.jobs.dispatch.base import BaseDispatcher

outbox: list[int] = []


class RecordingDispatcher(BaseDispatcher):
    def enqueue(self, job_id: int) -> None:
        outbox.append(job_id)


def run_recorded() -> list[str]:
    """Deliver everything recorded so far, in order, as a worker would."""
    from transcoding.jobs.tasks import process_job

    results = []
    while outbox:
        results.append(process_job(outbox.pop(0)))
    return results
