"""Which IP addresses a request made for a user may reach: the public internet only.

A user who can make the server fetch a URL (an import, a webhook) must not reach what only the
server can: its own services on loopback, the private network, the cloud metadata service on
link-local 169.254.169.254 (instance credentials), or anything else that is not globally
routable. The rule is one table per family, checked in order, and a catch-all: an IPv4 address
Python does not call global, an IPv6 address outside global unicast (2000::/3), is refused too.
IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64, Teredo) are judged by the
IPv4 address they lead to, since that is where a dual-stack socket or a translator connects.
"""

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

_V4 = [
    (IPv4Network("0.0.0.0/32"), "an unspecified address"),
    (IPv4Network("0.0.0.0/8"), "a 'this network' address"),
    (IPv4Network("10.0.0.0/8"), "a private address"),
    (IPv4Network("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (IPv4Network("127.0.0.0/8"), "a loopback address"),
    (IPv4Network("169.254.169.254/32"), "a link-local address (the cloud metadata service)"),
    (IPv4Network("169.254.0.0/16"), "a link-local address"),
    (IPv4Network("172.16.0.0/12"), "a private address"),
    (IPv4Network("192.0.0.0/24"), "a reserved (IETF protocol) address"),
    (IPv4Network("192.0.2.0/24"), "a documentation address"),
    (IPv4Network("192.88.99.0/24"), "a reserved (6to4 relay) address"),
    (IPv4Network("192.168.0.0/16"), "a private address"),
    (IPv4Network("198.18.0.0/15"), "a benchmarking address"),
    (IPv4Network("198.51.100.0/24"), "a documentation address"),
    (IPv4Network("203.0.113.0/24"), "a documentation address"),
    (IPv4Network("224.0.0.0/4"), "a multicast address"),
    (IPv4Network("255.255.255.255/32"), "the broadcast address"),
    (IPv4Network("240.0.0.0/4"), "a reserved address"),
]

_V6 = [
    (IPv6Network("::/128"), "an unspecified address"),
    (IPv6Network("::1/128"), "a loopback address"),
    (IPv6Network("::/96"), "an IPv4-compatible address (deprecated)"),
    (IPv6Network("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (IPv6Network("100::/64"), "a discard-only address"),
    (IPv6Network("2001:db8::/32"), "a documentation address"),
    (IPv6Network("3fff::/20"), "a documentation address"),
    (IPv6Network("fc00::/7"), "a unique-local address"),
    (IPv6Network("fe80::/10"), "a link-local address"),
    (IPv6Network("fec0::/10"), "a site-local address (deprecated)"),
    (IPv6Network("ff00::/8"), "a multicast address"),
]
_TEREDO = IPv6Network("2001::/32")
_IETF_V6 = IPv6Network("2001::/23")
_NAT64 = IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = IPv6Network("2000::/3")


def _embedded_v4(ip: IPv6Address) -> tuple[str, list[IPv4Address]]:
    """The IPv4 addresses an IPv6 address leads to, and the name of the form ('' for none)."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped address", [ip.ipv4_mapped]
    if ip in _NAT64:
        return "a NAT64 address", [IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return "a 6to4 address", [ip.sixtofour]
    if ip.teredo is not None:
        return "a Teredo address", list(ip.teredo)
    return "", []


def forbidden_reason(ip: IPv4Address | IPv6Address) -> str | None:
    """Why a request for a user may not reach `ip`, as a phrase for a one-line message ("a
    loopback address"), or None when it is a public address."""
    if isinstance(ip, IPv6Address):
        if ip.scope_id:
            ip = IPv6Address(ip.compressed.split("%")[0])
        form, inner = _embedded_v4(ip)
        for v4 in inner:
            reason = forbidden_reason(v4)
            if reason:
                return f"{form} of {v4}, {reason}"
        if form:
            return None
        for network, reason in _V6:
            if ip in network:
                return reason
        if ip in _IETF_V6:
            return "a reserved (IETF protocol) address"
        if ip not in _GLOBAL_UNICAST:
            return "a reserved address"
        return None
    for network, reason in _V4:
        if ip in network:
            return reason
    if not ip.is_global:
        return "a reserved address"
    return None


def parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    """`text` as an IP address (brackets and an IPv6 zone allowed), or None for a name."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
