"""``--workers N``: one consistent state (DESIGN.md "Several workers").

The owner (worker 0) decides every SET (lock, expected revision, the revision) and replicates
the result to every worker in its own order, so every worker must end with the same value and
revision for every address, every subscriber must see one revision sequence per address, and
conditional SETs and locks must behave as in one router, wherever the two clients are.
Which worker each client sits on comes from the router's debug log.

Two tests here are about what a client may conclude from what it has seen, as it may with
one router: once a writer has its ACK, a GET on any worker sees the write; once a lock
holder's connection is closed, its lock no longer blocks anyone.
"""
from __future__ import annotations

import asyncio
import collections
import random
import time

import pytest

from clasp_fast.protocol import Ack, Error, Set, Subscribe

from tests.integration.workers_support import (ConnLog, close_all, clients_on_workers, open_clients,
                                               spread, start_cluster)

ADDRESSES = [f"/s/{i}" for i in range(50)]
WRITERS = 20
TOTAL_SETS = 1000


def _plan(seed: int) -> list[list[tuple[str, int]]]:
    """1000 SETs on 50 addresses (each at least once, the rest random), dealt to 20 writers;
    every value is unique: writer * 1000 + its n-th SET."""
    rng = random.Random(seed)
    picks = ADDRESSES + [rng.choice(ADDRESSES) for _ in range(TOTAL_SETS - len(ADDRESSES))]
    rng.shuffle(picks)
    per = TOTAL_SETS // WRITERS
    return [[(picks[w * per + i], w * 1000 + i) for i in range(per)] for w in range(WRITERS)]


async def _write(c, sets: list[tuple[str, int]]) -> None:
    for i, (address, value) in enumerate(sets):
        c.send(Set(address, value), qos=1)
        if i % 10 == 9:
            await asyncio.sleep(0.001)


@pytest.mark.parametrize("workers", [4, 8])
async def test_many_writers_end_with_identical_state_on_every_worker(router_process, workers):
    rp = start_cluster(router_process, workers)
    log = ConnLog(rp)
    watchers = await clients_on_workers(rp, log, range(workers), prefix="watch")
    writers = await open_clients(rp, log, WRITERS, prefix="w")
    getters: dict = {}
    try:
        print(f"\nwriters: {spread((c.name, c.worker) for c in writers)}")
        print(f"/** subscribers: {spread((c.name, w) for w, c in watchers.items())}")
        assert len({c.worker for c in writers}) >= 2, spread((c.name, c.worker) for c in writers)
        for c in watchers.values():
            c.send(Subscribe(1, "/**"), qos=1)
        for c in watchers.values():
            await c.wait_for(lambda c=c: c.acks(), 5.0, "ACK of SUBSCRIBE /**")
        marks = {w: len(c.msgs) for w, c in watchers.items()}

        plan = _plan(seed=workers)
        counts = collections.Counter(a for sets in plan for a, _ in sets)
        await asyncio.gather(*(_write(c, sets) for c, sets in zip(writers, plan)))
        per = TOTAL_SETS // WRITERS
        for c in writers:
            await c.wait_for(lambda c=c: len(c.acks()) >= per, 20.0, f"{per} ACKs")

        # every SET was accepted once: per address, the ACKed revisions are exactly 1..count,
        # and each writer's SETs to one address got increasing revisions (its own order)
        value_at = {}                       # (address, revision) -> value
        for c, sets in zip(writers, plan):
            acks = c.acks()
            assert not c.errors(), (c.name, c.errors()[:3])
            assert [a.address for a in acks] == [a for a, _ in sets], f"{c.name}: ACKs out of order"
            last = {}
            for ack, (address, value) in zip(acks, sets):
                assert ack.revision > last.get(address, 0), (c.name, address, ack)
                last[address] = ack.revision
                assert (address, ack.revision) not in value_at, f"revision {ack.revision} of {address} twice"
                value_at[(address, ack.revision)] = value
        for address in ADDRESSES:
            assert {r for a, r in value_at if a == address} == set(range(1, counts[address] + 1)), address
        assert sum(counts.values()) == TOTAL_SETS

        # every /** subscriber, on every worker: per address revisions 1, 2, 3, ... to the final
        # one, no gap, no repeat, each with the value the owner gave that revision
        def seen(c, mark):
            got = collections.defaultdict(list)
            for m in c.msgs[mark:]:
                if type(m) is Set:
                    got[m.address].append((m.revision, m.value))
            return got
        for w, c in watchers.items():
            await c.wait_for(lambda c=c, w=w: all(
                (seen(c, marks[w]).get(a) or [(0, 0)])[-1][0] >= counts[a] for a in ADDRESSES),
                20.0, "every final revision")
        await asyncio.gather(*(c.barrier() for c in watchers.values()))
        for w, c in watchers.items():
            got = seen(c, marks[w])
            assert not c.errors(), c.errors()[:3]
            assert set(got) == set(ADDRESSES), f"worker {w} subscriber: {sorted(set(ADDRESSES) - set(got))[:5]}"
            for a in ADDRESSES:
                revisions = [r for r, _ in got[a]]
                assert revisions == list(range(1, counts[a] + 1)), f"worker {w} subscriber, {a}: {revisions}"
                assert [v for _, v in got[a]] == [value_at[(a, r)] for r in revisions], \
                    f"worker {w} subscriber, {a}: values differ from the owner's decisions"

        # GET through a fresh client on every worker: the same value and revision everywhere
        getters = await clients_on_workers(rp, log, range(workers), prefix="get")
        print(f"GET clients: {spread((c.name, w) for w, c in getters.items())}")
        assert set(getters) == set(range(workers))
        final = {}
        for w, c in sorted(getters.items()):
            answers = await asyncio.gather(*(c.get(a) for a in ADDRESSES))
            state = {}
            for a, p in zip(ADDRESSES, answers):
                assert type(p) is not Error, f"worker {w}: GET {a} -> {p}"
                state[a] = (p.value, p.revision)
            final[w] = state
            # the WELCOME snapshot of this late client agrees too
            assert {p.address: (p.value, p.revision) for p in c.welcome_snapshot} == state, f"worker {w}"
        for w, state in final.items():
            assert state == final[0], f"worker {w} disagrees with worker 0: " + str(
                {a: (state[a], final[0][a]) for a in ADDRESSES if state[a] != final[0][a]})
        for a in ADDRESSES:
            assert final[0][a] == (value_at[(a, counts[a])], counts[a]), a
        assert sum(rev for _, rev in final[0].values()) == TOTAL_SETS
    finally:
        await close_all([*watchers.values(), *writers, *getters.values()])


# --- conditional SET and locks, the two clients on different workers ---------------------

# (A's worker, B's worker): the owner decides; the other workers forward to it
PLACEMENTS = {"owner-and-replica": (0, 2), "replica-and-owner": (2, 0), "two-replicas": (1, 3)}


async def _pair(rp, log, placement: str):
    wa, wb = PLACEMENTS[placement]
    on = await clients_on_workers(rp, log, (wa, wb), prefix="pair")
    a, b = on[wa], on[wb]
    a.name, b.name = "A", "B"
    # proof from the log that they are on the workers we wanted
    assert (a.worker, b.worker) == (wa, wb) and a.worker != b.worker
    print(f"\nA on worker {a.worker}, B on worker {b.worker}")
    return a, b


def _is_reply(address):
    return lambda m: type(m) in (Ack, Error) and m.address == address


@pytest.mark.parametrize("placement", list(PLACEMENTS))
async def test_racing_conditional_sets_one_wins_other_gets_409(router_process, placement):
    rp = start_cluster(router_process, 4)
    log = ConnLog(rp)
    a, b = await _pair(rp, log, placement)
    try:
        addr = "/cas/x"
        first = await a.request(Set(addr, "init"), _is_reply(addr), qos=1)
        assert type(first) is Ack and first.revision == 1, first
        rev = 1
        wins = collections.Counter()
        for rnd in range(20):
            ma, mb = len(a.msgs), len(b.msgs)
            a.send(Set(addr, f"A{rnd}", revision=rev), qos=1)
            b.send(Set(addr, f"B{rnd}", revision=rev), qos=1)
            ra = (await a.wait_for(lambda: [m for m in a.msgs[ma:] if _is_reply(addr)(m)], 5.0, "reply"))[0]
            rb = (await b.wait_for(lambda: [m for m in b.msgs[mb:] if _is_reply(addr)(m)], 5.0, "reply"))[0]
            outcome = sorted((type(ra).__name__, type(rb).__name__))
            assert outcome == ["Ack", "Error"], f"round {rnd}: A got {ra}, B got {rb}"
            winner, ack, err = ("A", ra, rb) if type(ra) is Ack else ("B", rb, ra)
            wins[winner] += 1
            assert ack.revision == rev + 1, f"round {rnd}: {ack}"
            assert err.code == 409 and err.address == addr, f"round {rnd}: {err}"
            for c in (a, b):
                p = await c.get(addr)
                assert (p.value, p.revision) == (f"{winner}{rnd}", rev + 1), \
                    f"round {rnd}: {c.name} (worker {c.worker}) reads {p}"
            rev += 1
        print(f"20 races: A (worker {a.worker}) won {wins['A']}, B (worker {b.worker}) won {wins['B']}")
        # the loser's SET was never applied: exactly one ACK per round, nothing else
        assert len(a.acks()) + len(b.acks()) == 21
        assert len(a.errors()) + len(b.errors()) == 20
    finally:
        await close_all([a, b])


@pytest.mark.parametrize("placement", list(PLACEMENTS))
async def test_locks_across_workers(router_process, placement):
    rp = start_cluster(router_process, 4)
    log = ConnLog(rp)
    a, b = await _pair(rp, log, placement)
    # a watcher on a third worker sees only the applied writes
    others = await clients_on_workers(rp, log, {0, 1, 2, 3} - {a.worker, b.worker}, prefix="watch")
    watcher = others[min(others)]
    try:
        addr = "/lock/x"
        watcher.send(Subscribe(1, addr), qos=1)
        await watcher.wait_for(lambda: watcher.acks(), 5.0, "ACK of SUBSCRIBE")
        wmark = len(watcher.msgs)

        async def expect(c, value, *, ack=None, code=None, **flags):
            r = await c.request(Set(addr, value, **flags), _is_reply(addr), qos=1,
                                what=f"reply to SET {value}")
            if ack is not None:
                assert type(r) is Ack and r.revision == ack, f"{c.name} (worker {c.worker}) SET {value}: {r}"
            else:
                assert type(r) is Error and r.code == code and r.address == addr, \
                    f"{c.name} (worker {c.worker}) SET {value} {flags}: {r}"

        async def reads(value, revision, *clients):
            for c in clients:
                p = await c.get(addr)
                assert (p.value, p.revision) == (value, revision), f"{c.name} (worker {c.worker}): {p}"

        # (reads go to the writer's worker, and to a worker whose client was just refused:
        # the owner's refusal follows its last decision on the same FIFO link.  A GET on
        # another worker right after someone else's ACK is the subject of
        # test_get_on_another_worker_right_after_the_ack_sees_the_write.)
        await expect(a, 1, ack=1, lock=True)           # A holds the lock
        await expect(b, 2, code=423)                   # B cannot write
        await expect(b, 3, code=423, unlock=True)      # nor unlock
        await reads(1, 1, a, b)                        # value unchanged, on both workers
        await expect(a, 4, ack=2, unlock=True)         # the holder's unlock releases
        await expect(b, 5, ack=3)
        await reads(5, 3, b)
        await expect(a, 6, ack=4, lock=True)           # A locks again
        await expect(b, 7, code=423)
        await reads(6, 4, a, b)

        # ACKs reached only their writers, on their own workers; refusals were never applied
        assert [k.revision for k in a.acks()] == [1, 2, 4]
        assert [k.revision for k in b.acks()] == [3]
        assert [(e.code, e.address) for e in b.errors()] == [(423, addr)] * 3
        assert a.errors() == []
        await watcher.wait_for(lambda: any(type(m) is Set and m.revision == 4 for m in watcher.msgs[wmark:]),
                               5.0, "revision 4")
        await watcher.barrier()
        assert [(m.value, m.revision) for m in watcher.msgs[wmark:] if type(m) is Set] == [
            (1, 1), (4, 2), (5, 3), (6, 4)]
    finally:
        await close_all([a, b, *others.values()])


@pytest.mark.parametrize("placement", list(PLACEMENTS))
async def test_a_lock_is_released_when_its_holder_disconnects(router_process, placement):
    """A locks, B is refused (423); A closes its connection (close handshake, then the router
    closes the socket); once A's worker has even logged the end of A's connection, B's next
    SET must succeed, as it does with one router (which releases the locks in the same call
    that ends the connection).  40 rounds, a new A each time."""
    wa, wb = PLACEMENTS[placement]
    rounds = 40
    rp = start_cluster(router_process, 4)
    log = ConnLog(rp)
    b = (await clients_on_workers(rp, log, (wb,), prefix="B"))[wb]
    b.name = "B"
    refused = []
    a = None
    try:
        for k in range(rounds):
            a = (await clients_on_workers(rp, log, (wa,), prefix=f"A{k}-"))[wa]
            assert (a.worker, b.worker) == (wa, wb)
            addr = f"/held/{k}"
            r = await a.request(Set(addr, "a", lock=True), _is_reply(addr), qos=1)
            assert type(r) is Ack and r.revision == 1, r
            r = await b.request(Set(addr, "b"), _is_reply(addr), qos=1)
            assert type(r) is Error and r.code == 423, r          # the lock is held
            await a.close()
            await a.gone()                 # A's worker logged the end of A's connection
            t0 = time.monotonic()
            r = await b.request(Set(addr, "b"), _is_reply(addr), qos=1)
            if type(r) is Error:
                assert r.code == 423 and r.address == addr, r
                # diagnosis only: how long until the lock is gone (or is it never released?)
                while type(r) is Error and time.monotonic() - t0 < 2.0:
                    await asyncio.sleep(0.005)
                    r = await b.request(Set(addr, "b"), _is_reply(addr), qos=1)
                refused.append((k, f"{(time.monotonic() - t0) * 1000:.0f} ms" if type(r) is Ack else "never"))
            assert type(r) is Ack and r.revision == 2, r
            p = await b.get(addr)
            assert (p.value, p.revision) == ("b", 2), p
        print(f"\nA on worker {wa}, B on worker {wb}: {rounds} rounds, B refused after A left in "
              f"{len(refused)}")
        assert not refused, (f"B's SET right after A (the lock holder, on worker {wa}) disconnected got "
                             f"ERROR 423 in {len(refused)} of {rounds} rounds; (round, when B's SET "
                             f"first succeeded): {refused}")
    finally:
        await close_all([b, a])


# --- read after ACK, across workers ---------------------------------------------------------

async def test_get_on_another_worker_right_after_the_ack_sees_the_write(router_process):
    """In one router, once a writer holds the ACK of its SET, every GET that follows (from any
    client) sees the write.  With 8 workers: a writer on each worker in turn sends a QoS-1
    SET to a fresh address; as soon as the ACK is in, clients on the 7 other workers GET it.
    Every GET must find the param (never ERROR 404)."""
    workers = 8
    rp = start_cluster(router_process, workers)
    log = ConnLog(rp)
    on = await clients_on_workers(rp, log, range(workers), prefix="g")
    misses = collections.Counter()
    rounds = 200
    try:
        print(f"\nclients: {spread((c.name, w) for w, c in on.items())}")
        for k in range(rounds):
            for writer in range(workers):
                addr = f"/raw/{writer}/{k}"
                ack = await on[writer].request(Set(addr, k), _is_reply(addr), qos=1)
                assert type(ack) is Ack and ack.revision == 1, ack
                readers = [w for w in range(workers) if w != writer]
                answers = await asyncio.gather(*(on[w].get(addr) for w in readers))
                for w, p in zip(readers, answers):
                    if type(p) is Error:
                        assert p.code == 404, p
                        misses[(writer, w)] += 1
                    else:
                        assert (p.value, p.revision) == (k, 1), p
        print(f"{rounds * workers} ACKed SETs, {rounds * workers * (workers - 1)} GETs; "
              f"404 after the ACK: {sum(misses.values())}")
        assert not misses, (
            f"{sum(misses.values())} GETs right after the writer's ACK did not find the write; "
            f"by (writer's worker, reader's worker): {dict(sorted(misses.items()))}; "
            f"reader's index above the writer's in every miss: {all(r > w for w, r in misses)}")
    finally:
        await close_all(on.values())
