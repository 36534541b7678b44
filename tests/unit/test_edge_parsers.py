"""The edge's small parsers: the HTTP request head (gate and metrics) and PROXY headers."""
from __future__ import annotations

import pytest

from clasp_fast.netaddr import TrustedProxies, parse_networks
from clasp_fast.server import proxy_protocol as pp
from clasp_fast.server.http import BadRequest, read_head


def test_read_head_waits_for_the_blank_line_then_parses():
    assert read_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 1000) == (None, 0)
    head, used = read_head(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\nrest", 1000)
    assert (head.method, head.target, head.path) == ("GET", "/x?y=1", "/x")
    assert head.headers == {"host": "a", "x-a": "1, 2"}
    assert used == len(b"GET /x?y=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n")


@pytest.mark.parametrize("raw", [b"GET /\r\n\r\n", b"GET / SPDY/3\r\n\r\n", b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"])
def test_read_head_rejects_malformed_heads(raw):
    with pytest.raises(BadRequest):
        read_head(raw, 1000)


def test_read_head_rejects_a_head_over_the_limit():
    with pytest.raises(BadRequest, match="too large"):
        read_head(b"GET / HTTP/1.1\r\nX: " + b"a" * 200, 100)


@pytest.mark.parametrize("make", [pp.v1_header, pp.v2_header])
@pytest.mark.parametrize("src,dst", [("10.0.0.9", "10.0.0.1"), ("2001:db8::9", "2001:db8::1")])
def test_proxy_header_round_trip_byte_by_byte(make, src, dst):
    header = make(src, dst, 1234, 7330)
    data = header + b"GET / HTTP/1.1\r\n"
    for n in range(len(header)):
        assert pp.parse(data[:n]) == (None, 0), n          # not complete yet
    assert pp.parse(data) == (src, len(header))


def test_proxy_v1_unknown_and_v2_local_keep_the_peer():
    assert pp.parse(b"PROXY UNKNOWN\r\nGET") == (None, len(b"PROXY UNKNOWN\r\n"))
    local = pp.V2_SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00])
    assert pp.parse(local + b"GET") == (None, 16)


@pytest.mark.parametrize("raw", [b"GET / HTTP/1.1\r\n", b"PROXY TCP4 nope 1.2.3.4 1 2\r\n",
                                 b"PROXY TCP4 1.2.3.4\r\n", b"PROXY " + b"x" * 120,
                                 pp.V2_SIGNATURE + bytes([0x31, 0x11, 0, 12]) + bytes(12)])
def test_bad_proxy_headers_are_errors(raw):
    with pytest.raises(pp.ProxyHeaderError):
        pp.parse(raw)


def test_has_header_decides_only_when_it_can():
    assert pp.has_header(b"PRO") is None
    assert pp.has_header(b"PROXY TCP4") is True
    assert pp.has_header(b"GET / HTTP/1.1") is False
    assert pp.has_header(b"POST / HTTP/1.1") is False


def test_trusted_proxies_pick_the_rightmost_untrusted_hop():
    tp = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    assert tp.client_ip("127.0.0.1", "1.1.1.1, 2.2.2.2, 10.1.1.1") == "2.2.2.2"
    assert tp.client_ip("8.8.8.8", "1.1.1.1") == "8.8.8.8"          # untrusted peer: header ignored
    assert not TrustedProxies([]).trusts("127.0.0.1")


def test_parse_networks_names_the_bad_entry():
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        parse_networks(["10.0.0.0/8", "10.0.0.300"])
