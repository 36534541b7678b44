"""docs/protocol.md "Transport": subprotocol negotiation, any path, Firefox's Connection header,
and plain HTTP probes on the WebSocket port."""
from __future__ import annotations

import asyncio

import pytest

from clasp_fast.protocol import Get, Set, Subscribe, encode_frame

from tests.integration.conftest import (RawWS, connect_hello, open_socket, read_http_response,
                                        recv_msg, upgrade_request)


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


@pytest.mark.parametrize("path", ["/", "/clasp", "/any/where?x=1", "/healthz", "/readyz"])
async def test_get_probe_answers_200_ok(default_router, path):
    status, headers, body = await http(default_router.port, "GET", path)
    assert status == 200
    assert body == b"ok\n"
    assert headers["content-length"] == "3"


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
