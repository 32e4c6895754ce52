"""A canary HTTP server on 127.0.0.1 that counts the requests it receives: the witness that no
file made the servers fetch the addresses it names (cloud metadata credentials, internal
services). It answers every GET with a small "secret", as the metadata service would.
`Canary(host="::1")` listens on IPv6 loopback (the `canary6` fixture), `port=` on a chosen port
(a rebinding test needs the canary on the port the allowed server has)."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Canary:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server name)
                hits.append(self.path)
                body = b"AKIA-canary-secret"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        self.server = server_class((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str, scheme: str = "http") -> str:
        host = self.server.server_address[0]
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary():
    with Canary() as server:
        yield server


@pytest.fixture
def canary6():
    with Canary(host="::1") as server:
        yield server
