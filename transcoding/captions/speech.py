"""Generated subtitles: extract the audio, run a speech recognition engine on it
(`speech_engines`), shape what it heard into caption-sized cues, publish the track.

One generated track per video and language. Its row is created as soon as the job starts, in
the requested language or "und" (undetermined) until the engine names the language; a track
generated before in that language is then updated rather than duplicated. Uploaded tracks
are never touched: when one has the language and kind, the generated track takes the other
kind (captions), and when both kinds are uploaded nothing is generated.
"""

import logging
import resource
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

from django.utils.translation import get_language_info

from transcoding.captions.speech_engines import (
    NOT_STARTED,
    Pending,
    Request,
    ServiceEngine,
    Transcript,
    get_engine,
)
from transcoding.captions.subtitles import LANGUAGE_CODE, publish_track
from transcoding.conf import ffmpeg_binary, settings
from transcoding.errors import SpeechError, WaitUntil, is_transient
from transcoding.ingest.source import probe_and_record
from transcoding.media import ffmpeg, manifests
from transcoding.media.ffmpeg_process import run_ffmpeg
from transcoding.models import PartStatus, Subtitle, Video
from transcoding.status import parts
from transcoding.status.jobs import job_record_result
from transcoding.status.videos import video_refresh_status
from transcoding.storage import objects

log = logging.getLogger(__name__)

UNDETERMINED = "und"  # ISO 639-2 for a language not yet known
NO_AUDIO = "The video has no audio to transcribe."
NO_SPEECH = "No speech was found in the audio."
EXTRACT_SHARE, ENGINE_SHARE = 10, 85  # percent of the track's progress; storing is the rest
MAX_LINE, MAX_LINES = 42, 2  # a caption line as broadcasters set it, two lines a cue
EXTRA_NAMES = {"zh": "Chinese", UNDETERMINED: "Undetermined language"}


def language_name(code: str) -> str:
    try:
        return get_language_info(code)["name"]
    except KeyError:
        return EXTRA_NAMES.get(code.split("-")[0].lower(), code)


def track_label(code: str) -> str:
    return f"{language_name(code)} (auto-generated)"


def track_language(requested: str, detected: str) -> str:
    """The requested code as given; else the detected one's primary subtag ("en-US" -> "en"),
    so tracks from either engine land on the same row."""
    code = requested or detected.split("-")[0].lower()
    return code if code and LANGUAGE_CODE.match(code) else UNDETERMINED


def caption_cues(transcript: Transcript, duration: float | None) -> list[manifests.Cue]:
    """Cues of at most two lines of 42 characters: a longer segment is split into several
    cues, its time shared by their length in characters."""
    limit = duration if duration and duration > 0 else float("inf")
    cues = []
    for segment in transcript.segments:
        start, end = max(0.0, segment.start), min(segment.end, limit)
        lines = textwrap.wrap(" ".join(segment.text.split()), MAX_LINE, break_long_words=False)
        if end <= start or not lines:
            continue
        groups = [lines[i : i + MAX_LINES] for i in range(0, len(lines), MAX_LINES)]
        total = sum(len(" ".join(group)) for group in groups)
        elapsed = 0
        for group in groups:
            text = "\n".join(group)
            cue_start = start + (end - start) * elapsed / total
            elapsed += len(" ".join(group))
            cues.append(
                manifests.Cue(round(cue_start, 3), round(start + (end - start) * elapsed / total, 3), text)
            )
    return cues


def free_kind(video: Video, language: str) -> str | None:
    """The kind a generated track in `language` can have without replacing an uploaded one."""
    uploaded = set(
        Subtitle.objects.filter(video=video, language=language, origin=Subtitle.Origin.UPLOADED).values_list(
            "kind", flat=True
        )
    )
    return next((k for k in (Subtitle.Kind.SUBTITLES, Subtitle.Kind.CAPTIONS) if k not in uploaded), None)


def _generated_track(video: Video, language: str) -> Subtitle | None:
    """The generated track of `language` in the first kind uploaded tracks leave free (made if
    missing); None when they take both."""
    kind = free_kind(video, language)
    if kind is None:
        return None
    subtitle, _ = Subtitle.objects.get_or_create(
        video=video,
        language=language,
        kind=kind,
        defaults={"origin": Subtitle.Origin.GENERATED, "label": track_label(language)},
    )
    return subtitle


def start_track(video: Video, language: str) -> Subtitle | None:
    """The generated track, marked running; None when uploaded tracks take both kinds."""
    subtitle = _generated_track(video, language)
    if subtitle is not None:
        parts.track_running(subtitle)
    return subtitle


def settle_language(subtitle: Subtitle, language: str) -> Subtitle | None:
    """Give the running track the language the engine found: rename it, or carry on in the
    row a previous run made for that language (the provisional one goes). None when uploaded
    tracks take both kinds of that language."""
    if language == subtitle.language:
        return subtitle
    kind = free_kind(subtitle.video, language)
    if kind is None:
        return None
    existing = (
        Subtitle.objects.filter(video_id=subtitle.video_id, language=language, kind=kind)
        .exclude(pk=subtitle.pk)
        .first()
    )
    if existing is None:
        subtitle.language, subtitle.kind, subtitle.label = language, kind, track_label(language)
        subtitle.save(update_fields=["language", "kind", "label"])
        return subtitle
    existing.label = existing.label or track_label(language)
    parts.track_running(existing, progress=subtitle.progress, started_at=subtitle.started_at)
    subtitle.delete()
    return existing


def end_track(subtitle: Subtitle, status: str, error: str, cpu: float | None = None) -> None:
    parts.track_ended(subtitle, status, error, cpu_seconds=cpu)


class TrackProgress:
    """Heart-beats on every call (the job's heartbeat limits its own writes) and writes the
    track's progress, which only goes up, at most once per PROGRESS_INTERVAL."""

    def __init__(self, subtitle: Subtitle, heartbeat):
        self.subtitle, self.heartbeat = subtitle, heartbeat
        self.last_write, self.written, self.percent = 0.0, 0, 0

    def __call__(self, percent: float) -> None:
        self.heartbeat()
        self.percent = max(self.percent, int(min(max(percent, 0), 99)))
        now = time.monotonic()
        if self.percent != self.written and now - self.last_write >= settings.PROGRESS_INTERVAL:
            self.last_write, self.written = now, self.percent
            Subtitle.objects.filter(pk=self.subtitle.pk).update(progress=self.percent)

    def extracting(self, report, duration: float) -> None:
        """run_ffmpeg's callback: a -progress report, or None when ffmpeg printed nothing."""
        done = 0.0 if report is None else 1.0 if report.done else report.out_time / duration
        self(EXTRACT_SHARE * min(done, 1.0))

    def transcribing(self, fraction: float) -> None:
        self(EXTRACT_SHARE + ENGINE_SHARE * min(max(fraction, 0.0), 1.0))


def process_cpu() -> float:
    """CPU seconds of this process. The engine's work runs in threads of its own (CTranslate2's
    pool, not the calling thread), so the calling thread's clock would miss nearly all of it;
    a worker runs one job a process (Celery, Lambda, the local default), where this is exact."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def request_track(video: Video) -> Subtitle | None:
    """The row a subtitles job will fill, queued at the request so the track is a part of the
    video from then on. Undetermined until the job runs: an uploaded track in the requested
    language, saved after this (the admin saves a new video's tracks after queueing it), must
    find its place free; the job settles the language (`begin_track`). None when uploaded
    tracks take both kinds of "und"."""
    subtitle = _generated_track(video, UNDETERMINED)
    if subtitle is not None:
        parts.track_requested(subtitle)
    return subtitle


def begin_track(video: Video, track_id: int | None, requested: str) -> Subtitle | None:
    """The job's track, running, in the requested language if one was; None when uploaded
    tracks leave no kind for it (the queued row is then skipped, with the reason)."""
    subtitle = None
    if track_id:
        subtitle = Subtitle.objects.filter(pk=track_id, video=video, origin=Subtitle.Origin.GENERATED).first()
    if subtitle is None:  # a job queued without a row (or its row was deleted): make one
        return start_track(video, requested or UNDETERMINED)
    parts.track_running(subtitle)
    if not requested:
        return subtitle
    settled = settle_language(subtitle, track_language(requested, ""))
    if settled is None:
        end_track(subtitle, PartStatus.SKIPPED, f"Uploaded tracks in {requested} take both kinds.")
    return settled


@contextmanager
def extracted_audio(video: Video, progress: TrackProgress):
    """The video's audio as a 16 kHz mono WAV in a work directory (gone afterwards), and the
    CPU seconds ffmpeg took. The original is read where it is stored."""
    duration = max(video.duration or 0.0, 0.001)
    with tempfile.TemporaryDirectory(prefix=f"speech{video.pk}-", dir=settings.WORK_DIR) as workdir:
        wav = Path(workdir) / "speech.wav"
        source = objects.source_location(video.source.name, video.container)
        args = ffmpeg.build_audio_extract_args(ffmpeg_binary(), source, str(wav), video.duration)
        tick = min(1.0, settings.PROGRESS_INTERVAL)
        _, cpu, _ = run_ffmpeg(args, lambda report: progress.extracting(report, duration), tick=tick)
        yield wav, cpu


def finish_track(video: Video, subtitle: Subtitle, requested: str, transcript: Transcript, cpu: float):
    """Shape what the engine heard into cues and publish the track in its language."""
    log.info(
        "video %s: %s speech segments, language %r", video.pk, len(transcript.segments), transcript.language
    )
    cues = caption_cues(transcript, video.duration)
    if not cues:
        end_track(subtitle, PartStatus.SKIPPED, NO_SPEECH, cpu)
        return cpu
    settled = settle_language(subtitle, track_language(requested, transcript.language))
    if settled is None:
        end_track(subtitle, PartStatus.SKIPPED, "Uploaded tracks in the spoken language exist already.", cpu)
        return cpu
    settled.cpu_seconds = cpu
    publish_track(settled, cues)
    return cpu


def generate(job, heartbeat) -> float:
    """Run one subtitles job; returns the CPU seconds it took (ffmpeg's and the engine's).

    With an engine on a service (`ServiceEngine`), the first run submits the audio and raises
    WaitUntil; each later run (`resume`) looks at the service's job and waits again, until
    the transcript is there to publish."""
    video = Video.objects.get(pk=job.video_id)
    options = job.options or {}
    requested = (options.get("language") or "").strip()
    ticket = (job.result or {}).get(TICKET)
    if ticket:
        return resume(job, video, requested, ticket, heartbeat)
    subtitle = begin_track(video, options.get("track"), requested)
    if subtitle is None:
        log.info("video %s: uploaded tracks in %s take both kinds; nothing to generate", video.pk, requested)
        return 0.0
    video_refresh_status(video)
    if not video.probe:
        probe_and_record(video)
    if not video.audio_codec:
        end_track(subtitle, PartStatus.SKIPPED, NO_AUDIO)
        return 0.0

    engine = get_engine()
    if engine.asynchronous:
        submit(job, video, engine, subtitle, requested, heartbeat, None)  # raises WaitUntil
    progress = TrackProgress(subtitle, heartbeat)
    with extracted_audio(video, progress) as (wav, cpu):
        request = Request(wav, requested, max(video.duration or 0.0, 0.001), video.pk, job.pk, job.attempt)
        before = process_cpu()
        try:
            transcript = engine.transcribe(request, progress.transcribing)
        finally:
            cpu += process_cpu() - before
    return finish_track(video, subtitle, requested, transcript, cpu)


# --- engines on a service (Amazon Transcribe): across runs of the job ------------------------

TICKET = "speech"  # the key of the job's result that holds what later runs need


def submit(job, video: Video, engine: ServiceEngine, subtitle: Subtitle, requested: str, heartbeat, ticket):
    """Extract the audio and hand it to the service; then wait (raises WaitUntil). The ticket
    is kept in the job before the service's job starts, so no later run starts another."""
    progress = TrackProgress(subtitle, heartbeat)
    with extracted_audio(video, progress) as (wav, cpu):
        duration = max(video.duration or 0.0, 0.001)
        request = Request(wav, requested, duration, video.pk, job.pk, job.attempt, subtitle.pk)
        if ticket is None:
            ticket = {
                "engine": settings.SPEECH_ENGINE,
                "track": subtitle.pk,
                "since": time.time(),
                "cpu": cpu,
                "service": engine.ticket(request),
            }
            job_record_result(job, **{TICKET: ticket})
        engine.submit(request, ticket["service"])
    progress.transcribing(0.0)
    wait, name = engine.poll_seconds(), ticket["service"].get("name", "")
    raise WaitUntil(wait, f"{engine.service} job {name} submitted; next look in {wait:g} s.")


def resume(job, video: Video, requested: str, ticket: dict, heartbeat) -> float:
    """A later run: look at the service's job once; wait again, fail, or publish the track."""
    engine = get_engine(ticket["engine"])
    service, cpu = ticket["service"], float(ticket.get("cpu") or 0.0)
    subtitle = Subtitle.objects.filter(pk=ticket["track"], video=video).first()
    if subtitle is None:  # deleted by staff meanwhile: nothing to publish
        engine.discard(service)
        return cpu
    if subtitle.status != PartStatus.RUNNING:  # a retry after a transient failure
        parts.track_running(subtitle, progress=subtitle.progress, started_at=subtitle.started_at)
    heartbeat()
    try:
        outcome = engine.check(service)
        if isinstance(outcome, Pending) and outcome.status == NOT_STARTED:
            # The run that meant to start it stopped first: start it now, under the same name.
            submit(job, video, engine, subtitle, requested, heartbeat, ticket)  # raises WaitUntil
        if isinstance(outcome, Pending):
            waited = time.time() - float(ticket["since"])
            if waited > engine.max_wait_seconds():
                raise SpeechError(
                    f"{engine.service} did not finish within {_duration(engine.max_wait_seconds())}; gave up."
                )
            expected = max(60.0, (video.duration or 0.0) / 3)  # no progress from the service
            TrackProgress(subtitle, heartbeat).transcribing(min(0.95, waited / expected))
            wait = engine.poll_seconds()
            raise WaitUntil(
                wait,
                f"{engine.service} job {service.get('name', '')} is {outcome.status} after {waited:.0f} s; "
                f"next look in {wait:g} s.",
            )
        cpu = finish_track(video, subtitle, requested, outcome, cpu)
    except WaitUntil:
        raise
    except Exception as exc:
        if not is_transient(exc):  # a retry would find the service's outputs still there
            engine.discard(service)
        raise
    engine.discard(service)
    return cpu


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"
