"""The cluster logic, in one process and deterministically.

N real routers, each with its real ``ClusterNode``, joined by an in-memory bus
that moves the bytes a link wrote into the peer router (``receive_link``), the
way the Unix socket would.  No processes and no clocks: the tests decide when
bytes travel, so ordering and restart cases can be forced.
"""
from __future__ import annotations

import pytest

from clasp_fast.cluster.node import ClusterNode
from clasp_fast.protocol import (Ack, Bundle, Error, Get, Hello, Ping, Pong, Publish, Set,
                                 SignalType, Snapshot, Subscribe, Welcome, decode_frame,
                                 encode_frame)
from clasp_fast.router import Router, RouterConfig


class Wire:
    """A fake transport: what the link writes is queued for the other router."""

    def __init__(self, bus: "Bus", src: int, dst: int):
        self.bus, self.src, self.dst = bus, src, dst
        self.closed = False

    def write(self, data: bytes) -> None:
        self.bus.queue.append((self.src, self.dst, data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class Bus:
    def __init__(self, n: int, config: RouterConfig | None = None):
        self.n = n
        # nothing drains a session here until the test reads it: room for every message
        self.config = config or RouterConfig(gesture_interval_ms=0, buffer_size=1 << 20)
        self.queue: list[tuple[int, int, bytes]] = []
        self.routers: list[Router | None] = [None] * n
        self.nodes: list[ClusterNode | None] = [None] * n
        self.links: dict[tuple[int, int], object] = {}
        for i in range(n):
            self.start(i, restarted=False)
        for i in range(n):
            for j in range(i + 1, n):
                self.connect(i, j)
        self.pump()

    def start(self, i: int, restarted: bool) -> Router:
        r = Router(self.config)
        self.routers[i] = r
        self.nodes[i] = ClusterNode(r, i, self.n, "test", listener=None, restarted=restarted)
        return r

    def connect(self, i: int, j: int) -> None:
        """Both ends of the i-j link come up (each side got the other's HELLO)."""
        ri, rj = self.nodes[i], self.nodes[j]
        i_syncing, j_syncing = ri.syncing_now, rj.syncing_now      # what each one's HELLO says
        self.links[(i, j)] = ri.link_up(j, j_syncing, Wire(self, i, j))
        self.links[(j, i)] = rj.link_up(i, i_syncing, Wire(self, j, i))

    def kill(self, i: int) -> None:
        """Worker i dies: its links drop, whatever it had not written is lost."""
        for j in range(self.n):
            if j != i and (j, i) in self.links:
                self.nodes[j].link_down(self.links.pop((j, i)))
                self.links.pop((i, j), None)
        self.queue = [q for q in self.queue if q[0] != i and q[1] != i]
        self.routers[i] = None
        self.nodes[i] = None

    def restart(self, i: int) -> Router:
        """A new process for worker i: it links to everyone, syncs, and serves."""
        r = self.start(i, restarted=True)
        for j in range(self.n):
            if j != i and self.routers[j] is not None:
                self.connect(i, j)
        self.pump()
        self.nodes[i]._finish_sync()
        self.pump()
        return r

    def flush(self) -> None:
        for r in self.routers:
            if r is None:
                continue
            for ep in r.take_dirty():
                if ep.is_peer and ep.io is not None:
                    data = ep.take_output_raw()
                    if data:
                        ep.io.write(data)

    def pump(self, limit: int = 1000) -> None:
        """Moves bytes until nothing is left in flight."""
        for _ in range(limit):
            self.flush()
            if not self.queue:
                return
            src, dst, data = self.queue.pop(0)
            link = self.links.get((dst, src))
            if link is not None and self.routers[dst] is not None:
                self.routers[dst].receive_link(link, data)
        raise AssertionError("the bus did not settle")

    # sessions ---------------------------------------------------------------------------

    def session(self, worker: int, name: str = "c"):
        r = self.routers[worker]
        s = r.open_session("127.0.0.1")
        r.receive(s, encode_frame(Hello(name)))
        self.pump()             # on a non-owner, WELCOME waits for a barrier from the owner
        assert isinstance(decode_frame(s.take_output()[0]).message, Welcome)
        return s

    def send(self, worker: int, s, msg, qos: int = 0) -> None:
        self.routers[worker].receive(s, encode_frame(msg, qos))

    def out(self, s) -> list:
        return [decode_frame(f).message for f in s.take_output()]


def sets(msgs):
    return [(m.address, m.value, m.revision) for m in msgs if isinstance(m, Set)]


def test_a_set_on_any_worker_is_decided_once_and_replicated_everywhere():
    bus = Bus(3)
    writer = bus.session(1)
    subs = [bus.session(w) for w in range(3)]
    for w, s in enumerate(subs):
        bus.send(w, s, Subscribe(1, "/x/**"))
    bus.pump()
    bus.send(1, writer, Set("/x/a", 1.5), qos=1)
    assert bus.out(writer) == []            # decided by the owner, not yet here
    bus.pump()
    for s in subs:
        assert sets(bus.out(s)) == [("/x/a", 1.5, 1)]
    assert [type(m) for m in bus.out(writer)] == [Ack]
    for r in bus.routers:
        assert r.param_state("/x/a") == (1, None)
        assert r.get("/x/a").writer == writer.id


def test_ack_follows_the_echo_on_the_writers_worker():
    bus = Bus(2)
    w = bus.session(1)
    bus.send(1, w, Subscribe(1, "/e/**"))
    bus.send(1, w, Set("/e/x", 7), qos=1)
    bus.pump()
    msgs = bus.out(w)
    assert [type(m) for m in msgs] == [Set, Ack]
    assert (msgs[1].address, msgs[1].revision) == ("/e/x", 1)


def test_one_publishers_set_then_publish_arrive_in_order_everywhere():
    """The case that made the owner sequence PUBLISH too: SET then emit from one client."""
    bus = Bus(3)
    pub = bus.session(2)
    subs = {w: bus.session(w) for w in range(3)}
    for w, s in subs.items():
        bus.send(w, s, Subscribe(1, "/js/**"))
    bus.pump()
    bus.send(2, pub, Set("/js/x", 42))
    bus.send(2, pub, Publish("/js/e", SignalType.EVENT, {"k": 1}))
    bus.send(2, pub, Set("/js/y", 43))
    bus.pump()
    for w, s in subs.items():
        got = [(type(m).__name__, m.address) for m in bus.out(s)]
        assert got == [("Set", "/js/x"), ("Publish", "/js/e"), ("Set", "/js/y")], w
    assert bus.out(pub) == []                # a PUBLISH never comes back to its sender


def test_publish_goes_only_to_workers_with_a_matching_subscription():
    bus = Bus(3)
    pub = bus.session(1)
    sub = bus.session(2)
    bus.send(2, sub, Subscribe(1, "/only/**"))
    bus.pump()
    bus.send(1, pub, Publish("/only/here", SignalType.STREAM, 0.5))
    bus.pump()
    # the owner (worker 0) has no subscriber: it routes but delivers nothing locally
    assert [m.address for m in bus.out(sub)] == ["/only/here"]
    assert bus.routers[1].frames_in == 2     # HELLO + PUBLISH; no copy of it came back


def test_a_read_on_another_worker_sees_what_the_writer_was_told():
    """B's GET on worker 2 comes after A was told its SET took effect: B must see it, even
    though worker 2 has not yet applied the owner's replicate when the GET arrives."""
    bus = Bus(3)
    a, b = bus.session(1), bus.session(2)
    bus.send(1, a, Set("/lin/x", 1), qos=1)
    bus.flush()
    # deliver only what goes to and from worker 1 (the owner's replicate to worker 2 waits)
    while any(q[0] != 0 or q[1] != 2 for q in bus.queue):
        i = next(i for i, q in enumerate(bus.queue) if q[0] != 0 or q[1] != 2)
        src, dst, data = bus.queue.pop(i)
        bus.routers[dst].receive_link(bus.links[(dst, src)], data)
        bus.flush()
    assert [type(m) for m in bus.out(a)] == [Ack]
    assert bus.routers[2].get("/lin/x") is None          # worker 2 lags ...
    bus.send(2, b, Get("/lin/x"))
    bus.pump()
    (snap,) = bus.out(b)                                   # ... but B's GET waited for it
    assert isinstance(snap, Snapshot) and snap.params[0].value == 1


def test_reads_wait_for_the_sessions_own_writes():
    bus = Bus(2)
    s = bus.session(1)
    bus.send(1, s, Set("/ryw/a", 1))
    bus.send(1, s, Get("/ryw/a"))            # held until the SET is decided
    bus.send(1, s, Ping())
    assert bus.out(s) == []
    bus.pump()
    msgs = bus.out(s)
    assert isinstance(msgs[0], Snapshot) and msgs[0].params[0].value == 1
    assert isinstance(msgs[1], Pong)


def test_conditional_sets_and_locks_across_workers():
    bus = Bus(3)
    a, b = bus.session(1), bus.session(2)
    bus.send(1, a, Set("/c/x", 1))
    bus.pump()
    # both expect revision 1; the owner decides in arrival order
    bus.send(1, a, Set("/c/x", 2, revision=1))
    bus.send(2, b, Set("/c/x", 3, revision=1))
    bus.pump()
    errors = [m for m in bus.out(a) + bus.out(b) if isinstance(m, Error)]
    assert [e.code for e in errors] == [409] and errors[0].address == "/c/x"
    assert bus.routers[0].param_state("/c/x")[0] == 2
    # locks: a holds it, b's write and b's unlock are refused
    bus.send(1, a, Set("/c/l", 1, lock=True))
    bus.pump()
    bus.send(2, b, Set("/c/l", 2))
    bus.send(2, b, Set("/c/l", 3, unlock=True))
    bus.pump()
    assert [m.code for m in bus.out(b) if isinstance(m, Error)] == [423, 423]
    assert bus.routers[2].get("/c/l").value == 1
    assert bus.routers[2].param_state("/c/l") == (1, a.id)
    # a leaves: its lock goes with it, everywhere
    bus.routers[1].close_session(a)
    bus.pump()
    for r in bus.routers:
        assert r.param_state("/c/l") == (1, None)
    bus.send(2, b, Set("/c/l", 4), qos=1)
    bus.pump()
    assert [(m.address, m.revision) for m in bus.out(b) if isinstance(m, Ack)] == [("/c/l", 2)]


def test_bundle_from_a_non_owner_is_all_or_nothing():
    bus = Bus(2)
    s, sub = bus.session(1), bus.session(1)
    bus.send(1, sub, Subscribe(1, "/b/**"))
    bus.send(1, s, Set("/b/x", 1))
    bus.pump()
    bus.out(sub)
    bad = Bundle([Set("/b/y", 1), Set("/b/x", 9, revision=7), Publish("/b/e", SignalType.EVENT, 1)])
    bus.send(1, s, bad, qos=2)
    bus.pump()
    errs = [m for m in bus.out(s) if isinstance(m, Error)]
    assert [(e.code, e.address) for e in errs] == [(409, "/b/x")]
    assert bus.out(sub) == []
    assert bus.routers[0].get("/b/y") is None and bus.routers[1].get("/b/y") is None
    good = Bundle([Set("/b/y", 1), Set("/b/x", 9, revision=1), Publish("/b/e", SignalType.EVENT, 1)])
    bus.send(1, s, good, qos=2)
    bus.pump()
    got = [(type(m).__name__, m.address) for m in bus.out(sub)]
    assert got == [("Set", "/b/y"), ("Set", "/b/x"), ("Publish", "/b/e")]
    assert [(m.revision) for m in bus.out(s) if isinstance(m, Ack)] == [2]


def test_a_bundle_of_publishes_from_a_non_owner_reaches_every_worker():
    bus = Bus(3)
    s = bus.session(1)
    subs = {w: bus.session(w) for w in range(3)}
    for w, sub in subs.items():
        bus.send(w, sub, Subscribe(1, "/bp/**"))
    bus.pump()
    bus.send(1, s, Bundle([Publish("/bp/a", SignalType.EVENT, 1), Publish("/bp/b", SignalType.EVENT, 2)]),
             qos=2)
    bus.pump()
    for w, sub in subs.items():
        assert [(m.address, m.value) for m in bus.out(sub)] == [("/bp/a", 1), ("/bp/b", 2)], w
    assert [type(m) for m in bus.out(s)] == [Ack]


def test_a_restarted_owner_keeps_every_decided_write_and_applies_nothing_twice():
    bus = Bus(3)
    w1, w2 = bus.session(1), bus.session(2)
    sub = bus.session(2)
    bus.send(2, sub, Subscribe(1, "/r/**"))
    for i in range(5):
        bus.send(1, w1, Set("/r/a", i), qos=1)
    bus.pump()
    assert [m.revision for m in bus.out(w1) if isinstance(m, Ack)] == [1, 2, 3, 4, 5]
    bus.out(sub)
    # two more requests reach the owner; it decides them but dies before writing a thing
    bus.send(1, w1, Set("/r/a", 5), qos=1)
    bus.send(2, w2, Set("/r/b", "x"), qos=1)
    bus.flush()
    requests = list(bus.queue)
    for src, dst, data in requests:
        if dst == 0:
            bus.routers[0].receive_link(bus.links[(0, src)], data)
    bus.queue = []
    bus.kill(0)
    # meanwhile the survivors keep serving reads and queue writes
    bus.send(1, w1, Set("/r/a", 6), qos=1)
    assert bus.routers[1].param_state("/r/a") == (5, None)
    # the owner comes back, syncs from the peers, gets the queued requests again
    bus.restart(0)
    for r in bus.routers:
        assert r.param_state("/r/a") == (7, None)
        assert r.get("/r/a").value == 6
        assert r.param_state("/r/b")[0] == 1
    assert [m.revision for m in bus.out(w1) if isinstance(m, Ack)] == [6, 7]
    assert [m.revision for m in bus.out(w2) if isinstance(m, Ack)] == [1]
    seen = [(m.address, m.revision) for m in bus.out(sub) if isinstance(m, Set)]
    assert sorted(seen) == [("/r/a", 6), ("/r/a", 7), ("/r/b", 1)]
    assert [r for a, r in seen if a == "/r/a"] == [6, 7]


def test_a_request_decided_just_before_the_owner_died_is_not_applied_twice():
    """The dead owner replicated one decision to worker 2 but not to its origin, worker 1:
    worker 1 sends the request again; the new owner knows (from worker 2) it was decided."""
    bus = Bus(3)
    w1 = bus.session(1)
    watcher = bus.session(2)
    bus.send(2, watcher, Subscribe(1, "/dup/**"))
    bus.send(1, w1, Set("/dup/a", "first"), qos=1)
    bus.pump()
    bus.out(w1), bus.out(watcher)
    bus.send(1, w1, Set("/dup/a", "second"), qos=1)
    bus.flush()
    for src, dst, data in bus.queue:
        bus.routers[dst].receive_link(bus.links[(dst, src)], data)
    bus.queue = []
    bus.flush()             # the owner decided it and wrote the replicates ...
    bus.queue = [q for q in bus.queue if q[1] == 2]     # ... but only worker 2's got out
    bus.pump()
    assert bus.routers[2].param_state("/dup/a")[0] == 2
    assert bus.routers[1].param_state("/dup/a")[0] == 1
    bus.kill(0)
    bus.restart(0)
    for r in bus.routers:
        assert r.param_state("/dup/a")[0] == 2, "applied twice"
        assert r.get("/dup/a").value == "second"
    assert [(m.address, m.revision) for m in bus.out(w1) if isinstance(m, Ack)] == [("/dup/a", 2)]
    assert [(m.address, m.revision) for m in bus.out(watcher) if isinstance(m, Set)] == [("/dup/a", 2)]


def test_a_worker_that_dies_releases_the_locks_of_its_sessions():
    bus = Bus(3)
    a, b = bus.session(2), bus.session(1)
    bus.send(2, a, Set("/d/l", 1, lock=True))
    bus.pump()
    assert bus.routers[1].param_state("/d/l") == (1, a.id)
    bus.kill(2)
    bus.pump()
    bus.send(1, b, Set("/d/l", 2), qos=1)
    bus.pump()
    assert [(m.address, m.revision) for m in bus.out(b) if isinstance(m, Ack)] == [("/d/l", 2)]


def test_a_restarted_non_owner_gets_the_state_before_serving():
    bus = Bus(3)
    s = bus.session(1)
    for i in range(20):
        bus.send(1, s, Set(f"/s/{i}", i))
    bus.pump()
    bus.kill(2)
    r2 = bus.start(2, restarted=True)
    bus.connect(2, 0)
    bus.connect(2, 1)
    bus.pump()
    assert not bus.nodes[2].syncing
    assert r2.param_count == 20
    assert [p.revision for p in r2.snapshot("/s/**")] == [1] * 20
    late = bus.session(2)
    bus.send(2, late, Subscribe(1, "/s/**"))
    bus.pump()
    snap = bus.out(late)
    assert sum(len(m.params) for m in snap if isinstance(m, Snapshot)) == 20


@pytest.mark.parametrize("n", [2, 4])
def test_revisions_have_no_gap_or_repeat_as_seen_by_every_subscriber(n):
    bus = Bus(n)
    writers = [bus.session(i % n) for i in range(6)]
    watchers = [bus.session(w) for w in range(n)]
    for w, s in enumerate(watchers):
        bus.send(w, s, Subscribe(1, "/g/**"))
    bus.pump()
    for k in range(60):
        i = k % len(writers)
        bus.send(i % n, writers[i], Set(f"/g/{k % 5}", k))
        if k % 7 == 0:
            bus.pump()
    bus.pump()
    for s in watchers:
        seen: dict[str, list[int]] = {}
        for address, _, rev in sets(bus.out(s)):
            seen.setdefault(address, []).append(rev)
        assert seen == {f"/g/{a}": list(range(1, 13)) for a in range(5)}


def test_a_restarted_non_owner_numbers_its_requests_afresh_and_they_apply():
    """The owner must forget the dead incarnation's request numbers: the new worker starts
    again from 1, and its first SETs are not 'already applied'."""
    bus = Bus(3)
    w = bus.session(2)
    for i in range(5):
        bus.send(2, w, Set("/again/x", i), qos=1)
    bus.pump()
    assert bus.routers[0].param_state("/again/x")[0] == 5
    bus.kill(2)
    bus.restart(2)
    w2 = bus.session(2)
    bus.send(2, w2, Set("/again/x", "new"), qos=1)
    bus.send(2, w2, Set("/again/y", "new"), qos=1)
    bus.pump()
    assert [(m.address, m.revision) for m in bus.out(w2) if isinstance(m, Ack)] == \
        [("/again/x", 6), ("/again/y", 1)]
    for r in bus.routers:
        assert r.get("/again/x").value == "new" and r.param_state("/again/x")[0] == 6


def test_the_owner_knows_a_subscription_before_it_is_answered():
    """Once a SUBSCRIBE is answered on worker 1, a PUBLISH that worker 2 sends next must
    reach it, even if worker 1's interest record and worker 2's PUBLISH race to the owner:
    the interest travels ahead of the SUBSCRIBE's barrier, on the same FIFO link."""
    bus = Bus(3)
    sub, pub = bus.session(1), bus.session(2)
    bus.send(1, sub, Subscribe(1, "/race/**"), qos=1)
    bus.flush()
    # deliver only worker 1's traffic until the SUBSCRIBE is answered (ACK)
    while not any(isinstance(m, Ack) for m in bus.out(sub)):
        i = next(i for i, q in enumerate(bus.queue) if 2 not in q[:2])
        src, dst, data = bus.queue.pop(i)
        bus.routers[dst].receive_link(bus.links[(dst, src)], data)
        bus.flush()
    bus.send(2, pub, Publish("/race/x", SignalType.EVENT, 1))
    bus.flush()
    # worker 2's PUBLISH overtakes anything worker 1 still has on its way to the owner
    bus.queue.sort(key=lambda q: q[0] != 2)
    bus.pump()
    assert [(m.address, m.value) for m in bus.out(sub)] == [("/race/x", 1)]
    assert bus.routers[1].interest_entries() == [("/race/**", 0xFF)]


def test_a_worker_restarting_after_the_owner_did_gets_an_owner():
    """The owner restarted earlier and has long synced; now worker 2 restarts: it must take
    the owner as its owner (the owner's HELLO no longer says 'syncing') and serve."""
    bus = Bus(3)
    bus.kill(0)
    bus.restart(0)
    bus.kill(2)
    bus.restart(2)
    s = bus.session(2)                  # WELCOME needs the owner's barrier answer
    bus.send(2, s, Set("/late/x", 1), qos=1)
    bus.pump()
    assert [(m.address, m.revision) for m in bus.out(s) if isinstance(m, Ack)] == [("/late/x", 1)]
