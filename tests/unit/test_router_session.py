"""Router core: the session lifecycle (docs/protocol.md "Session", "Frames in").

HELLO -> WELCOME + exactly one (possibly split) SNAPSHOT; anything before
HELLO -> ERROR 400 + close 1008; a second HELLO -> ERROR 400 and the session
stays; undecodable frames after HELLO -> ERROR 400 naming the problem, and the
session keeps working.
"""
from __future__ import annotations

import pytest

from clasp_fast.protocol import decode_frame
from clasp_fast.protocol import messages as M

from .test_router_support import (Net, frame, frames_of, is_uuid4, msgs, only, take_all)


def hello(net, s, name="peer"):
    net.send(s, M.Hello(name=name))
    return frames_of(s)


# --- HELLO / WELCOME ----------------------------------------------------------------


def test_welcome_fields_then_one_empty_snapshot():
    net = Net(name="unit-router")
    s = net.open("10.0.0.1")
    before = net.wall_us()
    frames = hello(net, s, "my client")
    after = net.wall_us()
    assert [type(f.message) for f in frames] == [M.Welcome, M.Snapshot]
    w = frames[0].message
    assert w.version == 1
    assert is_uuid4(w.session), w.session
    assert w.session == s.id
    assert w.name == "unit-router"
    assert before - 1_000_000 <= w.time <= after + 1_000_000   # µs since the epoch, near now
    assert w.time < 2 ** 53
    assert w.token is None
    assert frames[1].message.params == []
    assert s.close_request is None
    assert s.welcomed
    assert net.router.sessions == {s.id: s}


def test_welcome_bytes_carry_token_field_and_version_1_flags():
    net = Net()
    s = net.open()
    net.send(s, M.Hello(name="x"))
    raw = s.take_output()
    assert len(raw) == 2
    welcome = raw[0]
    assert welcome[0] == 0x53
    assert welcome[1] & 0x07 == 1           # binary v3 encoding bits
    assert welcome[4] == 0x02               # WELCOME
    assert welcome[5] == 1                  # version
    assert welcome[-2:] == b"\x00\x00"      # mandatory (empty) token field
    # session text is 36 bytes (UUID) right after the u64 time
    assert welcome[4 + 11:4 + 13] == (36).to_bytes(2, "big")
    assert raw[1] == bytes.fromhex("53010003230000")   # empty SNAPSHOT


def test_session_ids_are_distinct():
    net = Net()
    ids = set()
    for _ in range(20):
        s = net.open()
        ids.add(hello(net, s)[0].message.session)
    assert len(ids) == 20


def test_welcome_snapshot_has_existing_state():
    net = Net()
    a = net.connect()
    net.set(a, "/mix/1/gain", 0.5)
    net.set(a, "/mix/2/gain", 7)
    net.set(a, "/mix/2/gain", 8)
    net.set(a, "/name", "desk")
    a.take_output()
    b = net.open()
    frames = hello(net, b)
    assert [type(f.message) for f in frames] == [M.Welcome, M.Snapshot]
    params = {p.address: p for p in frames[1].message.params}
    assert set(params) == {"/mix/1/gain", "/mix/2/gain", "/name"}
    assert params["/mix/1/gain"].value == 0.5 and type(params["/mix/1/gain"].value) is float
    assert params["/mix/2/gain"].value == 8 and type(params["/mix/2/gain"].value) is int
    assert params["/mix/2/gain"].revision == 2
    assert params["/mix/1/gain"].revision == 1
    assert params["/name"].value == "desk"
    for p in params.values():
        assert p.writer == a.id
        assert abs(p.timestamp - net.wall_us()) < 10_000_000


def test_large_state_snapshot_is_split_below_64k():
    net = Net()
    a = net.connect()
    value = "v" * 100
    n = 3000
    for i in range(n):
        net.set(a, f"/big/p{i:05d}", value)
    a.take_output()
    b = net.open()
    net.send(b, M.Hello(name="late"))
    raw = take_all(b)
    decoded = [decode_frame(f) for f in raw]
    assert type(decoded[0].message) is M.Welcome
    snaps = decoded[1:]
    assert len(snaps) >= 2, "3,000 x 100-byte params cannot fit one 64 KB SNAPSHOT"
    assert all(type(f.message) is M.Snapshot for f in snaps)
    for f in raw[1:]:
        payload_len = int.from_bytes(f[2:4], "big")
        assert payload_len <= 65535
        assert len(f) == 4 + payload_len
    seen = [p.address for f in snaps for p in f.message.params]
    assert len(seen) == n
    assert set(seen) == {f"/big/p{i:05d}" for i in range(n)}
    assert all(p.value == value and p.revision == 1 for f in snaps for p in f.message.params)
    # nothing else follows: the handshake ends with the snapshot frames
    assert b.take_output() == []


# --- before HELLO -------------------------------------------------------------------


@pytest.mark.parametrize("first", [M.Ping(), M.Set("/a", 1), M.Subscribe(1, "/**"), M.Get("/a"),
                                   M.Publish("/e", value=1)])
def test_anything_before_hello_is_400_then_close_1008(first):
    net = Net()
    s = net.open()
    net.send(s, first)
    got = msgs(s)
    assert len(got) == 1 and type(got[0]) is M.Error
    assert got[0].code == 400
    assert "HELLO" in got[0].message
    assert s.close_request is not None
    code, reason = s.close_request
    assert code == 1008
    assert isinstance(reason, str) and reason
    assert not s.welcomed
    assert net.router.sessions == {}
    assert net.router.param_state("/a") == (0, None)


def test_garbage_before_hello_is_400_then_close_1008():
    net = Net()
    s = net.open()
    net.raw(s, b"\x00\x01\x02\x03\x04")
    err = only(s, M.Error)
    assert err.code == 400
    assert s.close_request is not None and s.close_request[0] == 1008


def test_set_before_hello_not_applied_or_broadcast():
    net = Net()
    watcher = net.connect()
    net.subscribe(watcher, "/**")
    s = net.open()
    net.set(s, "/x", 1)
    assert watcher.take_output() == []
    assert net.router.get("/x") is None


# --- second HELLO -------------------------------------------------------------------


def test_second_hello_is_400_and_session_stays():
    net = Net()
    s = net.open()
    first = hello(net, s)[0].message
    net.send(s, M.Hello(name="again"))
    err = only(s, M.Error)
    assert err.code == 400
    assert s.close_request is None
    assert s.id == first.session
    assert net.router.sessions == {s.id: s}
    # still working
    net.send(s, M.Ping())
    assert type(only(s)) is M.Pong
    net.set(s, "/still/here", 1, qos=1)
    got = msgs(s)
    assert [type(m) for m in got] == [M.Ack]
    assert got[0].revision == 1


# --- decode failures after HELLO --------------------------------------------------------

BAD_FRAMES = {
    "bad magic": (b"\x54\x01\x00\x01\x41", ["magic"]),
    "length mismatch": (b"\x53\x01\x00\x05\x41", ["length"]),
    "truncated field": (frame(b"\x21\x07\x00\x04/a"), ["truncated"]),
    "unknown type": (frame(b"\x77"), ["0x77"]),
    "invalid UTF-8": (frame(b"\x22" + b"\x00\x02\xff\xfe"), ["UTF-8"]),
    "zero-length payload": (b"\x53\x01\x00\x00", ["empty"]),
    "short header": (b"\x53\x01", ["short"]),
    "bad msgpack": (frame(b"\x81\xa4type\xa5BOGUS"), ["BOGUS"]),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_decode_failure_after_hello_is_400_and_session_survives(name):
    data, words = BAD_FRAMES[name]
    net = Net()
    s = net.connect()
    other = net.connect()
    net.subscribe(other, "/**")
    net.set(s, "/keep", 1)
    s.take_output()
    other.take_output()
    net.raw(s, data)
    err = only(s, M.Error)
    assert err.code == 400
    for w in words:
        assert w.lower() in err.message.lower(), err.message
    assert s.close_request is None
    assert other.take_output() == []
    assert net.router.get("/keep").value == 1
    # the session still works
    net.send(s, M.Ping())
    assert type(only(s)) is M.Pong
    net.set(s, "/keep", 2)
    assert [m.value for m in msgs(other)] == [2]


def test_oversized_payload_is_400():
    net = Net(max_frame_size=100)
    s = net.connect()
    net.set(s, "/big", "x" * 200)
    err = only(s, M.Error)
    assert err.code == 400
    assert s.close_request is None
    assert net.router.get("/big") is None


# --- close --------------------------------------------------------------------------


def test_close_removes_session_and_subscriptions_state_stays():
    net = Net()
    a = net.connect()
    b = net.connect()
    net.subscribe(b, "/**")
    net.set(a, "/s", 1)
    b.take_output()
    net.router.close_session(b)
    assert b.id not in net.router.sessions
    net.set(a, "/s", 2)
    assert b.take_output() == []
    assert net.router.get("/s").value == 2
    # a closed session ignores further input
    net.send(b, M.Ping())
    assert b.take_output() == []


def test_message_rate_limit_is_429_once_and_frames_dropped():
    net = Net(max_messages_per_second=5)
    s = net.connect()
    for _ in range(10):
        net.send(s, M.Ping())
    got = msgs(s)
    assert [type(m) for m in got] == [M.Pong] * 5 + [M.Error]
    assert got[-1].code == 429
    assert s.close_request is None
