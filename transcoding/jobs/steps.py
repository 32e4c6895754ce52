"""What each step of a job runs: the one place that knows the encode, subtitles and download steps.
Each takes the claimed job and a heartbeat callable, and returns the CPU seconds it spent."""

from collections.abc import Callable

from transcoding.captions.speech import generate
from transcoding.downloads.make import make_downloads
from transcoding.encoding.encode import encode
from transcoding.models import ProcessingJob

STEPS: dict[str, Callable] = {
    ProcessingJob.Step.ENCODE: encode,
    ProcessingJob.Step.SUBTITLES: generate,
    ProcessingJob.Step.DOWNLOAD: make_downloads,
}


def run_step(job: ProcessingJob, heartbeat: Callable[[], None]) -> float:
    return STEPS[job.step](job, heartbeat)
