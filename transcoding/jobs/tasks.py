"""Entry points every backend calls. They take ids only (JSON-serializable) and stay thin."""

from transcoding.jobs.runner import job_run


def process_job(job_id: int) -> str:
    return job_run(int(job_id))
