"""docs/protocol.md "Frames in", max_frame_size: oversize WebSocket messages close with 1009 and are not
applied; oversize CLASP payloads in a legal WebSocket message get ERROR 400; the largest legal
frame with the defaults passes."""
from __future__ import annotations

import struct

import pytest

from clasp_fast.protocol import (Get, Publish, Set, SignalType, Subscribe, decode_frame, encode_frame,
                                 encode_payload)

from tests.support import RouterProcess
from tests.integration.conftest import (connect_hello, error_of, expect_silence, recv_msg,
                                        wait_close_code)

MAX = 1000


def set_frame_of_size(address: str, ws_size: int, *, timestamp: bool = False) -> bytes:
    """A valid SET frame (string value) that is exactly ``ws_size`` bytes long."""
    header = 12 if timestamp else 4
    overhead = 1 + 1 + 2 + len(address) + 2          # type, flags, address, string length
    payload = b"\x21\x08" + struct.pack(">H", len(address)) + address.encode()
    n = ws_size - header - overhead
    payload += struct.pack(">H", n) + b"v" * n
    flags = 0x21 if timestamp else 0x01
    frame = bytes([0x53, flags]) + struct.pack(">H", len(payload))
    if timestamp:
        frame += struct.pack(">Q", 1_700_000_000_000_000)
    frame += payload
    assert len(frame) == ws_size
    return frame


def padded_payload_frame(address: str, payload_size: int, ws_size: int) -> bytes:
    """A frame whose header declares ``payload_size`` and carries exactly that many bytes
    (a SET), ``ws_size`` bytes in all (4-byte header)."""
    assert ws_size == payload_size + 4
    return set_frame_of_size(address, ws_size)


@pytest.fixture(scope="module")
def small_router():
    """One clasp-fast with --max-frame-size 1000 for the whole module."""
    rp = RouterProcess("--max-frame-size", str(MAX)).start()
    yield rp
    code = rp.stop()
    assert code == 0, f"clasp-fast exited with {code} on SIGTERM:\n{rp.log()}"


async def _observer(url, ns):
    """A client subscribed to ``ns/**`` (a namespace nobody has written to yet)."""
    obs, _, _ = await connect_hello(url, "observer")
    await obs.send(encode_frame(Subscribe(1, ns + "/**")))
    await obs.send(encode_frame(Get(ns + "/none")))
    assert error_of(await recv_msg(obs)).code == 404
    return obs


@pytest.mark.parametrize("ws_size", [MAX + 13, MAX + 16, MAX + 500, 65_539])
async def test_oversize_websocket_message_closes_1009_and_is_not_applied(small_router, ws_size):
    ns = f"/big/ws{ws_size}"
    obs = await _observer(small_router.url, ns)
    ws, _, _ = await connect_hello(small_router.url, "too-big")
    try:
        await ws.send(set_frame_of_size(ns + "/oversize", ws_size))
        assert await wait_close_code(ws, 3.0) == 1009
        await expect_silence(obs, 0.3)
        await obs.send(encode_frame(Get(ns + "/oversize")))
        err = error_of(await recv_msg(obs))
        assert err.code == 404 and err.address == ns + "/oversize"
    finally:
        await ws.close()
        await obs.close()


async def test_oversize_fragmented_message_closes_1009_and_is_not_applied(small_router):
    obs = await _observer(small_router.url, "/big/frag")
    ws, _, _ = await connect_hello(small_router.url, "too-big-in-pieces")
    try:
        frame = set_frame_of_size("/big/frag/x", 1400)
        await ws.send([frame[:700], frame[700:]])              # two WebSocket frames, one message
        assert await wait_close_code(ws, 3.0) == 1009
        await expect_silence(obs, 0.3)
    finally:
        await ws.close()
        await obs.close()


@pytest.mark.parametrize("payload_size", [MAX + 1, MAX + 5, MAX + 8])
async def test_oversize_clasp_payload_in_legal_message_gets_error_400(small_router, payload_size):
    ns = f"/big/p{payload_size}"
    obs = await _observer(small_router.url, ns)
    ws, _, _ = await connect_hello(small_router.url, "payload-too-big")
    try:
        frame = padded_payload_frame(ns + "/x", payload_size, payload_size + 4)
        assert len(frame) <= MAX + 12
        await ws.send(frame)
        err = error_of(await recv_msg(ws))
        assert err.code == 400
        assert err.message == f"payload of {payload_size} bytes exceeds max_frame_size ({MAX})", err
        await expect_silence(obs, 0.2)
        # the connection is still usable
        await ws.send(encode_frame(Get(ns + "/x")))
        err = error_of(await recv_msg(ws))
        assert err.code == 404
    finally:
        await ws.close()
        await obs.close()


@pytest.mark.parametrize("timestamp", [False, True], ids=["4-byte header", "12-byte header"])
async def test_payload_of_exactly_max_frame_size_passes(small_router, timestamp):
    ns = f"/big/fits{int(timestamp)}"
    obs = await _observer(small_router.url, ns)
    ws, _, _ = await connect_hello(small_router.url, "just-fits")
    try:
        frame = set_frame_of_size(ns + "/x", MAX + (12 if timestamp else 4), timestamp=timestamp)
        await ws.send(frame)
        seen = await recv_msg(obs)
        assert isinstance(seen, Set) and seen.address == ns + "/x"
        assert seen.value == "v" * (MAX - 1 - 1 - 2 - len(ns + "/x") - 2)
        await expect_silence(ws, 0.1)                    # no ERROR for the sender
    finally:
        await ws.close()
        await obs.close()


async def test_largest_legal_frame_passes_with_defaults(default_router):
    """65,539 bytes: 4-byte header + 65,535-byte PUBLISH payload; delivered intact."""
    address = "/huge/blob"
    fixed = 1 + 1 + 2 + len(address) + 1 + 1 + 2          # type, flags, addr, indicator, code, len
    blob = bytes(range(256)) * 256
    blob = blob[:65535 - fixed]
    frame = encode_frame(Publish(address, signal=SignalType.STREAM, value=blob))
    assert len(frame) == 65539 and len(encode_payload(Publish(address, signal=SignalType.STREAM,
                                                               value=blob))) == 65535
    sub, _, _ = await connect_hello(default_router.url, "big-listener")
    pub, _, _ = await connect_hello(default_router.url, "big-talker")
    try:
        await sub.send(encode_frame(Subscribe(1, "/huge/**")))
        await sub.send(encode_frame(Get("/huge/none")))
        assert error_of(await recv_msg(sub)).code == 404
        await pub.send(frame)
        data = await sub.recv()
        assert len(data) == 65539
        msg = decode_frame(data).message
        assert isinstance(msg, Publish) and msg.address == address and msg.value == blob
        await expect_silence(pub, 0.2)                   # no ERROR for the sender
    finally:
        await sub.close()
        await pub.close()
