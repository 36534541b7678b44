"""docs/operations.md "Owner down": SIGKILL of worker 0 under write load with ``--workers 4``.
While it restarts the other workers hold writes in a bounded queue (here 40 per session) and
answer beyond it with ERROR 503; their memory stays bounded; after the restart no ACKed SET is
lost, and the subscribers on every surviving worker see every revision of every address,
strictly increasing."""
from __future__ import annotations

import asyncio
import collections
import time

from bench.procs import rss_kb
from clasp_fast.protocol import Ack, Error, Set, Subscribe

from tests.integration.workers_support import (ConnLog, clients_on_workers, close_all, sigkill,
                                               start_cluster, wait_log_count, wait_worker_pids)

WORKERS = 4
SURVIVORS = (1, 2, 3)
PER_SESSION = 40


async def write_load(c, tag: str, stop: asyncio.Event, interval: float = 0.002) -> int:
    seq = 0
    while not stop.is_set() and not c.closed:
        seq += 1
        c.send(Set(f"/od/{tag}/{seq % 4}", seq), qos=1)
        await asyncio.sleep(interval)
    return seq


async def test_sigkill_owner_under_write_load_bounded_queue_503_nothing_acked_lost(router_process):
    rp = start_cluster(router_process, WORKERS, "--owner-queue-session-messages", str(PER_SESSION))
    log = ConnLog(rp)
    pids = await wait_worker_pids(rp, WORKERS)
    writers = await clients_on_workers(rp, log, SURVIVORS, prefix="w")
    subs = await clients_on_workers(rp, log, SURVIVORS, prefix="s")
    try:
        for s in subs.values():
            s.send(Subscribe(1, "/od/**"))
            await s.barrier()
        rss0 = {w: rss_kb(pids[w]) / 1024 for w in SURVIVORS}
        stop = asyncio.Event()
        tasks = [asyncio.create_task(write_load(c, f"w{w}", stop)) for w, c in writers.items()]
        await asyncio.sleep(0.3)
        sigkill(pids[0])
        peak = dict(rss0)
        t_kill = time.monotonic()
        while "worker 0 restarted and ready" not in rp.log() and time.monotonic() - t_kill < 15:
            for w in SURVIVORS:
                peak[w] = max(peak[w], rss_kb(pids[w]) / 1024)
            await asyncio.sleep(0.05)
        await wait_log_count(rp, "worker 0 restarted and ready", 1, timeout=1.0)
        down_s = time.monotonic() - t_kill
        await asyncio.sleep(0.3)
        stop.set()
        sent = dict(zip(writers, await asyncio.gather(*tasks)))
        for c in writers.values():
            await c.barrier(15.0)
        await asyncio.sleep(0.3)
        for s in subs.values():
            await s.barrier(10.0)

        refused = {w: [e for e in c.errors() if e.code == 503] for w, c in writers.items()}
        print(f"\nowner down {down_s:.2f} s; SETs sent {sent}; ERROR 503 per writer "
              f"{ {w: len(e) for w, e in refused.items()} }; worker RSS MB before/peak "
              f"{ {w: (round(rss0[w], 1), round(peak[w], 1)) for w in SURVIVORS} }")
        assert any(refused.values()), "no 503 although the queue was full"
        assert all("owner_queue_session_messages" in e.message for es in refused.values() for e in es)
        assert all(e.code == 503 for c in writers.values() for e in c.errors())
        for w in SURVIVORS:
            assert peak[w] - rss0[w] < 64, f"worker {w} grew {peak[w] - rss0[w]:.1f} MB"

        # the state now, as a fresh client on worker 1 reads it
        final = {}
        for w, c in writers.items():
            for k in range(4):
                p = await c.get(f"/od/w{w}/{k}")
                final[p.address] = p.revision
        # no ACKed SET lost: every ACK's revision is at or below the address's final revision,
        # and every writer got an ACK or a 503 for each SET
        for w, c in writers.items():
            acks = c.acks()
            assert len(acks) + len(refused[w]) == sent[w], (w, len(acks), len(refused[w]), sent[w])
            for a in acks:
                assert a.revision <= final[a.address], (a, final[a.address])
            by_addr = collections.defaultdict(list)
            for a in acks:
                by_addr[a.address].append(a.revision)
            for address, revs in by_addr.items():
                assert revs == list(range(1, final[address] + 1)), (address, revs[:10], final[address])
        # every surviving worker's subscriber saw every revision, strictly increasing
        for w, s in subs.items():
            seen = collections.defaultdict(list)
            for m in s.msgs:
                if type(m) is Set:
                    seen[m.address].append(m.revision)
            for address, last in final.items():
                assert seen[address] == list(range(1, last + 1)), \
                    (w, address, seen[address][-5:], last)
        assert all(type(m) is not Error for s in subs.values() for m in s.msgs)
    finally:
        await close_all([*writers.values(), *subs.values()])
