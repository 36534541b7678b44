"""PROXY protocol v1/v2 (issue 11, proxies): the client IP for per-IP limits comes from the
header of a trusted proxy; an untrusted peer sending one, or a trusted proxy omitting it,
is refused with a reason."""
from __future__ import annotations

import asyncio

import pytest

from clasp_fast.server.proxy_protocol import v1_header, v2_header

from tests.integration.conftest import RawWS, open_socket, read_http_response, upgrade_request

HEADERS = {"v1": v1_header, "v2": v2_header}


async def upgrade_via_proxy(port: int, header: bytes, local_host: str = "127.0.0.1"):
    """Sends ``header`` and then an upgrade request; returns (status, body, (reader, writer))."""
    reader, writer = await open_socket("127.0.0.1", port, local_host=local_host)
    request, _ = upgrade_request("127.0.0.1", port)
    writer.write(header + request)
    status, _, _, _ = await read_http_response(reader)
    body = b""
    if status != 101:
        body = await asyncio.wait_for(reader.read(), 3.0)
        writer.close()
    return status, body, (reader, writer)


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_per_ip_limit_counts_the_proxy_protocol_source(router_process, version):
    rp = router_process("--proxy-protocol", "--trusted-proxies", "127.0.0.1",
                        "--max-connections-per-ip", "1")
    make = HEADERS[version]
    held = []
    try:
        status, body, conn = await upgrade_via_proxy(rp.port, make("10.1.0.1", "127.0.0.1", 5000, rp.port))
        assert status == 101, body
        held.append(conn)
        # the same client behind the proxy: over its limit, named by its own address
        status, body, _ = await upgrade_via_proxy(rp.port, make("10.1.0.1", "127.0.0.1", 5001, rp.port))
        assert status == 503 and b"10.1.0.1" in body, body
        # another client behind the same proxy has its own count
        status, body, conn = await upgrade_via_proxy(rp.port, make("10.1.0.2", "127.0.0.1", 5002, rp.port))
        assert status == 101, body
        held.append(conn)
    finally:
        for _, writer in held:
            writer.close()


async def test_proxy_protocol_v2_ipv6_source(router_process):
    rp = router_process("--proxy-protocol", "--trusted-proxies", "127.0.0.1",
                        "--max-connections-per-ip", "1")
    header = v2_header("2001:db8::7", "::1", 4000, rp.port)
    status, body, (_, w1) = await upgrade_via_proxy(rp.port, header)
    assert status == 101, body
    status, body, _ = await upgrade_via_proxy(rp.port, header)
    assert status == 503 and b"2001:db8::7" in body, body
    w1.close()


async def test_trusted_proxy_without_header_is_refused(router_process):
    rp = router_process("--proxy-protocol", "--trusted-proxies", "127.0.0.1")
    status, body, _ = await upgrade_via_proxy(rp.port, b"")
    assert status == 400
    assert b"PROXY" in body and b"proxy_protocol" in body, body
    assert rp.wait_for_log("send-proxy-v2", 3.0), rp.log()


async def test_untrusted_peer_sending_a_header_is_refused(router_process):
    rp = router_process("--proxy-protocol", "--trusted-proxies", "127.0.0.2")
    status, body, _ = await upgrade_via_proxy(rp.port, v1_header("10.9.9.9", "127.0.0.1", 1, 2))
    assert status == 400
    assert b"trusted_proxies" in body, body
    # an untrusted peer without a header is an ordinary direct client
    raw = await RawWS.open("127.0.0.1", rp.port)
    try:
        assert (await raw.hello("direct")).session
    finally:
        raw.close()


async def test_trusted_proxy_health_check_with_local_command(router_process):
    """HAProxy's own checks send a v2 LOCAL header: the probe is answered."""
    rp = router_process("--proxy-protocol", "--trusted-proxies", "127.0.0.1")
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0x00, 0x00])
    reader, writer = await open_socket("127.0.0.1", rp.port)
    try:
        writer.write(local + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, _ = await read_http_response(reader)
        assert status == 200
    finally:
        writer.close()


async def test_forwarded_for_from_an_untrusted_peer_warns_once(router_process):
    rp = router_process()
    for _ in range(3):
        raw = await RawWS.open("127.0.0.1", rp.port, extra=("X-Forwarded-For: 10.2.0.1",))
        raw.close()
    assert rp.wait_for_log("is not in trusted_proxies", 3.0), rp.log()
    assert rp.log().count("is not in trusted_proxies") == 1, rp.log()


async def test_local_address_at_its_per_ip_limit_names_the_fix(router_process):
    rp = router_process("--max-connections-per-ip", "1")
    raw = await RawWS.open("127.0.0.1", rp.port)
    try:
        status, body, _ = await upgrade_via_proxy(rp.port, b"")
        assert status == 503
        assert rp.wait_for_log("add it to server.trusted_proxies", 3.0), rp.log()
        assert "max_connections_per_ip" in rp.log()
    finally:
        raw.close()
