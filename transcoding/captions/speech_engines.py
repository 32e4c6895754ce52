"""Speech recognition engines, chosen by `TRANSCODING_SPEECH_ENGINE` like Django's email
backends: a name from `ENGINES` or a dotted path to an `Engine` subclass.

An engine turns a 16 kHz mono WAV into timed text. One that runs in the worker (`Engine`:
faster-whisper) calls `progress(fraction)` from the calling thread at least once a second;
`progress` heart-beats the job and may raise (the job was cancelled), which must stop the
engine and propagate. One that runs on a service (`ServiceEngine`: Amazon Transcribe) is
submitted the audio and checked on by later runs of the job, none of which waits for it.
"""

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import botocore.exceptions
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
    track_id: int = 0


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
    """Recognition in the worker: `transcribe` returns when it is done."""

    asynchronous = False

    def transcribe(self, request: Request, progress: Callable[[float], None]) -> Transcript:
        raise NotImplementedError


NOT_STARTED = "NOT_STARTED"


@dataclass(frozen=True)
class Pending:
    """The service is still working (`status` in its own words), or has no such job
    (NOT_STARTED: the run that meant to start it stopped first)."""

    status: str


class ServiceEngine(Engine):
    """Recognition on an outside service, which may take hours: longer than a worker may hold
    a job (Lambda stops an invocation at 900 s). The subtitles job submits the audio and
    returns; later runs of it `check` until there is a transcript (`captions.speech`).

    A `ticket` is what later runs need to find the service's job: JSON, kept in the job's
    result before `submit`, so a duplicate delivery or a run that stopped midway finds the
    same one and `submit` (idempotent) never starts a second."""

    asynchronous = True
    service = "the speech service"

    def poll_seconds(self) -> float:
        """How long to wait before looking again."""
        raise NotImplementedError

    def max_wait_seconds(self) -> float:
        """After this long since submitting, the track fails."""
        raise NotImplementedError

    def ticket(self, request: Request) -> dict:
        raise NotImplementedError

    def submit(self, request: Request, ticket: dict) -> None:
        """Start the service's job, unless it exists already."""
        raise NotImplementedError

    def check(self, ticket: dict) -> "Transcript | Pending":
        """The transcript once the job is done; Pending before; raises SpeechError when the
        service failed it."""
        raise NotImplementedError

    def discard(self, ticket: dict) -> None:
        """Tidy away what the job stored (the audio, the outputs)."""


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


class AwsTranscribeEngine(ServiceEngine):
    """Uploads the WAV to TRANSCODING_TRANSCRIBE_BUCKET and starts a transcription job that
    writes WebVTT subtitles back to the bucket; later runs of the subtitles job look at it and
    read them. Every key is named after the Transcribe job, so one job's files never meet
    another's."""

    service = "Amazon Transcribe"

    def __init__(self):
        import boto3

        self.s3 = boto3.client("s3")
        self.transcribe_client = boto3.client("transcribe")

    def poll_seconds(self) -> float:
        return float(settings.TRANSCRIBE_POLL_SECONDS)

    def max_wait_seconds(self) -> float:
        return float(settings.TRANSCRIBE_MAX_WAIT_SECONDS)

    def ticket(self, request):
        bucket = settings.TRANSCRIBE_BUCKET
        if not bucket:
            raise SpeechError("TRANSCODING_TRANSCRIBE_BUCKET is not set; aws-transcribe needs a bucket.")
        # Names are unique in the AWS account, which two sites (staging and production, each
        # with its own job ids) may share: a random part keeps theirs apart.
        name = (
            f"video{request.video_id}-track{request.track_id}-job{request.job_id}-{request.attempt}"
            f"-{uuid.uuid4().hex[:8]}"
        )
        return {"name": name, "bucket": bucket, "stem": f"transcribe/{request.video_id}/{name}"}

    @staticmethod
    def _keys(ticket: dict) -> list[str]:
        return [f"{ticket['stem']}.{extension}" for extension in ("wav", "json", "vtt")]

    def _job(self, name: str) -> dict | None:
        """The transcription job, or None when the service has none of that name."""
        try:
            return self.transcribe_client.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("BadRequestException", "NotFoundException"):
                return None  # "The requested job couldn't be found."
            raise

    def submit(self, request, ticket):
        """Start the job unless it exists: a run that stopped after starting it, before it
        could say so, is carried on rather than started twice."""
        if self._job(ticket["name"]) is not None:
            log.info("Transcribe job %s exists already; not started again", ticket["name"])
            return
        bucket = ticket["bucket"]
        wav, output, _ = self._keys(ticket)
        self.s3.upload_file(str(request.audio), bucket, wav)
        params = {
            "TranscriptionJobName": ticket["name"],
            "Media": {"MediaFileUri": f"s3://{bucket}/{wav}"},
            "MediaFormat": "wav",
            "Subtitles": {"Formats": ["vtt"]},
            "OutputBucketName": bucket,
            "OutputKey": output,  # the subtitles are written beside it, as <stem>.vtt
        }
        if request.language:
            params["LanguageCode"] = aws_language_code(request.language)
        else:
            params["IdentifyLanguage"] = True
        try:
            self.transcribe_client.start_transcription_job(**params)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":  # started meanwhile
                raise

    def check(self, ticket):
        job = self._job(ticket["name"])
        if job is None:
            return Pending(NOT_STARTED)
        status = job["TranscriptionJobStatus"]
        if status == "FAILED":
            reason = job.get("FailureReason") or "no reason given"
            raise SpeechError(f"Amazon Transcribe failed: {reason}".rstrip(".") + ".")
        if status != "COMPLETED":
            return Pending(status)
        uris = job.get("Subtitles", {}).get("SubtitleFileUris") or []
        where = s3_location(uris[0]) if uris else None
        source_bucket, key = where or (ticket["bucket"], self._keys(ticket)[2])
        data = self.s3.get_object(Bucket=source_bucket, Key=key)["Body"].read()
        language = job.get("LanguageCode", "")
        if b"-->" not in data:
            return Transcript(language=language)
        cues = parse(data)
        return Transcript(language=language, segments=[Segment(c.start, c.end, c.text) for c in cues])

    def discard(self, ticket):
        for key in self._keys(ticket):
            try:
                self.s3.delete_object(Bucket=ticket["bucket"], Key=key)
            except Exception:  # tidying only; a lifecycle rule on transcribe/ catches the rest
                log.warning("could not delete s3://%s/%s", ticket["bucket"], key)


ENGINES = {
    "faster-whisper": "transcoding.captions.speech_engines.FasterWhisperEngine",
    "aws-transcribe": "transcoding.captions.speech_engines.AwsTranscribeEngine",
}


def get_engine(name: str | None = None) -> Engine:
    name = name or settings.SPEECH_ENGINE
    return import_string(ENGINES.get(name, name))()
