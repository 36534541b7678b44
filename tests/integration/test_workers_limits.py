"""``--workers 4``: connection limits hold across workers (DESIGN.md "Connection limits across
workers": one shared-memory table, one share per worker, a dead worker's share reclaimed).

A burst of 40 simultaneous connection attempts lands on all workers at once; exactly the
limit is admitted, the others get HTTP 503 naming the limit.  Slots come back when
connections close, and when a worker holding connections is SIGKILLed.
"""
from __future__ import annotations

import asyncio
import collections
import re

import pytest

from tests.integration.conftest import UpgradeRefused
from tests.integration.workers_support import (Client, ConnLog, close_all, sigkill, spread,
                                               start_cluster, wait_log_count, wait_until,
                                               wait_worker_pids)

WORKERS = 4
REFUSED_RE = re.compile(r" w(\d+) clasp_fast\.server: refused connection from ")
BURST = 40

MODES = {
    # flag, sources of the 40 attempts, the text every refusal must contain
    "per-ip": ("--max-connections-per-ip", ["127.0.0.1"] * BURST, "max_connections_per_ip = 5"),
    "total": ("--max-connections", [f"127.0.0.{2 + i % 8}" for i in range(BURST)], "max_connections = 5"),
}


async def _burst(rp, log, sources, tag):
    """Simultaneous attempts, one per source address: (admitted clients, refusals)."""
    results = await asyncio.gather(
        *(Client.open(rp.host, rp.port, name=f"{tag}{i}", local_host=src, conn_log=log)
          for i, src in enumerate(sources)), return_exceptions=True)
    opened = [r for r in results if isinstance(r, Client)]
    refused = [r for r in results if isinstance(r, UpgradeRefused)]
    others = [r for r in results if not isinstance(r, (Client, UpgradeRefused))]
    if others:
        await close_all(opened)
        raise AssertionError(f"unexpected failures: {others[:3]}")
    return opened, refused


def _check_refusals(refused, text: str, mode: str) -> None:
    for r in refused:
        body = r.body.decode()
        assert r.status == 503, (r.status, r.head)
        assert text in body, body
        if mode == "per-ip":
            assert "127.0.0.1" in body, body


@pytest.mark.parametrize("mode", list(MODES))
async def test_limits_hold_across_workers_and_a_dead_workers_share_is_reclaimed(router_process, mode):
    flag, sources, text = MODES[mode]
    rp = start_cluster(router_process, WORKERS, flag, "5")
    log = ConnLog(rp)
    held: list[Client] = []
    try:
        opened, refused = await _burst(rp, log, sources, "a")
        held = list(opened)
        print(f"\n{mode}: admitted {len(opened)} of {BURST}: "
              f"{spread((f'{c.name}@{c.sockname[0]}', c.worker) for c in opened)}")
        assert len(opened) == 5 and len(refused) == BURST - 5, (len(opened), len(refused))
        _check_refusals(refused, text, mode)
        assert {c.sockname[0] for c in opened} <= set(sources)     # really from those addresses
        # the refusals were spread over the workers too (each worker logs its own)
        refusing = await wait_until(lambda: (lambda n: n if sum(n.values()) >= BURST - 5 else None)(
            collections.Counter(int(m.group(1)) for m in REFUSED_RE.finditer(rp.log()))),
            5.0, f"{BURST - 5} refusals in the log")
        print(f"refusals by worker: {dict(sorted(refusing.items()))}")
        assert sum(refusing.values()) == BURST - 5

        # close two: exactly two of the next burst are admitted
        closing, held = held[:2], held[2:]
        for c in closing:
            await c.close()
            await c.gone()                      # its worker has reached connection_lost ...
        await asyncio.sleep(0.1)                # ... and given the slot back (same call, just after)
        more, refused = await _burst(rp, log, sources, "b")
        held += more
        print(f"after closing 2: admitted {len(more)}: {spread((c.name, c.worker) for c in more)}")
        assert len(more) == 2 and len(refused) == BURST - 2, (len(more), len(refused))
        _check_refusals(refused, text, mode)
        for c in held:                          # all five are working sessions
            await c.barrier()

        # SIGKILL the worker holding the most of the five: once it is back, exactly that many
        # new connections are admitted
        by_worker: dict[int, list[Client]] = {}
        for c in held:
            by_worker.setdefault(c.worker, []).append(c)
        victim = max(by_worker, key=lambda w: (len(by_worker[w]), w))
        k = len(by_worker[victim])
        pids = await wait_worker_pids(rp, WORKERS)
        print(f"killing worker {victim} (pid {pids[victim]}), which holds {k} of the 5")
        sigkill(pids[victim])
        await wait_log_count(rp, f"worker {victim} restarted and ready", 1, timeout=10.0)
        for c in by_worker[victim]:
            await c.wait_for(lambda c=c: c.closed, 5.0, "the end of the connection")
        held = [c for c in held if c.worker != victim]
        again, refused = await _burst(rp, log, sources, "c")
        held += again
        print(f"after the restart: admitted {len(again)}: {spread((c.name, c.worker) for c in again)}")
        assert len(again) == k and len(refused) == BURST - k, (k, len(again), len(refused))
        _check_refusals(refused, text, mode)
        for c in held:
            await c.barrier()
    finally:
        await close_all(held)
