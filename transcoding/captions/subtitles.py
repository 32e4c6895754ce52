"""Subtitle tracks: validate and normalize uploaded files to UTF-8 WebVTT, and publish a track
(whole file for DASH and the player, segmented WebVTT for HLS) next to the video's objects.

Parsing is pysubs2's; decoding legacy encodings is charset-normalizer's.
"""

import re

import charset_normalizer
import pysubs2
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from transcoding import packaging
from transcoding.media import manifests
from transcoding.models import LANGUAGE_CODE, PartStatus, Rendition, Subtitle, validate_one_line
from transcoding.status import parts
from transcoding.storage import objects

ACCEPTED_FORMATS = {"srt": "SRT", "vtt": "WebVTT"}
MAX_BYTES = 5 * 1024 * 1024


class SubtitleInvalid(ValueError):
    """The file cannot be used as a subtitle track; the message says why, in one sentence."""


# The Windows code page a subtitle file in a language is most likely in, when it is not UTF-8
# (subtitle tools on Windows wrote these for decades). Western European is the default.
LEGACY_ENCODINGS = {
    **dict.fromkeys(("cs", "sk", "pl", "hu", "hr", "sl", "ro", "bs", "sq"), "cp1250"),
    **dict.fromkeys(("ru", "uk", "bg", "sr", "be", "mk"), "cp1251"),
    "el": "cp1253",
    **dict.fromkeys(("tr", "az"), "cp1254"),
    **dict.fromkeys(("he", "yi"), "cp1255"),
    **dict.fromkeys(("ar", "fa", "ur"), "cp1256"),
    **dict.fromkeys(("lt", "lv", "et"), "cp1257"),
    "vi": "cp1258",
    "th": "cp874",
}
WESTERN = "cp1252"


def _reads_cleanly(data: bytes, encoding: str) -> bool:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\n\r" or 0x7F <= ord(c) < 0xA0 for c in text)


def decode(data: bytes, language: str = "") -> str:
    """Text of a subtitle file: UTF-8 (with or without BOM) or UTF-16 first. Otherwise a legacy
    encoding, as charset-normalizer ranks them; on a short text several read equally well
    (French "crème" is "crčme" in Central European), so the tie goes to the code page of the
    track's language, then to Western European; and where the detector has no evidence at all,
    the language's code page is used if it reads every byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    results = charset_normalizer.from_bytes(data)
    best = results.best()
    if best is None:
        raise SubtitleInvalid("The subtitle file is not text in any known encoding.")
    own = LEGACY_ENCODINGS.get((language or "").split("-")[0].lower(), WESTERN)
    ties = {
        r.encoding: r
        for r in results
        if r.chaos <= best.chaos + 0.01 and r.coherence >= best.coherence - 0.01
    }
    for encoding in dict.fromkeys((own, WESTERN)):
        if encoding in ties:
            return str(ties[encoding])
    if best.coherence == 0 and _reads_cleanly(data, own):
        return data.decode(own)
    return str(best)


def check_size(size: int) -> None:
    """Refuse a file over the limit before reading it."""
    if size > MAX_BYTES:
        raise SubtitleInvalid(f"The subtitle file is larger than {MAX_BYTES // (1024 * 1024)} MB.")


def parse(data: bytes, language: str = "") -> list[manifests.Cue]:
    """Cues of an SRT or WebVTT file, in time order. `language`: the track's, which helps
    decode a legacy encoding. Raises SubtitleInvalid."""
    check_size(len(data))
    if not data.strip():
        raise SubtitleInvalid("The subtitle file is empty.")
    text = decode(data, language).replace("\r\n", "\n").replace("\r", "\n")
    try:
        detected = pysubs2.formats.autodetect_format(text)
    except (pysubs2.exceptions.FormatAutodetectionError, ValueError):
        raise SubtitleInvalid("The subtitle file is neither SRT nor WebVTT.")
    if detected not in ACCEPTED_FORMATS:
        raise SubtitleInvalid(f"The subtitle file is {detected.upper()}; upload SRT or WebVTT.")
    try:
        document = pysubs2.SSAFile.from_string(text, format_=detected)
    except Exception as exc:  # pysubs2 raises several kinds on malformed input
        raise SubtitleInvalid(f"The {ACCEPTED_FORMATS[detected]} file cannot be parsed: {exc}".rstrip("."))
    cues = [
        manifests.Cue(start=e.start / 1000, end=e.end / 1000, text=_plain_text(e))
        for e in document
        if e.end > e.start and not e.is_comment and _plain_text(e)
    ]
    if not cues:
        raise SubtitleInvalid(f"The {ACCEPTED_FORMATS[detected]} file has no cues with text.")
    return sorted(cues, key=lambda c: (c.start, c.end))


# pysubs2 keeps styling as ASS override tags; WebVTT has italic, bold and underline.
ASS_TO_VTT = {f"\\{tag}{state}": f"<{'/' if state == '0' else ''}{tag}>" for tag in "ibu" for state in "01"}


def _vtt_styling(block: re.Match) -> str:
    return "".join(ASS_TO_VTT.get(tag, "") for tag in re.findall(r"\\[a-z]+\d?", block.group(1)))


def _plain_text(event) -> str:
    """Cue text with line breaks, styling kept only where WebVTT has it (i, b, u)."""
    text = event.text.replace("\\N", "\n").replace("\\n", "\n").strip()
    text = re.sub(r"\{([^}]*)\}", _vtt_styling, text)
    return re.sub(r"<(?!/?(?:i|b|u)>)[^>]*>", "", text).replace("-->", "->").strip()


def validate_label(label: str) -> str:
    """A track's label is written into the HLS master and the MPD: one line of text."""
    try:
        validate_one_line(label)
    except ValidationError as exc:
        raise SubtitleInvalid(exc.messages[0])
    return (label or "").strip()


def validate_language(code: str) -> str:
    code = (code or "").strip()
    if not LANGUAGE_CODE.match(code):  # \A...\Z: a trailing newline does not pass
        raise SubtitleInvalid(f"{code!r} is not a language code such as en, pt-BR or spa.")
    return code


def track_prefix(subtitle: Subtitle) -> str:
    return f"{objects.video_prefix(subtitle.video_id)}/subtitles/{subtitle.language}-{subtitle.kind}"


def segment_durations(subtitle: Subtitle) -> list[float]:
    """The video's segment grid (every rung has the same), or one segment for the whole video."""
    rendition = (
        Rendition.objects.filter(
            video_id=subtitle.video_id, kind=Rendition.Kind.VIDEO, status=PartStatus.READY
        )
        .exclude(segments=[])
        .first()
    )
    if rendition is not None:
        return [duration for _, duration in rendition.segments]
    return [subtitle.video.duration or max((0.0,))]


# A track's HLS segments repeat each cue in every segment it overlaps, so a normal track's
# segments hold about its own size. Cues made to overlap everything (20,000 cues each lasting
# the whole video) would be copied into every segment: an upload of 1 MB writing 70 MB.
SEGMENTS_BYTES_FACTOR = 10
SEGMENTS_BYTES_FLOOR = 2 * 1024 * 1024


def clip_to(cues: list[manifests.Cue], duration: float | None) -> list[manifests.Cue]:
    """Cues within the video: those starting after its end go, ends are cut at the end."""
    if not duration:
        return cues
    return [
        manifests.Cue(c.start, min(c.end, duration), c.text) for c in cues if c.start < duration and c.end > 0
    ]


def segment_texts(cues: list[manifests.Cue], durations: list[float], whole_bytes: int) -> list[str]:
    """The track's WebVTT segments, refused (before anything is stored) when they would
    amount to more than `SEGMENTS_BYTES_FACTOR` times the whole track."""
    limit = max(SEGMENTS_BYTES_FLOOR, SEGMENTS_BYTES_FACTOR * whole_bytes)
    texts, total = [], 0
    for text in manifests.webvtt_segments(cues, durations):
        total += len(text.encode("utf-8"))
        if total > limit:
            raise SubtitleInvalid(
                f"The subtitle track's cues overlap too much to be cut into segments "
                f"(over {limit // (1024 * 1024)} MB); check their times."
            )
        texts.append(text)
    return texts


def publish_track(subtitle: Subtitle, cues: list[manifests.Cue], *, follow_grid: bool = True) -> None:
    """Store the whole track and its HLS segments, mark the part ready, then rewrite the video's
    manifests so they name it. Raises SubtitleInvalid, storing nothing, for a track whose
    segments would be out of all proportion to it.

    A subtitles job runs beside the encode: when the encode stitched its segment grid while
    this track was cut on the old one (its `republish_tracks` read the track before it was
    ready), the track is cut again. Writing the manifests waits for the stitch's row lock, so
    the grid read after it is the stitched one."""
    prefix = track_prefix(subtitle)
    durations = segment_durations(subtitle)
    cues = clip_to(cues, subtitle.video.duration)
    whole = manifests.webvtt(cues)
    texts = segment_texts(cues, durations, len(whole.encode("utf-8")))
    written = objects.store_text(f"{prefix}.vtt", whole)
    segments = []
    for number, text in enumerate(texts, start=1):
        name = f"seg_{number:05d}.vtt"
        written += objects.store_text(f"{prefix}/{name}", text)
        segments.append(manifests.Segment(uri=name, duration=durations[number - 1]))
    playlist = manifests.media_playlist(None, tuple(segments))
    written += objects.store_text(f"{prefix}/index.m3u8", playlist)
    parts.track_ready(
        subtitle, vtt_path=f"{prefix}.vtt", playlist_path=f"{prefix}/index.m3u8", cue_count=len(cues),
        bytes_written=written,
    )  # fmt: skip
    packaging.write_manifests(subtitle.video)
    if follow_grid and segment_durations(subtitle) != durations:
        publish_track(subtitle, cues, follow_grid=False)


def unpublish_track(subtitle: Subtitle) -> None:
    """Remove a track's stored files and take it out of the manifests."""
    prefix = track_prefix(subtitle)
    objects.delete_keys([*objects.list_keys(prefix), f"{prefix}.vtt"])
    packaging.write_manifests(subtitle.video, exclude_subtitle=subtitle.pk)


def track_cues(subtitle: Subtitle) -> list[manifests.Cue]:
    """The cues of a track: from its uploaded file, or from its stored WebVTT (generated)."""
    if subtitle.file:
        with subtitle.file.open("rb") as handle:
            return parse(handle.read(MAX_BYTES + 1), subtitle.language)
    with default_storage.open(subtitle.vtt_path, "rb") as handle:
        return parse(handle.read(MAX_BYTES + 1), subtitle.language)


def republish_tracks(video) -> None:
    """After the renditions change: publish uploaded tracks waiting for them, and re-segment
    every published track on the new segment grid."""
    for subtitle in Subtitle.objects.filter(video=video).select_related("video"):
        waiting = subtitle.file and subtitle.status in (PartStatus.PENDING, PartStatus.QUEUED)
        if waiting or subtitle.status == PartStatus.READY:
            try:
                publish_track(subtitle, track_cues(subtitle))
            except SubtitleInvalid as exc:
                parts.track_ended(subtitle, PartStatus.FAILED, str(exc))
