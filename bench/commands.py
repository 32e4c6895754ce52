"""The ffmpeg commands the benchmarks compare, built from the same Plan as our pipeline so every
setting (preset, CRF, caps, GOP, keyframe grid, segment length, audio, storyboard, poster) is
identical. Pure: argv lists only, nothing runs here.

- `bare_ladder`: our single-process command with only the renditions and the audio.
- `usual_way`: what a naive worker does: one ffmpeg per rung (each decoding the whole source),
  one for the audio, one storyboard pass and one poster pass.
"""

from dataclasses import dataclass

from transcoding.media import ffmpeg
from transcoding.media.containers import SourceInput
from transcoding.media.ladder import Plan


@dataclass(frozen=True)
class Command:
    label: str
    argv: list[str]
    dirs: tuple[str, ...]  # directories (under the work dir) ffmpeg expects to exist
    expects: tuple[str, ...]  # globs (under the work dir) that must match once it has run


def header(binary: str, source: SourceInput, plan: Plan, workdir: str) -> list[str]:
    """Our command's global options and input, exactly (build_encode_args with no parts)."""
    return ffmpeg.build_encode_args(binary, source, plan, workdir, parts=())


def _graph(plan: Plan, chain: str, label: str) -> list[str]:
    head = f"[0:v:0]{ffmpeg.TONEMAP_CHAIN}," if plan.tonemap else "[0:v:0]"
    return ["-filter_complex", f"{head}{chain}[{label}]"]


def bare_ladder(binary: str, source: SourceInput, plan: Plan, workdir: str) -> Command:
    parts = (ffmpeg.RENDITIONS, ffmpeg.AUDIO)
    dirs = tuple(ffmpeg.output_dirs(plan, parts))
    return Command(
        "bare ladder",
        ffmpeg.build_encode_args(binary, source, plan, workdir, parts),
        dirs,
        tuple(f"{d}/seg_*.m4s" for d in dirs),
    )


def usual_way(binary: str, source: SourceInput, plan: Plan, workdir: str) -> list[Command]:
    """One process per output, same settings. The audio is encoded once, by its own process."""
    base = header(binary, source, plan, workdir)
    commands = [
        Command(
            f"rung {rung.name}",
            [
                *base,
                *_graph(plan, ffmpeg.rung_filter(rung), f"v{rung.name}"),
                *ffmpeg.rung_output_args(rung, plan, workdir),
            ],
            (rung.name,),
            (f"{rung.name}/seg_*.m4s",),
        )  # fmt: skip
        for rung in plan.rungs
    ]
    if plan.audio is not None:
        commands.append(
            Command(
                "audio",
                [*base, *ffmpeg.audio_output_args(plan, workdir)],
                (ffmpeg.AUDIO_DIR,),
                (f"{ffmpeg.AUDIO_DIR}/seg_*.m4s",),
            )
        )
    commands.append(
        Command(
            "storyboard",
            [
                *base,
                *_graph(plan, ffmpeg.storyboard_filter(plan), "sb"),
                *ffmpeg.storyboard_output_args(workdir),
            ],
            (ffmpeg.STORYBOARD_DIR,),
            (f"{ffmpeg.STORYBOARD_DIR}/sheet_*.jpg",),
        )  # fmt: skip
    )
    commands.append(
        Command(
            "poster",
            [*base, *_graph(plan, ffmpeg.poster_filter(plan), "poster"), *ffmpeg.poster_output_args(workdir)],
            (),
            (ffmpeg.POSTER_NAME,),
        )
    )
    return commands
