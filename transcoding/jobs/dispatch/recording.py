"""Records job ids and webhook delivery ids instead of delivering them; tests run them when
and how they like."""

from transcoding.jobs import tasks
from transcoding.jobs.dispatch.base import BaseDispatcher

outbox: list[int] = []
webhook_outbox: list[int] = []


class RecordingDispatcher(BaseDispatcher):
    def enqueue(self, job_id: int) -> None:
        outbox.append(job_id)

    def deliver_webhook(self, delivery_id: int) -> None:
        webhook_outbox.append(delivery_id)

    def while_waiting(self, video_ids: list[int]) -> None:
        """Nothing else would ever run the recorded jobs: a waiting command runs them."""
        run_recorded()
        run_recorded_webhooks()


def run_recorded() -> list[str]:
    """Deliver everything recorded so far, in order, as a worker would."""
    results = []
    while outbox:
        results.append(tasks.process_job(outbox.pop(0)))
    return results


def run_recorded_webhooks() -> list[str]:
    """Attempt every webhook delivery recorded so far, in order, as a worker would."""
    results = []
    while webhook_outbox:
        results.append(tasks.deliver_webhook(webhook_outbox.pop(0)))
    return results
