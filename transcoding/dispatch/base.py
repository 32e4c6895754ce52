class BaseDispatcher:
    """The whole contract: deliver a job id to something that will call
    `transcoding.tasks.process_job(job_id)`, at least once. Called after the transaction
    that created the job has committed."""

    def enqueue(self, job_id: int) -> None:
        raise NotImplementedError
