"""Router core: slow consumers (docs/protocol.md "Slow consumers", ERROR 503).

``buffer_size`` counts bytes of routed output queued for a session beyond what
its transport accepted.  With nobody draining a session, routed messages that
would pass it are dropped and counted, the kept ones keep their order, direct
replies are never dropped, and one ERROR 503 goes out per notice interval.
(In these tests nothing drains, as if the transport were paused.)
"""
from __future__ import annotations


from clasp_fast.protocol import messages as M

from .test_router_support import Net, errors, msgs

S = M.SignalType


def routed_size(msg) -> int:
    """Bytes one routed copy of ``msg`` takes in a receiver's buffer."""
    net = Net()
    pub, sub = net.connect("p"), net.connect("s")
    net.subscribe(sub, "/**")
    net.send(pub, msg)
    return len(sub.take_output_raw())


SET_SIZE = routed_size(M.Set("/a", 0))      # "/a", "/d", "/v": one size


def slow_setup(n=5, size=SET_SIZE, **cfg):
    """A publisher, a slow and a fast subscriber; room for ``n`` routed messages of ``size``."""
    net = Net(buffer_size=n * size, **cfg)
    pub = net.connect("publisher")
    slow = net.connect("slow")
    fast = net.connect("fast")
    net.subscribe(slow, "/**")
    net.subscribe(fast, "/**")
    return net, pub, slow, fast


def test_overflow_drops_newest_keeps_order_and_counts():
    net, pub, slow, fast = slow_setup(5)
    fast_seen = []
    for i in range(12):
        net.set(pub, "/v", i)
        fast_seen += [m.value for m in msgs(fast)]   # fast drains every time
    assert fast_seen == list(range(12))
    assert fast.dropped == 0
    assert slow.dropped == 7
    got = msgs(slow)
    sets = [m for m in got if type(m) is M.Set]
    assert [m.value for m in sets] == [0, 1, 2, 3, 4]
    assert [m.revision for m in sets] == [1, 2, 3, 4, 5]
    errs = errors(got)
    assert len(errs) == 1
    assert errs[0].code == 503
    assert len(got) == 6
    assert type(got[-1]) is M.Error          # after the kept messages
    assert net.router.get("/v").value == 11  # the publisher was never held back


def test_publish_overflow_counts_too():
    net, pub, slow, fast = slow_setup(3, routed_size(M.Publish("/s", signal=S.STREAM, value=0.0)))
    fast_seen = 0
    for i in range(10):
        net.send(pub, M.Publish("/s", signal=S.STREAM, value=float(i)))
        fast_seen += len(msgs(fast))
    assert slow.dropped == 7
    got = msgs(slow)
    assert [m.value for m in got if type(m) is M.Publish] == [0.0, 1.0, 2.0]
    assert [e.code for e in errors(got)] == [503]
    assert fast_seen == 10 and fast.dropped == 0


def test_direct_replies_are_never_dropped():
    net, pub, slow, fast = slow_setup(2)
    net.set(pub, "/d", 0)
    for i in range(1, 6):
        net.set(pub, "/d", i)
    # slow's buffer is full of routed messages; direct replies still queue
    net.send(slow, M.Ping())
    net.send(slow, M.Get("/d"))
    net.send(slow, M.Sync(t1=1))
    net.set(slow, "/d", 100, qos=1)          # its own echo is dropped, its ACK is not
    net.send(slow, M.Get("/missing"))
    got = msgs(slow)
    kinds = [type(m) for m in got]
    assert kinds.count(M.Set) == 2
    assert M.Pong in kinds and M.Snapshot in kinds and M.Sync in kinds and M.Ack in kinds
    ack = next(m for m in got if type(m) is M.Ack)
    assert ack.revision == 7
    snap = next(m for m in got if type(m) is M.Snapshot)
    assert snap.params[0].value == 5
    codes = [e.code for e in errors(got)]
    assert codes.count(503) == 1
    assert codes.count(404) == 1
    # relative order of the direct replies is the order of the requests
    direct = [t for t in kinds if t in (M.Pong, M.Snapshot, M.Sync, M.Ack)]
    assert direct == [M.Pong, M.Snapshot, M.Sync, M.Ack]


def test_only_one_503_per_notice_interval():
    net, pub, slow, fast = slow_setup(2)
    for i in range(10):
        net.set(pub, "/a", i)
    first = msgs(slow)
    assert [e.code for e in errors(first)] == [503]
    # drained: room again, then overflow again within the interval: no new 503
    for i in range(10):
        net.set(pub, "/a", 100 + i)
    second = msgs(slow)
    assert errors(second) == []
    assert [m.value for m in second] == [100, 101]
    assert slow.dropped == 16


def test_503_again_after_the_notice_interval():
    net, pub, slow, fast = slow_setup(2, overflow_notice_interval=0.2)
    for i in range(5):
        net.set(pub, "/a", i)
    assert [e.code for e in errors(msgs(slow))] == [503]
    net.advance(0.25)
    for i in range(5):
        net.set(pub, "/a", i)
    assert [e.code for e in errors(msgs(slow))] == [503]


def test_no_503_without_drops():
    net, pub, slow, fast = slow_setup(5)
    for i in range(5):
        net.set(pub, "/a", i)
    got = msgs(slow)
    assert errors(got) == []
    assert slow.dropped == 0
    assert len(got) == 5


def test_draining_resets_room():
    net, pub, slow, fast = slow_setup(3)
    total = []
    for round_ in range(4):
        for i in range(3):
            net.set(pub, "/a", round_ * 3 + i)
        total += [m.value for m in msgs(slow)]
    assert total == list(range(12))
    assert slow.dropped == 0


def test_welcome_snapshot_not_limited_by_buffer_size():
    net = Net(buffer_size=1)
    w = net.connect()
    for i in range(20):
        net.set(w, f"/p/{i}", i)
    late = net.open()
    net.send(late, M.Hello(name="late"))
    got = msgs(late)
    assert [type(m) for m in got] == [M.Welcome, M.Snapshot]
    assert len(got[1].params) == 20
    assert late.dropped == 0


def test_buffer_size_counts_bytes_not_messages():
    big = "x" * 200
    net, pub, slow, fast = slow_setup(1, routed_size(M.Set("/b", big)))
    net.set(pub, "/s", 1)                   # small: fits beside nothing
    net.set(pub, "/b", big)                 # would pass buffer_size: dropped
    got = msgs(slow)
    assert [m.address for m in got if type(m) is M.Set] == ["/s"]
    assert [e.code for e in errors(got)] == [503]
    assert "bytes" in errors(got)[0].message
    assert slow.dropped == 1


def test_an_empty_buffer_takes_one_message_larger_than_buffer_size():
    net, pub, slow, fast = slow_setup(1, 10)
    net.set(pub, "/big", "y" * 500)
    got = msgs(slow)
    assert [m.value for m in got] == ["y" * 500]
    assert slow.dropped == 0
