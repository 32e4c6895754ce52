"""The programmable platform end to end, as docs/api.md tells a new user to drive it: a script
holding nothing but an API key uploads a clip in parts over real HTTP (to the site on local
storage; straight to moto's S3 server through presigned URLs), a receiver on 127.0.0.1 gets
video.created, video.playable and video.ready and verifies every signature with the
standardwebhooks library, and the script downloads the MP4 the document names and ffmpeg
decodes it.

The worker is the local backend's loop, in a thread of this process (the live server's
database and settings: the bucket, the webhook rules); the script knows nothing of it.
"""

import json
import math
import subprocess
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.support.media import make_clip
from tests.support.processes import wait_for
from transcoding.api.keys import api_key_create
from transcoding.conf import ffmpeg_binary
from transcoding.jobs.dispatch import local
from transcoding.webhooks.endpoints import endpoint_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Receiver:
    """Webhooks in: each request's headers and body, verified with the endpoint's secret."""

    def __init__(self):
        self.events, self.refused, self.secret = [], [], None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    payload = Webhook(receiver.secret).verify(body, dict(self.headers))
                except Exception as exc:  # a bad signature must fail the test, not the server
                    receiver.refused.append(repr(exc))
                    self.send_response(400)
                else:
                    receiver.events.append((self.headers["webhook-id"], payload))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def types(self, video_id: int) -> list[str]:
        return [p["type"] for _, p in self.events if p["data"]["id"] == video_id]


class Script:
    """What a program with an API key does: JSON over HTTP, nothing else."""

    def __init__(self, base: str, key: str):
        self.base, self.key = base, key

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None, auth: bool = True):
        url = path if path.startswith("http") else self.base + path
        data, headers = raw, {}
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        if auth:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                content = response.read()
                return response.status, response.headers, content  # case-insensitive
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {url}: {exc.code} {exc.read()[:300]!r}")

    def json(self, method: str, path: str, body=None) -> dict:
        return json.loads(self.call(method, path, body)[2])

    def upload(self, path: Path, title: str) -> dict:
        """The protocol of docs/api.md: start, send each part (to the site or to S3), complete."""
        data = path.read_bytes()
        upload = self.json(
            "POST", "/api/v1/uploads/", {"filename": path.name, "size": len(data), "title": title}
        )
        size, count = upload["part_size"], upload["part_count"]
        assert count == math.ceil(len(data) / size)
        parts = {n: data[(n - 1) * size : n * size] for n in range(1, count + 1)}
        if upload["mode"] == "s3":
            urls = self.json(
                "POST", f"/api/v1/uploads/{upload['id']}/parts/sign/", {"part_numbers": list(parts)}
            )
            etags = [
                {
                    "number": n,
                    "etag": self.call("PUT", urls["urls"][str(n)], raw=chunk, auth=False)[1]["ETag"],
                }
                for n, chunk in parts.items()
            ]
            return self.json("POST", f"/api/v1/uploads/{upload['id']}/complete/", {"parts": etags})
        for n, chunk in parts.items():
            self.call("PUT", f"/api/v1/uploads/{upload['id']}/parts/{n}/", raw=chunk)
        return self.json("POST", f"/api/v1/uploads/{upload['id']}/complete/")


@pytest.fixture
def receiver(settings):
    settings.TRANSCODING_WEBHOOK_ALLOW_INTERNAL = True
    settings.TRANSCODING_WEBHOOK_ALLOW_HTTP = True
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def worker(settings, tmp_path):
    """The local backend's worker loop in a thread, holding the worker lock so the live
    server's dispatcher does not start another process."""
    settings.TRANSCODING_DISPATCH = "local"
    settings.TRANSCODING_RUN_DIR = str(tmp_path / "run")
    stop, held = threading.Event(), threading.Event()

    def run():
        with local.worker_lock() as acquired:
            assert acquired
            held.set()
            deliveries = threading.Thread(target=local._delivery_loop, args=(stop, 0.2), daemon=True)
            deliveries.start()
            local._work_loop(stop, None, 0.2)
            deliveries.join(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    held.wait(10)
    yield
    stop.set()
    thread.join(60)


def _journey(live_server, editor, receiver, clip: Path, storage: str):
    _, key = api_key_create(user=editor, name="e2e", scope="write")
    _, receiver.secret = endpoint_create(receiver.url, description="e2e")
    script = Script(live_server.url, key)

    video = script.upload(clip, title=f"API {storage}")
    assert video["status"] in ("queued", "processing") and video["title"] == f"API {storage}"

    wait_for(lambda: "video.ready" in receiver.types(video["id"]), 240, f"no video.ready ({receiver.events})")
    assert receiver.refused == []
    types = receiver.types(video["id"])
    assert types[:3] == ["video.created", "video.playable", "video.ready"], types
    ids = [webhook_id for webhook_id, payload in receiver.events if payload["data"]["id"] == video["id"]]
    assert len(set(ids)) == len(ids)  # one webhook-id per event
    ready = next(p for _, p in receiver.events if p["type"] == "video.ready")["data"]
    assert ready["status"] == "ready" and ready["playable"] and ready["download_urls"]

    document = script.json("GET", f"/api/v1/videos/{video['id']}/")
    assert document["status"] == "ready" and document["hls_url"]
    name, url = next(iter(document["download_urls"].items()))
    status, headers, mp4 = script.call(
        "GET", url if url.startswith("http") else live_server.url + url, auth=False
    )
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert "attachment" in headers["Content-Disposition"] and name in headers["Content-Disposition"]
    decoded = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", "pipe:0", "-f", "null", "-"], input=mp4, capture_output=True
    )
    assert decoded.returncode == 0 and decoded.stderr == b"", decoded.stderr[-500:]
    assert mp4.find(b"moov") < mp4.find(b"mdat")  # faststart


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", seconds=4, size="640x360")


@pytest.fixture
def api_preset(small_preset):
    small_preset.download_rungs = "highest"
    small_preset.save()
    return small_preset


def test_a_script_with_a_key_uploads_to_the_site_and_is_told_when_it_is_ready(
    live_server, editor, receiver, worker, clip, api_preset, settings
):
    settings.TRANSCODING_UPLOAD_PART_BYTES = 64 * 1024
    assert clip.stat().st_size > 2 * 64 * 1024, "the clip must need three parts"
    _journey(live_server, editor, receiver, clip, "local")


def test_a_script_with_a_key_uploads_to_s3_and_is_told_when_it_is_ready(
    live_server, editor, receiver, worker, clip, api_preset, s3, settings
):
    settings.TRANSCODING_UPLOAD_PART_BYTES = 5 * 1024 * 1024
    lossless = ("-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p")
    big = make_clip(clip.parent / "big.mp4", seconds=3, size="1280x720", codec=lossless)
    assert big.stat().st_size > 5 * 1024 * 1024, "the clip must need two S3 parts"
    _journey(live_server, editor, receiver, big, "s3")
