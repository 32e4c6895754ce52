"""B9, the site and the encoder as two Lambda functions: the Lambda cost of a thousand page views
and of an encoded minute, before (one 10240 MB function does everything) and after (a 1024 MB
site function and the 10240 MB encoder), from B3's price model (bench/model.py: pure functions).

Measured here: Django's start and first request in a fresh process, the player page and the
status API through Django's test client (bench/page_views.py). Measured once and kept here: the
package sizes `zappa package` built (tests/jobs/test_zappa.py prints them) and how fast Python's
tarfile unpacks the site's archive (the slim handler's work at a cold start). Assumed, and said
so: the S3 download rate, the share of page views that meet a cold start, and that a Lambda vCPU
works like one of this machine's cores.
"""

import re
import statistics

from . import machine, model, page_views, store
from .b3 import COLD_START as B3_COLD_START
from .b3 import LAMBDA_VCPUS, PRICE_GB_SECOND, PRICE_REQUEST, lambda_platform
from .context import Context
from .report import Section, Summary, table

# The packages `zappa package` built (tests/jobs/test_zappa.py prints them; gzip -1): MiB.
ENCODER = model.LambdaFunction("encoder (everything)", 10240, archive_mib=278, unpacked_mib=736)
SITE = model.LambdaFunction("site", 1024, archive_mib=97, unpacked_mib=252)
# Measured once on the site's real archive on this machine: Python's tarfile (as the slim handler
# unpacks) into a tmpfs, CPU seconds; 87 MiB/s decompressing only, 14 MiB/s onto this disk.
UNPACK_MIB_PER_SECOND = 37.0
# Assumed, not measurable here.
S3_MIB_PER_SECOND = 100.0  # one GET of the archive from S3 inside the region
COLD_SHARES = (0.0, 0.01, 0.05)  # page views that meet a cold start (keep_warm holds one warm)
API_GATEWAY_REQUEST = 3.50 / 1_000_000  # REST API, first 333 M a month: the same before and after
VIDEO_MINUTES = (10, 60)
# B3's inputs table: the labels it writes, and the Measured field each feeds.
B3_INPUTS = {
    "ffmpeg CPU per second of video (ladder + storyboard)": "video_cpu_per_second",
    "extra ffmpeg CPU per further chunk": "chunk_cpu_overhead",
    "audio CPU per second of video (chunk 0 does all)": "audio_cpu_per_second",
    "chunk task outside ffmpeg": "serial_seconds",
    "database queries per chunk task": "queries_per_chunk",
    "stitch (the fan-in that stitched)": "stitch_seconds_per_segment",
}


def b3_measured(markdown: str) -> model.Measured | None:
    """B3's measured inputs read back from its stored section (its inputs table), None when
    one is missing. The stitch is written in ms per segment."""
    values = {}
    for label, name in B3_INPUTS.items():
        found = re.search(rf"^\| {re.escape(label)} \| ([0-9.]+)", markdown, re.MULTILINE)
        if not found:
            return None
        values[name] = float(found.group(1)) / (1000 if name == "stitch_seconds_per_segment" else 1)
    return model.Measured(**values)


def _b3(ctx: Context) -> model.Measured | None:
    if isinstance(ctx.shared.get("b3_measured"), model.Measured):
        return ctx.shared["b3_measured"]
    stored = store.load(ctx.out).get("b3")
    return b3_measured(stored["markdown"]) if stored else None


def _page_rows(pages: dict, cold: model.ColdStart) -> list[list]:
    rows = []
    for name, samples in pages.items():
        seconds = statistics.median(cpu for _, cpu in samples)  # CPU: robust to the machine's load
        for share in COLD_SHARES:
            before, after = (
                1000 * model.page_view_cost(seconds, fn, cold, share, PRICE_GB_SECOND, PRICE_REQUEST)
                for fn in (ENCODER, SITE)
            )
            rows.append(
                [name, f"{seconds * 1000:.1f} ms", f"{share:.0%}",
                 f"{model.request_seconds(seconds, ENCODER.memory_mb) * 1000:.0f} ms", f"${before:.5f}",
                 f"{model.request_seconds(seconds, SITE.memory_mb) * 1000:.0f} ms", f"${after:.5f}",
                 f"{before / after:.1f}×"]
            )  # fmt: skip
    return rows


def _encode_rows(m: model.Measured) -> list[list]:
    lam = lambda_platform()
    rows = []
    for minutes in VIDEO_MINUTES:
        for workers in (1, 1000):
            per_minute = model.cost_per_minute(minutes * 60.0, workers, m, lam)
            rows.append([f"{minutes} min", workers, f"${per_minute:.4f}", f"${per_minute:.4f}"])
    return rows


def run(ctx: Context) -> Section:
    load = machine.load()
    count = 50 if ctx.options.quick else 100 * ctx.options.runs
    with ctx.scratch.fresh_database() as database:
        measured = page_views.measure(ctx.scratch.env(database), count)
    init = measured["init"]
    cold = model.ColdStart(init["cpu"], S3_MIB_PER_SECOND, UNPACK_MIB_PER_SECOND)
    m = _b3(ctx)
    pages = {name: Summary.of(c for _, c in samples) for name, samples in measured["pages"].items()}
    walls = {name: Summary.of(w for w, _ in samples) for name, samples in measured["pages"].items()}
    ctx.log(f"B9: player page {pages['player page'].median * 1000:.1f} ms CPU (median)")
    inputs = table(
        ["input", "value", "from"],
        [
            *([f"{name}, one request",
               f"{s.median * 1000:.1f} ms CPU ({walls[name].median * 1000:.1f} ms wall)",
               f"measured, {s.n} requests, Django's test client"] for name, s in pages.items()),
            ["Django start + first request (fresh process)",
             f"{init['cpu']:.2f} s CPU ({init['wall']:.2f} s wall)", "measured, once"],
            ["unpacking the archive (files written, per CPU second)", f"{UNPACK_MIB_PER_SECOND:g} MiB/s",
             "measured once: the site's archive into a tmpfs here (onto disk: 14)"],
            ["project archive: encoder / site", f"{ENCODER.archive_mib:g} / {SITE.archive_mib:g} MiB",
             "`zappa package` (test_zappa)"],
            ["unpacked into /tmp: encoder / site", f"{ENCODER.unpacked_mib:g} / {SITE.unpacked_mib:g} MiB",
             "`zappa package` (test_zappa)"],
            ["S3 download at a cold start", f"{S3_MIB_PER_SECOND:g} MiB/s", "**assumed**"],
            ["a Lambda vCPU serves a request like one core here", f"1 vCPU per {model.LAMBDA_MB_PER_VCPU} MB",
             "**assumed** (AWS: CPU in proportion to memory)"],
        ],
        "lrl",
    )  # fmt: skip
    colds = [
        f"{fn.name} ({fn.memory_mb} MB, {fn.unpacked_mib:g} MiB unpacked): "
        f"{model.cold_start_seconds(fn, cold):.1f} s"
        for fn in (ENCODER, SITE)
    ]
    page_table = table(
        ["page", "here (CPU)", "cold starts", "before: billed", "before: $ per 1000", "after: billed",
         "after: $ per 1000", "before / after"],
        _page_rows(measured["pages"], cold),
    )  # fmt: skip
    parts = [
        _INTRO,
        inputs,
        "Modelled cold start (init + S3 download + unpack; the CPU parts slowed below one vCPU): "
        f"{'; '.join(colds)}.",
        f"Lambda cost of a thousand page views (x86, us-east-1: ${PRICE_GB_SECOND:.10f} per GB-second, "
        f"$0.20 per 1M requests; API Gateway adds ${API_GATEWAY_REQUEST * 1000:.4f} per thousand "
        "either way):",
        page_table,
    ]
    if m is None:
        parts.append("Cost per encoded minute: B3's inputs are not available (run B3 first).")
    else:
        parts += [
            f"Lambda cost per encoded minute (B3's model and inputs, {ENCODER.memory_mb} MB, "
            f"{LAMBDA_VCPUS} vCPU): "
            "the encoder function is the same before and after, so is the cost; the site's function never "
            "encodes.",
            table(["video", "workers K", "before: $ per video-minute", "after"], _encode_rows(m)),
        ]
    encoder_cold = model.cold_start_seconds(ENCODER, cold)
    parts.append(
        f"B3 assumes a {B3_COLD_START:g} s cold start for the encoder; modelled from its package as "
        f"above it is {encoder_cold:.0f} s, which would add about {encoder_cold - B3_COLD_START:.0f} s "
        "to B3's time to ready and raise its K = 1000 costs (B3's own model is left as it is)."
    )
    parts.append(_NOTES.format(load=load))
    raw = {"page_views": measured, "b3_inputs": vars(m) if m else None}
    return Section(
        "b9",
        "B9: the site and the encoder apart on Lambda, cost before and after",
        "\n\n".join(parts),
        [],
        raw,
    )


_INTRO = """\
Before, one 10240 MB function served the site and ran the encodes, so a page view was billed at
10 GB and met the encoder's cold start (the whole project, ffmpeg and the speech stack
included). After (zappa_settings.json, docs/deploy-zappa.md), the site is a 1024 MB function
whose package leaves ffmpeg, NumPy and the speech stack out, and the encodes run on the 10240 MB
encoder function. A request runs on one thread: at 10240 MB it gets a whole vCPU (no faster than
at 1769 MB), at 1024 MB 58% of one, so it takes 1.7 times as long and is billed a tenth of the
memory."""

_NOTES = """\
Not modelled: API Gateway (the same before and after), the database's time (SQLite here: the
pages' queries are few and fixed), keep-warm pings (one a 4 minutes on the site, none on the
encoder), data transfer. Load at the start of this section: {load:.1f}."""
