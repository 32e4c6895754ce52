"""Split a long video into chunks that workers encode in parallel. Pure functions.

A chunk is a run of whole segments, so every chunk starts on the keyframe grid and the
chunks' segments, numbered globally, line up one after another in the final playlists. Cuts
fall on source frames: a chunk takes the frames whose time is in [start, end), and the cut
points sit a quarter frame before those times so that rounding in ffmpeg can neither drop
nor repeat the frame at a join.

Every encode is planned as chunks, a short video as one chunk, so there is one code path.
Timestamps are the source's own (ffmpeg -copyts) plus `TIMELINE_OFFSET`: every chunk's
segments carry plain global times and need no edit list, which makes each rung's init segment
byte-identical across chunks and the timestamps continuous across joins.
"""

import math
from dataclasses import asdict, dataclass
from fractions import Fraction

# Media timestamps start here (seconds), leaving room for the encoders' negative start (x264's
# B-frame reordering, AAC priming) without edit lists. Manifests map it back to 0: DASH by
# presentationTimeOffset, HLS players by the first segment's time, WebVTT by X-TIMESTAMP-MAP.
TIMELINE_OFFSET = 10


@dataclass(frozen=True)
class ChunkSpan:
    index: int
    count: int
    start: float  # seconds, the first frame's time (on the segment grid, rounded to a frame)
    end: float  # seconds; the last chunk ends at the video's duration
    cut_start: float  # what ffmpeg is given (-ss / -to): a quarter frame early
    cut_end: float | None  # None: read to the end of the source
    first_segment: int  # global number of the chunk's first segment (from 1)
    segments: int  # segments the grid gives this chunk (the last may be short)
    first_tile: int  # global index of the chunk's first storyboard tile
    tiles: int  # storyboard tiles in the chunk

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def whole(self) -> bool:
        """The only chunk: the encode reads the whole source."""
        return self.count == 1

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ChunkSpan":
        return cls(**data)


def chunk_segments(chunk_seconds: float, segment_seconds: float) -> int:
    """Whole segments per chunk (at least one)."""
    return max(1, round(chunk_seconds / segment_seconds))


def _frame_time(seconds: Fraction, fps: Fraction) -> Fraction:
    """Time of the first frame at or after `seconds` on a constant `fps` grid."""
    return Fraction(math.ceil(seconds * fps)) / fps


def _tiles_before(seconds: float, interval: float, total: int) -> int:
    """Storyboard tiles (at 0, interval, 2 interval...) whose time is before `seconds`."""
    if interval <= 0:
        return 0
    return min(total, max(0, math.ceil(round(seconds / interval, 9))))


def plan_chunks(
    duration: float,
    fps: Fraction,
    *,
    segment_seconds: float,
    chunk_seconds: float,
    threshold_seconds: float,
    tile_interval: float = 0.0,
    tile_count: int = 0,
) -> tuple[ChunkSpan, ...]:
    """The chunks for a video of `duration` seconds. One chunk when the video is not longer
    than `threshold_seconds`, or would make a single chunk anyway."""
    per_chunk = chunk_segments(chunk_seconds, segment_seconds)
    total_segments = max(1, math.ceil(round(duration / segment_seconds, 6)))
    count = 1 if duration <= threshold_seconds else math.ceil(total_segments / per_chunk)
    if count > 1 and duration - (count - 1) * per_chunk * segment_seconds < per_chunk * segment_seconds / 4:
        count -= 1  # a sliver of a last chunk (under a quarter chunk) joins the one before it
    fps = Fraction(fps) if fps else Fraction(30)
    quarter = Fraction(1, 4) / fps
    seg = Fraction(segment_seconds).limit_denominator(1000)
    spans = []
    for index in range(count):
        first = index * per_chunk
        start = _frame_time(first * seg, fps) if index else Fraction(0)
        last = index == count - 1
        if last:
            end = Fraction(duration).limit_denominator(1_000_000)
        else:
            end = _frame_time((first + per_chunk) * seg, fps)
        segments = total_segments - first if last else per_chunk
        first_tile = _tiles_before(float(start), tile_interval, tile_count) if index else 0
        end_tile = tile_count if last else _tiles_before(float(end), tile_interval, tile_count)
        spans.append(
            ChunkSpan(
                index=index,
                count=count,
                start=round(float(start), 6),
                end=round(float(end), 6),
                cut_start=round(float(max(start - quarter, 0)), 6) if index else 0.0,
                cut_end=None if last else round(float(end - quarter), 6),
                first_segment=first + 1,
                segments=segments,
                first_tile=first_tile,
                tiles=end_tile - first_tile,
            )
        )
    return tuple(spans)


def chunk_containing(spans: tuple[ChunkSpan, ...], seconds: float) -> ChunkSpan:
    """The chunk whose frames include the time `seconds` (the last one past the end)."""
    for span in spans:
        if seconds < span.end:
            return span
    return spans[-1]
