"""What each step of a job runs: the one place that knows the encode, subtitles, download and
import steps. Each takes the claimed job and a heartbeat callable, and returns the CPU seconds
it spent."""

from collections.abc import Callable

from transcoding import services
from transcoding.captions.speech import generate
from transcoding.downloads.make import make_downloads
from transcoding.encoding.encode import encode
from transcoding.ingest.url_import import fetch_source
from transcoding.models import ProcessingJob


def import_from_url(job: ProcessingJob, heartbeat: Callable[[], None]) -> float:
    """Fetch the original into storage, then queue the encode. Idempotent: an original
    already recorded is not fetched again, and an encode already requested (a worker that died
    after queueing it) is not requested twice; a failed attempt left nothing stored, so the
    next one starts over under the same key."""
    video = job.video
    if not video.source:
        fetch_source(video, job.options["key"], heartbeat)
    if not video.jobs.filter(step=ProcessingJob.Step.ENCODE).exists():
        services.video_request_processing(video)
    return 0.0


STEPS: dict[str, Callable] = {
    ProcessingJob.Step.ENCODE: encode,
    ProcessingJob.Step.SUBTITLES: generate,
    ProcessingJob.Step.DOWNLOAD: make_downloads,
    ProcessingJob.Step.IMPORT: import_from_url,
}


def run_step(job: ProcessingJob, heartbeat: Callable[[], None]) -> float:
    return STEPS[job.step](job, heartbeat)
