"""How a source may be opened: the allow-list of container demuxers, and the one protocol its
location needs. Pure: the probe (PyAV) and every ffmpeg command take their input options from
here, so there is one rule for both.

Why: FFmpeg picks a demuxer by looking at the bytes, and several demuxers open further URLs
that the file names: HLS and DASH manifests fetch their segments, a concat list opens other
files, an image sequence reads a pattern of paths. An uploaded file that is really such a
playlist would make the server fetch internal addresses (cloud metadata credentials) or read
other files on its disk, and publish what it got as video. So a source is opened only

- by a demuxer on `ALLOWED_DEMUXERS` (FFmpeg's `format_whitelist`; anything else is refused
  before it reads a byte beyond the probe), and, once probed, by exactly that demuxer
  (`-f`, so the encode never guesses again);
- over the one protocol its location needs (`protocol_whitelist`): `file` for a local path,
  `http`/`https` (with `tcp`, `tls`) for the presigned URL of the original in S3. A demuxer
  on the list that opened a nested URL would also be held to it.
"""

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from transcoding.errors import SourceRejected

# Demuxers of real video containers that read only the file they are given. Names are
# FFmpeg's short names; one demuxer can have several ("mov,mp4,m4a,3gp,3g2,mj2").
ALLOWED_DEMUXERS: dict[str, str] = {
    "mov": "QuickTime and MP4 (.mov .mp4 .m4v .3gp)",
    "matroska": "Matroska and WebM (.mkv .webm)",
    "avi": "AVI",
    "mpegts": "MPEG transport stream (.ts .mts .m2ts)",
    "mpeg": "MPEG program stream (.mpg .vob)",
    "mxf": "MXF (broadcast and cinema cameras)",
    "flv": "Flash Video",
    "ogg": "Ogg (Theora)",
    "asf": "ASF (.wmv)",
    "dv": "DV (camcorders)",
}
FORMAT_WHITELIST = ",".join(ALLOWED_DEMUXERS)

# Options pinned per demuxer even where FFmpeg's default is already safe: QuickTime "data
# references" can name other files (off by default; kept off).
DEMUXER_OPTIONS: dict[str, dict[str, str]] = {"mov": {"enable_drefs": "0", "use_absolute_path": "0"}}

PROTOCOLS = {"file": "file", "http": "http,tcp", "https": "https,tls,tcp"}
# Decoders refuse frames with more pixels than this (FFmpeg's max_pixels): a file whose frame
# size grows after the first frames (which the probe checked) cannot make a decoder allocate
# for a 16000x16000 frame. The size limit's area (TRANSCODING_MAX_WIDTH x _HEIGHT) in practice.
DEFAULT_MAX_PIXELS = 7680 * 4320
# Network reads that stall for this long fail (transiently) instead of hanging the worker.
NETWORK_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class SourceInput:
    """Where a source is read from, how, and (once probed) by which demuxer."""

    location: str  # "file:/abs/path" or an http(s) URL
    protocols: str  # FFmpeg protocol_whitelist
    demuxer: str = ""  # forced input format, from the probe
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def network(self) -> bool:
        return self.protocols != PROTOCOLS["file"]

    def forced(self, container: str) -> "SourceInput":
        """This source, to be opened only by the demuxer the probe found (`container` as
        recorded: FFmpeg's name list, e.g. "mov,mp4,m4a,3gp,3g2,mj2")."""
        return replace(self, demuxer=demuxer_for(container))


def source_input(location: str, container: str = "", max_pixels: int = DEFAULT_MAX_PIXELS) -> SourceInput:
    """A local absolute path or an http(s) URL; anything else is refused. `container`, when
    known, forces the demuxer; decoders refuse frames over `max_pixels`."""
    if location.startswith("/"):
        source = SourceInput(f"file:{location}", PROTOCOLS["file"], max_pixels=max_pixels)
    else:
        scheme = urlsplit(location).scheme.lower()
        if scheme not in ("http", "https"):
            raise SourceRejected(
                f"The original's location is not a local file or an http(s) URL ({scheme}:)."
            )
        source = SourceInput(location, PROTOCOLS[scheme], max_pixels=max_pixels)
    return source.forced(container) if container else source


def demuxer_for(container: str) -> str:
    """The allowed short name of a container FFmpeg named (any of its names), or refused."""
    names = [n.strip() for n in (container or "").split(",") if n.strip()]
    allowed = next((n for n in names if n in ALLOWED_DEMUXERS), None)
    if allowed is None:
        raise SourceRejected(refusal(container))
    return allowed


ACCEPTED = "upload a video file: MP4, MOV, MKV, WebM, AVI, MPEG-TS, MPEG-PS, MXF, FLV, Ogg, WMV or DV."


def refusal(container: str) -> str:
    """The one-line reason a container is refused."""
    if container:
        return f"The file is in {container.split(',')[0]} format, which is not accepted; {ACCEPTED}"
    return f"The file's format is not accepted (a playlist, an image or another non-video format); {ACCEPTED}"


def ffmpeg_input_options(source: SourceInput) -> list[str]:
    """The options before `-i` that hold ffmpeg to the source's protocol and demuxer."""
    if not source.demuxer:
        raise ValueError("An ffmpeg command needs the demuxer the probe found (SourceInput.forced).")
    args = ["-protocol_whitelist", source.protocols, "-format_whitelist", FORMAT_WHITELIST]
    args += ["-max_pixels", str(source.max_pixels)]
    if source.network:
        args += ["-rw_timeout", str(NETWORK_TIMEOUT_SECONDS * 1_000_000)]
    args += ["-f", source.demuxer]
    for key, value in DEMUXER_OPTIONS.get(source.demuxer, {}).items():
        args += [f"-{key}", value]
    return args


def pyav_open_kwargs(source: SourceInput) -> dict:
    """Keyword arguments for `av.open` with the same rules (the probe)."""
    options = {"protocol_whitelist": source.protocols, "format_whitelist": FORMAT_WHITELIST}
    kwargs = {"container_options": options, "metadata_errors": "ignore"}
    if source.demuxer:
        kwargs["format"] = source.demuxer
        options.update(DEMUXER_OPTIONS.get(source.demuxer, {}))
    if source.network:
        kwargs["timeout"] = NETWORK_TIMEOUT_SECONDS
    return kwargs
