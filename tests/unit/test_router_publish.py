"""Router core: PUBLISH (docs/protocol.md "Behaviour by message", "Frames out").

Delivery by signal type and subscription type mask, never back to the sender,
samples sent as an array, narrow codes widened, and the gesture `move`
throttle (driven by the fake clock and ``run_timers``).
"""
from __future__ import annotations

import pytest

from clasp_fast.protocol import NO_VALUE, decode_frame
from clasp_fast.protocol import messages as M

from .test_router_support import (Net, frame, msgs, narrow_publish, only,
                                  samples_publish)

S = M.SignalType
BITS = {S.PARAM: 0x01, S.EVENT: 0x02, S.STREAM: 0x04, S.GESTURE: 0x08, S.TIMELINE: 0x10}


def pub(address, signal=S.EVENT, value=1, **kw):
    return M.Publish(address, signal=signal, value=value, **kw)


# --- type masks ---------------------------------------------------------------------


@pytest.mark.parametrize("signal", list(S))
def test_delivery_by_signal_type_and_mask(signal):
    net = Net(gesture_interval_ms=0)
    sender = net.connect("sender")
    by_mask = {}
    for mask in (0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0xFF, 0x03, 0x1C):
        s = net.connect(f"mask{mask:02x}")
        net.subscribe(s, "/sig/**", types=mask)
        by_mask[mask] = s
    net.send(sender, pub("/sig/x", signal=signal, value=5))
    for mask, s in by_mask.items():
        got = msgs(s)
        admitted = mask in (0x00, 0xFF) or bool(mask & BITS[signal])
        if admitted:
            assert len(got) == 1, (mask, got)
            m = got[0]
            assert type(m) is M.Publish
            assert (m.address, m.signal, m.value) == ("/sig/x", signal, 5)
        else:
            assert got == [], (mask, got)


def test_never_back_to_sender_even_if_subscribed():
    net = Net()
    a = net.connect()
    b = net.connect()
    net.subscribe(a, "/**")
    net.subscribe(a, "/ev", id=2)
    net.subscribe(b, "/**")
    for sig in (S.EVENT, S.STREAM, S.PARAM, S.TIMELINE):
        net.send(a, pub("/ev", signal=sig), qos=1)
    assert [type(m) for m in msgs(a)] == [M.Ack] * 4    # QoS 1: ACKed, never echoed
    assert len(msgs(b)) == 4


def test_publish_is_stateless():
    net = Net()
    a = net.connect()
    net.send(a, pub("/ev", value=3))
    assert net.router.get("/ev") is None
    assert net.router.param_count == 0
    late = net.open()
    net.send(late, M.Hello(name="late"))
    assert msgs(late)[1].params == []


def test_publish_fields_forwarded():
    net = Net()
    a = net.connect()
    b = net.connect()
    net.subscribe(b, "/**")
    net.send(a, M.Publish("/cue/go", signal=S.EVENT, value={"id": 1, "f": 0.5, "n": None},
                          timestamp=123456789, rate=30))
    m = only(b, M.Publish)
    assert m.address == "/cue/go"
    assert m.value == {"id": 1, "f": 0.5, "n": None}
    assert type(m.value["id"]) is int and type(m.value["f"]) is float
    assert m.timestamp == 123456789
    net.send(a, M.Publish("/cue/none", signal=S.EVENT))
    m = only(b, M.Publish)
    assert m.value is NO_VALUE


def test_samples_go_out_as_array_value():
    net = Net()
    a = net.connect()
    b = net.connect()
    net.subscribe(b, "/**")
    net.raw(a, frame(samples_publish("/audio/level", [1.0, 2.5, -0.125])))
    raw = b.take_output()
    assert len(raw) == 1
    f = raw[0]
    # payload: type, flags, str address, value indicator
    ind_pos = 4 + 2 + 2 + len("/audio/level")
    assert f[ind_pos] == 1                      # value indicator 1, never 2
    assert f[ind_pos + 1] == 0x0A               # array
    m = decode_frame(f).message
    assert m.samples is None
    assert m.value == [1.0, 2.5, -0.125]
    assert all(type(x) is float for x in m.value)
    assert m.signal == S.STREAM


def test_empty_samples_go_out_as_empty_array():
    net = Net()
    a = net.connect()
    b = net.connect()
    net.subscribe(b, "/**")
    net.raw(a, frame(samples_publish("/audio/level", [])))
    raw = b.take_output()
    assert len(raw) == 1
    m = decode_frame(raw[0]).message
    assert m.value == [] and m.samples is None


@pytest.mark.parametrize("kind,value,code", [("i8", -3, 0x05), ("i16", 300, 0x05),
                                             ("i32", -70000, 0x05), ("f32", 0.25, 0x07)])
def test_publish_narrow_codes_widen(kind, value, code):
    net = Net()
    a = net.connect()
    b = net.connect()
    net.subscribe(b, "/**")
    net.raw(a, frame(narrow_publish("/n", kind, value)))
    raw = b.take_output()
    assert len(raw) == 1
    ind_pos = 4 + 2 + 2 + len("/n")
    assert raw[0][ind_pos] == 1 and raw[0][ind_pos + 1] == code
    m = decode_frame(raw[0]).message
    assert m.value == value and type(m.value) is type(value)


def test_publish_invalid_address_is_202():
    net = Net()
    a = net.connect()
    b = net.connect()
    net.subscribe(b, "/**")
    for bad in ("nolead", "/a//b", "/a/*"):
        net.send(a, pub(bad))
        err = only(a, M.Error)
        assert err.code == 202 and err.address == bad
    assert b.take_output() == []


def test_publish_no_subscribers_no_output():
    net = Net()
    a = net.connect()
    net.send(a, pub("/nobody"))
    assert a.take_output() == []


# --- gestures -----------------------------------------------------------------------

G = S.GESTURE
P = M.Phase


def gesture(net, s, phase, x, address="/touch", gid=7):
    net.send(s, M.Publish(address, signal=G, phase=phase, id=gid, value={"x": x}))


def seen(s):
    return [(m.phase, m.value["x"]) for m in msgs(s)]


def gnet(interval_ms=16.0):
    net = Net(gesture_interval_ms=interval_ms)
    a = net.connect("sender")
    b = net.connect("receiver")
    net.subscribe(a, "/**")
    net.subscribe(b, "/**")
    return net, a, b


def test_gesture_move_throttle_with_trailing_flush():
    net, a, b = gnet()
    gesture(net, a, P.START, 0)
    gesture(net, a, P.MOVE, 1)
    assert seen(b) == [(P.START, 0), (P.MOVE, 1)]
    net.advance(0.004)
    gesture(net, a, P.MOVE, 2)
    net.advance(0.004)
    gesture(net, a, P.MOVE, 3)
    assert seen(b) == []                      # held: latest wins
    net.advance(0.007)                        # t = 15 ms: not yet
    assert seen(b) == []
    net.advance(0.001)                        # t = 16 ms: the interval ends
    assert seen(b) == [(P.MOVE, 3)]
    net.advance(0.004)
    gesture(net, a, P.MOVE, 4)
    net.advance(0.004)
    gesture(net, a, P.MOVE, 5)
    net.advance(0.002)
    gesture(net, a, P.END, 6)                 # held move flushed just before the end
    assert seen(b) == [(P.MOVE, 5), (P.END, 6)]
    assert a.take_output() == []              # never back to the sender, flushes included
    net.advance(1.0)
    assert seen(b) == []


def test_gesture_cancel_flushes_held_move_first():
    net, a, b = gnet()
    gesture(net, a, P.START, 0)
    gesture(net, a, P.MOVE, 1)
    gesture(net, a, P.MOVE, 2)
    gesture(net, a, P.CANCEL, 3)
    assert seen(b) == [(P.START, 0), (P.MOVE, 1), (P.MOVE, 2), (P.CANCEL, 3)]
    net.advance(1.0)
    assert seen(b) == []
    assert a.take_output() == []


def test_gesture_steady_stream_is_throttled_not_starved():
    net, a, b = gnet()
    gesture(net, a, P.START, 0)
    assert seen(b) == [(P.START, 0)]
    delivered_times = []
    for i in range(1, 41):                     # a move every 4 ms for 160 ms
        gesture(net, a, P.MOVE, i)
        got = seen(b)
        delivered_times += [net.now] * len(got)
        net.advance(0.004)
        got = seen(b)
        delivered_times += [net.now] * len(got)
    moves = len(delivered_times)
    # at most one move per 16 ms window (+1 for the first), and a throttle keeps emitting
    assert 9 <= moves <= 12, moves
    gaps = [b_ - a_ for a_, b_ in zip(delivered_times, delivered_times[1:])]
    assert all(g >= 0.016 - 1e-9 for g in gaps), gaps
    gesture(net, a, P.END, 99)
    tail = seen(b)
    assert tail[-1] == (P.END, 99)
    assert all(ph == P.MOVE for ph, _ in tail[:-1])
    assert a.take_output() == []


def test_gesture_last_move_value_is_delivered():
    net, a, b = gnet()
    gesture(net, a, P.START, 0)
    for i in range(1, 11):
        gesture(net, a, P.MOVE, i)
        net.advance(0.001)
    net.advance(0.05)
    got = seen(b)
    assert got[0] == (P.START, 0)
    assert got[-1] == (P.MOVE, 10)            # the latest move always gets out


def test_gesture_throttle_is_per_address_and_id_and_sender():
    net = Net(gesture_interval_ms=16)
    a = net.connect("a")
    c = net.connect("c")
    b = net.connect("receiver")
    net.subscribe(b, "/**")
    for s in (a, c):
        gesture(net, s, P.START, 0, gid=1)
        gesture(net, s, P.START, 0, gid=2)
        gesture(net, s, P.START, 0, address="/other", gid=1)
    b.take_output()
    for s in (a, c):
        gesture(net, s, P.MOVE, 1, gid=1)
        gesture(net, s, P.MOVE, 1, gid=2)
        gesture(net, s, P.MOVE, 1, address="/other", gid=1)
    # the first move of each (sender, address, id) passes at once
    assert len(msgs(b)) == 6
    for s in (a, c):
        gesture(net, s, P.MOVE, 2, gid=1)
    assert msgs(b) == []
    net.advance(0.016)
    got = msgs(b)
    assert sorted((m.address, m.id, m.value["x"]) for m in got) == [("/touch", 1, 2), ("/touch", 1, 2)]


def test_gesture_interval_zero_disables_throttle():
    net, a, b = gnet(interval_ms=0)
    gesture(net, a, P.START, 0)
    for i in range(1, 6):
        gesture(net, a, P.MOVE, i)
    gesture(net, a, P.END, 9)
    assert seen(b) == [(P.START, 0)] + [(P.MOVE, i) for i in range(1, 6)] + [(P.END, 9)]


def test_gesture_held_move_dropped_quietly_when_sender_closes():
    net, a, b = gnet()
    gesture(net, a, P.START, 0)
    gesture(net, a, P.MOVE, 1)
    gesture(net, a, P.MOVE, 2)
    b.take_output()
    net.router.close_session(a)
    net.advance(0.1)                          # no crash; nothing to a closed sender
    assert a.take_output() == []


def test_gesture_flushed_move_respects_receiver_mask():
    net = Net(gesture_interval_ms=16)
    a = net.connect()
    g = net.connect()
    ev = net.connect()
    net.subscribe(g, "/**", types=0x08)
    net.subscribe(ev, "/**", types=0x02)
    gesture(net, a, P.START, 0)
    gesture(net, a, P.MOVE, 1)
    gesture(net, a, P.MOVE, 2)
    net.advance(0.02)
    assert seen(g) == [(P.START, 0), (P.MOVE, 1), (P.MOVE, 2)]
    assert ev.take_output() == []
