from typing import NamedTuple


class Waiting(NamedTuple):
    """What a broker's queues hold now: job ids and webhook delivery ids."""

    jobs: set[int]
    deliveries: set[int]


class BaseDispatcher:
    """The whole contract: deliver a job id to something that will call
    `transcoding.jobs.tasks.process_job(job_id)`, and a webhook delivery id to something that
    will call `transcoding.jobs.tasks.deliver_webhook(delivery_id)`, at least once. Called
    after the transaction that created the job or the delivery has committed."""

    # True when a queue holds every undelivered message until a worker acknowledges it (a
    # Celery broker): a job waiting there behind others is not lost, and the watchdog does
    # not send it again (with a long video's chunks queued, that would pile up duplicates).
    keeps_messages = False

    def enqueue(self, job_id: int) -> None:
        raise NotImplementedError

    def waiting(self) -> Waiting | None:
        """For a backend that keeps messages: the jobs and webhook deliveries whose message
        waits in its queues now, so the watchdog can send again what the broker lost (a
        message published while it was down, or held by a worker whose connection dropped);
        None when it cannot tell (then the watchdog trusts the queue)."""
        return None

    def deliver_webhook(self, delivery_id: int) -> None:
        raise NotImplementedError

    def while_waiting(self, video_ids: list[int]) -> None:
        """Called on every poll while a command waits for these videos to finish (`ingest
        --wait`): a backend whose jobs need a push gives it here. Most deliver on their own."""
