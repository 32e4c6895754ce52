"""`forbidden_reason`: which addresses a request made for a user may reach, as a table."""

from ipaddress import ip_address

import pytest

from transcoding.outbound.addresses import forbidden_reason, parse_ip

REFUSED = [
    # address, a word the reason must contain
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.0.8", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped address of 127.0.0.1, a loopback"),
    ("::ffff:10.1.2.3", "IPv4-mapped address of 10.1.2.3, a private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("2002:7f00:1::1", "6to4 address of 127.0.0.1"),
    ("2002:a9fe:a9fe::", "6to4 address of 169.254.169.254"),
    ("64:ff9b::7f00:1", "NAT64 address of 127.0.0.1"),
    ("64:ff9b::a00:1", "NAT64 address of 10.0.0.1"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),  # its client is 192.0.2.45
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard-only"),
    ("2001:2::1", "reserved"),
    ("4000::1", "reserved"),
]

ALLOWED = [
    "8.8.8.8", "1.1.1.1", "93.184.215.14", "172.32.0.1", "100.128.0.1", "169.255.0.1", "11.0.0.1",
    "2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808",
    "2002:808:808::1",
]  # fmt: skip


@pytest.mark.parametrize("address, word", REFUSED)
def test_internal_addresses_are_refused_with_a_reason(address, word):
    reason = forbidden_reason(ip_address(address))
    assert reason is not None and word in reason, (address, reason)
    assert "\n" not in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert forbidden_reason(ip_address(address)) is None


@pytest.mark.parametrize(
    "text, expected",
    [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("::ffff:7f00:1", "::ffff:7f00:1"), ("example.com", None),
     ("2130706433", None), ("", None)],
)  # fmt: skip
def test_parse_ip_reads_literals_only(text, expected):
    ip = parse_ip(text)
    assert (str(ip) if ip else None) == expected
