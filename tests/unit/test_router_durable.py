"""The router core with a journal attached: what it journals, when QoS-commit ACKs go out
(one router, and a cluster over the in-memory bus of test_cluster_core), restore without
locks, and a restarted owner re-broadcasting what its journal has and a replica missed.

The journal here is a recorder of what the router writes to it (the real one is tested in
test_state_journal.py); durability is declared by calling ``journal_durable`` as the
writer thread would."""
from __future__ import annotations

import struct

from clasp_fast.protocol import Ack, Bundle, Set, Subscribe

from tests.unit.test_cluster_core import Bus
from tests.unit.test_state_journal import key_of
from tests.unit.test_router_support import Net, frames_of


class Recorder:
    """Stands where the journal stands: keeps the batches the router writes."""

    def __init__(self):
        self.batches: list[bytes] = []
        self.hurried = 0

    def write(self, data: bytes) -> None:
        self.batches.append(data)

    def is_closing(self) -> bool:
        return False

    def hurry(self) -> None:
        self.hurried += 1

    def records(self) -> list[bytes]:
        return [body for batch in self.batches for body in split(batch)]


def split(batch: bytes) -> list[bytes]:
    """The bodies of a batch of bus records (u32 length, u8 kind, body)."""
    out, pos = [], 0
    while pos < len(batch):
        (n,) = struct.unpack_from(">I", batch, pos)
        out.append(batch[pos + 5:pos + 4 + n])
        pos += 4 + n
    return out


def flush(router) -> None:
    """What the edge does once per tick: hand every endpoint's output to its I/O."""
    for ep in router.take_dirty():
        if ep.is_peer and ep.io is not None:
            data = ep.take_output_raw()
            if data:
                ep.io.write(data)


def acks(s) -> list:
    return [f.message for f in frames_of(s) if isinstance(f.message, Ack)]


def journaled_net():
    net = Net()
    rec = Recorder()
    net.router.attach_journal(rec)
    return net, rec


def test_every_decided_set_is_journaled_as_a_whole_param():
    net, rec = journaled_net()
    s = net.connect()
    net.set(s, "/j/a", 1.5)
    net.set(s, "/j/a", 2.5, qos=1)
    net.set(s, "/j/b", "x", qos=2)
    flush(net.router)
    keys = [key_of(r) for r in rec.records()]
    assert [(a, rev) for a, rev, _ in keys] == [(b"/j/a", 1), (b"/j/a", 2), (b"/j/b", 1)]
    assert net.router.journal_seq == 3


def test_a_rejected_set_is_not_journaled():
    net, rec = journaled_net()
    s = net.connect()
    net.set(s, "/j/a", 1, qos=1)
    net.set(s, "/j/a", 2, qos=1, revision=7)          # stale: ERROR 409
    flush(net.router)
    assert len(rec.records()) == 1


def test_qos_commit_acks_wait_for_the_journal_and_go_out_in_order():
    net, _ = journaled_net()
    s = net.connect()
    net.set(s, "/c/a", 1, qos=2)
    net.set(s, "/c/b", 2, qos=2)
    net.set(s, "/c/c", 3, qos=2)
    assert acks(s) == []
    net.router.journal_durable(2)
    assert [(a.address, a.revision) for a in acks(s)] == [("/c/a", 1), ("/c/b", 1)]
    net.router.journal_durable(3)
    assert [a.address for a in acks(s)] == ["/c/c"]


def test_qos_confirm_acks_at_once_and_qos_fire_never():
    net, _ = journaled_net()
    s = net.connect()
    net.set(s, "/c/a", 1, qos=1)
    net.set(s, "/c/b", 1, qos=0)
    assert [a.address for a in acks(s)] == ["/c/a"]


def test_without_a_journal_qos_commit_acks_after_apply():
    net = Net()
    s = net.connect()
    net.set(s, "/c/a", 1, qos=2)
    assert [a.address for a in acks(s)] == ["/c/a"]


def test_a_qos_commit_bundle_acks_once_its_sets_are_durable():
    net, _ = journaled_net()
    s = net.connect()
    net.send(s, Bundle(messages=[Set("/b/1", 1), Set("/b/2", 2)]), qos=2)
    assert acks(s) == []
    net.router.journal_durable(1)
    assert acks(s) == []
    net.router.journal_durable(2)
    assert len(acks(s)) == 1


def test_restore_brings_values_revisions_and_deadlines_but_not_locks():
    net, rec = journaled_net()
    s = net.connect("holder")
    net.set(s, "/r/locked", 1, lock=True)
    net.set(s, "/r/locked", 2)
    flush(net.router)
    fresh = Net()
    for body in rec.records():
        fresh.router.restore_param(body)
    assert fresh.router.param_state("/r/locked") == (2, None)
    assert fresh.router.get("/r/locked").value == 2


def test_on_another_worker_a_confirm_ack_does_not_wait_behind_a_commit_ack():
    """ACKs of one session may come out of order across QoS levels (docs/persistence.md)."""
    bus = Bus(2)
    bus.routers[0].attach_journal(Recorder())
    w = bus.session(1)
    bus.send(1, w, Set("/k/a", 1), qos=2)
    bus.send(1, w, Set("/k/b", 1), qos=1)
    bus.pump()
    assert [a.address for a in bus.out(w) if isinstance(a, Ack)] == ["/k/b"]
    bus.routers[0].journal_durable(2)
    bus.pump()
    assert [a.address for a in bus.out(w) if isinstance(a, Ack)] == ["/k/a"]


def test_the_owners_durable_notice_releases_remote_commit_acks():
    bus = Bus(3)
    bus.routers[0].attach_journal(Recorder())
    w1, w2 = bus.session(1), bus.session(2)
    bus.send(1, w1, Set("/k/a", 1), qos=2)
    bus.send(2, w2, Set("/k/b", 1), qos=2)
    bus.pump()
    assert bus.out(w1) == [] and bus.out(w2) == []
    bus.routers[0].journal_durable(bus.routers[0].journal_seq)
    bus.pump()
    assert [(m.address, m.revision) for m in bus.out(w1) if isinstance(m, Ack)] == [("/k/a", 1)]
    assert [(m.address, m.revision) for m in bus.out(w2) if isinstance(m, Ack)] == [("/k/b", 1)]


def test_a_restarted_owner_rebroadcasts_what_its_journal_has_and_a_replica_missed():
    """The owner decided /m/x rev 2 and journaled it, replicated it to worker 1 but died
    before worker 2 got it: worker 2's subscriber receives it as a SET after the restart."""
    bus = Bus(3)
    rec = Recorder()
    bus.routers[0].attach_journal(rec)
    w = bus.session(0)
    sub = bus.session(2)
    bus.send(2, sub, Subscribe(1, "/m/**"))
    bus.pump()
    bus.out(sub)
    bus.send(0, w, Set("/m/x", 1), qos=1)
    bus.pump()
    bus.send(0, w, Set("/m/x", 2), qos=1)
    bus.flush()
    bus.queue = [q for q in bus.queue if q[1] != 2]          # the replicate to worker 2 is lost
    bus.pump()
    assert bus.routers[2].param_state("/m/x") == (1, None)
    journal = rec.records()
    bus.kill(0)
    assert [m.revision for m in bus.out(sub) if isinstance(m, Set)] == [1]
    owner = bus.start(0, restarted=True)
    for body in journal:
        owner.restore_param(body)
    owner.attach_journal(Recorder())
    for j in (1, 2):
        bus.connect(0, j)
    bus.pump()
    bus.nodes[0]._finish_sync()
    bus.pump()
    assert bus.routers[2].param_state("/m/x") == (2, None)
    assert [(m.address, m.value, m.revision) for m in bus.out(sub) if isinstance(m, Set)] == [("/m/x", 2, 2)]


def test_a_commit_bundle_from_another_worker_acks_once_its_sets_are_durable():
    bus = Bus(2)
    bus.routers[0].attach_journal(Recorder())
    w = bus.session(1)
    bus.send(1, w, Bundle(messages=[Set("/kb/1", 1), Set("/kb/2", 2)]), qos=2)
    bus.pump()
    assert [m for m in bus.out(w) if isinstance(m, Ack)] == []
    bus.routers[0].journal_durable(1)
    bus.pump()
    assert [m for m in bus.out(w) if isinstance(m, Ack)] == []
    bus.routers[0].journal_durable(2)
    bus.pump()
    assert len([m for m in bus.out(w) if isinstance(m, Ack)]) == 1


def test_commit_acks_held_for_a_dead_owner_go_out_once_the_new_owner_journaled_the_state():
    bus = Bus(2)
    bus.routers[0].attach_journal(Recorder())
    w = bus.session(1)
    bus.send(1, w, Set("/kd/a", 1), qos=2)
    bus.pump()
    assert bus.routers[1].param_state("/kd/a") == (1, None)
    bus.kill(0)                                   # decided and replicated, never durable
    assert [m for m in bus.out(w) if isinstance(m, Ack)] == []
    owner = bus.start(0, restarted=True)
    rec = Recorder()
    owner.attach_journal(rec)
    bus.connect(0, 1)
    bus.pump()
    bus.nodes[0]._finish_sync()
    bus.pump()
    assert [key_of(r)[:2] for r in _flushed(owner, rec)] == [(b"/kd/a", 1)]
    assert [m for m in bus.out(w) if isinstance(m, Ack)] == []
    owner.journal_durable(owner.journal_seq)
    bus.pump()
    assert [(m.address, m.revision) for m in bus.out(w) if isinstance(m, Ack)] == [("/kd/a", 1)]


def _flushed(router, rec) -> list:
    router.flush_journal()
    return rec.records()


def test_a_commit_set_hurries_the_writer_once_per_commit():
    net, rec = journaled_net()
    s = net.connect()
    net.set(s, "/h/a", 1, qos=1)
    assert rec.hurried == 0                        # nobody waits: the writer may take its time
    net.set(s, "/h/b", 1, qos=2)
    net.set(s, "/h/c", 1, qos=2)
    assert rec.hurried == 1
    net.router.journal_durable(2)                  # /h/c (position 3) still waits: hurry again
    assert rec.hurried == 2
    net.router.journal_durable(3)
    net.set(s, "/h/d", 1, qos=2)
    assert rec.hurried == 3


def test_a_commit_set_from_another_worker_hurries_the_owners_writer():
    bus = Bus(2)
    rec = Recorder()
    bus.routers[0].attach_journal(rec)
    w = bus.session(1)
    bus.send(1, w, Set("/h/x", 1), qos=2)
    bus.pump()
    assert rec.hurried == 1
