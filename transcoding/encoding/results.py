"""What a chunk made, as its job records it (`ProcessingJob.result`, JSON): the chunk protocol's
one message. Written while the chunk runs (the segments stored so far, for live publishing),
then once complete (all of them, for the stitch); the root job's also says when it stitched.
"""

from dataclasses import asdict, dataclass, field


@dataclass
class ChunkResult:
    # Per output directory (a rung's name, or "audio"): [[uri, duration, bytes], ...] in order:
    # while running, those stored so far; once complete, all of them.
    segments: dict[str, list[list]] = field(default_factory=dict)
    inits: dict[str, str] = field(default_factory=dict)  # the init segment's SHA-256 (the stitch compares)
    codecs: dict[str, str] = field(default_factory=dict)  # RFC 6381 codec strings
    init_bytes: dict[str, int] = field(default_factory=dict)
    sheets: list[str] = field(default_factory=list)  # storyboard sheet keys, in order
    sheet_bytes: int = 0
    cpu: float = 0.0  # ffmpeg CPU seconds of the chunk
    complete: bool = False
    stitched: bool = False  # the root job only: the chunks were joined

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> "ChunkResult":
        data = dict(data or {})
        if "live" in data and not data.get("complete"):  # written before the result was typed
            data["segments"] = data.pop("live")
        data.pop("live", None)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
