"""permessage-deflate (issue 11 item 3, RFC 7692) with real processes and real clients.

* the ``websockets`` client's default offer is accepted; data round-trips both ways;
* subscribers with and without deflate get the same content from one broadcast, and every
  deflate subscriber gets the very same compressed frame (compressed once);
* a hand-made client checks the wire: RSV1 on large frames only, ``server_max_window_bits``
  honoured, a fragmented compressed message accepted;
* a "decompression bomb" closes 1009 while the other clients carry on;
* offers the server cannot accept are declined: the connection works uncompressed;
* RSV1 from a client that did not negotiate deflate closes 1002;
* the real JS client under Node (the ``ws`` package offers deflate by default).
"""
from __future__ import annotations

import asyncio
import zlib

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from clasp_fast.protocol import (Get, Hello, Ping, Pong, Set, Snapshot, Subscribe, Welcome, decode_frame,
                                 encode_frame)

from tests.integration.conftest import RawWS, connect_hello, recv_until, wait_close_code
from tests.interop.conftest import node_env, run_node_script  # noqa: F401 (fixture)
from tests.support import router_factory
from tests.ws_framing import close_code_of

T = 5.0
BIG = "compressible value " * 40            # 760 characters: well above the threshold


@pytest.fixture(scope="module")
def router_factory_module():
    with router_factory() as start:
        yield start


@pytest.fixture(scope="module")
def deflate_router(router_factory_module):
    return router_factory_module("--compression", "--max-frame-size", "65536")


def compressed_frame(payload: bytes, wbits: int = 15, fin: bool = True) -> bytes:
    """A masked client frame carrying ``payload`` compressed (RSV1 set)."""
    c = zlib.compressobj(wbits=-wbits)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    return rsv1_frame(Opcode.BINARY, data[:-4], fin)


def rsv1_frame(opcode, data: bytes, fin: bool = True) -> bytes:
    """A masked client frame with RSV1 set (websockets' serializer refuses to set it)."""
    frame = Frame(opcode, data, fin).serialize(mask=True)
    return bytes([frame[0] | 0x40]) + frame[1:]


async def recv_raw(raw: RawWS, timeout: float = 2.0) -> tuple[int, bool, bytes]:
    """(opcode, rsv1, payload) of the next frame, read straight off the socket."""
    async def read(n):
        while len(raw.buf) < n:
            chunk = await raw.reader.read(65536)
            if not chunk:
                raise EOFError("connection closed")
            raw.buf += chunk
        out = bytes(raw.buf[:n])
        del raw.buf[:n]
        return out

    async def frame():
        b0, b1 = await read(2)
        ln = b1 & 0x7F
        if ln == 126:
            ln = int.from_bytes(await read(2), "big")
        elif ln == 127:
            ln = int.from_bytes(await read(8), "big")
        return b0 & 0x0F, bool(b0 & 0x40), await read(ln)
    return await asyncio.wait_for(frame(), timeout)


async def recv_clasp(raw: RawWS, wbits: int = 15, timeout: float = 2.0):
    """(message, rsv1, wire payload) of the next binary message; inflated when RSV1 is set."""
    while True:
        op, rsv1, payload = await recv_raw(raw, timeout)
        if op == 0x2:
            data = zlib.decompressobj(-wbits).decompress(payload + b"\x00\x00\xff\xff") if rsv1 else payload
            return decode_frame(data).message, rsv1, payload
        assert op in (0x9, 0xA), f"unexpected opcode {op}: {payload!r}"


async def raw_hello(raw: RawWS, name: str, wbits: int = 15):
    raw.send_binary(encode_frame(Hello(name=name)))
    welcome, _, _ = await recv_clasp(raw, wbits, 3.0)
    assert isinstance(welcome, Welcome), welcome
    snapshot, _, _ = await recv_clasp(raw, wbits, 3.0)
    assert isinstance(snapshot, Snapshot), snapshot


async def subscribe(ws, pattern: str) -> None:
    """SUBSCRIBE, then PING: the PONG proves the subscription is in place."""
    await ws.send(encode_frame(Subscribe(id=1, pattern=pattern)))
    await ws.send(encode_frame(Ping()))
    await recv_until(ws, lambda m: isinstance(m, Pong), T)


async def raw_subscribe(raw: RawWS, pattern: str) -> None:
    raw.send_binary(encode_frame(Subscribe(id=1, pattern=pattern)))
    raw.send_binary(encode_frame(Ping()))
    while not isinstance((await recv_clasp(raw))[0], Pong):
        pass


def _is_set(address):
    return lambda m: isinstance(m, Set) and m.address == address


async def test_websockets_client_negotiates_deflate_and_data_round_trips(deflate_router):
    url = deflate_router.url
    ws, _, _ = await connect_hello(url, "deflate-ws", compression="deflate")
    plain, _, _ = await connect_hello(url, "plain-ws")
    try:
        assert any(isinstance(e, PerMessageDeflate) for e in ws.protocol.extensions), \
            "the websockets client's default permessage-deflate offer was not accepted"
        assert plain.protocol.extensions == []
        for c in (ws, plain):
            await c.send(encode_frame(Subscribe(id=1, pattern="/rt/**")))
        await ws.send(encode_frame(Set("/rt/big", BIG)))        # compressed by the client
        for c in (ws, plain):
            got, _ = await recv_until(c, _is_set("/rt/big"), T)
            assert got.value == BIG
        await plain.send(encode_frame(Set("/rt/small", 7)))
        for c in (ws, plain):
            got, _ = await recv_until(c, _is_set("/rt/small"), T)
            assert got.value == 7
    finally:
        await ws.close()
        await plain.close()


async def test_fan_out_to_mixed_subscribers_compresses_once(deflate_router):
    port = deflate_router.port
    offer = ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",)
    deflated = [await RawWS.open("127.0.0.1", port, extra=offer) for _ in range(3)]
    plain = await RawWS.open("127.0.0.1", port)
    writer, _, _ = await connect_hello(deflate_router.url, "writer")
    try:
        for raw in deflated:
            assert raw.headers["sec-websocket-extensions"] == "permessage-deflate; server_no_context_takeover"
        assert "sec-websocket-extensions" not in plain.headers
        for i, raw in enumerate(deflated + [plain]):
            await raw_hello(raw, f"mixed{i}")
            await raw_subscribe(raw, "/mixed/**")
        await writer.send(encode_frame(Set("/mixed/v", BIG)))
        await writer.send(encode_frame(Set("/mixed/s", 1)))
        wires = []
        for raw in deflated:
            msg, rsv1, wire = await recv_clasp(raw)
            assert isinstance(msg, Set) and msg.value == BIG and rsv1, (msg, rsv1)
            assert len(wire) < len(BIG) // 4, "a compressible value was sent uncompressed"
            wires.append(wire)
            msg, rsv1, _ = await recv_clasp(raw)
            assert msg.address == "/mixed/s" and msg.value == 1 and not rsv1, "a short frame was compressed"
        assert wires[0] == wires[1] == wires[2], "deflate receivers got different compressed frames"
        msg, rsv1, wire = await recv_clasp(plain)
        assert isinstance(msg, Set) and msg.value == BIG and not rsv1
        assert zlib.decompressobj(-15).decompress(wires[0] + b"\x00\x00\xff\xff") == wire, \
            "the compressed and the plain receivers got different content"
    finally:
        for raw in deflated + [plain]:
            raw.close()
        await writer.close()


async def test_server_max_window_bits_is_honoured(deflate_router):
    raw = await RawWS.open("127.0.0.1", deflate_router.port, extra=(
        'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits="10"; client_no_context_takeover',))
    try:
        assert raw.headers["sec-websocket-extensions"] == (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
            "client_no_context_takeover")
        await raw_hello(raw, "bits10", wbits=10)
        raw.send_binary(encode_frame(Subscribe(id=1, pattern="/bits/**")))
        for i in range(2):       # client_no_context_takeover: each message compressed alone
            raw.writer.write(compressed_frame(encode_frame(Set(f"/bits/{i}", BIG + str(i)), qos=0),
                                              wbits=10))
            msg, rsv1, _ = await recv_clasp(raw, wbits=10)
            assert isinstance(msg, Set) and msg.value == BIG + str(i) and rsv1
    finally:
        raw.close()


async def test_fragmented_compressed_message_is_inflated(deflate_router):
    raw = await RawWS.open("127.0.0.1", deflate_router.port,
                           extra=("Sec-WebSocket-Extensions: permessage-deflate",))
    try:
        await raw_hello(raw, "fragments")
        raw.send_binary(encode_frame(Subscribe(id=1, pattern="/frag/**")))
        c = zlib.compressobj(wbits=-15)
        data = c.compress(encode_frame(Set("/frag/x", BIG))) + c.flush(zlib.Z_SYNC_FLUSH)
        data = data[:-4]
        third = len(data) // 3
        raw.writer.write(rsv1_frame(Opcode.BINARY, data[:third], False))
        raw.writer.write(Frame(Opcode.CONT, data[third:2 * third], False).serialize(mask=True))
        raw.writer.write(Frame(Opcode.CONT, data[2 * third:], True).serialize(mask=True))
        msg, _, _ = await recv_clasp(raw)
        assert isinstance(msg, Set) and msg.address == "/frag/x" and msg.value == BIG
    finally:
        raw.close()


async def test_deflate_bomb_closes_1009_while_others_carry_on(deflate_router):
    bystander, _, _ = await connect_hello(deflate_router.url, "bystander", compression="deflate")
    raw = await RawWS.open("127.0.0.1", deflate_router.port,
                           extra=("Sec-WebSocket-Extensions: permessage-deflate",))
    try:
        await raw_hello(raw, "bomber")
        bomb = compressed_frame(b"\x00" * (64 * 1024 * 1024))    # 64 MiB of zeros in ~64 KB
        assert len(bomb) < 65536 + 12
        raw.writer.write(bomb)
        while True:
            op, _, payload = await recv_raw(raw, T)
            if op == 0x8:
                break
        assert close_code_of(payload) == 1009, payload
        await bystander.send(encode_frame(Subscribe(id=1, pattern="/bomb/**")))
        await bystander.send(encode_frame(Set("/bomb/after", BIG)))
        got, _ = await recv_until(bystander, _is_set("/bomb/after"), T)
        assert got.value == BIG
    finally:
        raw.close()
        await bystander.close()


@pytest.mark.parametrize("offer", [
    "permessage-deflate; server_max_window_bits=8",          # zlib has no 8-bit raw window
    "permessage-deflate; server_max_window_bits",            # needs a value
    "permessage-deflate; client_max_window_bits=16",         # out of range
    "permessage-deflate; mystery=1",                         # unknown parameter
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  # repeated
    'permessage-deflate; server_max_window_bits="10',        # unterminated quote
    "x-webkit-deflate-frame",                                # another extension
])
async def test_unacceptable_offer_is_declined_not_failed(deflate_router, offer):
    raw = await RawWS.open("127.0.0.1", deflate_router.port,
                           extra=(f"Sec-WebSocket-Extensions: {offer}",))
    try:
        assert "sec-websocket-extensions" not in raw.headers, raw.headers
        await raw_hello(raw, "declined")
        raw.send_binary(encode_frame(Get("/declined/x")))
        raw.send_binary(encode_frame(Subscribe(id=1, pattern="/declined/**")))
        raw.send_binary(encode_frame(Set("/declined/v", BIG)))
        msg, rsv1, _ = await recv_clasp(raw)
        while not (isinstance(msg, Set) and msg.address == "/declined/v"):
            msg, rsv1, _ = await recv_clasp(raw)
        assert msg.value == BIG and not rsv1
    finally:
        raw.close()


async def test_second_offer_is_taken_when_the_first_is_declined(deflate_router):
    raw = await RawWS.open("127.0.0.1", deflate_router.port, extra=(
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8, "
        "permessage-deflate; server_max_window_bits=12",))
    try:
        assert raw.headers["sec-websocket-extensions"] == \
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"
        await raw_hello(raw, "second-offer", wbits=12)
    finally:
        raw.close()


@pytest.mark.parametrize("server_args", [(), ("--compression",)], ids=["off", "on-not-offered"])
async def test_rsv1_without_negotiation_closes_1002(router_factory_module, server_args):
    rp = router_factory_module(*server_args)
    raw = await RawWS.open("127.0.0.1", rp.port, extra=(
        ("Sec-WebSocket-Extensions: permessage-deflate",) if not server_args else ()))
    try:
        assert "sec-websocket-extensions" not in raw.headers
        await raw_hello(raw, "rsv1")
        raw.writer.write(compressed_frame(encode_frame(Get("/x"))))
        while True:
            op, _, payload = await recv_raw(raw, T)
            if op == 0x8:
                break
        assert close_code_of(payload) == 1002
    finally:
        raw.close()


async def test_js_client_under_node_negotiates_deflate(deflate_router, node_env):  # noqa: F811
    result = await run_node_script("deflate.js", deflate_router.url, "/js/deflate", BIG,
                                   timeout=15)
    assert "permessage-deflate" in result["extensions"], result
    assert result["echo"] == BIG and result["echoLength"] == 2 * len(BIG), result
