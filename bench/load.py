"""B8's viewers: threads, each with one keep-alive HTTP/1.1 connection to the site on the
loopback (http.client), doing what a viewer's browser and a program's API client do, again and
again until a deadline or a total number of requests, whichever comes first:

1. the video list (`/videos/`);
2. a video's player page (`/videos/<id>/`), whose embedded status document gives the URLs the
   player uses;
3. the status API (`/api/videos/<id>/`), which the page polls while the video encodes;
4. for a video played through signed URLs (private): the HLS master the page names
   (`/videos/<id>/play/master.m3u8`), then every media playlist the master names (each
   segment in them a signed URL);
5. the API v1 list (`/api/v1/videos/`) with an API key.

No think time: each viewer sends its next request as soon as the last one is answered, so 50
viewers keep 50 requests in flight. A response is an error unless it is 200 and its body is
what that endpoint returns (JSON, a page naming the video, a playlist with signed segments).
A connection the server closed between two requests (gunicorn replaces a worker after
`max_requests`) is opened again and the request sent once more, as browsers do; those are
counted apart, not as errors.
"""

import http.client
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field

STATUS_API = "status API"
V1_LIST = "API v1 list"
VIDEO_LIST = "video list"
PLAYER = "player page"
MASTER = "HLS master (signed)"
MEDIA = "HLS media playlist (signed)"
ENDPOINTS = (STATUS_API, V1_LIST, VIDEO_LIST, PLAYER, MASTER, MEDIA)

QUERIES_HEADER = "X-Bench-Queries"
CPU_HEADER = "X-Bench-CPU-Microseconds"
WALL_HEADER = "X-Bench-Wall-Microseconds"
_STATUS_JSON = re.compile(r'<script id="video-status-\d+" type="application/json">(.*?)</script>', re.S)
_URI_ATTRIBUTE = re.compile(r'URI="([^"]+)"')


class BadResponse(Exception):
    """A response that is not what the endpoint must return (one line: what was wrong)."""


@dataclass
class Sample:
    endpoint: str
    seconds: float
    queries: int | None
    error: str = ""
    at: float = 0.0  # when it was sent, time.perf_counter()
    cpu: float | None = None  # the server thread's CPU seconds for it
    server: float | None = None  # seconds from the application's call to its response


@dataclass
class Plan:
    port: int
    video_ids: list[int]
    api_key: str
    viewers: int
    seconds: float
    max_requests: int
    seed: int = 8


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    reconnects: int = 0
    wall: float = 0.0
    started: float = 0.0


def status_from_page(html: str) -> dict:
    """The status document a player page embeds (`json_script`)."""
    match = _STATUS_JSON.search(html)
    if not match:
        raise BadResponse("the player page embeds no status document")
    return json.loads(match.group(1))


def playlist_uris(text: str) -> list[str]:
    """Every URI an HLS playlist names: lines that are not tags, and URI="..." attributes."""
    uris = _URI_ATTRIBUTE.findall(text)
    uris += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return uris


def check_master(text: str, video_id: int) -> list[str]:
    """The media playlists a signed master names: each must be the signed view of this video."""
    if not text.startswith("#EXTM3U"):
        raise BadResponse("the master playlist does not start with #EXTM3U")
    uris = playlist_uris(text)
    if not uris or any(not uri.startswith(f"/videos/{video_id}/play/") for uri in uris):
        raise BadResponse(f"the master names something other than this video's signed views: {uris[:3]}")
    return uris


def check_media(text: str) -> None:
    """A signed media playlist: every file it names carries a signature."""
    if not text.startswith("#EXTM3U"):
        raise BadResponse("the media playlist does not start with #EXTM3U")
    uris = playlist_uris(text)
    if not uris or any("signature=" not in uri for uri in uris):
        raise BadResponse("a media playlist names a file without a signature")


class Viewer:
    """One viewer's connection and loop."""

    def __init__(self, plan: Plan, index: int, budget: "Budget", outcome: Outcome, lock: threading.Lock):
        self.plan, self.budget, self.outcome, self.lock = plan, budget, outcome, lock
        self.random = random.Random(plan.seed * 1000 + index)
        self.conn = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=60)
        self.samples: list[Sample] = []
        self.reconnects = 0

    def get(self, endpoint: str, path: str, headers: dict | None = None) -> str | None:
        """GET `path`; None once the budget is spent (the viewer stops)."""
        if not self.budget.take():
            return None
        started = time.perf_counter()
        queries, cpu, server, error, body = None, None, None, "", ""
        try:
            status, queries, cpu, server, body = self._fetch(path, headers or {})
            if status != 200:
                error = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        self.samples.append(Sample(endpoint, seconds, queries, error, started, cpu, server))
        return None if error else body

    def _fetch(self, path: str, headers: dict) -> tuple[int, int | None, float | None, float | None, str]:
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path, headers=headers)
                response = self.conn.getresponse()
                body = response.read().decode("utf-8", "replace")
                queries, cpu = response.getheader(QUERIES_HEADER), response.getheader(CPU_HEADER)
                server = response.getheader(WALL_HEADER)
                return (
                    response.status,
                    int(queries) if queries else None,
                    int(cpu) / 1e6 if cpu else None,
                    int(server) / 1e6 if server else None,
                    body,
                )
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # the server closed the kept-alive connection: open another
                if attempt == 2:
                    raise
                self.reconnects += 1
        raise AssertionError("unreachable")

    def fail(self, endpoint: str, reason: str) -> None:
        """The last response answered 200 but was wrong: it counts as an error."""
        last = self.samples[-1]
        self.samples[-1] = Sample(
            endpoint, last.seconds, last.queries, reason, last.at, last.cpu, last.server
        )

    def visit(self) -> bool:
        """One viewer's visit; False once the budget is spent."""
        if self.get(VIDEO_LIST, "/videos/") is None:
            return False
        video_id = self.random.choice(self.plan.video_ids)
        page = self.get(PLAYER, f"/videos/{video_id}/")
        if page is None:
            return self.budget.left()
        try:
            status = status_from_page(page)
        except (BadResponse, ValueError) as exc:
            self.fail(PLAYER, str(exc))
            return self.budget.left()
        body = self.get(STATUS_API, f"/api/videos/{video_id}/")
        if body is not None:
            try:
                if json.loads(body)["id"] != video_id:
                    self.fail(STATUS_API, "the status API answered for another video")
            except (ValueError, KeyError):
                self.fail(STATUS_API, "the status API did not answer JSON with an id")
        hls = status.get("hls_url") or ""
        if hls.startswith(f"/videos/{video_id}/play/"):
            master = self.get(MASTER, hls)
            if master is not None:
                try:
                    for uri in check_master(master, video_id):
                        text = self.get(MEDIA, uri)
                        if text is None:
                            break
                        try:
                            check_media(text)
                        except BadResponse as exc:
                            self.fail(MEDIA, str(exc))
                except BadResponse as exc:
                    self.fail(MASTER, str(exc))
        body = self.get(V1_LIST, "/api/v1/videos/", {"Authorization": f"Bearer {self.plan.api_key}"})
        if body is not None:
            try:
                json.loads(body)["results"]
            except (ValueError, KeyError):
                self.fail(V1_LIST, "the v1 list did not answer a page of results")
        return self.budget.left()

    def run(self) -> None:
        try:
            while self.visit():
                pass
        except Exception as exc:  # a viewer that breaks is an error in the results, never silent
            self.samples.append(Sample("viewer", 0.0, None, f"{type(exc).__name__}: {exc}"))
        finally:
            self.conn.close()
            with self.lock:
                self.outcome.samples += self.samples
                self.outcome.reconnects += self.reconnects


class Budget:
    """Requests left and the deadline, shared by every viewer: the run stops by itself."""

    def __init__(self, requests: int, seconds: float):
        self._left, self._deadline = requests, time.monotonic() + seconds
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0 or time.monotonic() >= self._deadline:
                self._left = 0
                return False
            self._left -= 1
            return True

    def left(self) -> bool:
        return self._left > 0 and time.monotonic() < self._deadline


def drive(plan: Plan) -> Outcome:
    """Run `plan.viewers` viewers until the budget is spent; every thread is joined."""
    outcome, lock = Outcome(), threading.Lock()
    budget = Budget(plan.max_requests, plan.seconds)
    viewers = [Viewer(plan, i, budget, outcome, lock) for i in range(plan.viewers)]
    threads = [threading.Thread(target=v.run, name=f"viewer-{i}", daemon=True) for i, v in enumerate(viewers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(plan.seconds + 120)  # a request has a 60 s socket timeout
    outcome.wall = time.perf_counter() - started
    outcome.started = started
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a viewer thread did not stop (a request hung past its timeout)")
    return outcome


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was measured."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * fraction // 1)))
    return ordered[int(rank) - 1]


def summarize(outcome: Outcome) -> dict:
    """Per endpoint: requests, errors, p50/p95/max latency (ms), the query counts seen; and
    the totals (requests per second over the whole run)."""
    rows = {}
    for endpoint in ENDPOINTS:
        samples = [s for s in outcome.samples if s.endpoint == endpoint]
        if not samples:
            continue
        ms = [s.seconds * 1000 for s in samples]
        rows[endpoint] = {
            "requests": len(samples),
            "errors": sum(1 for s in samples if s.error),
            "p50_ms": percentile(ms, 0.50),
            "p95_ms": percentile(ms, 0.95),
            "max_ms": max(ms),
            "queries": sorted({s.queries for s in samples if s.queries is not None}),
            "cpu_p50_ms": percentile([s.cpu * 1000 for s in samples if s.cpu is not None], 0.50),
            "server_p95_ms": percentile([s.server * 1000 for s in samples if s.server is not None], 0.95),
        }
    total = len(outcome.samples)
    errors = [s for s in outcome.samples if s.error]
    return {
        "endpoints": rows,
        "requests": total,
        "errors": len(errors),
        "error_examples": sorted({f"{s.endpoint}: {s.error}" for s in errors})[:5],
        "reconnects": outcome.reconnects,
        "wall": outcome.wall,
        "rps": total / outcome.wall if outcome.wall else 0.0,
        "cpu_seconds": sum(s.cpu for s in outcome.samples if s.cpu is not None),
        "per_second": per_second(outcome),
    }


def per_second(outcome: Outcome) -> list[int]:
    """Requests sent in each second of the run (for the chart)."""
    counts = [0] * (int(outcome.wall) + 1)
    for sample in outcome.samples:
        counts[min(len(counts) - 1, max(0, int(sample.at - outcome.started)))] += 1
    return counts
