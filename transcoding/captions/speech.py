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
from pathlib import Path

from django.utils.translation import get_language_info

from transcoding.captions.speech_engines import Request, Transcript, get_engine
from transcoding.captions.subtitles import LANGUAGE_CODE, publish_track
from transcoding.conf import ffmpeg_binary, settings
from transcoding.ingest.source import probe_and_record
from transcoding.media import ffmpeg, manifests
from transcoding.media.ffmpeg_process import run_ffmpeg
from transcoding.models import PartStatus, Subtitle, Video
from transcoding.status import parts
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


def start_track(video: Video, language: str) -> Subtitle | None:
    """The generated track, marked running; None when uploaded tracks take both kinds."""
    kind = free_kind(video, language)
    if kind is None:
        return None
    subtitle, _ = Subtitle.objects.get_or_create(
        video=video,
        language=language,
        kind=kind,
        defaults={"origin": Subtitle.Origin.GENERATED, "label": track_label(language)},
    )
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


def generate(job, heartbeat) -> float:
    """Run one subtitles job; returns the CPU seconds it took (ffmpeg's and the engine's)."""
    video = Video.objects.get(pk=job.video_id)
    requested = ((job.options or {}).get("language") or "").strip()
    subtitle = start_track(video, requested or UNDETERMINED)
    if subtitle is None:
        log.info("video %s: uploaded tracks in %s take both kinds; nothing to generate", video.pk, requested)
        return 0.0
    video_refresh_status(video)
    if not video.probe:
        probe_and_record(video)
    if not video.audio_codec:
        end_track(subtitle, PartStatus.SKIPPED, NO_AUDIO)
        return 0.0

    progress = TrackProgress(subtitle, heartbeat)
    duration = max(video.duration or 0.0, 0.001)
    with tempfile.TemporaryDirectory(prefix=f"speech{video.pk}-", dir=settings.WORK_DIR) as workdir:
        wav = Path(workdir) / "speech.wav"
        source = objects.source_location(video.source.name, video.container)
        args = ffmpeg.build_audio_extract_args(ffmpeg_binary(), source, str(wav), video.duration)
        tick = min(1.0, settings.PROGRESS_INTERVAL)
        _, cpu, _ = run_ffmpeg(args, lambda report: progress.extracting(report, duration), tick=tick)
        request = Request(wav, requested, duration, video.pk, job.pk, job.attempt)
        before = process_cpu()
        try:
            transcript = get_engine().transcribe(request, progress.transcribing)
        finally:
            cpu += process_cpu() - before
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
