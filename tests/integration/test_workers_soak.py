"""Soak: mixed load on 4 workers while workers, the owner among them, are killed.

Marked slow (``python -m pytest -m slow``).  Writers on every worker send QoS-1 SETs
to 20 addresses and events; subscribers on every worker watch ``/soak/**``.  Every
~1.5 s a worker is SIGKILLed (round robin, owner included) and clients on it reconnect.
Afterwards:

* every worker answers GET with the same value and revision for every address;
* every ACKed SET's revision is at most the final revision of its address;
* no subscriber ever saw an address's revision go backwards or repeat, and the values
  it saw for one publisher's event stream are in the order sent.
"""
from __future__ import annotations

import asyncio
import random
import time

import pytest

from clasp_fast.protocol import Ack, Error, Publish, Set, SignalType, Subscribe

from tests.integration.workers_support import (ConnLog, close_all, clients_on_workers, open_clients,
                                               sigkill, start_cluster, wait_worker_pids)

pytestmark = pytest.mark.slow

WORKERS = 4
SECONDS = 12.0
ADDRESSES = [f"/soak/p/{i}" for i in range(20)]


async def _writer(rp, log, name: str, stop: asyncio.Event, acked: dict):
    c = None
    seen = 0
    k = 0

    def collect():
        nonlocal seen
        for m in c.msgs[seen:]:
            if type(m) is Ack and m.address:
                acked[m.address] = max(acked.get(m.address, 0), m.revision)
        seen = len(c.msgs)

    while not stop.is_set():
        try:
            if c is None or c.closed:
                if c is not None:
                    collect()
                (c,) = await open_clients(rp, log, 1, prefix=name)
                seen = 0
            address = random.choice(ADDRESSES)
            k += 1
            c.send(Set(address, f"{name}-{k}"), qos=1)
            c.send(Publish(f"/soak/e/{name}", SignalType.EVENT, k))
            await asyncio.sleep(0.003)
            collect()
        except (ConnectionError, OSError, AssertionError, asyncio.TimeoutError):
            c = None
            await asyncio.sleep(0.05)
    if c is not None:
        await asyncio.sleep(0.5)
        collect()
        await c.close()


async def test_soak_kills_under_mixed_load(router_process):
    rp = start_cluster(router_process, WORKERS)
    log = ConnLog(rp)
    watchers = await clients_on_workers(rp, log, range(WORKERS), prefix="watch")
    for w in watchers.values():
        w.send(Subscribe(1, "/soak/**"))
    for w in watchers.values():
        await w.barrier()
    stop = asyncio.Event()
    acked: dict = {}
    writers = [asyncio.create_task(_writer(rp, log, f"w{i}", stop, acked)) for i in range(6)]
    killed = []
    t0 = time.monotonic()
    victim = 0
    while time.monotonic() - t0 < SECONDS:
        await asyncio.sleep(1.5)
        pids = await wait_worker_pids(rp, WORKERS, timeout=15)
        sigkill(pids[victim])
        killed.append((victim, pids[victim]))
        await wait_worker_pids(rp, WORKERS, timeout=15, exclude=[pids[victim]])
        victim = (victim + 1) % WORKERS
    stop.set()
    await asyncio.gather(*writers)
    await asyncio.sleep(1.0)

    # every worker answers the same state
    try:
        readers = await clients_on_workers(rp, log, range(WORKERS), prefix="read")
    except AssertionError:
        print("".join(line for line in rp.output if "connection from" not in line)[-6000:])
        raise
    try:
        states = {}
        for w, r in readers.items():
            states[w] = {}
            for address in ADDRESSES:
                try:
                    p = await r.get(address)
                    states[w][address] = (p.value, p.revision)
                except LookupError:
                    states[w][address] = None
        first = states[0]
        for w, st in states.items():
            assert st == first, f"worker {w} disagrees with worker 0: {st} vs {first}"
        for address, rev in acked.items():
            assert first[address] is not None and first[address][1] >= rev, (address, rev, first[address])

        # what the surviving watchers saw: revisions only go up, per address; each event stream in order
        for w, watcher in watchers.items():
            last_rev: dict = {}
            last_ev: dict = {}
            for m in watcher.msgs:
                if type(m) is Set and m.address.startswith("/soak/p/"):
                    assert m.revision > last_rev.get(m.address, 0), (w, m.address, m.revision, last_rev)
                    last_rev[m.address] = m.revision
                elif type(m) is Publish and m.address.startswith("/soak/e/"):
                    assert m.value > last_ev.get(m.address, 0), (w, m.address, m.value)
                    last_ev[m.address] = m.value
                elif type(m) is Error:
                    raise AssertionError(f"watcher on worker {w} got {m}")
        print(f"\nkilled {killed}; {sum(len(w.msgs) for w in watchers.values())} messages watched; "
              f"{len(acked)} addresses acked")
    finally:
        await close_all(list(watchers.values()) + list(readers.values()))
