"""docs/protocol.md "Frames in": every kind of malformed frame gets ERROR 400 naming the problem,
and the connection it came on keeps working; before HELLO the ERROR is followed by close 1008.

One default clasp-fast process serves the whole module; each case uses fresh connections.
"""
from __future__ import annotations

import re
import struct

import pytest

from clasp_fast.protocol import (Get, Hello, Publish, Set, Snapshot, Subscribe,
                                 encode_frame, encode_payload)

from tests.integration.conftest import (connect_hello, error_of, expect_silence, raw_frame,
                                        recv_msg, wait_close_code, ws_connect)

LONG_ADDR = "/mal/abcdefghijklmnopqrstuvwxyz"          # makes frames well over 16 bytes
LONG_SET = encode_payload(Set(LONG_ADDR, 1.5))        # 1+1+2+30+8 = 42 bytes


def _case(frame, pattern):
    return frame, pattern


# (WebSocket message to send, regex the ERROR 400 message must match)
MALFORMED = {
    "bad magic": _case(b"\x54\x01\x00\x01\x41",
                       r"^bad magic byte 0x54: a CLASP frame starts with 0x53$"),
    "bad magic in a long frame": _case(b"\x00" + raw_frame(LONG_SET)[1:], r"^bad magic byte 0x00"),
    # the header declares more bytes than the message carries
    "length longer than message": _case(
        raw_frame(LONG_SET, declared=len(LONG_SET) + 20),
        rf"^frame length mismatch: the header declares {len(LONG_SET) + 20} payload byte\(s\) "
        rf"but the message carries {len(LONG_SET)}$"),
    # the header declares fewer bytes than the message carries (trailing garbage)
    "length shorter than message": _case(
        raw_frame(LONG_SET, declared=10),
        rf"^frame length mismatch: the header declares 10 payload byte\(s\) "
        rf"but the message carries {len(LONG_SET)}$"),
    "length mismatch, short frame": _case(
        raw_frame(b"\x41", declared=3),
        r"^frame length mismatch: the header declares 3 payload byte\(s\) but the message carries 1$"),
    "header cut short": _case(b"\x53\x01", r"^frame too short: 2 byte\(s\)"),
    "timestamp header cut short": _case(b"\x53\x21\x00\x01\x00\x00",
                                        r"^frame too short: 6 byte\(s\).*12 with the timestamp"),
    "zero-length payload": _case(b"\x53\x01\x00\x00",
                                 r"^empty payload: a CLASP frame carries at least the message type byte$"),
    "unknown message type": _case(raw_frame(b"\x77\x00\x01"), r"^unknown message type 0x77$"),
    "truncated SET value": _case(raw_frame(encode_payload(Set("/mal/a", 1.5))[:-3]),
                                 r"^truncated SET: value needs 8 byte\(s\) at offset 10, only 5 left$"),
    "truncated SET address": _case(raw_frame(encode_payload(Set("/mal/abc", 1))[:6]),
                                   r"^truncated SET: address needs 8 byte\(s\)"),
    "truncated SET revision": _case(raw_frame(encode_payload(Set("/mal/a", 2, revision=5))[:-2]),
                                    r"^truncated SET: revision needs 8 byte\(s\)"),
    "truncated SUBSCRIBE id": _case(raw_frame(encode_payload(Subscribe(7, "/mal/a"))[:3]),
                                    r"^truncated SUBSCRIBE: subscription id needs 4 byte\(s\) at offset 1"),
    "truncated SUBSCRIBE pattern": _case(raw_frame(encode_payload(Subscribe(7, "/mal/abcd"))[:9]),
                                         r"^truncated SUBSCRIBE: .*pattern"),
    "truncated PUBLISH address": _case(raw_frame(encode_payload(Publish("/mal/a", value=3))[:6]),
                                       r"^truncated PUBLISH: address needs 6 byte\(s\) at offset 4, only 2 left$"),
    "truncated PUBLISH value": _case(raw_frame(encode_payload(Publish("/mal/a", value=3))[:-4]),
                                     r"^truncated PUBLISH: .*value"),
    "truncated GET": _case(raw_frame(encode_payload(Get("/mal/abc"))[:5]),
                           r"^truncated GET: address needs 8 byte\(s\) at offset 3, only 2 left$"),
    "invalid UTF-8 in SET address": _case(
        raw_frame(b"\x21\x07\x00\x03/a\xff" + struct.pack(">d", 1.0)),
        r"^invalid UTF-8 in SET address at offset 4$"),
    "invalid UTF-8 in GET address": _case(raw_frame(b"\x22\x00\x03/a\xff"),
                                          r"^invalid UTF-8 in GET .*address"),
    "invalid UTF-8 in SET string value": _case(
        raw_frame(b"\x21\x08\x00\x03/ab\x00\x02\xc3\x28"),
        r"^invalid UTF-8 in SET string value at offset 9$"),
    "invalid UTF-8 in PUBLISH string value": _case(
        raw_frame(b"\x20\x20\x00\x03/ab\x01\x08\x00\x02\xc3\x28"),
        r"^invalid UTF-8 in PUBLISH string value at offset 11$"),
    "unknown value type in SET": _case(
        raw_frame(b"\x21\x0c\x00\x03/ab\x00"),
        r"^unknown value type 0x0c in SET at offset 7 \(value codes are 0x00-0x0b\)$"),
    "unknown value type in PUBLISH": _case(
        raw_frame(b"\x20\x20\x00\x03/ab\x01\x0e\x00"),
        r"^unknown value type 0x0e in PUBLISH at offset 9"),
    "text WebSocket message": _case("hello", r"^text WebSocket message: CLASP frames travel in binary"),
    "empty binary message": _case(b"", r"^(empty WebSocket message|frame too short: 0 byte\(s\))"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
async def test_malformed_frame_gets_error_400_and_connection_keeps_working(default_router, case):
    frame, pattern = MALFORMED[case]
    url = default_router.url
    tag = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    observer, _, _ = await connect_hello(url, "observer")
    ws, welcome, _ = await connect_hello(url, "offender")
    try:
        await observer.send(encode_frame(Subscribe(1, f"/mal/{tag}/**")))
        await ws.send(encode_frame(Subscribe(1, f"/mal/{tag}/**")))
        # the subscriptions are in place once a GET behind them is answered (404: nothing there yet)
        for c in (observer, ws):
            await c.send(encode_frame(Get(f"/mal/{tag}/none")))
            err = error_of(await recv_msg(c))
            assert err.code == 404 and err.address == f"/mal/{tag}/none", err

        await ws.send(frame)
        err = error_of(await recv_msg(ws))
        assert err.code == 400, err
        assert re.search(pattern, err.message), f"ERROR 400 message {err.message!r} !~ {pattern!r}"

        # the same connection works normally afterwards
        await ws.send(encode_frame(Set(f"/mal/{tag}/after", 42)))
        echo = await recv_msg(ws)
        assert isinstance(echo, Set) and echo.address == f"/mal/{tag}/after" and echo.value == 42, echo
        assert echo.revision == 1
        await ws.send(encode_frame(Get(f"/mal/{tag}/after")))
        snap = await recv_msg(ws)
        assert isinstance(snap, Snapshot) and [(p.address, p.value, p.writer) for p in snap.params] == \
            [(f"/mal/{tag}/after", 42, welcome.session)], snap

        # nothing else was affected: the observer saw exactly the one valid SET
        seen = await recv_msg(observer)
        assert isinstance(seen, Set) and (seen.address, seen.value) == (f"/mal/{tag}/after", 42), seen
        await expect_silence(observer, 0.2)
        await expect_silence(ws, 0.1)
    finally:
        await ws.close()
        await observer.close()


PRE_HELLO = {
    "bad magic": (b"\x54\x01\x00\x01\x41", r"^bad magic byte 0x54"),
    "length mismatch": (raw_frame(encode_payload(Hello("x")), declared=40), r"^frame length mismatch"),
    "zero-length payload": (b"\x53\x01\x00\x00", r"^empty payload"),
    "truncated HELLO": (raw_frame(encode_payload(Hello("x"))[:4]), r"^truncated HELLO: name"),
    "unknown message type": (raw_frame(b"\x77"), r"^unknown message type 0x77$"),
    "text message": ("hello", r"^text WebSocket message"),
    "empty binary message": (b"", r"^(empty WebSocket message|frame too short: 0 byte\(s\))"),
    "SET before HELLO": (encode_frame(Set("/mal/early", 1)), r"^expected HELLO as the first message, got SET$"),
}


@pytest.mark.parametrize("case", list(PRE_HELLO), ids=list(PRE_HELLO))
async def test_malformed_before_hello_gets_error_400_then_close_1008(default_router, case):
    frame, pattern = PRE_HELLO[case]
    ws = await ws_connect(default_router.url)
    try:
        await ws.send(frame)
        err = error_of(await recv_msg(ws))
        assert err.code == 400
        assert re.search(pattern, err.message), f"{err.message!r} !~ {pattern!r}"
        assert await wait_close_code(ws, 3.0) == 1008
    finally:
        await ws.close()


async def test_set_before_hello_is_not_applied(default_router):
    ws = await ws_connect(default_router.url)
    await ws.send(encode_frame(Set("/mal/never-applied", 1)))
    assert error_of(await recv_msg(ws)).code == 400
    assert await wait_close_code(ws) == 1008
    other, _, _ = await connect_hello(default_router.url)
    try:
        await other.send(encode_frame(Get("/mal/never-applied")))
        err = error_of(await recv_msg(other))
        assert err.code == 404 and err.address == "/mal/never-applied"
    finally:
        await other.close()
