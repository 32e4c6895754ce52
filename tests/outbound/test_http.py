"""`check_url` and `open_url` refuse every internal address, directly, by name, after a
redirect and after a rebinding name changes its answer, and a canary on 127.0.0.1 counts zero
requests; what they allow, they fetch from the address they checked.

The one server the tests may reach is `origin` on 127.0.0.2, allowed by
TRANSCODING_OUTBOUND_ALLOW_ADDRESSES (tests/support/outbound.py); everything else on loopback
stays forbidden, so a redirect from the origin to the canary is exactly the attack."""

import pytest

from tests.support.canary import Canary
from transcoding.errors import is_transient
from transcoding.outbound.http import OutboundRefused, OutboundUnavailable, check_url, open_url


@pytest.fixture
def attacks(canary, canary6, fake_dns):
    """Each internal target, as a URL: literals, names that resolve to them, odd spellings."""
    port = canary.port
    fake_dns.update({
        "loopback.test": ["127.0.0.1"], "private.test": ["10.0.0.1"], "metadata.test": ["169.254.169.254"],
        "v6loopback.test": ["::1"], "mixed.test": ["93.184.215.14", "127.0.0.1"],
    })  # fmt: skip
    return {
        "loopback": canary.url("/latest/meta-data/"),
        "loopback https": canary.url("/", scheme="https"),
        "IPv6 loopback": canary6.url("/"),
        "10/8": "http://10.0.0.1/",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "localhost": f"http://localhost:{port}/",
        "name to loopback": f"http://loopback.test:{port}/",
        "name to 10/8": "http://private.test/",
        "name to metadata": "http://metadata.test/latest/meta-data/",
        "name to IPv6 loopback": f"http://v6loopback.test:{canary6.port}/",
        "one of two addresses internal": f"http://mixed.test:{port}/",
        "IPv4-mapped": f"http://[::ffff:127.0.0.1]:{port}/",
        "decimal": f"http://2130706433:{port}/",
        "short form": f"http://127.1:{port}/",
        "hex": f"http://0x7f.0.0.1:{port}/",
        "unspecified": f"http://0.0.0.0:{port}/",
    }


@pytest.fixture
def no_request(canary, canary6, connect_log):
    """After the test: the canaries saw nothing, and no socket connected anywhere but the origin."""
    yield
    assert canary.hits == [] and canary6.hits == []
    assert set(connect_log) <= {"127.0.0.2"}, connect_log


NAMES = [
    "loopback", "loopback https", "IPv6 loopback", "10/8", "metadata", "localhost", "name to loopback",
    "name to 10/8", "name to metadata", "name to IPv6 loopback", "one of two addresses internal",
    "IPv4-mapped", "decimal", "short form", "hex", "unspecified",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_internal_targets_are_refused_before_any_connection(name, attacks, no_request):
    url = attacks[name]
    with pytest.raises(OutboundRefused) as checked:
        check_url(url, allow_http=True)
    with pytest.raises(OutboundRefused) as opened, open_url(url, allow_http=True):
        pass
    message = str(opened.value)
    assert str(checked.value) == message
    assert message.endswith("refused.") and "\n" not in message
    assert "internal" in message or "address" in message


@pytest.mark.parametrize("name", NAMES)
def test_a_redirect_to_an_internal_target_is_refused(name, attacks, origin, no_request):
    start = origin.redirect("/go", attacks[name])
    check_url(start, allow_http=True)  # the first hop is fine
    with pytest.raises(OutboundRefused, match="refused"), open_url(start, allow_http=True):
        pass
    assert origin.hits == ["/go"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_checked(status, canary, origin, no_request):
    start = origin.redirect("/go", canary.url("/"), status=status)
    with (
        pytest.raises(OutboundRefused, match="127.0.0.1 is a loopback address"),
        open_url(start, allow_http=True),
    ):
        pass


def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to(
    origin, fake_dns, connect_log
):
    """DNS rebinding: the name answers the allowed address to the check and the canary's
    afterwards; the request reaches the origin, the canary (same port, 127.0.0.1) nothing."""
    answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])
    fake_dns["rebind.test"] = lambda: next(answers)
    origin.serve("/clip", b"the allowed server")

    with Canary(port=origin.port) as canary:
        with open_url(origin.url("/clip", host="rebind.test"), allow_http=True) as response:
            assert response.read(100) == b"the allowed server"
        assert canary.hits == []
    assert origin.hits == ["/clip"]
    assert "127.0.0.1" not in connect_log


def test_a_rebinding_name_is_refused_at_the_next_hop(origin, fake_dns, canary, no_request):
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    fake_dns["rebind.test"] = lambda: next(answers)
    origin.redirect("/a", f"http://rebind.test:{canary.port}/b")
    refused = pytest.raises(OutboundRefused, match="rebind.test resolves to 127.0.0.1")
    with refused, open_url(origin.url("/a", host="rebind.test"), allow_http=True):
        pass


def test_redirects_past_the_limit_are_refused(origin):
    for n in range(10):
        origin.redirect(f"/hop/{n}", f"/hop/{n + 1}")
    origin.serve("/hop/3", b"arrived")
    with open_url(origin.url("/hop/0"), allow_http=True, max_redirects=3) as response:
        assert (response.status, response.read(10)) == (200, b"arrived")
        assert response.url == origin.url("/hop/3")
    origin.hits.clear()
    with (
        pytest.raises(OutboundRefused) as refused,
        open_url(origin.url("/hop/0"), allow_http=True, max_redirects=2),
    ):
        pass
    assert str(refused.value) == "More than 2 redirects: refused."
    assert origin.hits == ["/hop/0", "/hop/1", "/hop/2"]


def test_without_following_a_redirect_is_the_answer(origin, canary):
    start = origin.redirect("/go", canary.url("/"))
    with open_url(start, allow_http=True, follow_redirects=False) as response:
        assert response.status == 302 and response.headers["location"] == canary.url("/")
    assert canary.hits == []


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://example.com/", "Only https URLs are allowed: http refused."),
        ("ftp://example.com/a.mp4", "Only https URLs are allowed, not ftp."),
        ("file:///etc/passwd", "Only https URLs are allowed, not file."),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "Only https URLs are allowed, not gopher."),
        ("example.com/a.mp4", "Only https URLs are allowed, not a URL without a scheme."),
        ("https://user:pw@example.com/", "URLs with a user name or password are refused."),
        ("https://example.com@127.0.0.1/", "URLs with a user name or password are refused."),
        ("https:///path", "The URL has no host."),
        ("https://example.com:99999/", "Not a valid URL (its host or port cannot be read)."),
        ("https://exa mple.com/", "The URL contains spaces or control characters: refused."),
        ("https://example.com/\r\nHost: evil", "The URL contains spaces or control characters: refused."),
        ("https://example.com/" + "a" * 2000, "Not a URL of at most 2000 characters."),
        ("https://nowhere.invalid/", "The address nowhere.invalid does not resolve."),
    ],
)
def test_urls_are_refused_in_one_line(url, message, no_request):
    with pytest.raises(OutboundRefused) as refused:
        check_url(url)
    assert str(refused.value) == message


def test_allow_internal_lifts_the_address_rule(canary, canary6):
    check_url(canary.url("/"), allow_http=True, allow_internal=True)
    for server in (canary, canary6):
        with open_url(server.url("/x"), allow_http=True, allow_internal=True) as response:
            assert (response.status, response.read(1000)) == (200, b"AKIA-canary-secret")
        assert server.hits == ["/x"]


def test_network_failures_are_transient(origin):
    port = origin.port
    origin.__exit__()  # nothing listens there any more
    with pytest.raises(OutboundUnavailable) as failed, open_url(f"http://127.0.0.2:{port}/", allow_http=True):
        pass
    assert is_transient(failed.value)
    assert str(failed.value) == "Could not connect to 127.0.0.2: connection refused."
    assert not is_transient(OutboundRefused("x"))


def test_post_sends_the_body_and_headers_with_the_host_name(origin, fake_dns):
    fake_dns["hooks.test"] = ["127.0.0.2"]
    seen = {}

    def route(handler):
        seen.update(
            host=handler.headers["Host"], body=handler.rfile.read(int(handler.headers["Content-Length"]))
        )
        seen.update(signature=handler.headers["webhook-signature"], method=handler.command)
        handler.send_response(204)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    origin.routes["/hook"] = route
    url = origin.url("/hook", host="hooks.test")
    with open_url(
        url, method="POST", body=b'{"a":1}', headers={"webhook-signature": "v1,x"}, allow_http=True
    ) as r:
        assert r.status == 204
    assert seen == {
        "host": f"hooks.test:{origin.port}",
        "body": b'{"a":1}',
        "signature": "v1,x",
        "method": "POST",
    }


def test_https_verifies_the_certificate_against_the_name_while_connecting_to_the_checked_address(
    tls_origin, fake_dns, connect_log
):
    tls_origin.serve("/clip", b"over tls")
    with open_url(tls_origin.url("/clip", host="media.test")) as response:
        assert response.read(100) == b"over tls"
    assert set(connect_log) == {"127.0.0.2"}
    with (
        pytest.raises(OutboundUnavailable, match="certificate"),
        open_url(tls_origin.url("/clip", host="other.test")),
    ):
        pass


def test_an_https_page_may_not_redirect_to_http(tls_origin, origin):
    target = origin.serve("/clip", b"plain")
    tls_origin.redirect("/go", target)
    refused = pytest.raises(OutboundRefused, match="Only https URLs are allowed: http refused.")
    with refused, open_url(tls_origin.url("/go", host="media.test")):
        pass
    assert origin.hits == []
