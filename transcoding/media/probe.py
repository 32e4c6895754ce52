"""Probe a source with PyAV (FFmpeg's libraries; the ffmpeg wheel ships no ffprobe).

`probe_source` opens the source only as `containers` allows (an allowed demuxer, the one
protocol its location needs), reads what the plan needs, and returns a `SourceInfo`, or raises
`SourceRejected` with one sentence a person can act on. Every cost a source controls is held
to `SourceLimits` (display size after the pixel aspect ratio, duration, frame rate, gaps in
the timestamps) before any work is planned; the rules are `validate_source` and
`validate_timestamps`, pure functions.
"""

from dataclasses import dataclass, replace
from fractions import Fraction

import av

from transcoding.conf import settings
from transcoding.errors import LimitExceeded, SourceRejected, SourceUnavailable
from transcoding.media.containers import ALLOWED_DEMUXERS, SourceInput, pyav_open_kwargs, refusal
from transcoding.media.ladder import SourceInfo

HDR_TRANSFERS = {16: "smpte2084", 18: "arib-std-b67"}
# The timestamp scan reads packets (no decoding) from the start up to this many, or this many
# bytes, then from the keyframe before (declared end - TAIL_SECONDS) to the end of the file,
# with the same budget: a gap planted anywhere in a small file, or between the content and a
# last frame stamped far ahead (the cheap way to claim hours), is found before any job is
# planned, and so are frames stamped after the duration the header declares (the duration is
# then the last frame's). A gap in the middle of a long file makes the chunk around it decode
# too little, which fails the video when that chunk runs (`publish.check_complete`); and every
# ffmpeg command stops reading at the planned end (`ffmpeg.input_args`), whatever a header
# that the scan could not check to the end said.
SCAN_PACKETS = 3000
SCAN_BYTES = 32 * 1024 * 1024
TAIL_SECONDS = 10.0

__all__ = ["SourceLimits", "SourceRejected", "probe_source", "validate_source", "validate_timestamps"]


@dataclass(frozen=True)
class SourceLimits:
    """What a source may cost; `TRANSCODING_*` settings (conf.py) with these defaults."""

    max_width: int = 7680
    max_height: int = 4320
    max_duration: float = 12 * 3600.0
    max_gap: float = 60.0
    max_fps: float = 1000.0

    @classmethod
    def from_settings(cls) -> "SourceLimits":
        return cls(
            max_width=int(settings.MAX_WIDTH),
            max_height=int(settings.MAX_HEIGHT),
            max_duration=float(settings.MAX_DURATION_SECONDS),
            max_gap=float(settings.MAX_TIMESTAMP_GAP_SECONDS),
            max_fps=float(settings.MAX_FRAME_RATE),
        )


@dataclass(frozen=True)
class Timestamps:
    """What the scan saw of the video stream's packet times (seconds from the stream's start)."""

    largest_gap: float
    gap_at: float  # when the frame before the largest gap is
    last: float = 0.0  # the latest frame time seen


def probe_source(
    source: SourceInput, *, size: int, limits: SourceLimits | None = None, scan: bool = True
) -> SourceInfo:
    """Probe and check a source. `scan`: also read the packets' timestamps (the encode's
    first look at a source does; a chunk worker re-reading a source the root checked need not)."""
    limits = limits or SourceLimits.from_settings()
    if size == 0:
        raise SourceRejected("The file is empty (0 bytes).")
    try:
        container = av.open(source.location, **pyav_open_kwargs(source))
    except av.error.InvalidDataError:
        raise SourceRejected("The file is not a video or is truncated: FFmpeg cannot read its container.")
    except av.error.ArgumentError:
        # format_whitelist refused the demuxer FFmpeg recognised (EINVAL): a playlist, a
        # manifest, a concat list, an image, a subtitle file...
        raise SourceRejected(refusal(""))
    except (av.error.HTTPServerError, av.error.TimeoutError, ConnectionError) as exc:
        raise SourceUnavailable(f"The original could not be read: {_reason(exc)}.")  # retried
    except av.error.FFmpegError as exc:
        raise SourceRejected(f"The file cannot be opened as media: {_reason(exc)}.")
    with container:
        name = container.format.name
        if not any(n in ALLOWED_DEMUXERS for n in name.split(",")):
            raise SourceRejected(refusal(name))  # never reached while the whitelist holds
        info = _read(container, size)
        validate_source(info, limits)  # before a frame is decoded: the coded size is bounded
        video = container.streams.video[0]
        info = replace(info, rotation=_rotation(container, video))
        validate_source(info, limits)
        if scan:
            seen = _scan_timestamps(container, video, info.duration)
            if seen.last > info.duration + 0.5:
                # The header's duration is only a claim: frames stamped later are what ffmpeg
                # would encode, so the limits apply to them.
                info = replace(info, duration=seen.last + _frame_seconds(info))
                validate_source(info, limits)
            validate_timestamps(seen, limits)
    return info


def _frame_seconds(info: SourceInfo) -> float:
    return 1 / float(info.fps) if info.fps and info.fps > 1 else 1 / 30


def _size(width: int, height: int) -> str:
    return f"{width}x{height}"


def validate_source(info: SourceInfo, limits: SourceLimits | None = None) -> None:
    """Refuse a source no plan should be made for. Pure."""
    limits = limits or SourceLimits()
    if not info.video_codec:
        if info.audio_codec:
            raise SourceRejected("The file has no video stream (it is audio only).")
        raise SourceRejected("The file has no video stream.")
    if not info.duration or info.duration <= 0:
        raise SourceRejected("The video's duration is zero or unknown.")
    if info.width <= 0 or info.height <= 0:
        raise SourceRejected("The video's dimensions are unknown.")
    limit = _size(limits.max_width, limits.max_height)
    label = f"8K limit ({limit})" if limit == "7680x4320" else f"size limit ({limit})"
    coded = (info.width, info.height)
    for width, height in (coded, info.display_size):
        long_side, short_side = max(width, height), min(width, height)
        if long_side > max(limits.max_width, limits.max_height) or short_side > min(
            limits.max_width, limits.max_height
        ):
            sar = f"{info.sar.numerator}:{info.sar.denominator}"
            shown = "" if (width, height) == coded else f" as displayed (pixel aspect ratio {sar})"
            raise LimitExceeded(f"The video is {_size(width, height)}{shown}, beyond the {label}.")
    if info.duration > limits.max_duration:
        raise LimitExceeded(
            f"The video is {_hours(info.duration)} long, beyond the {_hours(limits.max_duration)} limit."
        )
    if info.fps > limits.max_fps:
        raise LimitExceeded(
            f"The video's frame rate ({float(info.fps):g} fps) is beyond the {limits.max_fps:g} fps limit."
        )


def validate_timestamps(seen: Timestamps, limits: SourceLimits | None = None) -> None:
    """Refuse a source whose frames are far apart in time: every second between them would be
    encoded (the last frame repeated), so a few frames could claim hours of work. Pure."""
    limits = limits or SourceLimits()
    if seen.largest_gap > limits.max_gap:
        raise LimitExceeded(
            f"The video's timestamps jump {seen.largest_gap:.0f} s ahead after {seen.gap_at:.1f} s "
            f"(a gap between frames beyond the {limits.max_gap:g} s limit)."
        )


def _hours(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes = rest // 60
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {int(seconds) % 60:02d} s"


def _scan_timestamps(container, video, duration: float) -> Timestamps:
    """Packet times of the video stream from the start and, unless that reached the end, from
    just before the declared end to the end (each within the scan budget); the largest gap
    between consecutive frames in time order, and the last frame's time. Packets are read,
    never decoded."""
    base = video.time_base
    start = float(video.start_time * base) if video.start_time is not None else 0.0
    _seek(container, video, start)
    head, complete = _packet_times(container, video, start)
    tail = []
    if not complete and _seek(container, video, start + max(0.0, duration - TAIL_SECONDS)):
        tail, _ = _packet_times(container, video, start)
    gap, gap_at = 0.0, 0.0
    for times in (sorted(head), sorted(tail)):
        for before, after in zip(times, times[1:]):
            if after - before > gap:
                gap, gap_at = after - before, before
    return Timestamps(largest_gap=gap, gap_at=gap_at, last=max([*head, *tail], default=0.0))


def _seek(container, video, seconds: float) -> bool:
    try:
        container.seek(int(seconds / video.time_base), stream=video, backward=True)
    except av.error.FFmpegError:
        return False
    return True


def _packet_times(container, video, start: float) -> tuple[list[float], bool]:
    """(times of the video packets read, within the budget; whether the end of the file was
    reached)."""
    times, read = [], 0
    base = video.time_base
    try:
        for packet in container.demux(video):
            if packet.pts is None and packet.size == 0:
                continue  # the flush packet at the end
            if packet.pts is not None:
                times.append(float(packet.pts * base) - start)
            read += packet.size
            if len(times) >= SCAN_PACKETS or read >= SCAN_BYTES:
                return times, False
    except av.error.FFmpegError:
        # A damaged stretch ends the scan; the encode judges how much decodes.
        return times, False
    return times, True


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
        sar = Fraction(video.sample_aspect_ratio or 1)
        fields.update(
            video_codec=cc.name or "",
            width=cc.width or 0,
            height=cc.height or 0,
            fps=fps,
            # Declared and average rates disagree on variable-frame-rate sources (phones).
            vfr=bool(avg and base and abs(float(avg) - float(base)) > 0.01 * float(base)),
            sar=sar if sar > 0 else Fraction(1),
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
    """Rotation from the display matrix, read off the first decoded frame (where PyAV exposes
    it); 0 when no frame decodes, which the encode then reports."""
    try:
        for frame in container.decode(video=video.index):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360
    except av.error.FFmpegError:
        return 0
    return 0


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc).rstrip(".")
