"""Interop with the real Python client, clasp-to 4.2.0 (module ``clasp``).

Client -> us: the client's own public API (set, emit, stream, gesture, timeline,
subscribe, get, bundle, query_signals, the PING auto-reply) runs against a fake
socket; the bytes it sends must decode to the expected dataclasses.  bundle()
and query_signals() send MessagePack maps inside a "binary" frame: those must
decode too (legacy=True).  Where the vectors hold the same call, the bytes are
checked against them first, so the fixture is known to be the real encoder.

Us -> client: every type the client can decode (SET, PUBLISH, WELCOME,
SNAPSHOT, ERROR, RESULT, PING, PONG, and QUERY) encoded by encode_frame is
decoded by the client's own ``_decode`` into what the message says.
"""
from __future__ import annotations

import asyncio

import msgpack
import pytest
from clasp import Clasp
from clasp.client import ClaspError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clasp_fast.protocol import NO_VALUE, decode_frame, decode_payload, encode_frame
from clasp_fast.protocol import messages as M

from .wire_support import MESSAGES, U32, address, client_view, publishes, strict, values, vector

T0 = 1_700_000_000_000_000  # the vectors' pinned client time (µs)
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


class FakeSocket:
    def __init__(self):
        self.sent: list[bytes] = []

    async def send(self, data):
        self.sent.append(bytes(data))


class PinnedClasp(Clasp):
    def time(self) -> int:
        return T0


def new_client(**kw) -> PinnedClasp:
    c = PinnedClasp("ws://127.0.0.1:1", **kw)
    c._ws = FakeSocket()
    return c


def run_now(coro):
    """Runs a client coroutine that never really waits (the fake socket returns at once)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("client coroutine suspended")


def sent_one(c: PinnedClasp) -> bytes:
    assert len(c._ws.sent) == 1, c._ws.sent
    return c._ws.sent.pop()


def hello_dict(c: PinnedClasp) -> dict:
    """The HELLO dict exactly as Clasp.connect() builds it."""
    return {"type": "HELLO", "version": 1, "name": c.name, "features": c.features, "token": c.token}


# ---------------------------------------------------------------------------
# client -> us: the public API, call by call
# ---------------------------------------------------------------------------

MAP = {"x": 0.5, "y": 1, "name": "a"}
CALLS = [
    # (id, vector name or None, call on a fresh client, expected message, legacy?)
    ("hello_default", "py_hello_default",
     lambda c: c._encode(hello_dict(c)), M.Hello("CLASP Python Client", 1, 0xE0, None), False),
    ("set_f64", "py_set_f64", lambda c: run_now(c.set("/lumen/layer/0/opacity", 0.75)),
     M.Set("/lumen/layer/0/opacity", 0.75), False),
    ("set_int", "py_set_int", lambda c: run_now(c.set("/test/int", 42)), M.Set("/test/int", 42), False),
    ("set_int_negative", "py_set_int_negative", lambda c: run_now(c.set("/test/int", -2)),
     M.Set("/test/int", -2), False),
    ("set_string", "py_set_string", lambda c: run_now(c.set("/test/str", "hello")),
     M.Set("/test/str", "hello"), False),
    ("set_bool", "py_set_bool_false", lambda c: run_now(c.set("/test/bool", False)),
     M.Set("/test/bool", False), False),
    ("set_null", "py_set_null", lambda c: run_now(c.set("/test/null", None)),
     M.Set("/test/null", None), False),
    ("set_array", "py_set_array_mixed", lambda c: run_now(c.set("/test/arr", [1, 2.5, "x", True, None])),
     M.Set("/test/arr", [1, 2.5, "x", True, None]), False),
    ("set_map", "py_set_map", lambda c: run_now(c.set("/test/map", dict(MAP))), M.Set("/test/map", MAP), False),
    ("set_bytes", "py_set_bytes", lambda c: run_now(c.set("/test/bytes", b"\xde\xad\xbe\xef")),
     M.Set("/test/bytes", b"\xde\xad\xbe\xef"), False),
    ("set_utf8", "py_set_utf8", lambda c: run_now(c.set("/test/\u00fcn\u00ef", "\u2192ok")),
     M.Set("/test/\u00fcn\u00ef", "\u2192ok"), False),
    ("set_tuple_is_null", "py_set_tuple_becomes_null", lambda c: run_now(c.set("/test/tuple", (1, 2))),
     M.Set("/test/tuple", None), False),
    ("set_ttl_sliding", "py_set_ttl_sliding_30", lambda c: run_now(c.set("/test/ttl", 1.0, ttl=30)),
     M.Set("/test/ttl", 1.0, ttl=M.Ttl(M.TtlMode.SLIDING, 30)), False),
    ("set_ttl_absolute", "py_set_ttl_absolute_3600",
     lambda c: run_now(c.set("/test/ttl", 1.0, ttl=3600, absolute=True)),
     M.Set("/test/ttl", 1.0, ttl=M.Ttl(M.TtlMode.ABSOLUTE, 3600)), False),
    ("set_ttl_never", "py_set_ttl_never_0", lambda c: run_now(c.set("/test/ttl", 1.0, ttl=0)),
     M.Set("/test/ttl", 1.0, ttl=M.Ttl(M.TtlMode.NEVER)), False),
    ("set_ttl_0_absolute", "py_set_ttl_0_absolute",
     lambda c: run_now(c.set("/test/ttl", 1.0, ttl=0, absolute=True)),
     M.Set("/test/ttl", 1.0, ttl=M.Ttl(M.TtlMode.ABSOLUTE, 0)), False),
    ("emit_payload", "py_publish_event_payload", lambda c: run_now(c.emit("/cue/fire", {"cue": "intro"})),
     M.Publish("/cue/fire", M.SignalType.EVENT, {"cue": "intro"}, timestamp=T0), False),
    ("emit_no_payload", "py_publish_event_no_payload", lambda c: run_now(c.emit("/cue/go")),
     M.Publish("/cue/go", M.SignalType.EVENT, NO_VALUE, timestamp=T0), False),
    ("stream", "py_publish_stream", lambda c: run_now(c.stream("/sensor/accel/x", 0.5)),
     M.Publish("/sensor/accel/x", M.SignalType.STREAM, 0.5, timestamp=T0), False),
    ("gesture_move", "py_publish_gesture_move",
     lambda c: run_now(c.gesture("/input/touch/0", 7, "move", {"x": 0.1, "y": 0.2})),
     M.Publish("/input/touch/0", M.SignalType.GESTURE, {"x": 0.1, "y": 0.2}, M.Phase.MOVE, T0, 7), False),
    ("gesture_end", "py_publish_gesture_end_nopayload", lambda c: run_now(c.gesture("/input/touch/0", 7, "end")),
     M.Publish("/input/touch/0", M.SignalType.GESTURE, NO_VALUE, M.Phase.END, T0, 7), False),
    ("timeline", "py_publish_timeline_keyframes_dropped",
     lambda c: run_now(c.timeline("/lumen/layer/0/opacity", [{"time": 0, "value": 0.0}], loop=True,
                                  start_time=T0 + 5_000_000)),
     M.Publish("/lumen/layer/0/opacity", M.SignalType.TIMELINE, NO_VALUE, timestamp=T0 + 5_000_000), False),
    ("ping", "py_ping", lambda c: c._encode({"type": "PING"}), M.Ping(), False),
    ("bundle", "py_bundle_msgpack_no_ts",
     lambda c: run_now(c.bundle([{"set": ["/light/1", 1.0]}, {"emit": ["/cue/go", {"id": 1}]}])),
     M.Bundle([M.Set("/light/1", 1.0), M.Publish("/cue/go", M.SignalType.EVENT, {"id": 1})]), True),
    ("bundle_at", "py_bundle_msgpack_at",
     lambda c: run_now(c.bundle([{"set": ["/light/2", 0]}], at=1_700_000_001_000_000)),
     M.Bundle([M.Set("/light/2", 0)], timestamp=1_700_000_001_000_000), True),
    # no vector for these: the same API, other arguments
    ("hello_token", None,
     lambda c: c._encode(dict(hello_dict(c), name="Py", token="t0k\u00e9n",
                              features=["param", "event", "stream", "gesture", "timeline"])),
     M.Hello("Py", 1, 0xF8, "t0k\u00e9n"), False),
    ("bundle_many", None,
     lambda c: run_now(c.bundle([{"set": ["/a", [1, {"k": b"\x00"}]]}, {"emit": ["/e", None]},
                                 {"set": ["/b", "s"]}, {"emit": ["/f", 2.5]}, {"bogus": 1}],
                                at=5)),
     # emit with no payload inside a bundle is {"payload": None}: a null value
     M.Bundle([M.Set("/a", [1, {"k": b"\x00"}]), M.Publish("/e", M.SignalType.EVENT, None),
               M.Set("/b", "s"), M.Publish("/f", M.SignalType.EVENT, 2.5)], timestamp=5), True),
    ("bundle_empty", None, lambda c: run_now(c.bundle([])), M.Bundle([], None), True),
    ("set_revision_lock", "py_set_revision_lock",
     lambda c: c._encode({"type": "SET", "address": "/lumen/scene/0/layer/3/opacity", "value": 0.5,
                          "revision": 41, "lock": True}),
     M.Set("/lumen/scene/0/layer/3/opacity", 0.5, revision=41, lock=True), False),
]


@pytest.mark.parametrize("make,vec,expected,legacy", [(c[2], c[1], c[3], c[4]) for c in CALLS],
                         ids=[c[0] for c in CALLS])
def test_client_api_frames_decode(make, vec, expected, legacy):
    c = new_client()
    raw = make(c)
    if raw is None:
        raw = sent_one(c)
    if vec is not None:
        assert raw.hex() == vector(vec)["hex"], "the fixture is not the real clasp-to 4.2.0 encoder"
    assert raw[1] == 0x01  # the Python client always sends flags 0x01, MessagePack or not
    f = decode_frame(raw)
    assert f.legacy is legacy and f.qos == 0 and f.timestamp is None
    assert strict(f.message) == strict(expected)
    # and our encoder writes exactly what the client wrote
    assert encode_frame(expected, legacy=legacy) == raw


async def test_client_query_signals_is_a_legacy_query():
    c = new_client()
    with pytest.raises(ClaspError, match="timeout"):
        await c.query_signals("/lumen/**", timeout=0.01)
    raw = sent_one(c)
    assert raw.hex() == vector("py_query_msgpack")["hex"]
    f = decode_frame(raw)
    assert f.legacy is True and f.flags == 0x01
    assert strict(f.message) == strict(M.Query("/lumen/**"))
    assert encode_frame(M.Query("/lumen/**"), legacy=True) == raw
    with pytest.raises(ClaspError, match="timeout"):
        await c.get_signals("/a/\u00e9/*", timeout=0.01)
    assert decode_frame(sent_one(c)).message == M.Query("/a/\u00e9/*")


async def test_client_get():
    c = new_client()
    with pytest.raises(ClaspError, match="timeout"):
        await c.get("/lumen/layer/0/opacity", timeout=0.01)
    raw = sent_one(c)
    assert raw.hex() == vector("py_get")["hex"]
    assert strict(decode_frame(raw).message) == strict(M.Get("/lumen/layer/0/opacity"))


async def test_client_subscribe_and_unsubscribe():
    c = new_client()
    unsub = c.subscribe("/lumen/**", lambda v, a: None)
    c.subscribe("/mixer/*/fader", lambda v, a: None, maxRate=30, epsilon=0.01, history=1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    first, second = c._ws.sent
    assert first.hex() == vector("py_subscribe_plain_id1")["hex"]
    assert second.hex() == vector("py_subscribe_options_id2")["hex"]
    assert strict(decode_frame(first).message) == strict(M.Subscribe(1, "/lumen/**", 0xFF, None))
    assert strict(decode_frame(second).message) == strict(
        M.Subscribe(2, "/mixer/*/fader", 0xFF, M.SubscribeOptions(max_rate=30, epsilon=0.01, history=1)))
    c._ws.sent.clear()
    unsub()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    raw = sent_one(c)
    assert raw.hex() == vector("py_unsubscribe_id1")["hex"]
    assert decode_frame(raw).message == M.Unsubscribe(1)


async def test_client_pong_auto_reply():
    c = new_client()
    c._handle_message({"type": "PING"})
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    raw = sent_one(c)
    assert raw.hex() == vector("py_pong")["hex"]
    assert decode_frame(raw).message == M.Pong()


# ---------------------------------------------------------------------------
# client -> us: random values through the real API
# ---------------------------------------------------------------------------


@SETTINGS
@given(addr=address, value=values)
def test_client_set_any_value(addr, value):
    c = new_client()
    run_now(c.set(addr, value))
    f = decode_frame(sent_one(c))
    assert not f.legacy
    assert strict(f.message) == strict(M.Set(addr, value))


@SETTINGS
@given(addr=address, value=values, gid=U32, phase=st.sampled_from(list(M.Phase)))
def test_client_publish_any_value(addr, value, gid, phase):
    c = new_client()
    run_now(c.stream(addr, value))
    run_now(c.emit(addr, value))
    run_now(c.gesture(addr, gid, phase.name.lower(), value))
    gesture, emit, stream = (decode_frame(c._ws.sent.pop()).message for _ in range(3))
    # the client puts a value only when it is not None (None -> indicator 0)
    v = NO_VALUE if value is None else value
    assert strict(stream) == strict(M.Publish(addr, M.SignalType.STREAM, v, timestamp=T0))
    assert strict(emit) == strict(M.Publish(addr, M.SignalType.EVENT, v, timestamp=T0))
    assert strict(gesture) == strict(M.Publish(addr, M.SignalType.GESTURE, v, phase, T0, gid))


@SETTINGS
@given(items=st.lists(st.tuples(st.booleans(), address, values), max_size=4),
       at=st.none() | st.integers(0, 2**64 - 1))
def test_client_bundle_any_content(items, at):
    c = new_client()
    run_now(c.bundle([{"set": [a, v]} if is_set else {"emit": [a, v]} for is_set, a, v in items], at=at))
    f = decode_frame(sent_one(c))
    assert f.legacy is True
    want = M.Bundle([M.Set(a, v) if is_set else M.Publish(a, M.SignalType.EVENT, v)
                     for is_set, a, v in items], timestamp=at)
    assert strict(f.message) == strict(want)


@SETTINGS
@given(pattern=address, sid=st.integers(1, 2**32 - 1), max_rate=st.none() | U32,
       epsilon=st.none() | st.floats(allow_nan=False), history=st.none() | U32)
def test_client_subscribe_dict_any_options(pattern, sid, max_rate, epsilon, history):
    c = new_client()
    opts = {k: v for k, v in (("maxRate", max_rate), ("epsilon", epsilon), ("history", history))
            if v is not None}
    raw = c._encode({"type": "SUBSCRIBE", "id": sid, "pattern": pattern, "options": opts or None})
    want_opts = M.SubscribeOptions(max_rate, epsilon, history) if opts else None
    assert strict(decode_frame(raw).message) == strict(M.Subscribe(sid, pattern, 0xFF, want_opts))


# ---------------------------------------------------------------------------
# us -> client: what the client's own _decode makes of our frames
# ---------------------------------------------------------------------------

TO_CLIENT = [
    M.Set("/lumen/layer/0/opacity", 0.75, revision=42),
    M.Set("/test/int", 42, revision=3),
    M.Set("/b", b"\x00\xff", revision=1, lock=True, ttl=M.Ttl(M.TtlMode.ABSOLUTE, 0)),
    M.Set("/t", [1, 2.5, {"k": None}], revision=2**53 - 1, unlock=True, ttl=M.Ttl(M.TtlMode.NEVER)),
    M.Set("/s", "x", ttl=M.Ttl(M.TtlMode.SLIDING, 30)),
    M.Publish("/cue/fire", M.SignalType.EVENT, {"cue": "intro"}, timestamp=T0),
    M.Publish("/cue/go", M.SignalType.EVENT),
    M.Publish("/input/touch/0", M.SignalType.GESTURE, {"y": 0.2, "x": 0.1}, M.Phase.CANCEL, T0, 7),
    M.Publish("/s", M.SignalType.STREAM, 0.5, rate=60),
    M.Publish("/p", M.SignalType.PARAM, None),
    M.Welcome("6f1c2b1e-8d3a-4c55-9a0e-2f7d9b4c1a00", "Clasp Router", T0),
    M.Welcome("s", "R", T0, features=0xFF, token="bearer:xyz"),
    M.Snapshot([]),
    M.Snapshot([M.ParamValue("/a", 0.75, 42, "w", T0), M.ParamValue("/b", 7, 1),
                M.ParamValue("/c", {"k": [b"x"]}, 2, timestamp=5)]),
    M.Error(400, "conflict", "/x", 42),
    M.Error(300, "Authentication required"),
    M.Result([]),
    M.Result([M.SignalDef("/lumen/opacity", M.SignalType.PARAM, "f64", "rw"),
              M.SignalDef("/lumen/cue/*", M.SignalType.EVENT)]),
    M.Ping(),
    M.Pong(),
    M.Query("/lumen/**"),
]


@pytest.mark.parametrize("msg", TO_CLIENT, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("qos", [0, 1])
def test_client_decodes_our_frames(msg, qos):
    c = new_client()
    got = c._decode(encode_frame(msg, qos=qos))
    assert strict(got) == strict(client_view(msg))


def test_client_decodes_our_frames_with_a_header_timestamp():
    c = new_client()
    msg = M.Set("/a", 1.5, revision=1)
    assert c._decode(encode_frame(msg, timestamp=T0)) == client_view(msg)


CLIENT_TYPES = {"Set": MESSAGES["Set"],
                "Publish": publishes().filter(lambda p: p.samples is None),
                "Welcome": MESSAGES["Welcome"], "Snapshot": MESSAGES["Snapshot"],
                "Error": MESSAGES["Error"], "Result": MESSAGES["Result"],
                "Ping": MESSAGES["Ping"], "Pong": MESSAGES["Pong"], "Query": MESSAGES["Query"]}


@pytest.mark.parametrize("kind", sorted(CLIENT_TYPES))
def test_client_decodes_any_frame_of_the_types_it_knows(kind):
    @SETTINGS
    @given(msg=CLIENT_TYPES[kind], qos=st.integers(0, 2))
    def run(msg, qos):
        got = new_client()._decode(encode_frame(msg, qos=qos))
        assert strict(got) == strict(client_view(msg))

    run()


def test_client_reads_our_legacy_frames_as_plain_maps():
    c = new_client()
    assert c._decode(encode_frame(M.Query("/q/**"), legacy=True)) == {"type": "QUERY", "pattern": "/q/**"}
    bundle = M.Bundle([M.Set("/a", 1), M.Publish("/e", M.SignalType.EVENT, {"x": 1.5})], timestamp=9)
    assert c._decode(encode_frame(bundle, legacy=True)) == {
        "type": "BUNDLE", "timestamp": 9,
        "messages": [{"type": "SET", "address": "/a", "value": 1},
                     {"type": "PUBLISH", "address": "/e", "signal": "event", "payload": {"x": 1.5}}]}


def test_client_round_trip_through_both_codecs():
    """client encode -> our decode -> our encode -> client decode gives the client's value back."""
    c = new_client()
    value = {"pts": [[0.0, 1.0], {"k": "v"}], "n": -(2**63), "b": b"\x01", "t": True}
    run_now(c.set("/rt", value))
    m = decode_frame(sent_one(c)).message
    back = c._decode(encode_frame(M.Set(m.address, m.value, revision=1), qos=1))
    assert strict(back["value"]) == strict(value) and back["revision"] == 1


def test_msgpack_ints_and_floats_stay_apart():
    """MessagePack keeps int vs float; so does the legacy decoder."""
    payload = msgpack.packb({"type": "SET", "address": "/a", "value": [1, 1.0, True, None]})
    assert strict(decode_payload(payload).value) == strict([1, 1.0, True, None])
