"""What the outbound tests (URL imports, webhooks) attack and observe, a pytest plugin.

- `origin`: the one server the rules let through, an HTTP server on 127.0.0.2 (Linux routes all
  of 127/8 to the loopback interface): `TRANSCODING_OUTBOUND_ALLOW_ADDRESSES` is set to
  127.0.0.2 for the test, while the canary on 127.0.0.1 stays forbidden. A test gives it
  routes (`serve`, `redirect`, or any function of the request handler); it counts its hits.
- `tls_origin`: the same over https, with a certificate for `media.test` from a CA made for the
  test (trusted through SSL_CERT_FILE); `fake_dns` maps the name to 127.0.0.2.
- `fake_dns`: names the test chooses resolve to the addresses it chooses (a list, or a function
  called at each lookup: a rebinding name answers differently the second time); every other
  name goes to the real resolver.
- `connect_log`: every address this process connects a socket to during the test (a
  `socket.connect` audit hook): the witness that a refused request never left the machine
  for 10.0.0.1 or 169.254.169.254, where no canary can listen.
"""

import datetime
import ipaddress
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ORIGIN_HOST = "127.0.0.2"


class Origin:
    """An HTTP/1.1 server on 127.0.0.2 answering the routes a test gives it by path (the query
    is ignored; 404 otherwise); every connection is closed after one answer."""

    def __init__(self, host: str = ORIGIN_HOST, port: int = 0, tls: ssl.SSLContext | None = None):
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        hits = self.hits = []
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (the http.server name)
                hits.append(self.path)
                self.close_connection = True
                route = routes.get(self.path.split("?")[0])
                try:
                    if route is None:
                        answer(self, 404, b"not here")
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what a limit does

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.scheme = "https" if tls else "http"
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.server.server_address[0]}:{self.port}{path}"

    def serve(self, path: str, body: bytes, **options) -> str:
        self.routes[path.split("?")[0]] = lambda h: answer(h, 200, body, **options)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path.split("?")[0]] = lambda h: answer(h, status, b"", headers={"Location": location})
        return self.url(path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def answer(handler, status: int, body: bytes, *, headers: dict | None = None, length: bool = True) -> None:
    """One answer; `length=False` sends no Content-Length (the body ends when the connection
    closes, as an HTTP/1.0 server's does)."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


def chunked_with_a_small_length(total: int, chunk: int = 64 * 1024):
    """A route whose answer claims a small Content-Length and sends `total` bytes chunked
    (a client must believe the chunking, so the length lies)."""

    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        sent = 0
        while sent < total:
            size = min(chunk, total - sent)
            handler.wfile.write(b"%x\r\n" % size + b"\0" * size + b"\r\n")
            sent += size
        handler.wfile.write(b"0\r\n\r\n")

    return route


def broken_off(body: bytes):
    """A route that announces the whole body, sends half and hangs up: a network failure."""

    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])

    return route


@pytest.fixture
def origin(settings):
    settings.TRANSCODING_OUTBOUND_ALLOW_ADDRESSES = ORIGIN_HOST
    with Origin() as server:
        yield server


def _certificates(tmp_path, name: str):
    """A CA (its PEM file) and a server context with a certificate for `name` it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "outbound tests CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.fixture
def tls_origin(settings, tmp_path, monkeypatch, fake_dns):
    """An https origin on 127.0.0.2 known as media.test, its CA trusted."""
    ca_file, context = _certificates(tmp_path, "media.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    settings.TRANSCODING_OUTBOUND_ALLOW_ADDRESSES = ORIGIN_HOST
    fake_dns["media.test"] = [ORIGIN_HOST]
    fake_dns["other.test"] = [ORIGIN_HOST]  # the same server, under a name its certificate lacks
    with Origin(tls=context) as server:
        yield server


@pytest.fixture
def fake_dns(monkeypatch):
    """A dict the test fills: name -> list of addresses, or a function returning one."""
    names: dict = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        key = host.decode() if isinstance(host, bytes) else host
        if key not in names:
            return real(host, port, family, type, proto, flags)
        answer = names[key]
        addresses = answer() if callable(answer) else answer
        infos = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            if ip.version == 6:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)))
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


_CONNECTS: list | None = None


def _audit(event, args):
    if event == "socket.connect" and _CONNECTS is not None:
        address = args[1]
        if isinstance(address, tuple):
            _CONNECTS.append(address[0])


sys.addaudithook(_audit)


@pytest.fixture
def connect_log():
    """The addresses sockets of this process connected to during the test."""
    global _CONNECTS
    _CONNECTS = []
    try:
        yield _CONNECTS
    finally:
        _CONNECTS = None
