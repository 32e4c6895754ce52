"""Private playback: rewrite a video's stored manifests so that every URI in them is a URL
the player may fetch. Pure: text in, text out; the signing is a callable, so every function
is table-tested without storage.

The stored manifests name their files by URIs relative to the manifest (`manifests.py`).
Here each relative URI is resolved to its storage key and replaced:

- HLS master: each media playlist URI becomes `playlist_url(key)` (a Django view that signs
  that playlist when it is fetched);
- HLS media playlist: the init section and every segment become `sign(key, at)`;
- DASH MPD: a `SegmentTemplate` cannot carry a signature per segment, so it becomes an explicit
  `SegmentList` (the same `SegmentTimeline`, an `Initialization@sourceURL` and one signed
  `SegmentURL` per segment); a text track's `BaseURL` is signed;
- storyboard WebVTT: each `sheet_NNNN.jpg#xywh=...` cue becomes `<signed URL>#xywh=...`.

`sign(key, at)` receives the storage key and `at`, the earliest time into the media (seconds)
at which a player may need the file: a segment's start time; the whole duration for files a
player may fetch at any moment (an init section, a sprite sheet, a whole WebVTT track). The
signer makes a URL valid for its usual lifetime *after* that moment, so a viewer who plays a
long video straight through never meets an expired URL (see `storage.signing.UrlSigner`).
"""

import copy
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import m3u8

Sign = Callable[[str, float], str]

DASH_NS = "urn:mpeg:dash:schema:mpd:2011"
ET.register_namespace("", DASH_NS)

_TEMPLATE_VARIABLE = re.compile(r"\$(Number|Time|RepresentationID|Bandwidth)(?:%0(\d+)d)?\$")
_SPRITE_CUE = re.compile(
    r"^(?P<uri>[^\s#?]+\.(?:jpe?g|png|webp))(?P<fragment>#xywh=\d+,\d+,\d+,\d+)?$", re.IGNORECASE
)


class ManifestError(ValueError):
    """A manifest names something that cannot be served: an absolute URL, a path leaving the
    storage root, a playlist the video does not have, or a DASH construct not supported."""


def resolve(base: str, uri: str) -> str:
    """The storage key that `uri`, relative to the manifest in directory `base`, names."""
    if not uri or uri.startswith("/") or "\\" in uri or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", uri):
        raise ManifestError(f"Not a relative URI: {uri!r}")
    if "?" in uri or "#" in uri:
        raise ManifestError(f"A relative URI with a query or fragment: {uri!r}")
    key = posixpath.normpath(posixpath.join(base, uri))
    if key == "." or key == ".." or key.startswith(("../", "/")):
        raise ManifestError(f"{uri!r} leaves the storage root")
    return key


def _memo(sign: Sign) -> Sign:
    """One URL per key and time: a file named many times (init sections, sprite sheets) is
    signed once, and equal URIs stay equal in the output."""
    cache: dict[tuple[str, float], str] = {}

    def memo(key: str, at: float) -> str:
        if (key, at) not in cache:
            cache[key, at] = sign(key, at)
        return cache[key, at]

    return memo


# --- HLS --------------------------------------------------------------------------------------
def rewrite_master_playlist(text: str, base: str, playlist_url: Callable[[str], str]) -> str:
    """Point every media playlist (variants, audio, subtitles, I-frame playlists) of a master
    playlist at `playlist_url(key)`; it raises KeyError for a playlist the video does not have."""
    playlist = m3u8.loads(text)
    if not playlist.is_variant:
        raise ManifestError("Not a master playlist.")
    items = [*playlist.playlists, *playlist.iframe_playlists, *playlist.image_playlists, *playlist.media]
    for item in items:
        if item.uri:
            key = resolve(base, item.uri)
            try:
                item.uri = playlist_url(key)
            except KeyError:
                raise ManifestError(f"The master playlist names an unknown playlist: {item.uri!r}")
    return playlist.dumps()


def rewrite_media_playlist(text: str, base: str, sign: Sign) -> str:
    """Sign the init section, every segment (at its start time) and any key URI."""
    sign = _memo(sign)
    playlist = m3u8.loads(text)
    if playlist.is_variant:
        raise ManifestError("Not a media playlist.")
    total = sum(float(s.duration or 0) for s in playlist.segments)
    # m3u8 keeps a copy of the map on each segment, and writes the segments' copies.
    maps = [*playlist.segment_map, *(s.init_section for s in playlist.segments if s.init_section)]
    for section in maps:
        if section.uri:
            section.uri = sign(resolve(base, section.uri), total)
    for key in [*playlist.keys, *(s.key for s in playlist.segments)]:
        if key is not None and key.uri:
            key.uri = sign(resolve(base, key.uri), total)
    elapsed = 0.0
    for segment in playlist.segments:
        segment.uri = sign(resolve(base, segment.uri), elapsed)
        elapsed += float(segment.duration or 0)
    return playlist.dumps()


# --- DASH -------------------------------------------------------------------------------------
def _tag(name: str) -> str:
    return f"{{{DASH_NS}}}{name}"


def fill_template(template: str, *, number: int = 0, time: int = 0, representation: str = "", bandwidth=""):
    """Substitute a DASH URL template's identifiers ($Number%05d$, $Time$, ...; $$ is $)."""
    values = {"Number": number, "Time": time, "RepresentationID": representation, "Bandwidth": bandwidth}

    def substitute(match: re.Match) -> str:
        value = values[match.group(1)]
        width = match.group(2)
        return f"{int(value):0{int(width)}d}" if width else str(value)

    return "$".join(_TEMPLATE_VARIABLE.sub(substitute, part) for part in template.split("$$"))


def _timeline_segments(timeline: ET.Element):
    """(start, duration) of every segment a SegmentTimeline describes, in its timescale."""
    time = 0
    for entry in timeline.findall(_tag("S")):
        time = int(entry.get("t", time))
        duration, repeat = int(entry.get("d")), int(entry.get("r", "0"))
        if repeat < 0:
            raise ManifestError("An open-ended SegmentTimeline repeat (r < 0) is not supported.")
        for _ in range(repeat + 1):
            yield time, duration
            time += duration


def _segment_list(template: ET.Element, representation: ET.Element, base: str, sign: Sign, total: float):
    timeline = template.find(_tag("SegmentTimeline"))
    if timeline is None:
        raise ManifestError("A SegmentTemplate without a SegmentTimeline is not supported.")
    timescale = int(template.get("timescale", "1"))
    number = int(template.get("startNumber", "1"))
    offset = int(template.get("presentationTimeOffset", "0"))
    ids = {"representation": representation.get("id", ""), "bandwidth": representation.get("bandwidth", "")}
    attributes = {
        name: template.get(name)
        for name in ("timescale", "startNumber", "presentationTimeOffset")
        if template.get(name) is not None
    }
    segment_list = ET.Element(_tag("SegmentList"), attributes)
    if template.get("initialization"):
        uri = fill_template(template.get("initialization"), **ids)
        ET.SubElement(segment_list, _tag("Initialization"), {"sourceURL": sign(resolve(base, uri), total)})
    segment_list.append(copy.deepcopy(timeline))  # the same durations, exactly
    media = template.get("media")
    if not media:
        raise ManifestError("A SegmentTemplate without @media is not supported.")
    for time, _ in _timeline_segments(timeline):
        uri = fill_template(media, number=number, time=time, **ids)
        expires_after = (time - offset) / timescale
        ET.SubElement(segment_list, _tag("SegmentURL"), {"media": sign(resolve(base, uri), expires_after)})
        number += 1
    return segment_list


def _duration_seconds(value: str | None) -> float:
    """Seconds of an xs:duration as the MPD writes them (PTnHnMn.nS); 0 when absent."""
    match = re.fullmatch(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", value or "")
    if not match:
        return 0.0
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def rewrite_mpd(text: str, base: str, sign: Sign) -> str:
    """Every Representation's SegmentTemplate (its own or its AdaptationSet's) becomes a
    SegmentList of signed URLs; a Representation's BaseURL (a whole text track) is signed."""
    sign = _memo(sign)
    root = ET.fromstring(text)
    if root.tag != _tag("MPD"):
        raise ManifestError("Not a DASH MPD.")
    total = _duration_seconds(root.get("mediaPresentationDuration"))
    for element in (root, *root.findall(_tag("Period"))):
        if element.find(_tag("BaseURL")) is not None:
            raise ManifestError("A BaseURL above the adaptation sets is not supported.")
    for adaptation_set in root.iter(_tag("AdaptationSet")):
        if adaptation_set.find(_tag("BaseURL")) is not None:
            raise ManifestError("A BaseURL on an adaptation set is not supported.")
        shared = adaptation_set.find(_tag("SegmentTemplate"))
        for representation in adaptation_set.findall(_tag("Representation")):
            own = representation.find(_tag("SegmentTemplate"))
            template = own if own is not None else shared
            base_url = representation.find(_tag("BaseURL"))
            if template is not None and base_url is not None:
                raise ManifestError("A BaseURL beside a SegmentTemplate is not supported.")
            if base_url is not None:
                base_url.text = sign(resolve(base, (base_url.text or "").strip()), total)
            if template is None:
                continue
            segment_list = _segment_list(template, representation, base, sign, total)
            if own is not None:  # in its place: the schema orders a Representation's children
                representation.insert(list(representation).index(own), segment_list)
                representation.remove(own)
            else:
                representation.append(segment_list)
        if shared is not None:
            adaptation_set.remove(shared)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- WebVTT -----------------------------------------------------------------------------------
def rewrite_storyboard_vtt(text: str, base: str, sign: Sign, at: float) -> str:
    """Sign each sprite sheet a storyboard's cues name, keeping the `#xywh=` fragment. Every
    sheet is signed once, for time `at` (thumbnails are wanted wherever the viewer hovers)."""
    sign = _memo(sign)
    lines = []
    for line in text.split("\n"):
        match = _SPRITE_CUE.match(line.strip())
        if match:
            line = sign(resolve(base, match.group("uri")), at) + (match.group("fragment") or "")
        lines.append(line)
    return "\n".join(lines)
