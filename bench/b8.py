"""B8, serving under load: the site under gunicorn (the project's configuration), 50 viewers on
the loopback for a fixed time or number of requests, while the local worker encodes.

1. A throwaway database (PostgreSQL on the machine's server, or SQLite when it is missing),
   migrated; the local worker started.
2. Two videos encoded for real from tiny generated clips (one public, one private: signed
   playback), a viewer's API key, and a linked copy: 3 videos. Gunicorn started.
3. Queries per request, each endpoint once on a quiet site (`bench.serving_wsgi` puts the
   count in a header). Then the site grows to 30 videos: longer clips queued for the worker
   (encoding during the load, private, so their growing EVENT playlists are signed and
   fetched), and linked copies. Queries again: they must be the same.
4. The viewers (`bench.load`): p50/p95/max latency per endpoint, requests per second, errors
   (there must be none), the query counts every response carried.
"""

import http.client
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import load, site, sources
from .context import Context
from .report import Section, figure, save, table


@dataclass
class Params:
    viewers: int = 50
    seconds: float = 60.0
    max_requests: int = 30000
    clip_seconds: float = 4.0
    clip_size: str = "640x360"
    encode_seconds: float = 120.0
    encode_size: str = "1280x720"
    encoding: int = 2
    videos: int = 30  # after growing from 3
    web_workers: int | None = None  # gunicorn workers (None: the configuration's default)


QUICK = Params(
    viewers=5,
    seconds=5.0,
    max_requests=1000,
    clip_seconds=2.0,
    clip_size="320x180",
    encode_seconds=90.0,  # 180p: one rung and the audio, a few seconds of CPU
    encode_size="320x180",
    encoding=1,
    videos=8,
    web_workers=2,
)


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, int | None, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        queries = response.getheader(load.QUERIES_HEADER)
        return response.status, int(queries) if queries else None, body
    finally:
        conn.close()


def query_counts(port: int, public: int, private: int, key: str) -> dict[str, int]:
    """Each endpoint's queries for one request on a quiet site (the same videos each time)."""
    auth = {"Authorization": f"Bearer {key}"}
    _get(port, "/api/v1/videos/", auth)  # the key's last_used_at is written at most once a minute
    master_url = load.status_from_page(_get(port, f"/videos/{private}/")[2])["hls_url"]
    media_url = load.check_master(_get(port, master_url)[2], private)[0]
    paths = {
        load.STATUS_API: (f"/api/videos/{private}/", None),
        load.V1_LIST: ("/api/v1/videos/", auth),
        load.VIDEO_LIST: ("/videos/", None),
        load.PLAYER: (f"/videos/{private}/", None),
        "player page (public video)": (f"/videos/{public}/", None),
        load.MASTER: (master_url, None),
        load.MEDIA: (media_url, None),
    }
    counts = {}
    for name, (path, headers) in paths.items():
        status, queries, _ = _get(port, path, headers)
        if status != 200 or queries is None:
            raise RuntimeError(f"b8: {path} answered {status} on a quiet site")
        counts[name] = queries
    return counts


def _seed(env: dict, *args: str) -> dict:
    return json.loads(site.python(env, "-m", "bench.seed", *args, timeout=600).strip().splitlines()[-1])


def _seed_start(env: dict, *args: str) -> subprocess.Popen:
    """`bench.seed` in the background (it runs while gunicorn starts); `_seed_wait` for its JSON."""
    command = [sys.executable, "-m", "bench.seed", *args]
    return subprocess.Popen(
        command, cwd=site.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _seed_wait(proc: subprocess.Popen, timeout: float = 600) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"b8: bench.seed did not finish within {timeout:g} s")
    if proc.returncode != 0:
        raise RuntimeError(f"b8: bench.seed exited {proc.returncode}: {err.strip()[-1500:]}")
    return json.loads(out.strip().splitlines()[-1])


def measure(root: Path, params: Params, log=lambda message: None) -> dict:
    """One B8 run in `root` (created, and left for the caller to delete). Everything it starts
    is stopped and its database dropped before it returns."""
    root.mkdir(parents=True, exist_ok=True)
    public_clip = sources.generated(params.clip_seconds, params.clip_size)
    private_clip = sources.generated(params.clip_seconds + 1, params.clip_size)  # other bytes
    long_clip = sources.generated(params.encode_seconds, params.encode_size)
    clock = time.monotonic()
    phases = {}

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        phases[name] = round(now - clock, 1)
        clock = now

    with site.database(root) as (url, database):
        port = site.free_port()
        extra = {"WEB_CONCURRENCY": str(params.web_workers)} if params.web_workers else {}
        env = site.environment(root, url, port, extra)
        log(f"B8 database: {database}")
        site.manage(env, "migrate", "--noinput", "--verbosity", "0")
        phase("database, migrate")
        with site.worker(env, root):
            seeding = _seed_start(env, "base", str(public_clip), str(private_clip))
            try:  # the site starts while the worker encodes the first two videos
                with site.gunicorn(env, root, port) as server:
                    base = _seed_wait(seeding)
                    phase("gunicorn started, 2 videos encoded")
                    result = _serve(env, port, server, base, long_clip, params, log)
                    phase("grow, queries, viewers")
            finally:
                if seeding.poll() is None:
                    seeding.kill()
                    seeding.communicate()
    phase("stop, drop the database")
    result["phases"] = phases
    result["access_log_lines"] = _lines(root / "access.log")
    result["database"] = database
    return result


def _serve(env, port, server, base, long_clip, params, log) -> dict:
    """Steps 3 and 4 (module docstring), on the running site."""
    few = query_counts(port, base["public"], base["private"], base["key"])
    log(f"B8 queries at 3 videos: {few}")
    grown = _seed(
        env, "grow", "--like", f"{base['public']},{base['private']}",
        "--count", str(params.videos - 3 - params.encoding),
        "--encode", str(long_clip), "--encoding", str(params.encoding),
    )  # fmt: skip
    before = grown["state"]
    many = query_counts(port, base["public"], base["private"], base["key"])
    log(f"B8 queries at {params.videos} videos: {many}")
    ids = [base["public"], base["private"], *base["linked"], *grown["linked"], *grown["encoding"]]
    plan = load.Plan(port, ids, base["key"], params.viewers, params.seconds, params.max_requests)
    log(f"B8 {params.viewers} viewers for {params.seconds:g} s over {len(ids)} videos")
    outcome = load.drive(plan)
    after = _seed(env, "state", *map(str, grown["encoding"]))
    workers = _workers(server.pid)
    summary = load.summarize(outcome)
    return {
        "params": asdict(params),
        "gunicorn_workers": workers,
        "queries_few": few,
        "queries_many": many,
        "videos": len(ids),
        "encoding_before": before,
        "encoding_after": after,
        **summary,
    }


def _workers(master: int) -> int:
    """How many worker processes the gunicorn master has (its children)."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return 0
    return len(children)


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def encoding_while_served(result: dict) -> bool:
    """At least one queued video was still being encoded when the viewers came."""
    return any(row["status"] in ("queued", "processing") for row in result["encoding_before"].values())


def queries_constant(result: dict) -> bool:
    """The same requests cost the same at 3 videos and at `videos`, and every response under
    load cost what its endpoint costs on a quiet site (the v1 list one more when it writes the
    key's `last_used_at`, at most once a minute)."""
    few = result["queries_few"]
    if few != result["queries_many"]:
        return False
    for name, row in result["endpoints"].items():
        allowed = {few[name], few[name] + 1} if name == load.V1_LIST else {few[name]}
        if not set(row["queries"]) <= allowed:
            return False
    return True


def _markdown(result: dict, ctx_note: str) -> str:
    p = result["params"]
    rows = []
    for name, row in result["endpoints"].items():
        rows.append(
            [
                name, row["requests"], row["errors"], f"{row['p50_ms']:.0f}", f"{row['p95_ms']:.0f}",
                f"{row['max_ms']:.0f}", f"{row['server_p95_ms']:.0f}", f"{row['cpu_p50_ms']:.1f}",
                ", ".join(map(str, row["queries"])) or "–",
                result["queries_few"].get(name, "–"), result["queries_many"].get(name, "–"),
            ]
        )  # fmt: skip
    before, after = result["encoding_before"], result["encoding_after"]
    encode = ", ".join(
        f"video {pk}: {before[pk]['status']} {before[pk]['progress']}% → "
        f"{after[pk]['status']} {after[pk]['progress']}%"
        for pk in before
    )
    videos = p["videos"]
    cpu_ms = 1000 * result["cpu_seconds"] / max(1, result["requests"])
    return "\n".join(
        [
            f"{p['viewers']} viewers on the loopback, each with a keep-alive connection and no think time, "
            f"for {p['seconds']:g} s (or {p['max_requests']} requests), over {result['videos']} published "
            f"videos (half private: signed playback). Site: gunicorn with videoproject/gunicorn.conf.py "
            f"({result['gunicorn_workers']} workers × 4 threads, preloaded), DEBUG off, local storage; "
            f"database: {result['database']}, one persistent connection per thread. The local worker "
            f"encodes {p['encoding']} queued {p['encode_size']} {p['encode_seconds']:g} s video(s) "
            f"during the run ({encode}). {ctx_note}",
            "",
            f"**{result['requests']} requests in {result['wall']:.1f} s: {result['rps']:.0f} requests/s, "
            f"{result['errors']} errors**; {result['reconnects']} requests sent again on a new connection "
            f"after gunicorn closed a kept-alive one (a worker replaced after `max_requests`); "
            f"access log lines: {result['access_log_lines']}.",
            "",
            f"Server CPU per request (the gunicorn thread's own, `bench/serving_wsgi.py`), mean over the "
            f"run: **{cpu_ms:.1f} ms**. Latency on a shared machine mostly measures how busy it was (the "
            f"load average is in the Machine table); CPU per request does not: on idle cores the site "
            f"would serve at most about {1000 / cpu_ms:.0f} requests/s per core of this mix, before the "
            f"database and the proxy take their share (an estimate, not measured).",
            "",
            table(
                [
                    "endpoint",
                    "requests",
                    "errors",
                    "p50 ms",
                    "p95 ms",
                    "max ms",
                    "in the application, p95 ms",
                    "server CPU ms (p50)",
                    "queries per request (under load)",
                    "queries, 3 videos",
                    f"queries, {p['videos']} videos",
                ],
                rows,
            ),  # fmt: skip
            "",
            '"In the application" is the time from gunicorn\'s call of the site to its response '
            "(`bench/serving_wsgi.py`); the rest of a viewer's wait was spent queued for a gunicorn "
            "thread or on the way. "
            "Queries are counted per response by `bench/serving_wsgi.py` (Django's `execute_wrapper`). "
            "The API v1 list writes the key's `last_used_at` at most once a minute, one more query "
            f"then. The same requests' counts at 3 and at {videos} videos are the columns on the right; "
            "constant (the same at both, and every response under load as on a quiet site): "
            + ("**yes**." if queries_constant(result) else "**no**."),
        ]
    )


def _chart(result: dict, path: Path) -> None:
    plt, fig, axes = figure(1, 2, (12, 4))
    bars, rate = axes[0]
    names = list(result["endpoints"])
    p50 = [result["endpoints"][n]["p50_ms"] for n in names]
    p95 = [result["endpoints"][n]["p95_ms"] for n in names]
    y = range(len(names))
    bars.barh([i + 0.2 for i in y], p50, height=0.4, label="p50")
    bars.barh([i - 0.2 for i in y], p95, height=0.4, label="p95")
    bars.set_yticks(list(y), names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel("latency (ms)")
    bars.legend(fontsize=8)
    bars.grid(alpha=0.3, axis="x")
    rate.plot(range(len(result["per_second"])), result["per_second"], "o-", markersize=3)
    rate.set_xlabel("second of the run")
    rate.set_ylabel("requests sent")
    rate.set_ylim(bottom=0)
    rate.grid(alpha=0.3)
    viewers = result["params"]["viewers"]
    fig.suptitle(f"B8: {viewers} viewers while videos encode ({result['rps']:.0f} requests/s)", fontsize=10)
    save(plt, fig, path)


def verdicts(result: dict) -> list[str]:
    errors, p = result["errors"], result["params"]
    return [
        f"B8, {p['viewers']} viewers while videos encode, zero errors: "
        f"{'**met**' if errors == 0 else '**not met**'} ({result['requests']} requests, {errors} errors, "
        f"{result['rps']:.0f} requests/s).",
        f"B8, queries per request constant from 3 to {p['videos']} videos: "
        f"{'**met**' if queries_constant(result) else '**not met**'}.",
    ]


def run(ctx: Context) -> Section:
    params = QUICK if ctx.options.quick else Params()
    root = ctx.scratch.root / "b8"
    try:
        result = measure(root, params, ctx.log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for name, row in result["endpoints"].items():
        ctx.log(f"B8 {name}: p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, {row['errors']} errors")
    if result["errors"]:
        print(f"[bench] B8 errors: {result['error_examples']}", file=sys.stderr)
    note = "" if encoding_while_served(result) else "**The encode had finished before the viewers came.**"
    _chart(result, ctx.out / "b8.png")
    title = "B8: serving under load"
    section = Section("b8", title, _markdown(result, note), ["b8.png"], result)
    section.verdicts = verdicts(result)
    return section
