"""docs/protocol.md "Transport": subprotocol negotiation, any path, Firefox's Connection header,
plain HTTP probes on the WebSocket port, and the RFC 6455 checks browsers and proxies hit
(version, Host, Origin, reserved bits, close codes)."""
from __future__ import annotations

import asyncio
import struct

import pytest

from clasp_fast.protocol import Get, Set, Subscribe, encode_frame

from tests.integration.conftest import (RawWS, UpgradeRefused, close_code_of, connect_hello,
                                        open_socket, read_http_response, recv_msg, upgrade_request)
from tests.ws_framing import client_frame


async def test_offered_clasp_subprotocol_is_answered(default_router):
    ws, welcome, _ = await connect_hello(default_router.url)
    try:
        assert ws.subprotocol == "clasp"
        assert ws.response.status_code == 101
        assert ws.response.headers.get_all("Sec-WebSocket-Protocol") == ["clasp"]
    finally:
        await ws.close()


async def test_clasp_among_several_offered_subprotocols(default_router):
    ws, _, _ = await connect_hello(default_router.url, subprotocols=("foo", "clasp"))
    try:
        assert ws.subprotocol == "clasp"
    finally:
        await ws.close()


async def test_no_subprotocol_offered_still_upgrades(default_router):
    ws, welcome, snapshot = await connect_hello(default_router.url, subprotocols=())
    try:
        assert ws.subprotocol is None
        assert ws.response.status_code == 101
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        await ws.send(encode_frame(Subscribe(1, "/nosub/**")))
        await ws.send(encode_frame(Set("/nosub/x", 3)))
        echo = await recv_msg(ws)
        assert isinstance(echo, Set) and (echo.address, echo.value) == ("/nosub/x", 3)
    finally:
        await ws.close()


@pytest.mark.parametrize("path", ["/", "/clasp", "/x/y?z=1", "/a%20b/c/", "/?"])
async def test_any_request_path_works(default_router, path):
    ws, welcome, _ = await connect_hello(default_router.url + path)
    try:
        assert ws.subprotocol == "clasp"
        await ws.send(encode_frame(Get("/path/none")))
        err = await recv_msg(ws)
        assert err.code == 404
    finally:
        await ws.close()


@pytest.mark.parametrize("connection", ["keep-alive, Upgrade", "Upgrade, keep-alive", "upgrade",
                                        "UPGRADE"])
async def test_firefox_style_connection_header_upgrades(default_router, connection):
    raw = await RawWS.open("127.0.0.1", default_router.port, "/ff", connection=connection)
    try:
        # RawWS.open already checked 101 and Sec-WebSocket-Accept; now the subprotocol and a session
        assert raw.headers.get("sec-websocket-protocol") == "clasp"
        welcome = await raw.hello("firefox")
        assert welcome.session
        raw.send_binary(encode_frame(Get("/ff/none")))
        err = await raw.recv_msg()
        assert err.code == 404
    finally:
        raw.close()


async def test_firefox_upgrade_status_line_by_hand(default_router):
    """The raw request exactly as Firefox sends it; the answer must be 101."""
    host, port = "127.0.0.1", default_router.port
    reader, writer = await open_socket(host, port)
    try:
        request, accept = upgrade_request(host, port, "/", connection="keep-alive, Upgrade", extra=(
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Accept: */*", "Accept-Language: en-US,en;q=0.5", "Accept-Encoding: gzip, deflate, br",
            "Sec-WebSocket-Extensions: permessage-deflate", "Origin: http://localhost",
            "Sec-Fetch-Dest: empty", "Sec-Fetch-Mode: websocket", "Sec-Fetch-Site: same-site",
            "Pragma: no-cache", "Cache-Control: no-cache"))
        writer.write(request)
        status, head, headers, _ = await read_http_response(reader)
        assert head.startswith("HTTP/1.1 101"), head
        assert status == 101
        assert headers["sec-websocket-accept"] == accept
        assert headers["upgrade"].lower() == "websocket"
        assert headers["sec-websocket-protocol"] == "clasp"
        assert "sec-websocket-extensions" not in headers      # no compression negotiated
    finally:
        writer.close()


# --- plain HTTP probes ------------------------------------------------------------------

async def http(port: int, method: str, path: str, body: bytes = b"", extra: str = ""):
    reader, writer = await open_socket("127.0.0.1", port)
    try:
        req = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
               + (f"Content-Length: {len(body)}\r\n" if body or method == "POST" else "")
               + "\r\n").encode() + body
        writer.write(req)
        status, head, headers, _ = await read_http_response(reader)
        rest = await asyncio.wait_for(reader.read(), 3.0)      # the server closes after answering
        return status, headers, rest
    finally:
        writer.close()


@pytest.mark.parametrize("path", ["/clasp", "/any/where?x=1", "/healthz", "/readyz"])
async def test_get_probe_answers_200_ok(default_router, path):
    status, headers, body = await http(default_router.port, "GET", path)
    assert status == 200
    assert body == b"ok\n"
    assert headers["content-length"] == "3"


async def test_get_root_probe_answers_200_with_the_inspector(default_router):
    """``/`` is the inspector page (server.ui, on by default): still a 200 for probes
    (tests/integration/test_metrics.py checks it turns back into ``ok`` with --no-ui)."""
    status, headers, body = await http(default_router.port, "GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html") and b"inspector" in body


@pytest.mark.parametrize("path", ["/", "/x/y", "/healthz", "/readyz"])
async def test_head_probe_answers_200_without_body(default_router, path):
    status, headers, body = await http(default_router.port, "HEAD", path)
    assert status == 200
    assert body == b""


@pytest.mark.parametrize("path", ["/", "/healthz"])
async def test_post_is_405(default_router, path):
    status, headers, body = await http(default_router.port, "POST", path, b"x=1")
    assert status == 405
    assert "GET" in headers.get("allow", "")


async def test_probes_do_not_disturb_websocket_clients(default_router):
    ws, _, _ = await connect_hello(default_router.url)
    try:
        results = await asyncio.gather(*(http(default_router.port, "GET", "/healthz") for _ in range(20)))
        assert all(r[0] == 200 and r[2] == b"ok\n" for r in results)
        await ws.send(encode_frame(Get("/probe/none")))
        assert (await recv_msg(ws)).code == 404
    finally:
        await ws.close()


# --- what browsers and proxies hit (RFC 6455 4.1, 4.2.2, 5.2, 7.4) -------------------

async def _raw_request(port: int, request: bytes) -> tuple[int, dict, bytes]:
    reader, writer = await open_socket("127.0.0.1", port)
    try:
        writer.write(request)
        status, _, headers, _ = await read_http_response(reader)
        body = await asyncio.wait_for(reader.read(), 3.0)
        return status, headers, body
    finally:
        writer.close()


async def test_websocket_version_8_gets_426_naming_13(default_router):
    request, _ = upgrade_request("127.0.0.1", default_router.port)
    request = request.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
    status, headers, body = await _raw_request(default_router.port, request)
    assert status == 426
    assert headers["sec-websocket-version"] == "13"
    assert b"13" in body


async def test_upgrade_without_host_gets_400(default_router):
    request, _ = upgrade_request("127.0.0.1", default_router.port)
    lines = [ln for ln in request.split(b"\r\n") if not ln.lower().startswith(b"host:")]
    status, _, body = await _raw_request(default_router.port, b"\r\n".join(lines))
    assert status == 400
    assert b"Host" in body


async def test_origin_allow_list(router_process):
    rp = router_process("--allowed-origins", "https://good.example,http://also.example/")
    with pytest.raises(UpgradeRefused) as info:
        await RawWS.open("127.0.0.1", rp.port, extra=("Origin: https://evil.example",))
    assert info.value.status == 403
    assert b"allowed_origins" in info.value.body
    for extra in (("Origin: https://good.example",), ("Origin: http://ALSO.example",),
                  ()):                                  # no Origin: not a browser, let through
        raw = await RawWS.open("127.0.0.1", rp.port, extra=extra)
        try:
            assert (await raw.hello("origin")).session
        finally:
            raw.close()


async def test_any_origin_by_default(default_router):
    raw = await RawWS.open("127.0.0.1", default_router.port, extra=("Origin: https://any.example",))
    try:
        assert (await raw.hello("any-origin")).session
    finally:
        raw.close()


async def _close_code_after(raw: RawWS) -> int:
    while True:
        op, payload = await raw.recv_frame(3.0)
        assert op != -1, "EOF without a close frame"
        if op == 0x8:
            return close_code_of(payload)


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10], ids=["rsv1", "rsv2", "rsv3"])
async def test_reserved_bits_without_extension_close_1002(default_router, rsv):
    raw = await RawWS.open("127.0.0.1", default_router.port)
    try:
        await raw.hello("rsv")
        frame = client_frame(0x2, encode_frame(Get("/rsv/x")))     # websockets will not set RSV bits
        raw.writer.write(bytes([frame[0] | rsv]) + frame[1:])
        assert await _close_code_after(raw) == 1002
    finally:
        raw.close()


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
async def test_invalid_close_code_is_answered_1002(default_router, code):
    raw = await RawWS.open("127.0.0.1", default_router.port)
    try:
        await raw.hello("close-code")
        raw.send_frame(0x8, struct.pack(">H", code) + b"bye")
        assert await _close_code_after(raw) == 1002
    finally:
        raw.close()


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
async def test_valid_close_code_is_answered_1000(default_router, code):
    raw = await RawWS.open("127.0.0.1", default_router.port)
    try:
        await raw.hello("close-ok")
        raw.send_frame(0x8, struct.pack(">H", code))
        assert await _close_code_after(raw) == 1000
    finally:
        raw.close()


async def test_close_reason_not_utf8_is_a_protocol_error(default_router):
    """picows answers 1007 (invalid data, RFC 6455 7.4.1) before the frame reaches us."""
    raw = await RawWS.open("127.0.0.1", default_router.port)
    try:
        await raw.hello("close-utf8")
        raw.send_frame(0x8, struct.pack(">H", 1000) + b"\xff\xfe")
        assert await _close_code_after(raw) in (1002, 1007)
    finally:
        raw.close()
