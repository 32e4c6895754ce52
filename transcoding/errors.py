"""What can go wrong in a job, and whether trying again can help.

A job that fails is retried only when the failure is *transient*: the network, the storage,
the database or the machine let it down, and the same work may succeed a minute later. A
failure that would happen again the same way is *permanent* and ends the job at once: bad
input (`SourceRejected`), an input over a configured limit (`LimitExceeded`), chunks that
cannot be joined (`StitchError`), and program errors (a ValueError or KeyError is a bug or
an input nobody planned for; three attempts would only burn three times the work).

An encode that ran out of memory (`OutOfMemory`) is the one failure retried *differently*:
once, with a smaller footprint (`smaller_footprint`: every rung in an ffmpeg process of its
own), never again the same way.

`is_transient` decides by what failed, not by where: the one place the retry rule lives.
"""

import botocore.exceptions
from django.db import InterfaceError, OperationalError


class PermanentError(Exception):
    """Fails the job at once, with this message as the one-sentence reason."""


class InvalidRequest(ValueError):
    """A request that cannot be carried out (no such file, an unknown part), with the reason
    for the user; raised to the admin, a command or a view, never inside a job."""


class SourceRejected(PermanentError):
    """The source can never be processed (not media, damaged, refused container...)."""


class LimitExceeded(SourceRejected):
    """The source is beyond a configured limit (size, duration, gaps, jobs, time, memory)."""


class StitchError(PermanentError):
    """The chunks cannot be joined (their init segments differ, or segments are missing).
    Retrying would make the same chunks again, so it fails the video at once."""


class SpeechError(PermanentError):
    """A speech engine refused the audio (a language it does not know, a job its service
    failed) or is not configured; the network's and the storage's own errors stay transient."""

    transient = False


class WaitUntil(Exception):
    """Not a failure: the step handed its work to an outside service (Amazon Transcribe) and
    asks to be run again in `seconds`, to see how it went. The runner puts the job back in the
    queue, due then, without counting an attempt (`status.jobs.job_wait`); `note` says what it
    waits for, in one line. The step must have kept what it needs to carry on (the job's
    result) before raising."""

    def __init__(self, seconds: float, note: str = ""):
        super().__init__(note or f"Waiting {seconds:g} s.")
        self.seconds, self.note = max(0.0, float(seconds)), note


class EncodeError(Exception):
    """ffmpeg failed. `transient` when it was killed or ran out of disk rather than refusing
    the input."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class OutOfMemory(EncodeError):
    """ffmpeg ran out of memory: the kernel killed it (a SIGKILL the worker did not send: the
    out-of-memory killer of the machine, or of the container's or cgroup's memory limit), or it
    grew past `TRANSCODING_FFMPEG_MAX_MEMORY_MB` and the worker stopped it. The same command
    would die the same way; fewer rungs at a time may fit. `rungs_at_once` is how many rungs
    the process that died was encoding (0: not known, nothing smaller to try)."""

    def __init__(self, message: str, *, rungs_at_once: int = 0):
        super().__init__(message, transient=rungs_at_once > 1)
        self.rungs_at_once = rungs_at_once


# What a job records (in its result) for its retry after running out of memory.
RUNGS_PER_PROCESS = "rungs_per_process"


def smaller_footprint(exc: BaseException) -> dict | None:
    """What the retry of this failure must change, to be recorded on the job before it is
    retried (`jobs.runner`), or None when it is not to be retried differently. Out of memory
    with several rungs in one process: every rung in a process of its own, once; out of memory
    at one rung per process fails for good (`is_transient`)."""
    if isinstance(exc, OutOfMemory) and exc.rungs_at_once > 1:
        return {RUNGS_PER_PROCESS: 1}
    return None


class StorageIncomplete(OSError):
    """Files the storage should hold are not there (yet): worth another attempt."""


class SourceUnavailable(OSError):
    """The original could not be read just now (the network or the storage failed)."""


# S3 error codes that mean "try again later".
_RETRYABLE_CODES = {
    "RequestTimeout", "RequestTimeoutException", "SlowDown", "Throttling", "ThrottlingException",
    "ServiceUnavailable", "InternalError", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
}  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """Whether the same work may succeed if tried again later."""
    if isinstance(exc, EncodeError):
        return exc.transient
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or status == 429 or error.get("Code") in _RETRYABLE_CODES
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        # Connection refused or reset, timeouts, a closed connection: the network.
        return isinstance(
            exc,
            (
                botocore.exceptions.ConnectionError,
                botocore.exceptions.HTTPClientError,
                botocore.exceptions.ReadTimeoutError,
            ),
        )
    # A lost or locked database, a dropped connection, a full disk, a storage outage.
    return isinstance(exc, (OperationalError, InterfaceError, OSError))


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception as one line for an error field: its message, or its type for a bare one."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(exc)).split())
    if not isinstance(exc, (PermanentError, EncodeError)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:limit]
