"""Router core: slow consumers (docs/operations.md "Slow subscribers and memory caps").

``buffer_size`` counts bytes of routed output queued for a session beyond what
its transport accepted.  With nobody draining a session, routed SETs that would
pass it wait, one per address (the latest: conflation), and go out as it
drains; events are dropped and counted (one ERROR 503 per notice interval);
direct replies are never dropped, up to ``max_pending_output``.  (In these tests
nothing drains unless the test does it, as if the transport were paused;
``drain`` plays the edge's write + refill.)
"""
from __future__ import annotations


from clasp_fast.protocol import messages as M

from clasp_fast.protocol import decode_frame

from .test_router_support import Net, errors, msgs, only, take_all

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


def drain(s) -> list:
    """What ``s`` receives as its transport drains until nothing waits (the edge's
    write + refill, repeated)."""
    out = msgs(s)
    while True:
        s.refill()
        got = msgs(s)
        if not got:
            return out
        out += got


def event(i):
    return M.Publish("/e", signal=S.EVENT, value=i)


EVENT_SIZE = routed_size(event(0))


def test_sets_to_a_full_connection_conflate_to_the_latest_value():
    net, pub, slow, fast = slow_setup(5)
    fast_seen = []
    for i in range(12):
        net.set(pub, "/v", i)
        fast_seen += [m.value for m in msgs(fast)]   # fast drains every time
    assert fast_seen == list(range(12))
    assert fast.dropped == 0
    assert slow.dropped == 0 and slow.waiting_sets == 1     # one per address, not 7
    got = drain(slow)
    sets = [m for m in got if type(m) is M.Set]
    assert [m.value for m in sets] == [0, 1, 2, 3, 4, 11]
    assert [m.revision for m in sets] == [1, 2, 3, 4, 5, 12]
    assert errors(got) == []                 # nothing was lost: no 503
    assert net.router.get("/v").value == 11  # the publisher was never held back
    assert net.router.conflated == 6


def test_a_slow_subscriber_ends_on_every_address_latest_value_and_revision():
    net, pub, slow, fast = slow_setup(5)
    for i in range(2000):
        net.set(pub, f"/m/{i % 37}", i)
        if i % 100 == 0:
            drain(slow)                      # it reads now and then, far too slowly
    final = {}
    for m in drain(slow):
        if type(m) is M.Set:
            assert m.revision > final.get(m.address, (0, 0))[1], "a SET overtook a newer one"
            final[m.address] = (m.value, m.revision)
    for k in range(37):
        p = net.router.get(f"/m/{k}")
        assert final[f"/m/{k}"] == (p.value, p.revision)


def test_waiting_sets_stay_ordered_per_address_after_draining():
    net, pub, slow, fast = slow_setup(2)
    for i in range(6):
        net.set(pub, "/a", i)
    assert slow.waiting_sets == 1
    first = msgs(slow)                       # written; the transport takes more
    slow.refill()
    net.set(pub, "/a", 6)                    # joins what waits, never overtakes it
    rest = drain(slow)
    values = [m.value for m in first + rest if type(m) is M.Set]
    assert values == [0, 1, 5, 6]


def test_events_overflow_drops_newest_counts_and_one_503_with_the_real_count():
    net, pub, slow, fast = slow_setup(3, EVENT_SIZE)
    fast_seen = 0
    for i in range(10):
        net.send(pub, event(i))
        fast_seen += len(msgs(fast))
    assert slow.dropped == 7
    got = msgs(slow)
    assert [m.value for m in got if type(m) is M.Publish] == [0, 1, 2]
    errs = errors(got)
    assert [e.code for e in errs] == [503]
    assert " 1 event(s) dropped" in errs[0].message         # at the first drop
    assert fast_seen == 10 and fast.dropped == 0


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
    net.set(slow, "/d", 100, qos=1)          # its own echo waits (conflated), its ACK does not
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
    assert codes == [404]
    # relative order of the direct replies is the order of the requests
    direct = [t for t in kinds if t in (M.Pong, M.Snapshot, M.Sync, M.Ack)]
    assert direct == [M.Pong, M.Snapshot, M.Sync, M.Ack]
    slow.refill()
    assert [(m.value, m.revision) for m in msgs(slow)] == [(100, 7)]


def test_only_one_503_per_notice_interval():
    net, pub, slow, fast = slow_setup(2, EVENT_SIZE)
    for i in range(10):
        net.send(pub, event(i))
    first = msgs(slow)
    assert [e.code for e in errors(first)] == [503]
    # drained: room again, then overflow again within the interval: no new 503
    for i in range(10):
        net.send(pub, event(100 + i))
    second = msgs(slow)
    assert errors(second) == []
    assert [m.value for m in second] == [100, 101]
    assert slow.dropped == 16


def test_503_again_after_the_notice_interval_with_the_count_since_the_last():
    net, pub, slow, fast = slow_setup(2, EVENT_SIZE, overflow_notice_interval=0.2)
    for i in range(5):
        net.send(pub, event(i))
    assert [e.code for e in errors(msgs(slow))] == [503]
    for i in range(5):
        net.send(pub, event(i))             # 3 more dropped, within the interval: no 503
    msgs(slow)
    net.advance(0.25)
    for i in range(5):
        net.send(pub, event(i))
    errs = errors(msgs(slow))
    assert [e.code for e in errs] == [503]
    # the 2 dropped after the first notice, the 3 of the second round, and this one
    assert " 6 event(s) dropped" in errs[0].message


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
    big = M.Publish("/b", signal=S.EVENT, value="x" * 200)
    net, pub, slow, fast = slow_setup(1, routed_size(big))
    net.send(pub, event(1))                 # small: fits beside nothing
    net.send(pub, big)                      # would pass buffer_size: dropped
    got = msgs(slow)
    assert [m.address for m in got if type(m) is M.Publish] == ["/e"]
    assert [e.code for e in errors(got)] == [503]
    assert "bytes" in errors(got)[0].message
    assert slow.dropped == 1


def test_an_empty_buffer_takes_one_message_larger_than_buffer_size():
    net, pub, slow, fast = slow_setup(1, 10)
    net.set(pub, "/big", "y" * 500)
    got = msgs(slow)
    assert [m.value for m in got] == ["y" * 500]
    assert slow.dropped == 0


# --- memory caps --------------------------------------------------------------------

BIG = "v" * 60_000


def test_a_get_flood_that_is_never_read_closes_at_max_pending_output():
    net = Net(max_pending_output=300_000)
    w = net.connect("writer")
    net.set(w, "/big", BIG)
    reader = net.connect("reader")
    for _ in range(100):                     # 6 MB of answers asked for, never read
        net.send(reader, M.Get("/big"))
    code, reason = reader.close_request
    assert code == 1008 and "slow consumer" in reason and "max_pending_output" in reason
    held = len(reader.take_output_raw())
    assert held == 0                         # what it held is freed at once
    assert net.router.pending_output() < 300_000
    net.send(reader, M.Get("/big"))          # nothing more is queued for it
    assert reader.take_output_raw() == b""


def test_max_pending_output_bounds_the_sets_waiting_for_distinct_addresses():
    net, pub, slow, fast = slow_setup(1, max_pending_output=65536)
    for i in range(200):                     # 200 distinct addresses of ~1 KB each
        net.set(pub, f"/w/{i}", "x" * 1000)
        msgs(fast)                           # fast reads as it goes
    assert slow.close_request is not None and "max_pending_output" in slow.close_request[1]
    assert fast.close_request is None


def test_output_budget_closes_the_connections_holding_it():
    net = Net(buffer_size=100, output_budget=200_000)
    pub = net.connect("publisher")
    subs = [net.connect(f"s{i}") for i in range(10)]
    for s in subs:
        net.subscribe(s, "/**")
    for i in range(100):
        net.set(pub, f"/o/{i}", "x" * 1000)
        assert net.router.pending_output() <= 200_000
    closed = [s for s in subs if s.close_request is not None]
    assert closed and all("output_budget" in s.close_request[1] for s in closed)
    assert pub.close_request is None


def test_slow_consumer_timeout_closes_a_subscriber_that_cannot_drain():
    net, pub, slow, fast = slow_setup(1, slow_consumer_timeout=5.0)
    for i in range(3):
        net.set(pub, "/t", i)
    assert slow.stalled
    net.advance(4.0)
    assert not slow.stalled_too_long()
    drain(slow)                              # it drained: not stalled any more
    assert not slow.stalled
    for i in range(3):
        net.set(pub, "/t", i)
    net.advance(5.5)
    assert slow.stalled_too_long()
    code, reason = slow.close_request
    assert code == 1008 and "slow consumer" in reason and "slow_consumer_timeout" in reason
    assert fast.close_request is None


def test_a_hello_snapshot_is_written_as_the_connection_drains():
    net = Net()
    w = net.connect("writer")
    for i in range(3000):                    # ~1 MB of state
        net.set(w, f"/s/{i}", "y" * 300)
    late = net.open()
    net.send(late, M.Hello(name="late"))
    first = late.take_output()
    assert 200_000 < sum(map(len, first)) < 400_000     # one step, not the whole state
    net.set(w, "/s/0", "new")                # written meanwhile: goes out again, newer
    seen = {}
    for f in first + take_all(late):
        m = decode_frame(f).message
        if type(m) is M.Snapshot:
            for p in m.params:
                seen[p.address] = p.value
    assert len(seen) == 3000
    assert seen["/s/0"] == "new"


def test_every_snapshot_param_arrives_once_when_nothing_changes():
    net = Net()
    w = net.connect("writer")
    for i in range(3000):
        net.set(w, f"/s/{i}", "y" * 300)
    late = net.open()
    net.send(late, M.Hello(name="late"))
    addrs = [p.address for m in drain(late) if type(m) is M.Snapshot for p in m.params]
    assert sorted(addrs) == sorted(f"/s/{i}" for i in range(3000))
    assert addrs[:3] == ["/s/0", "/s/1", "/s/2"]         # oldest write first


# --- what errors echo, what QoS >= 1 gets ------------------------------------------------

def test_an_error_echoing_a_40_kb_address_fits_a_frame():
    net = Net()
    w = net.connect("writer")
    addr = "/" + "a" * 40_000
    net.set(w, addr, 1, qos=1)
    assert type(only(w)) is M.Ack
    net.set(w, addr, 2, qos=1, revision=0)   # stale: ERROR 409 naming the address
    err = only(w, M.Error)
    assert err.code == 409
    assert len(err.address) <= 1024 and err.address.endswith("...")
    assert len(err.message.encode()) <= 8192


def test_a_publish_with_qos_confirm_is_acked_with_its_address():
    net = Net()
    pub = net.connect("p")
    net.send(pub, M.Publish("/ev/x", signal=S.EVENT, value=1), qos=1)
    ack = only(pub, M.Ack)
    assert ack.address == "/ev/x" and ack.revision is None
    net.send(pub, M.Publish("/ev/x", signal=S.EVENT, value=1))
    assert msgs(pub) == []                   # QoS 0: no ACK
