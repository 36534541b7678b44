"""Router core: BUNDLE (docs/protocol.md BUNDLE row).

All-or-nothing, one ERROR naming the failed address, future timestamps run
then (timestamp = wall-clock µs; the delay runs on the router's clock),
ACK{revision of the last SET} for QoS >= 1, legacy MessagePack bundles alike.
"""
from __future__ import annotations

import pytest

from clasp_fast.protocol import messages as M

from .test_router_support import Net, msgs, only

S = M.SignalType


def setup(legacy=False):
    net = Net()
    w = net.connect("writer")
    r = net.connect("reader")
    net.subscribe(w, "/**")
    net.subscribe(r, "/**")
    return net, w, r


def bundle(net, s, messages, qos=0, timestamp=None, legacy=False):
    net.send(s, M.Bundle(messages=messages, timestamp=timestamp), qos=qos, legacy=legacy)


LEGACY = pytest.mark.parametrize("legacy", [False, True], ids=["binary", "msgpack"])


@LEGACY
def test_bundle_applies_each_message_individually(legacy):
    net, w, r = setup()
    net.set(w, "/b/a", 0)
    net.set(w, "/b/a", 1)
    w.take_output()
    r.take_output()
    bundle(net, w, [M.Set("/b/a", 2.5), M.Set("/b/c", "x"),
                    M.Publish("/b/ev", signal=S.EVENT, value=5)], qos=2, legacy=legacy)
    got_r = msgs(r)
    assert [(type(m), m.address) for m in got_r] == [(M.Set, "/b/a"), (M.Set, "/b/c"),
                                                     (M.Publish, "/b/ev")]
    assert (got_r[0].value, got_r[0].revision) == (2.5, 3)
    assert (got_r[1].value, got_r[1].revision) == ("x", 1)
    assert got_r[2].value == 5
    got_w = msgs(w)
    # SET echoes to the writer, PUBLISH does not; then ACK{revision of the last SET}
    assert [type(m) for m in got_w] == [M.Set, M.Set, M.Ack]
    assert got_w[2].revision == 1
    assert net.router.get("/b/a").value == 2.5
    assert net.router.get("/b/c").value == "x"


@LEGACY
def test_bundle_ack_revision_is_last_set(legacy):
    net, w, r = setup()
    net.set(w, "/x", 1)
    net.set(w, "/x", 2)
    w.take_output()
    bundle(net, w, [M.Set("/y", 1), M.Set("/x", 3), M.Publish("/e", signal=S.EVENT)],
           qos=1, legacy=legacy)
    got = msgs(w)
    assert type(got[-1]) is M.Ack
    assert got[-1].revision == 3


@LEGACY
def test_bundle_no_ack_at_qos0(legacy):
    net, w, r = setup()
    bundle(net, w, [M.Set("/x", 1)], qos=0, legacy=legacy)
    assert [type(m) for m in msgs(w)] == [M.Set]
    assert [type(m) for m in msgs(r)] == [M.Set]


@LEGACY
def test_bundle_stale_revision_applies_nothing(legacy):
    net, w, r = setup()
    net.set(w, "/ok", 1)
    net.set(w, "/stale", 1)
    net.set(w, "/stale", 2)
    w.take_output()
    r.take_output()
    bundle(net, w, [M.Set("/ok", 10), M.Publish("/ev", signal=S.EVENT, value=1),
                    M.Set("/stale", 99, revision=1), M.Set("/new", 1)], qos=1, legacy=legacy)
    got = msgs(w)
    assert len(got) == 1 and type(got[0]) is M.Error
    assert got[0].code == 409
    assert got[0].address == "/stale"
    assert r.take_output() == []
    assert net.router.get("/ok").value == 1
    assert net.router.get("/stale").value == 2
    assert net.router.get("/new") is None
    assert net.router.param_state("/ok") == (1, None)


@LEGACY
def test_bundle_locked_address_applies_nothing(legacy):
    net, w, r = setup()
    holder = net.connect("holder")
    net.set(holder, "/locked", "mine", lock=True)
    net.set(w, "/free", 1)
    w.take_output()
    r.take_output()
    bundle(net, w, [M.Set("/free", 2), M.Set("/locked", "yours")], qos=1, legacy=legacy)
    got = msgs(w)
    assert len(got) == 1 and type(got[0]) is M.Error
    assert got[0].code == 423 and got[0].address == "/locked"
    assert r.take_output() == []
    assert net.router.get("/free").value == 1
    assert net.router.get("/locked").value == "mine"


def test_bundle_revisions_checked_against_its_own_effect():
    net, w, r = setup()
    net.set(w, "/seq", 0)
    w.take_output()
    r.take_output()
    bundle(net, w, [M.Set("/seq", 1, revision=1), M.Set("/seq", 2, revision=2)], qos=1)
    got = msgs(w)
    assert [type(m) for m in got] == [M.Set, M.Set, M.Ack]
    assert got[-1].revision == 3
    # the second expects a revision the first one has already moved past: all rejected
    bundle(net, w, [M.Set("/seq", 5, revision=3), M.Set("/seq", 6, revision=3)], qos=1)
    err = only(w, M.Error)
    assert err.code == 409 and err.address == "/seq"
    assert net.router.param_state("/seq") == (3, None)


def test_bundle_lock_then_write_inside_the_bundle():
    net, w, r = setup()
    bundle(net, w, [M.Set("/l", 1, lock=True), M.Set("/l", 2)], qos=1)
    assert [type(m) for m in msgs(w)] == [M.Set, M.Set, M.Ack]
    assert net.router.param_state("/l") == (2, w.id)


def test_bundle_invalid_address_applies_nothing():
    net, w, r = setup()
    bundle(net, w, [M.Set("/fine", 1), M.Set("bad", 2)], qos=1)
    err = only(w, M.Error)
    assert err.code == 202 and err.address == "bad"
    assert r.take_output() == []
    assert net.router.get("/fine") is None


@LEGACY
def test_bundle_future_timestamp_executes_then(legacy):
    net, w, r = setup()
    ts = net.wall_us() + 500_000
    bundle(net, w, [M.Set("/sched", 1), M.Publish("/sched/ev", signal=S.EVENT, value=2)],
           qos=1, timestamp=ts, legacy=legacy)
    assert w.take_output() == []
    assert r.take_output() == []
    assert net.router.get("/sched") is None
    deadline = net.router.next_deadline()
    assert deadline is not None and abs(deadline - (net.now + 0.5)) < 0.05
    net.advance(0.4)
    assert r.take_output() == []
    net.advance(0.15)
    assert [type(m) for m in msgs(r)] == [M.Set, M.Publish]
    assert [type(m) for m in msgs(w)] == [M.Set, M.Ack]
    assert net.router.get("/sched").value == 1


def test_scheduled_bundle_is_checked_when_it_runs():
    net, w, r = setup()
    net.set(w, "/x", 0)
    w.take_output()
    r.take_output()
    bundle(net, w, [M.Set("/x", 1, revision=1), M.Set("/y", 1)], qos=1,
           timestamp=net.wall_us() + 200_000)
    net.set(w, "/x", 5)                   # revision 2 before the bundle runs
    w.take_output()
    r.take_output()
    net.advance(0.3)
    err = only(w, M.Error)
    assert err.code == 409 and err.address == "/x"
    assert r.take_output() == []
    assert net.router.get("/x").value == 5
    assert net.router.get("/y") is None


@LEGACY
@pytest.mark.parametrize("ts", ["past", "absent", "zero"])
def test_bundle_past_or_absent_timestamp_runs_now(legacy, ts):
    net, w, r = setup()
    timestamp = {"past": net.wall_us() - 5_000_000, "absent": None, "zero": 0}[ts]
    bundle(net, w, [M.Set("/now", 1)], qos=1, timestamp=timestamp, legacy=legacy)
    assert [type(m) for m in msgs(w)] == [M.Set, M.Ack]
    assert net.router.get("/now").value == 1


def test_bundle_set_keeps_int_and_float():
    net, w, r = setup()
    bundle(net, w, [M.Set("/i", 3), M.Set("/f", 3.0)])
    got = msgs(r)
    assert [(m.value, type(m.value)) for m in got] == [(3, int), (3.0, float)]


def test_bundle_publish_not_echoed_to_sender():
    net, w, r = setup()
    bundle(net, w, [M.Publish("/p", signal=S.STREAM, value=1.0)], qos=1)
    got = msgs(w)
    assert [type(m) for m in got] == [M.Ack]
    assert [type(m) for m in msgs(r)] == [M.Publish]


# --- the real clients' bundles (tests/data/vectors.json) ----------------------


@pytest.mark.parametrize("name,acked", [("py_bundle_msgpack_no_ts", False),
                                        ("js_bundle_no_ts", True)])
def test_client_bundle_vectors(name, acked):
    from .wire_support import frame_bytes
    net, w, r = setup()
    net.raw(w, frame_bytes(name))
    got_r = msgs(r)
    assert [(type(m), m.address) for m in got_r] == [(M.Set, "/light/1"), (M.Publish, "/cue/go")]
    assert got_r[0].value == 1.0 and type(got_r[0].value) is float and got_r[0].revision == 1
    assert got_r[1].signal == S.EVENT
    assert got_r[1].value == {"id": 1} or got_r[1].value == {"id": 1.0}
    got_w = msgs(w)
    assert [type(m) for m in got_w] == ([M.Set, M.Ack] if acked else [M.Set])
    if acked:
        assert got_w[1].revision == 1


@pytest.mark.parametrize("name", ["py_bundle_msgpack_at", "js_bundle_at"])
def test_client_bundle_vectors_with_past_timestamp_run_now(name):
    from .wire_support import frame_bytes
    net, w, r = setup()
    net.raw(w, frame_bytes(name))        # timestamp 1700000001000000: in the past
    got = msgs(r)
    assert [(type(m), m.address, m.value) for m in got] == [(M.Set, "/light/2", 0)]


def test_scheduled_bundle_of_a_closed_session_leaves_no_lock_behind():
    """On disconnect the session's locks are released; a bundle it scheduled
    must not leave a lock held by a session that no longer exists."""
    net, w, r = setup()
    other = net.connect("other")
    bundle(net, w, [M.Set("/l", 1, lock=True)], timestamp=net.wall_us() + 200_000)
    net.router.close_session(w)
    net.advance(0.3)
    assert net.router.param_state("/l")[1] is None
    net.set(other, "/l", 2, qos=1)
    assert [type(m) for m in msgs(other)] == [M.Ack]
