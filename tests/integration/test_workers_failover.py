"""``--workers N``: SIGKILL of one worker during a load of SETs (DESIGN.md "Several workers":
a restarted worker gets the state from its peers before it accepts clients; a restarted
owner also takes back the requests that the others re-send to it).

Writers on every worker send QoS-1 SETs (each writer its own three addresses) for ~2 s; one
worker is killed in the middle: worker 0 (the owner, which decides every SET) or a replica.
The supervisor restarts it.  Then:

* every SET that was ACKed is still there, at a revision at least the ACKed one;
* writers on the surviving workers saw no ERROR and no disconnect, got an ACK for every SET
  (those sent while the owner was down: after the restart), and their addresses end at
  exactly their last ACKed value and revision (one revision per SET: nothing lost, nothing
  applied twice);
* clients that connect afterwards, to every worker (the restarted one too), get the full
  state in their WELCOME snapshot, the same everywhere.
"""
from __future__ import annotations

import asyncio
import collections
import time

import pytest

from clasp_fast.protocol import Ack, Error, Set

from tests.integration.workers_support import (ConnLog, close_all, clients_on_workers, open_clients,
                                               sigkill, spread, start_cluster, wait_log_count,
                                               wait_worker_pids)

WORKERS = 4
LOAD_SECONDS = 2.0
KILL_AT = 0.7
INTERVAL = 0.01


class Writer:
    def __init__(self, client, index: int):
        self.c = client
        self.index = index
        self.sent: list[tuple[str, int]] = []      # (address, value), in send order
        self.sent_at: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        seq = 0
        while not stop.is_set() and not self.c.closed:
            seq += 1
            address = f"/k/{self.index}/{seq % 3}"
            try:
                self.c.send(Set(address, seq), qos=1)
            except ConnectionError:
                break
            self.sent.append((address, seq))
            self.sent_at.append(time.monotonic())
            await asyncio.sleep(INTERVAL)

    def acked(self) -> list[tuple[str, int, int]]:
        """(address, value, revision) of every ACKed SET; ACKs come back in send order."""
        acks = self.c.acks()
        assert len(acks) <= len(self.sent), (self.c.name, len(acks), len(self.sent))
        out = []
        for ack, (address, value) in zip(acks, self.sent):
            assert ack.address == address, f"{self.c.name}: ACK {ack} for the SET of {address}"
            out.append((address, value, ack.revision))
        return out


@pytest.mark.parametrize("victim", [0, 2], ids=["kill-owner-w0", "kill-replica-w2"])
async def test_sigkill_a_worker_during_set_load(router_process, victim):
    rp = start_cluster(router_process, WORKERS)
    log = ConnLog(rp)
    one_each = await clients_on_workers(rp, log, range(WORKERS), prefix="k")
    extra = await open_clients(rp, log, 8, prefix="x")
    clients = [*one_each.values(), *extra]
    writers = [Writer(c, i) for i, c in enumerate(clients)]
    late: dict = {}
    try:
        print(f"\nwriters: {spread((f'{w.c.name}(#{w.index})', w.c.worker) for w in writers)}")
        pids = await wait_worker_pids(rp, WORKERS)
        doomed = [w for w in writers if w.c.worker == victim]
        survivors = [w for w in writers if w.c.worker != victim]
        assert doomed and survivors

        stop = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stop)) for w in writers]
        t0 = time.monotonic()
        await asyncio.sleep(KILL_AT)
        sigkill(pids[victim])
        killed_at = time.monotonic()
        # the load goes on while the worker is down and after it is back
        await wait_log_count(rp, f"worker {victim} restarted and ready", 1, timeout=10.0)
        back_at = time.monotonic()                  # (as seen here: a little after the fact)
        await asyncio.sleep(max(0.0, t0 + LOAD_SECONDS - time.monotonic()))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
        died = [ln for ln in rp.log().splitlines() if f"worker {victim} (pid {pids[victim]}) died" in ln]
        assert died and "SIGKILL" in died[0], rp.log()[-3000:]
        print(f"worker {victim} killed at {killed_at - t0:.2f} s; {died[0].split(': ', 1)[1]}")
        new_pids = await wait_worker_pids(rp, WORKERS, exclude=[pids[victim]])
        assert new_pids[victim] != pids[victim]

        # the victim's clients were cut off; everything they had ACKed counts
        for w in doomed:
            await w.c.wait_for(lambda w=w: w.c.closed, 5.0, "the end of the connection")
        # survivors: an ACK for every SET, possibly late (owner down), never an ERROR
        for w in survivors:
            await w.c.wait_for(lambda w=w: len(w.c.acks()) >= len(w.sent), 15.0,
                               f"ACKs for all {len(w.sent)} SETs")
        await asyncio.gather(*(w.c.barrier() for w in survivors))
        for w in survivors:
            assert not w.c.closed and w.c.close_code is None, f"{w.c.name} (worker {w.c.worker}) was closed"
            assert w.c.errors() == [], f"{w.c.name} (worker {w.c.worker}): {w.c.errors()[:3]}"
            assert len(w.c.acks()) == len(w.sent)
        sent_total = sum(len(w.sent) for w in writers)
        during = [(w, i) for w in survivors for i, t in enumerate(w.sent_at) if killed_at < t < back_at - 0.05]
        latency = max(w.c.ack_times[i] - w.sent_at[i] for w in survivors for i in range(len(w.sent)))
        print(f"{sent_total} SETs sent; {len(during)} by survivors while worker {victim} was down "
              f"({back_at - killed_at:.2f} s); slowest ACK {latency * 1000:.0f} ms")
        assert during, "no SET was sent while the worker was down"
        if victim == 0:
            # nobody could decide them before the owner was back: late ACKs (normally ~2 ms)
            assert latency > 0.05, latency

        # clients connecting now, one on every worker (the restarted one too).  (A short pause
        # first: a worker may apply the owner's last decisions a few ms after the writer got
        # its ACK; that is test_workers_state.py::
        # test_get_on_another_worker_right_after_the_ack_sees_the_write's subject, not this one's.)
        await asyncio.sleep(0.2)
        late = await clients_on_workers(rp, log, range(WORKERS), prefix="late")
        print(f"late clients: {spread((c.name, w) for w, c in late.items())}")
        states = {w: {p.address: (p.value, p.revision) for p in c.welcome_snapshot} for w, c in late.items()}
        for w, state in states.items():
            assert state == states[0], f"WELCOME snapshot on worker {w} differs from worker 0: " + str(
                {a: (state.get(a), states[0].get(a)) for a in set(state) | set(states[0])
                 if state.get(a) != states[0].get(a)})
        state = states[0]
        # GET on every worker agrees with the snapshots
        for w, c in late.items():
            for address in sorted(state)[::5]:
                p = await c.get(address)
                assert (p.value, p.revision) == state[address], (w, address, p)

        # every ACKed SET survived, at least at its revision
        for w in writers:
            sent_values = collections.defaultdict(list)
            for address, value in w.sent:
                sent_values[address].append(value)
            for address, value, revision in w.acked():
                assert address in state, f"{address} (ACKed revision {revision}) is gone"
                have_value, have_rev = state[address]
                assert have_rev >= revision, f"{address}: ACKed revision {revision}, now {have_rev}"
                assert have_value in sent_values[address] and have_value >= value, \
                    f"{address}: ACKed value {value}, now {have_value}"
        # survivors' addresses: exactly the last ACKed value and revision, one revision per SET
        for w in survivors:
            last = {}
            for address, value, revision in w.acked():
                last[address] = (value, revision)
            counts = collections.Counter(a for a, _ in w.sent)
            for address, (value, revision) in last.items():
                assert state[address] == (value, revision), \
                    f"{w.c.name} (worker {w.c.worker}) {address}: last ACK {(value, revision)}, state {state[address]}"
                assert revision == counts[address], \
                    f"{address}: {counts[address]} SETs sent and ACKed, revision {revision}"
            # and the writer itself reads them back on its own worker
            for address, expected in last.items():
                p = await w.c.get(address)
                assert (p.value, p.revision) == expected, (w.c.name, address, p)
        assert all(type(m) is not Error for c in late.values() for m in c.msgs)
    finally:
        await close_all([*clients, *late.values()])


def _is_reply(address):
    return lambda m: type(m) in (Ack, Error) and getattr(m, "address", None) == address


@pytest.mark.parametrize("victim", [0, 2], ids=["owner", "non-owner"])
async def test_a_restarted_worker_serves_writes_from_its_new_clients(router_process, victim):
    """After a restart, the new worker's own clients write: their SETs are applied (the owner
    does not take the new process's request numbers for the old one's), ACKed with the
    next revision, and seen everywhere."""
    rp = start_cluster(router_process, WORKERS)
    log = ConnLog(rp)
    first = await clients_on_workers(rp, log, range(WORKERS), prefix="w")
    again: dict = {}
    try:
        for k in range(5):                 # the victim's first incarnation numbers requests 1..5
            r = await first[victim].request(Set("/again/x", k), _is_reply("/again/x"), qos=1)
            assert type(r) is Ack and r.revision == k + 1, r
        pids = await wait_worker_pids(rp, WORKERS)
        sigkill(pids[victim])
        await wait_log_count(rp, "restarted and ready", 1, timeout=10)
        await wait_worker_pids(rp, WORKERS, exclude=[pids[victim]])
        again = await clients_on_workers(rp, log, [victim], prefix="again",
                                         keep=[c for w, c in first.items() if w != victim])
        c = again[victim]
        for k in range(3):
            r = await c.request(Set("/again/x", f"new{k}"), _is_reply("/again/x"), qos=1)
            assert type(r) is Ack and r.revision == 6 + k, r
        for w, other in first.items():
            if w != victim:
                p = await other.get("/again/x")
                assert (p.value, p.revision) == ("new2", 8), (w, p)
    finally:
        await close_all(list(first.values()) + list(again.values()))
