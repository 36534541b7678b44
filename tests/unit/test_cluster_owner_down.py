"""Owner down (docs/operations.md "Owner down"): writes held for a restarting owner are
bounded (owner_queue_* settings, ERROR 503 beyond), and a revision the dead owner replicated
to only some workers reaches every worker's subscribers as a SET after its restart."""
from __future__ import annotations

from clasp_fast.protocol import Ack, Error, Publish, Set, SignalType, Subscribe
from clasp_fast.router import RouterConfig

from .test_cluster_core import Bus, sets


def cfg(**kw):
    return RouterConfig(gesture_interval_ms=0, buffer_size=1 << 20, **kw)


def test_writes_beyond_the_per_session_queue_get_503_and_the_held_ones_apply():
    bus = Bus(2, cfg(owner_queue_session_messages=5))
    w = bus.session(1)
    bus.kill(0)
    for i in range(8):
        bus.send(1, w, Set("/q/a", i), qos=1)
    errs = [m for m in bus.out(w) if isinstance(m, Error)]
    assert [e.code for e in errs] == [503] * 3
    assert "owner_queue_session_messages" in errs[0].message
    assert bus.routers[1].dropped_writes == 3
    bus.restart(0)
    acks = [m.revision for m in bus.out(w) if isinstance(m, Ack)]
    assert acks == [1, 2, 3, 4, 5]                  # the five held writes, in order
    assert bus.routers[1].get("/q/a").value == 4


def test_the_per_worker_queue_is_bounded_in_messages_and_bytes():
    bus = Bus(2, cfg(owner_queue_messages=4, owner_queue_bytes=65536))
    a, b = bus.session(1, "a"), bus.session(1, "b")
    bus.kill(0)
    for i in range(3):
        bus.send(1, a, Set(f"/q/{i}", i), qos=1)
    bus.send(1, b, Publish("/q/ev", signal=SignalType.EVENT, value=1), qos=1)
    bus.send(1, b, Set("/q/x", 1), qos=1)           # the fifth: over owner_queue_messages
    err = [m for m in bus.out(b) if isinstance(m, Error)]
    assert [e.code for e in err] == [503] and "owner_queue_messages" in err[0].message
    bus.restart(0)
    bus2 = Bus(2, cfg(owner_queue_bytes=65536))
    c = bus2.session(1)
    bus2.kill(0)
    for i in range(3):
        bus2.send(1, c, Set(f"/big/{i}", "x" * 30_000), qos=1)
    err = [m for m in bus2.out(c) if isinstance(m, Error)]
    assert [e.code for e in err] == [503] and "owner_queue_bytes" in err[0].message


def test_a_revision_replicated_to_some_workers_only_reaches_every_subscriber():
    bus = Bus(3)
    w = bus.session(1, "writer")
    subs = {k: bus.session(k, f"sub{k}") for k in (1, 2)}
    for k, s in subs.items():
        bus.send(k, s, Subscribe(1, "/g/**"))
    bus.pump()
    for s in subs.values():
        bus.out(s)
    bus.send(1, w, Set("/g/a", 1), qos=1)
    bus.pump()
    for k, s in subs.items():
        assert sets(bus.out(s)) == [("/g/a", 1, 1)]
    bus.out(w)
    # the owner decides revision 2, replicates it to worker 1 only, and dies
    bus.send(1, w, Set("/g/a", 2), qos=1)
    bus.flush()
    for src, dst, data in list(bus.queue):
        if dst == 0:
            bus.routers[0].receive_link(bus.links[(0, src)], data)
    bus.queue = []
    bus.flush()
    bus.queue = [q for q in bus.queue if not (q[0] == 0 and q[1] == 2)]    # lost on the way to 2
    bus.pump()
    assert bus.routers[1].param_state("/g/a")[0] == 2
    assert bus.routers[2].param_state("/g/a")[0] == 1
    assert [m.revision for m in bus.out(w) if isinstance(m, Ack)] == [2]   # ACKed: must not be lost
    bus.kill(0)
    bus.restart(0)
    for k, s in subs.items():
        got = sets(bus.out(s))
        assert got == [("/g/a", 2, 2)], (k, got)   # worker 2 gets the gap as a SET
    for r in bus.routers:
        assert r.param_state("/g/a")[0] == 2


def test_a_bus_record_that_fails_is_skipped_and_the_link_keeps_working(caplog):
    import struct
    bus = Bus(2)
    w = bus.session(1)
    R_ANNOUNCE = 11
    bad = b"\xff\xfe"                                # not an ANNOUNCE payload
    record = struct.pack(">I", 1 + len(bad)) + bytes((R_ANNOUNCE,)) + bad
    bus.routers[1].receive_link(bus.links[(1, 0)], record)     # from worker 0: logged, skipped
    assert "failed; skipped" in caplog.text
    bus.send(1, w, Set("/after/bad", 1), qos=1)
    bus.pump()
    assert [m.revision for m in bus.out(w) if isinstance(m, Ack)] == [1]
