"""A webhook receiver on 127.0.0.1 (a threaded http.server) that verifies every request's
signature with the standardwebhooks library, as a customer's receiver would, and answers from
a script: a status code per request, or "hold" (keep the request open until the test ends, for
a worker killed mid-delivery). `webhook_endpoint` registers it as an endpoint."""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from transcoding.models import WebhookEndpoint
from transcoding.webhooks.endpoints import new_secret

HOLD = "hold"


@dataclass
class Received:
    webhook_id: str
    type: str
    payload: dict | None
    verified: bool
    headers: dict
    body: bytes


class Receiver:
    def __init__(self, secret: str, script=()):
        self.secret = secret
        self.script = list(script)  # what to answer, request by request; then 200
        self.received: list[Received] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    payload, verified = None, False
                kind = (payload or {}).get("type", "")
                receiver.received.append(
                    Received(headers.get("webhook-id", ""), kind, payload, verified, headers, body)
                )
                answer = receiver.script.pop(0) if receiver.script else 200
                if answer == HOLD:
                    receiver.release.wait(60)
                    return
                if isinstance(answer, tuple):  # (status, headers)
                    answer, extra = answer
                else:
                    extra = {}
                reply = json.dumps({"answer": answer}).encode()
                self.send_response(answer)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address
        return f"http://{host}:{port}/hooks"

    def types(self) -> list[str]:
        return [r.type for r in self.received]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver(new_secret()) as server:
        yield server


@pytest.fixture
def webhook_endpoint(receiver, settings, db) -> WebhookEndpoint:
    """The receiver as an endpoint for every event type (internal addresses allowed: it is on
    127.0.0.1)."""
    settings.TRANSCODING_WEBHOOK_ALLOW_INTERNAL = True
    return WebhookEndpoint.objects.create(
        url=receiver.url, secret=receiver.secret, description="test receiver"
    )
