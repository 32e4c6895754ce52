"""HTTP requests to addresses users give (URL imports, webhooks), made so that a user cannot
reach what only the server can.

- The URL is checked before anything else: http or https only (https unless `allow_http`), no
  user name or password, a host.
- The host is resolved once per hop and refused when ANY of its addresses is internal
  (`addresses.forbidden_reason`): a name that answers one public and one internal address
  is refused, not raced.
- The connection goes to the address that was checked, never to the name: a second lookup
  (DNS rebinding: a short-lived record answering a public address to the check and 127.0.0.1
  to the connection) is never made. The Host header, and for https the SNI and the
  certificate check, still use the name.
- Redirects are followed here, not by a library, each new URL checked the same way (its
  scheme too) before any connection, up to `max_redirects`.
- Proxies from the environment are ignored; connect and read have timeouts.

`allow_internal` (a setting per caller) lifts the address rule; `TRANSCODING_OUTBOUND_ALLOW_
ADDRESSES` names the few internal addresses or networks that may be reached anyway (an
internal media server; the tests' local servers). Failures: `OutboundRefused` (permanent,
one line) for what the rules refuse, `OutboundUnavailable` (an OSError, so `errors.
is_transient` retries it) for the network.
"""

import ipaddress
import os
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.util.ssl_match_hostname import CertificateError

from transcoding.conf import settings
from transcoding.errors import PermanentError
from transcoding.outbound.addresses import forbidden_reason, parse_ip

REDIRECTS = (301, 302, 303, 307, 308)
MAX_URL_LENGTH = 2000
USER_AGENT = "videoproject-outbound/1"
# Dropped when a redirect leads to another host: credentials meant for the first one.
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


class OutboundRefused(PermanentError):
    """The request is against the rules (scheme, address, redirects): not made, and never
    worth trying again. The message is one line for the user."""


class OutboundUnavailable(OSError):
    """The network let the request down (no answer, a reset, a timeout, a TLS failure):
    transient, so a job retries it with backoff."""


@dataclass(frozen=True)
class Target:
    """A checked URL's parts: where to connect and what to say."""

    scheme: str
    host: str  # a lower-case ASCII name, or an IP address without brackets
    port: int
    path: str  # path and query, never empty

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str, *, allow_http: bool = False) -> Target:
    """The URL's parts, or OutboundRefused saying what is wrong with it."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise OutboundRefused(f"Not a URL of at most {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise OutboundRefused("The URL contains spaces or control characters: refused.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("Not a valid URL (its host or port cannot be read).")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundRefused(f"Only https URLs are allowed, not {scheme or 'a URL without a scheme'}.")
    if scheme == "http" and not allow_http:
        raise OutboundRefused("Only https URLs are allowed: http refused.")
    if "@" in parts.netloc:
        raise OutboundRefused("URLs with a user name or password are refused.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise OutboundRefused("The URL has no host.")
    if parse_ip(host) is None:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise OutboundRefused("The URL's host is not a valid name.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def _allowed_networks() -> list:
    """TRANSCODING_OUTBOUND_ALLOW_ADDRESSES: internal addresses that may be reached anyway."""
    return [
        ipaddress.ip_network(a.strip(), strict=False)
        for a in settings.OUTBOUND_ALLOW_ADDRESSES.split(",")
        if a.strip()
    ]


def resolve(host: str, port: int) -> list[IPv4Address | IPv6Address]:
    """Every address the name has now (an IP address: itself), in the resolver's order."""
    literal = parse_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise OutboundRefused(f"The address {host} does not resolve.")
        raise OutboundUnavailable(f"The address {host} could not be resolved now: {exc.strerror}.")
    found = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = parse_ip(str(sockaddr[0]))
        if ip is not None and ip not in found:
            found.append(ip)
    if not found:
        raise OutboundRefused(f"The address {host} does not resolve.")
    return found


def checked_addresses(target: Target, *, allow_internal: bool = False) -> list[IPv4Address | IPv6Address]:
    """The host's addresses, refused when any is internal (and not explicitly allowed)."""
    found = resolve(target.host, target.port)
    if allow_internal:
        return found
    allowed = _allowed_networks()
    for ip in found:
        reason = forbidden_reason(ip)
        if reason and not any(ip.version == n.version and ip in n for n in allowed):
            if parse_ip(target.host) is not None:
                raise OutboundRefused(f"The address {ip} is {reason}: refused.")
            raise OutboundRefused(f"The address {target.host} resolves to {ip}, {reason}: refused.")
    return found


def check_url(url: str, *, allow_http: bool = False, allow_internal: bool = False) -> None:
    """Refuse (OutboundRefused, one line) a URL the rules forbid as it resolves now. Made
    before a request is accepted, so the user hears at once; `open_url` checks again at every
    hop, since names change."""
    checked_addresses(parse_url(url, allow_http=allow_http), allow_internal=allow_internal)


class Response:
    """What `open_url` yields: the final answer, its body read on demand."""

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str):
        self._raw = raw
        self.status: int = raw.status
        self.headers = raw.headers  # case-insensitive
        self.url = url

    def iter_bytes(self, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        """The body in chunks as they arrive (decoded when the server compressed it)."""
        try:
            for chunk in self._raw.stream(chunk_size):
                if chunk:
                    yield chunk
        except HTTPError as exc:
            raise OutboundUnavailable(
                f"The answer from {urlsplit(self.url).hostname} broke off: {_why(exc)}."
            )

    def read(self, limit: int) -> bytes:
        """At most `limit` bytes of the body (a response excerpt); the rest is never read."""
        data = bytearray()
        for chunk in self.iter_bytes(min(limit, 64 * 1024) or 1):
            data += chunk[: limit - len(data)]
            if len(data) >= limit:
                break
        return bytes(data)


def _why(exc: BaseException | None) -> str:
    """A network failure as a short clause: the innermost cause urllib3 wrapped ("connection
    refused", "timed out", the TLS verification's message)."""
    seen = exc
    while seen is not None:
        timeout = isinstance(seen, (urllib3.exceptions.TimeoutError, TimeoutError))
        if timeout and not isinstance(seen, NewConnectionError):  # urllib3 counts it as a timeout
            return "timed out"
        if isinstance(seen, CertificateError):  # urllib3's own check of the name
            return f"the certificate was refused ({seen})"
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"the certificate was refused ({seen.verify_message or seen.reason})"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed ({seen.reason or seen})"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[0].lower() + seen.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _pool(target: Target, ip: IPv4Address | IPv6Address, timeout: float):
    """A connection pool for one checked address (no proxy: pools never read the environment)."""
    timeouts = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(ip), target.port, timeout=timeouts, maxsize=1, retries=False,
            server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )  # fmt: skip
    return urllib3.HTTPConnectionPool(str(ip), target.port, timeout=timeouts, maxsize=1, retries=False)


def _send(target: Target, addresses, method: str, body, headers: dict, timeout: float):
    """Send to the first checked address that accepts a connection; returns (response, pool)."""
    last: Exception | None = None
    for ip in addresses:
        pool = _pool(target, ip, timeout)
        try:
            raw = pool.urlopen(
                method, target.path, body=body, headers={**headers, "Host": target.host_header},
                redirect=False, retries=False, preload_content=False, assert_same_host=False,
            )  # fmt: skip
            return raw, pool
        except NewConnectionError as exc:  # refused, unreachable: the next address may answer
            pool.close()
            last = exc
        except (HTTPError, CertificateError) as exc:
            pool.close()
            raise OutboundUnavailable(f"No answer from {target.host}: {_why(exc)}.")
    raise OutboundUnavailable(f"Could not connect to {target.host}: {_why(last)}.")


@contextmanager
def open_url(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict | None = None,
    allow_http: bool = False,
    allow_internal: bool = False,
    max_redirects: int = 5,
    timeout: float = 10.0,
    follow_redirects: bool = True,
) -> Iterator[Response]:
    """Make the request under the rules above and yield the final `Response` (the connection
    is closed on exit). Raises OutboundRefused or OutboundUnavailable."""
    sent = {"User-Agent": USER_AGENT, "Connection": "close", **(headers or {})}
    hops = 0
    while True:
        target = parse_url(url, allow_http=allow_http)
        addresses = checked_addresses(target, allow_internal=allow_internal)
        raw, pool = _send(target, addresses, method, body, sent, timeout)
        location = raw.headers.get("Location")
        if not (follow_redirects and raw.status in REDIRECTS and location):
            break
        raw.release_conn()
        pool.close()
        hops += 1
        if hops > max_redirects:
            raise OutboundRefused(f"More than {max_redirects} redirects: refused.")
        previous, url = target, urljoin(url, location)
        if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
            method, body = "GET", None
        if urlsplit(url).hostname != previous.host:
            sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIAL_HEADERS}
    try:
        yield Response(raw, url)
    finally:
        raw.release_conn()
        pool.close()
