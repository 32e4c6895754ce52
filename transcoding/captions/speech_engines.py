"""Speech recognition engines, chosen by `TRANSCODING_SPEECH_ENGINE` like Django's email
backends: a name from `ENGINES` or a dotted path to an `Engine` subclass.

An engine turns a 16 kHz mono WAV into timed text. It calls `progress(fraction)` from the
calling thread at least once a second; `progress` heart-beats the job and may raise (the job
was cancelled), which must stop the engine and propagate.
"""

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.utils.module_loading import import_string

from transcoding.captions.subtitles import parse
from transcoding.conf import settings
from transcoding.errors import SpeechError

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between progress calls while an engine works


@dataclass(frozen=True)
class Request:
    audio: Path
    language: str  # BCP 47 code, "" to detect
    duration: float
    video_id: int
    job_id: int
    attempt: int


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    language: str  # as the engine names it ("en", "en-US"), "" when unknown
    segments: list[Segment] = field(default_factory=list)


class Engine:
    def transcribe(self, request: Request, progress: Callable[[float], None]) -> Transcript:
        raise NotImplementedError


# --- faster-whisper: CTranslate2 Whisper on the worker's CPU ------------------------------

_models: dict[tuple[str, str], object] = {}
_models_lock = threading.Lock()


def whisper_model(path: str, compute_type: str):
    """The loaded model, once per process: loading takes longer than a short video."""
    with _models_lock:
        key = (path, compute_type)
        if key not in _models:
            from faster_whisper import WhisperModel

            _models[key] = WhisperModel(model_size_or_path=path, device="cpu", compute_type=compute_type)
        return _models[key]


class FasterWhisperEngine(Engine):
    """Runs the model in a helper thread, so the calling thread can heart-beat while a window
    of audio is decoded; a cancelled job stops it at the next segment."""

    def transcribe(self, request, progress):
        model = whisper_model(str(settings.WHISPER_MODEL), settings.WHISPER_COMPUTE_TYPE)
        code = request.language.split("-")[0].lower()
        if code and code not in model.supported_languages:
            raise SpeechError(f"The Whisper model does not know the language {request.language!r}.")
        results: queue.Queue = queue.Queue()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._work, args=(model, request, results, stop), name="speech-whisper", daemon=True
        )
        thread.start()
        language, segments, done = "", [], 0.0
        try:
            while True:
                try:
                    kind, value = results.get(timeout=TICK)
                except queue.Empty:
                    progress(done)
                    continue
                if kind == "info":
                    language = value.language or ""
                elif kind == "segment":
                    segments.append(Segment(value.start, value.end, value.text.strip()))
                    done = min(1.0, value.end / max(request.duration, 0.001))
                    progress(done)
                elif kind == "error":
                    raise value
                else:
                    return Transcript(language=language, segments=segments)
        finally:
            stop.set()
            thread.join(timeout=60)

    @staticmethod
    def _work(model, request, results, stop):
        segments = None
        try:
            segments, info = model.transcribe(
                str(request.audio),
                language=request.language.split("-")[0].lower() or None,  # checked above
                vad_filter=True,  # no hallucinated text over music or silence
                word_timestamps=False,
            )
            results.put(("info", info))
            for segment in segments:
                if stop.is_set():
                    return
                results.put(("segment", segment))
            results.put(("end", None))
        except BaseException as exc:  # handed to the calling thread, which raises it
            results.put(("error", exc))
        finally:
            if segments is not None:
                segments.close()


# --- Amazon Transcribe ----------------------------------------------------------------------

# Transcribe wants a locale; the track keeps the code it was asked for.
AWS_LOCALES = {
    "ar": "ar-SA", "de": "de-DE", "en": "en-US", "es": "es-US", "fr": "fr-FR", "hi": "hi-IN",
    "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR", "nl": "nl-NL", "pt": "pt-BR", "ru": "ru-RU",
    "sv": "sv-SE", "tr": "tr-TR", "zh": "zh-CN",
}  # fmt: skip


def aws_language_code(language: str) -> str:
    if "-" in language:
        primary, _, region = language.partition("-")
        return f"{primary.lower()}-{region.upper()}"
    return AWS_LOCALES.get(language.lower(), language)


def s3_location(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of an s3:// or https S3 URI, path-style or virtual-hosted; else None."""
    parsed = urlparse(uri)
    path = unquote(parsed.path.lstrip("/"))
    if parsed.scheme == "s3":
        return parsed.netloc, path
    host = parsed.hostname or ""
    if host.startswith(("s3.", "s3-")) or host == "s3.amazonaws.com":
        bucket, _, key = path.partition("/")
        return (bucket, key) if bucket and key else None
    if ".s3." in host or ".s3-" in host:
        return host.split(".s3")[0], path
    return None


class AwsTranscribeEngine(Engine):
    """Uploads the WAV to TRANSCODING_TRANSCRIBE_BUCKET, starts a transcription job that writes
    WebVTT subtitles back to the bucket, polls it and reads them."""

    def __init__(self):
        import boto3

        self.s3 = boto3.client("s3")
        self.transcribe_client = boto3.client("transcribe")

    def transcribe(self, request, progress):
        bucket = settings.TRANSCRIBE_BUCKET
        if not bucket:
            raise SpeechError("TRANSCODING_TRANSCRIBE_BUCKET is not set; aws-transcribe needs a bucket.")
        stem = f"transcribe/{request.video_id}/{request.job_id}-{request.attempt}"
        name = f"video{request.video_id}-job{request.job_id}-{request.attempt}-{uuid.uuid4().hex[:8]}"
        keys = [f"{stem}.wav", f"{stem}.json", f"{stem}.vtt"]
        self.s3.upload_file(str(request.audio), bucket, keys[0])
        params = {
            "TranscriptionJobName": name,
            "Media": {"MediaFileUri": f"s3://{bucket}/{keys[0]}"},
            "MediaFormat": "wav",
            "Subtitles": {"Formats": ["vtt"]},
            "OutputBucketName": bucket,
            "OutputKey": keys[1],  # the subtitles are written beside it, as <stem>.vtt
        }
        if request.language:
            params["LanguageCode"] = aws_language_code(request.language)
        else:
            params["IdentifyLanguage"] = True
        try:
            self.transcribe_client.start_transcription_job(**params)
            job = self._wait(name, request.duration, progress)
            uris = job.get("Subtitles", {}).get("SubtitleFileUris") or []
            source_bucket, key = (s3_location(uris[0]) if uris else None) or (bucket, keys[2])
            data = self.s3.get_object(Bucket=source_bucket, Key=key)["Body"].read()
        finally:
            for key in keys:
                try:
                    self.s3.delete_object(Bucket=bucket, Key=key)
                except Exception:  # tidying only; a lifecycle rule on transcribe/ catches the rest
                    log.warning("could not delete s3://%s/%s", bucket, key)
        if b"-->" not in data:
            return Transcript(language=job.get("LanguageCode", ""))
        cues = parse(data)
        return Transcript(
            language=job.get("LanguageCode", ""), segments=[Segment(c.start, c.end, c.text) for c in cues]
        )

    def _wait(self, name: str, duration: float, progress) -> dict:
        started = time.monotonic()
        # Transcribe reports no progress; estimate from a typical third of real time.
        expected = max(30.0, duration / 3)
        while True:
            job = self.transcribe_client.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
            status = job["TranscriptionJobStatus"]
            if status == "COMPLETED":
                return job
            if status == "FAILED":
                reason = job.get("FailureReason") or "no reason given"
                raise SpeechError(f"Amazon Transcribe failed: {reason}".rstrip(".") + ".")
            deadline = time.monotonic() + float(settings.TRANSCRIBE_POLL_SECONDS)
            while True:
                progress(min(0.95, (time.monotonic() - started) / expected))
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(TICK, left))


ENGINES = {
    "faster-whisper": "transcoding.captions.speech_engines.FasterWhisperEngine",
    "aws-transcribe": "transcoding.captions.speech_engines.AwsTranscribeEngine",
}


def get_engine(name: str | None = None) -> Engine:
    name = name or settings.SPEECH_ENGINE
    return import_string(ENGINES.get(name, name))()
