"""Build ffmpeg argv lists and parse what ffmpeg prints. Pure: nothing here runs a process.

One ffmpeg process decodes the source once and writes, as separate outputs, every rung (CMAF
fMP4 segments through the HLS muxer), the audio (once, its own rendition), the storyboard
sprite sheets (the `tile` filter) and the poster. The filter graph splits the decoded frames.
When memory is short, the same outputs come from several processes, a few rungs each
(`encode_passes`).
"""

from dataclasses import dataclass, replace
from fractions import Fraction

from transcoding.media.chunking import TIMELINE_OFFSET, ChunkSpan
from transcoding.media.containers import SourceInput, ffmpeg_input_options
from transcoding.media.ladder import Plan, Rung

# Layout of the work directory; manifests and storage keys use the same relative paths.
INIT_NAME = "init.mp4"
SEGMENT_PATTERN = "seg_%05d.m4s"
MEDIA_PLAYLIST = "index.m3u8"
AUDIO_DIR = "audio"
STORYBOARD_DIR = "storyboard"
SHEET_PATTERN = "sheet_%04d.jpg"
POSTER_NAME = "poster.jpg"

TONEMAP_CHAIN = (
    "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
    "tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
)

RENDITIONS, AUDIO, STORYBOARD, POSTER = "renditions", "audio", "storyboard", "poster"
ALL_PARTS = (RENDITIONS, AUDIO, STORYBOARD, POSTER)


def fps_arg(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}" if fps.denominator != 1 else str(fps.numerator)


def rung_filter(rung: Rung) -> str:
    """Every rung is limited-range ("tv") 8-bit 4:2:0, tagged so: a full-range source (a
    motion-JPEG camera's yuvj420p) is scaled into the limited range, never passed through."""
    chain = []
    if rung.change_fps:
        chain.append(f"fps={fps_arg(rung.fps)}")
    chain += [f"scale={rung.width}:{rung.height}:flags=bicubic:out_range=tv", "setsar=1", "format=yuv420p"]
    return ",".join(chain)


def storyboard_filter(plan: Plan, chunk: ChunkSpan | None = None) -> str:
    """Tiles at 0, interval, 2 interval... of the whole video; a chunk makes the tiles whose
    times fall in it (the fps filter's grid starts at the chunk's first tile)."""
    sb = plan.storyboard
    start = f":start_time={chunk.first_tile * sb.interval:.6f}" if chunk and chunk.first_tile else ""
    return (
        f"fps=1000/{round(sb.interval * 1000)}{start},scale={sb.tile_width}:{sb.tile_height},"
        f"setsar=1,tile={sb.columns}x{sb.rows}"
    )


def sheet_pattern(chunk: ChunkSpan | None) -> str:
    """Each chunk names its own sheets; the storyboard WebVTT points into all of them."""
    return SHEET_PATTERN if chunk is None or chunk.whole else f"sheet_c{chunk.index:03d}_%04d.jpg"


def poster_filter(plan: Plan) -> str:
    poster = plan.poster
    scale = f"scale={poster.width}:{poster.height},setsar=1"
    if poster.time is not None:
        return f"select='gte(t\\,{poster.time:.3f})',{scale}"
    # Sample evenly across the video; `thumbnail` keeps the frame closest to the average
    # histogram, which is never a black or flash frame unless the whole video is.
    rate = max(poster.samples / max(plan.duration, 0.001), 0.001)
    return f"fps={rate:.6f},{scale},thumbnail={poster.samples}"


def filter_graph(plan: Plan, parts: tuple[str, ...], chunk: ChunkSpan | None = None) -> tuple[str, list[str]]:
    """The -filter_complex string and the output labels, in output order."""
    branches = []
    if RENDITIONS in parts:
        branches += [(f"v{r.name}", rung_filter(r)) for r in plan.rungs]
    if STORYBOARD in parts:
        branches.append(("sb", storyboard_filter(plan, chunk)))
    if POSTER in parts:
        branches.append(("poster", poster_filter(plan)))
    if not branches:
        return "", []
    head = f"[0:v:0]{TONEMAP_CHAIN}," if plan.tonemap else "[0:v:0]"
    split = f"{head}split={len(branches)}" + "".join(f"[in{i}]" for i in range(len(branches)))
    chains = [f"[in{i}]{chain}[{label}]" for i, (label, chain) in enumerate(branches)]
    return ";".join([split, *chains]), [label for label, _ in branches]


def hls_output_args(directory: str, segment_seconds: float, start_number: int = 1) -> list[str]:
    return [
        # The source's own timestamps (-copyts) plus a constant, written as they are into each
        # fragment's decode time (frag_discont) instead of shifted to 0 behind an edit list:
        # chunks of one rung then have identical init segments and continuous timestamps.
        "-output_ts_offset", str(TIMELINE_OFFSET),
        "-f", "hls",
        "-hls_time", f"{segment_seconds:g}",
        # EVENT: ffmpeg rewrites the playlist after every segment, which tells what is finished.
        "-hls_playlist_type", "event",
        "-hls_segment_type", "fmp4",
        "-hls_segment_options", "movflags=+frag_discont",
        # Segments appear under their final name only when complete, so they can be stored
        # (and deleted locally) while the encode goes on.
        "-hls_flags", "temp_file",
        "-hls_fmp4_init_filename", INIT_NAME,
        "-hls_segment_filename", f"{directory}/{SEGMENT_PATTERN}",
        "-start_number", str(start_number),
        f"{directory}/{MEDIA_PLAYLIST}",
    ]  # fmt: skip


def keyframe_expr(segment_seconds: float, first_segment: int = 1) -> str:
    """A keyframe at the first frame of every segment of the global grid (t is source time)."""
    n = "n_forced" if first_segment == 1 else f"(n_forced+{first_segment - 1})"
    return f"expr:gte(t,{n}*{segment_seconds:g})"


def rung_output_args(rung: Rung, plan: Plan, workdir: str, chunk: ChunkSpan | None = None) -> list[str]:
    seg = plan.segment_seconds
    first = chunk.first_segment if chunk else 1
    return [
        "-map", f"[v{rung.name}]",
        "-c:v", "libx264",
        "-preset", plan.x264_preset,
        "-profile:v", "high",
        "-pix_fmt", "yuv420p",
        "-color_range", "tv",
        "-crf", str(rung.crf),
        "-maxrate", str(rung.max_bitrate),
        "-bufsize", str(rung.bufsize),
        # Keyframes exactly on the segment grid, the same on every rung: a fixed GOP, no
        # scene-cut keyframes in between, and a forced one at every segment boundary.
        "-g", str(rung.gop),
        "-keyint_min", str(rung.gop),
        "-sc_threshold", "0",
        "-force_key_frames", keyframe_expr(seg, first),
        "-r", fps_arg(rung.fps),
        "-an", "-sn", "-dn",
        *hls_output_args(f"{workdir}/{rung.name}", seg, first),
    ]  # fmt: skip


def audio_output_args(plan: Plan, workdir: str) -> list[str]:
    audio = plan.audio
    return [
        "-map", "0:a:0",
        "-c:a", "aac",
        "-profile:a", "aac_low",
        "-b:a", str(audio.bitrate),
        "-ac", str(audio.channels),
        "-ar", str(audio.sample_rate),
        "-vn", "-sn", "-dn",
        *hls_output_args(f"{workdir}/{AUDIO_DIR}", plan.segment_seconds),
    ]  # fmt: skip


def storyboard_output_args(workdir: str, chunk: ChunkSpan | None = None) -> list[str]:
    return [
        "-map", "[sb]",
        "-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p",
        "-f", "image2", "-start_number", "1",
        f"{workdir}/{STORYBOARD_DIR}/{sheet_pattern(chunk)}",
    ]  # fmt: skip


def poster_output_args(workdir: str) -> list[str]:
    return [
        "-map", "[poster]",
        "-frames:v", "1",
        "-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p",
        "-f", "image2", "-update", "1",
        f"{workdir}/{POSTER_NAME}",
    ]  # fmt: skip


# Every command stops reading a little after the planned end (`input_args`): a header whose
# duration lied cannot make an encode run on, whatever the file holds after.
END_MARGIN_SECONDS = 0.5


def input_args(
    source: SourceInput, chunk: ChunkSpan | None = None, *, until: float | None = None
) -> list[str]:
    """The source, or only a chunk's time range of it: input seeking, so ffmpeg reads from the
    keyframe before the cut (a range request on S3) and decodes only what the chunk needs.
    The read ends at the chunk's cut, or for the last chunk and the whole source at the planned
    end (`until`, the video's duration) plus a margin. Opened only by the demuxer the probe
    found, over the one protocol its location needs (`containers`): every command reads its
    source through here."""
    args = []
    if chunk is not None and not chunk.whole and chunk.cut_start:
        args += ["-ss", f"{chunk.cut_start:.6f}"]
    if chunk is not None and not chunk.whole and chunk.cut_end is not None:
        args += ["-to", f"{chunk.cut_end:.6f}"]
    elif chunk is not None and not chunk.whole:
        args += ["-to", f"{chunk.end + END_MARGIN_SECONDS:.6f}"]
    elif until is not None:
        args += ["-to", f"{until + END_MARGIN_SECONDS:.6f}"]
    return [*args, *ffmpeg_input_options(source), "-i", source.location]


def build_encode_args(
    ffmpeg: str,
    source: SourceInput,
    plan: Plan,
    workdir: str,
    parts: tuple[str, ...] = ALL_PARTS,
    chunk: ChunkSpan | None = None,
) -> list[str]:
    """The whole command: decode once (a chunk's range of the source), write every requested
    part. The audio is never chunked: a chunk's command leaves it to `build_audio_args` (a
    silent source has no audio to make, chunked or not)."""
    if chunk is not None and not chunk.whole and AUDIO in parts and plan.audio is not None:
        raise ValueError("A chunk's command cannot make the audio: use build_audio_args.")
    graph, labels = filter_graph(plan, parts, chunk)
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-y",
        "-loglevel", "error",
        "-nostats", "-progress", "pipe:1", "-stats_period", "1",
        "-copyts", "-start_at_zero",
        *input_args(source, chunk, until=plan.duration),
    ]  # fmt: skip
    audio = AUDIO in parts and plan.audio is not None
    if graph:
        args += ["-filter_complex", graph]
    for label in labels:
        if label == "sb":
            args += storyboard_output_args(workdir, chunk)
        elif label == "poster":
            args += poster_output_args(workdir)
        else:
            rung = next(r for r in plan.rungs if f"v{r.name}" == label)
            args += rung_output_args(rung, plan, workdir, chunk)
    if audio:
        args += audio_output_args(plan, workdir)
    return args


def encode_passes(
    plan: Plan, parts: tuple[str, ...], rungs_per_process: int | None = None
) -> list[tuple[Plan, tuple[str, ...]]]:
    """The processes that make `parts` of `plan`, as (plan, parts) for `build_encode_args`:
    one process for everything, or, with `rungs_per_process` (a retry after running out of
    memory, `errors.smaller_footprint`), the rungs in groups of that many, one process each,
    top rung first; the last process also makes the other parts (audio, storyboard, poster)
    beside its rungs, the smallest. Each rung's own arguments are the same either way, so the
    outputs are the same files; only the source is decoded once per process."""
    if not rungs_per_process or RENDITIONS not in parts or len(plan.rungs) <= rungs_per_process:
        return [(plan, parts)]
    groups = [plan.rungs[i : i + rungs_per_process] for i in range(0, len(plan.rungs), rungs_per_process)]
    passes = [(replace(plan, rungs=group), (RENDITIONS,)) for group in groups]
    passes[-1] = (passes[-1][0], parts)
    return passes


def build_audio_args(ffmpeg: str, source: SourceInput, plan: Plan, workdir: str) -> list[str]:
    """The whole video's audio, alone, for a chunked encode: it runs beside chunk 0's video
    process rather than as its second input, because there ffmpeg would read the audio only as
    fast as the slowest video output (the storyboard's `tile` and the poster's `thumbnail` hold
    frames back), so the audio's first segment would wait for the whole chunk."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y",
        "-loglevel", "error", "-nostats",
        "-copyts", "-start_at_zero",
        "-vn", "-sn", "-dn", *input_args(source, until=plan.duration),
        *audio_output_args(plan, workdir),
    ]  # fmt: skip


def output_dirs(plan: Plan, parts: tuple[str, ...] = ALL_PARTS) -> list[str]:
    """Directories (relative to the work dir) ffmpeg expects to exist."""
    dirs = []
    if RENDITIONS in parts:
        dirs += [r.name for r in plan.rungs]
    if AUDIO in parts and plan.audio is not None:
        dirs.append(AUDIO_DIR)
    if STORYBOARD in parts:
        dirs.append(STORYBOARD_DIR)
    return dirs


def expected_frames(plan: Plan, parts: tuple[str, ...] = ALL_PARTS) -> float:
    """Frames the first video output will have written at the end, for progress: ffmpeg's
    `frame=` counts the first output, while `out_time` runs ahead with the tile filter."""
    if RENDITIONS in parts:
        return max(1.0, plan.duration * float(plan.rungs[0].fps))
    if STORYBOARD in parts:
        return float(plan.storyboard.sheets)
    return 1.0


@dataclass(frozen=True)
class Progress:
    frame: int
    out_time: float
    speed: str
    done: bool


def parse_progress(block: str) -> Progress:
    """Parse one block of `-progress` output (key=value lines ending with progress=...)."""
    values = {}
    for line in block.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    try:
        out_time = int(values.get("out_time_us", "0")) / 1_000_000
    except ValueError:  # "N/A" before the first frame
        out_time = 0.0
    try:
        frame = int(values.get("frame", "0"))
    except ValueError:
        frame = 0
    return Progress(
        frame=frame,
        out_time=max(out_time, 0.0),
        speed=values.get("speed", ""),
        done=values.get("progress") == "end",
    )


def progress_fraction(progress: Progress, plan: Plan, parts: tuple[str, ...] = ALL_PARTS) -> float:
    if progress.done:
        return 1.0
    if RENDITIONS in parts or STORYBOARD in parts:
        return min(1.0, progress.frame / expected_frames(plan, parts))
    return min(1.0, progress.out_time / max(plan.duration, 0.001))


def frame_too_large(stderr: str) -> bool:
    """A decoder refused a frame over `-max_pixels` (the frame size grew after the probe)."""
    return "exceeds specified max pixel count" in stderr


def parse_error(stderr: str, limit: int = 300) -> str:
    """The most telling line of ffmpeg's stderr, as one sentence for the error field."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "ffmpeg failed without an error message."
    keywords = ("invalid", "error", "no such", "not found", "unsupported", "corrupt", "truncat")
    chosen = next((line for line in lines if any(k in line.lower() for k in keywords)), lines[-1])
    # ffmpeg quotes what the file holds (names, metadata): no terminal escapes reach an error field.
    return "".join(c for c in chosen if c.isprintable())[:limit]


def avc_codec_string(avcc: bytes) -> str:
    """RFC 6381 codec string from an avcC record: profile, constraint flags and level."""
    if len(avcc) < 4 or avcc[0] != 1:
        return "avc1.640028"
    return f"avc1.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


# Speech recognition reads 16 kHz mono 16-bit PCM: what Whisper resamples to anyway, and a WAV
# that Amazon Transcribe takes as it is.
SPEECH_SAMPLE_RATE = 16_000


def build_audio_extract_args(
    ffmpeg: str, source: SourceInput, out_path: str, duration: float | None = None
) -> list[str]:
    """The source's first audio stream as a 16 kHz mono PCM WAV, for speech recognition (up
    to the video's probed `duration`)."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y",
        "-loglevel", "error",
        "-nostats", "-progress", "pipe:1", "-stats_period", "1",
        *input_args(source, until=duration),
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-ac", "1", "-ar", str(SPEECH_SAMPLE_RATE),
        "-c:a", "pcm_s16le", "-f", "wav",
        out_path,
    ]  # fmt: skip


# --- MP4 downloads --------------------------------------------------------------------------
# A track file for a download is a rung's (or the audio's) init segment followed by its media
# segments: a fragmented MP4 the `mov` demuxer reads as one stream.
TRACK_CONTAINER = "mov"


def build_remux_args(
    ffmpeg: str,
    video: SourceInput,
    audio: SourceInput | None,
    out_path: str,
    *,
    offset: float = TIMELINE_OFFSET,
) -> list[str]:
    """One MP4 from a rung's track file and the audio's, copied packet for packet (`-c copy`:
    no decoding, no encoding), with the index (moov) before the media (`+faststart`), so a
    player starts before the whole file is fetched. The segments' timestamps start at `offset`
    (TIMELINE_OFFSET); both inputs are moved back by it under `-copyts`, which keeps the audio
    in step with the video (each input shifted by its own start would misplace the audio by
    its encoder delay) and starts the download at 0. The inputs are the server's own local
    files, opened by the forced demuxer over `file` only (`containers`)."""
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-y",
        "-loglevel", "error",
        "-nostats", "-progress", "pipe:1", "-stats_period", "1",
        "-copyts",
    ]  # fmt: skip
    for track in (video, audio):
        if track is not None:
            args += ["-itsoffset", f"{-offset:g}", *ffmpeg_input_options(track), "-i", track.location]
    args += ["-map", "0:v:0"]
    if audio is not None:
        args += ["-map", "1:a:0"]
    return [
        *args,
        "-c", "copy",
        "-sn", "-dn",
        "-map_metadata", "-1",
        "-movflags", "+faststart",
        "-f", "mp4",
        out_path,
    ]  # fmt: skip
