"""Probe a source with PyAV (FFmpeg's libraries; the ffmpeg wheel ships no ffprobe).

`probe_source` returns a `SourceInfo` or raises `SourceRejected` with one sentence a person
can act on. The rules that refuse a source are in `validate_source`, a pure function.
"""

from fractions import Fraction

import av

from .ladder import SourceInfo

HDR_TRANSFERS = {16: "smpte2084", 18: "arib-std-b67"}


class SourceRejected(Exception):
    """The source can never be processed: a permanent error, not retried."""


def probe_source(url: str, *, size: int = 0, max_width: int = 7680, max_height: int = 4320) -> SourceInfo:
    if size == 0:
        raise SourceRejected("The file is empty (0 bytes).")
    try:
        container = av.open(url, metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise SourceRejected("The file is not a video or is truncated: FFmpeg cannot read its container.")
    except av.error.FFmpegError as exc:
        raise SourceRejected(f"The file cannot be opened as media: {_reason(exc)}.")
    with container:
        info = _read(container, size)
    validate_source(info, max_width=max_width, max_height=max_height)
    return info


def validate_source(info: SourceInfo, *, max_width: int = 7680, max_height: int = 4320) -> None:
    if not info.video_codec:
        if info.audio_codec:
            raise SourceRejected("The file has no video stream (it is audio only).")
        raise SourceRejected("The file has no video stream.")
    if not info.duration or info.duration <= 0:
        raise SourceRejected("The video's duration is zero or unknown.")
    if info.width <= 0 or info.height <= 0:
        raise SourceRejected("The video's dimensions are unknown.")
    long_side, short_side = max(info.width, info.height), min(info.width, info.height)
    if long_side > max(max_width, max_height) or short_side > min(max_width, max_height):
        raise SourceRejected(
            f"The video is {info.width}x{info.height}, beyond the 8K limit ({max_width}x{max_height})."
        )


def _read(container, size: int) -> SourceInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    duration = _duration(container, video)
    fields = {
        "container": container.format.name,
        "duration": duration,
        "size": size,
        "width": 0,
        "height": 0,
        "video_codec": "",
        "fps": Fraction(0),
    }
    if audio is not None:
        fields.update(
            audio_codec=audio.codec_context.name or "",
            audio_channels=audio.codec_context.channels or 0,
            audio_sample_rate=audio.codec_context.sample_rate or 0,
        )
    if video is not None:
        cc = video.codec_context
        avg = video.average_rate or Fraction(0)
        base = video.base_rate or Fraction(0)
        fps = Fraction(avg or base or video.guessed_rate or 0)
        bit_depth = 8
        if cc.format is not None:
            bit_depth = max((c.bits for c in cc.format.components), default=8)
        transfer = HDR_TRANSFERS.get(int(cc.color_trc or 0), "")
        fields.update(
            video_codec=cc.name or "",
            width=cc.width or 0,
            height=cc.height or 0,
            fps=fps,
            # Declared and average rates disagree on variable-frame-rate sources (phones).
            vfr=bool(avg and base and abs(float(avg) - float(base)) > 0.01 * float(base)),
            sar=Fraction(video.sample_aspect_ratio or 1),
            rotation=_rotation(container, video),
            pix_fmt=cc.pix_fmt or "",
            bit_depth=bit_depth,
            hdr=bool(transfer),
            color_transfer=transfer,
            video_bitrate=video.bit_rate or None,
        )
    return SourceInfo(**fields)


def _duration(container, video) -> float:
    if container.duration:
        return container.duration / av.time_base
    if video is not None and video.duration and video.time_base:
        return float(video.duration * video.time_base)
    return 0.0


def _rotation(container, video) -> int:
    """Rotation from the display matrix, read off the first decoded frame (where PyAV
    exposes it); 0 when no frame decodes, which the encode then reports."""
    try:
        for frame in container.decode(video=video.index):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except av.error.FFmpegError:
        return 0
    return 0


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc).rstrip(".")
