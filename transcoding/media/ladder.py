"""Plan what to encode for a probed source and a preset. Pure functions, frozen dataclasses.

The plan is everything the argv builder and the manifest writers need, decided up front so it
can be tested without running ffmpeg: which rungs (never upscaled, at least one), their sizes
(even, square pixels, rotation and portrait handled), frame rates, bitrate caps, the GOP that
puts keyframes on the segment grid, the storyboard grid and where the poster comes from.
"""

import math
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class SourceInfo:
    """What the probe learned about a source. Sizes are coded (before SAR and rotation)."""

    container: str
    duration: float
    width: int
    height: int
    video_codec: str
    fps: Fraction
    vfr: bool = False
    sar: Fraction = Fraction(1)
    rotation: int = 0
    pix_fmt: str = "yuv420p"
    bit_depth: int = 8
    hdr: bool = False
    color_transfer: str = ""
    video_bitrate: int | None = None
    audio_codec: str = ""
    audio_channels: int = 0
    audio_sample_rate: int = 0
    size: int = 0

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codec)

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: SAR applied, then rotation."""
        width = round(self.width * self.sar) if self.sar > 0 else self.width
        height = self.height
        if self.rotation % 180:
            width, height = height, width
        return width, height


@dataclass(frozen=True)
class RungSpec:
    height: int
    max_bitrate: int
    crf: int = 23


@dataclass(frozen=True)
class PresetSpec:
    rungs: tuple[RungSpec, ...]
    x264_preset: str = "veryfast"
    audio_bitrate: int = 128_000
    max_fps: int = 60
    low_rung_max_fps: int = 30
    storyboard_tile_width: int = 160
    storyboard_min_tiles: int = 20
    storyboard_max_tiles: int = 200
    storyboard_columns: int = 10
    storyboard_rows: int = 10


@dataclass(frozen=True)
class Rung:
    name: str
    width: int
    height: int
    fps: Fraction
    crf: int
    max_bitrate: int
    bufsize: int
    gop: int
    change_fps: bool


@dataclass(frozen=True)
class AudioPlan:
    bitrate: int
    channels: int = 2
    sample_rate: int = 48_000


@dataclass(frozen=True)
class StoryboardPlan:
    interval: float
    tile_width: int
    tile_height: int
    columns: int
    rows: int
    count: int

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        return math.ceil(self.count / self.per_sheet)


@dataclass(frozen=True)
class PosterPlan:
    # None: let ffmpeg's thumbnail filter pick a representative frame from `samples` frames.
    time: float | None
    width: int
    height: int
    samples: int = 24


@dataclass(frozen=True)
class Plan:
    duration: float
    segment_seconds: float
    rungs: tuple[Rung, ...]
    audio: AudioPlan | None
    storyboard: StoryboardPlan
    poster: PosterPlan
    tonemap: bool = False
    x264_preset: str = "veryfast"
    notes: tuple[str, ...] = field(default=())


def even(value: float) -> int:
    """Nearest even integer (halves round up), at least 2: 4:2:0 needs even dimensions."""
    return max(2, int(math.floor(value / 2.0 + 0.5)) * 2)


def floor_even(value: int) -> int:
    return max(2, value - value % 2)


def cap_fps(fps: Fraction, cap: int) -> Fraction:
    """Divide by the smallest whole number that brings the rate under the cap (60 -> 30,
    50 -> 25, 59.94 -> 29.97), so frames are dropped evenly instead of judder."""
    if fps <= 0:
        return Fraction(cap)
    if fps <= cap:
        return fps
    return fps / math.ceil(fps / cap)


def plan_rungs(source: SourceInfo, preset: PresetSpec, segment_seconds: float) -> tuple[Rung, ...]:
    display_w, display_h = source.display_size
    portrait = display_h > display_w
    short, long_ = (display_w, display_h) if portrait else (display_h, display_w)
    wanted = sorted({r.height: r for r in preset.rungs}.values(), key=lambda r: -r.height)
    fitting = [r for r in wanted if r.height <= short]
    if not fitting:
        # Smaller than the smallest rung: one rung at the source's own size.
        smallest = wanted[-1] if wanted else RungSpec(height=short, max_bitrate=400_000)
        fitting = [RungSpec(height=floor_even(short), max_bitrate=smallest.max_bitrate, crf=smallest.crf)]

    rungs = []
    for spec in fitting:
        short_side = even(spec.height)
        # Never wider than the source, even by the one pixel rounding could add.
        long_side = min(even(short_side * long_ / short), floor_even(long_))
        width, height = (short_side, long_side) if portrait else (long_side, short_side)
        cap = preset.max_fps if spec.height >= 720 else preset.low_rung_max_fps
        fps = cap_fps(source.fps, cap)
        max_bitrate = spec.max_bitrate
        if source.video_bitrate:
            max_bitrate = min(max_bitrate, source.video_bitrate)
        rungs.append(
            Rung(
                name=f"{short_side}p",
                width=width,
                height=height,
                fps=fps,
                crf=spec.crf,
                max_bitrate=max_bitrate,
                bufsize=2 * max_bitrate,
                gop=max(1, math.ceil(fps * Fraction(segment_seconds).limit_denominator(1000))),
                change_fps=source.vfr or fps != source.fps,
            )
        )
    # Two rungs can round to the same size on tiny sources; keep the first of each.
    unique = {}
    for rung in rungs:
        unique.setdefault(rung.name, rung)
    return tuple(unique.values())


def plan_storyboard(source: SourceInfo, preset: PresetSpec) -> StoryboardPlan:
    """About one tile every 2 s, but at least `min_tiles` and at most `max_tiles` a video."""
    duration = max(source.duration, 0.001)
    count = min(max(round(duration / 2.0), preset.storyboard_min_tiles), preset.storyboard_max_tiles)
    interval = round(duration / count, 3)
    interval = max(interval, 0.04)
    count = math.ceil(round(duration / interval, 6))
    display_w, display_h = source.display_size
    tile_width = even(preset.storyboard_tile_width)
    tile_height = even(tile_width * display_h / display_w)
    columns = min(preset.storyboard_columns, 10)
    rows = min(preset.storyboard_rows, 10, math.ceil(count / columns))
    return StoryboardPlan(
        interval=interval,
        tile_width=tile_width,
        tile_height=tile_height,
        columns=columns,
        rows=rows,
        count=count,
    )


def plan_poster(source: SourceInfo, top: Rung, poster_time: float | None) -> PosterPlan:
    time = None
    if poster_time is not None:
        # Clamp into the video, leaving room for one frame at the end.
        last = max(0.0, source.duration - 1.0 / float(source.fps or 25))
        time = min(max(0.0, poster_time), last)
    return PosterPlan(time=time, width=top.width, height=top.height)


def plan_encode(
    source: SourceInfo,
    preset: PresetSpec,
    *,
    segment_seconds: float = 4.0,
    poster_time: float | None = None,
) -> Plan:
    rungs = plan_rungs(source, preset, segment_seconds)
    notes = []
    if source.vfr:
        notes.append("variable frame rate converted to constant")
    if source.hdr:
        notes.append(f"HDR ({source.color_transfer}) tone-mapped to SDR BT.709")
    elif source.bit_depth > 8:
        notes.append(f"{source.bit_depth}-bit source converted to 8-bit")
    audio = AudioPlan(bitrate=preset.audio_bitrate) if source.has_audio else None
    return Plan(
        duration=source.duration,
        segment_seconds=segment_seconds,
        rungs=rungs,
        audio=audio,
        storyboard=plan_storyboard(source, preset),
        poster=plan_poster(source, rungs[0], poster_time),
        tonemap=source.hdr,
        x264_preset=preset.x264_preset,
        notes=tuple(notes),
    )
