"""Entry points every backend calls. They take ids only (JSON-serializable) and stay thin."""

from transcoding.jobs.runner import job_run
from transcoding.webhooks.delivery import delivery_run


def process_job(job_id: int) -> str:
    return job_run(int(job_id))


def deliver_webhook(delivery_id: int) -> str:
    """One attempt of a webhook delivery if it is due: "delivered", "retry", "failed",
    "skipped" (not due, or taken) or "lost" (its lease expired under it)."""
    return delivery_run(int(delivery_id))
