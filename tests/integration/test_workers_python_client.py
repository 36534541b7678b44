"""``--workers 8`` with the real Python client (``clasp-to`` 4.2.0, unmodified), end to end.

The clients are placed on different workers (the router's debug log says which, matched by
each client's local port): a SET on one is read with GET on another, a wildcard subscription
on a third sees it, and a BUNDLE is applied all-or-nothing wherever it comes from: the Python
client's MessagePack bundle, and binary bundles built with clasp-fast's codec (the Python
client cannot put expected revisions in a bundle) from raw clients on the owner and on a
replica.

Only the first step reads on another worker right after the write was confirmed (the setter's
PONG comes after its SETs were decided); the later checks read on the writer's own worker
and watch the third worker's subscription, so that they test bundles and nothing else
(test_workers_state.py::test_get_on_another_worker_right_after_the_ack_sees_the_write is
about reads right after the ACK).
"""
from __future__ import annotations

import asyncio

from clasp_fast.protocol import Ack, Bundle, Error, Set, encode_frame

from tests.integration.workers_support import (ConnLog, clients_on_workers, close_all, spread,
                                               start_cluster)
from tests.interop.conftest import PyClient

T = 5.0
P = "/py8"


async def _py_clients_on_distinct_workers(rp, log, n: int, attempts: int = 40):
    """Real Python clients, one per worker, until ``n`` distinct workers are covered."""
    kept: dict[int, PyClient] = {}
    for i in range(attempts):
        since = log.mark()
        c = PyClient(rp.url, name=f"py{i}")
        await c.connect()
        worker = await log.worker_of(c.c._ws.local_address, since)
        if worker in kept:
            await c.close()
            continue
        kept[worker] = c
        if len(kept) == n:
            return kept
    await asyncio.gather(*(c.close() for c in kept.values()))
    raise AssertionError(f"{attempts} Python clients reached only workers {sorted(kept)}")


async def test_python_client_across_8_workers(router_process):
    rp = start_cluster(router_process, 8)
    log = ConnLog(rp)
    py = await _py_clients_on_distinct_workers(rp, log, 3)
    (ws, setter), (wg, getter), (ww, watcher) = sorted(py.items())[:3]
    raws: dict = {}
    try:
        print(f"\nsetter on worker {ws}, getter on worker {wg}, watcher on worker {ww}")
        assert len({ws, wg, ww}) == 3
        watcher.subscribe("w", f"{P}/**")
        await watcher.barrier()

        # set on one client, get on another (a different worker)
        await setter.c.set(f"{P}/a", 42)
        await setter.c.set(f"{P}/b/c", 2.5)
        await setter.barrier()                  # the router has decided both SETs
        get = asyncio.create_task(getter.c.get(f"{P}/a", timeout=T))
        # (the client ignores an ERROR answer to get(): watch for one, not to wait 5 s for nothing)
        await getter.wait_for(lambda: get.done() or getter.errors(f"{P}/a"), T, "the answer to get()")
        if not get.done():
            get.cancel()
            raise AssertionError(f"get() on worker {wg} right after the setter (worker {ws}) had its SETs "
                                 f"decided: the router answered {getter.errors(f'{P}/a')}")
        v = get.result()
        assert v == 42 and type(v) is int
        p = await getter.wire_get(f"{P}/b/c")
        assert (p["value"], p["revision"], p["writer"]) == (2.5, 1, setter.session), p
        # the wildcard subscription on a third worker
        await watcher.wait_for(lambda: len(watcher.calls("w")) >= 2, T, "the two SETs")
        assert watcher.calls("w") == [(f"{P}/a", 42), (f"{P}/b/c", 2.5)]

        # bundle() (MessagePack): applied on every worker, all of it
        await setter.c.bundle([{"set": [f"{P}/x", 1]}, {"set": [f"{P}/y", 2]},
                               {"emit": [f"{P}/go", {"cue": 1}]}])
        await watcher.wait_for(lambda: len(watcher.calls("w")) >= 5, T, "the bundle")
        assert watcher.calls("w")[2:] == [(f"{P}/x", 1), (f"{P}/y", 2), (f"{P}/go", {"cue": 1})]
        await setter.barrier()
        for address, value in ((f"{P}/x", 1), (f"{P}/y", 2)):
            p = await setter.wire_get(address)
            assert (p["value"], p["revision"]) == (value, 1), p
        # ... and a bad entry: none of it (ERROR 202 naming the bad address)
        await setter.c.bundle([{"set": [f"{P}/x", 99]}, {"set": ["no-slash", 1]}])
        await setter.wait_for(lambda: setter.errors(), T, "the bundle ERROR")
        (err,) = setter.errors()
        assert err["code"] == 202 and err["address"] == "no-slash", err

        # binary bundles with expected revisions, from raw clients on the owner and a replica
        raws = await clients_on_workers(rp, log, (0, wg), prefix="raw")
        print(f"raw bundle clients: {spread((c.name, w) for w, c in raws.items())}")
        for w, raw in sorted(raws.items()):
            mark = len(raw.msgs)
            raw.send_raw(encode_frame(Bundle(messages=[Set(f"{P}/x", 100 + w), Set(f"{P}/y", 200 + w, revision=99)]),
                                      qos=1))
            await raw.wait_for(lambda: any(type(m) in (Error, Ack) for m in raw.msgs[mark:]), T, "reply")
            await raw.barrier()
            replies = [m for m in raw.msgs[mark:] if type(m) in (Error, Ack)]
            assert len(replies) == 1 and type(replies[0]) is Error, f"worker {w}: {replies}"
            assert replies[0].code == 409 and replies[0].address == f"{P}/y", replies[0]
            for address, value in ((f"{P}/x", 1), (f"{P}/y", 2)):   # nothing applied
                p = await raw.get(address)
                assert (p.value, p.revision) == (value, 1), (w, p)
        # the right revisions: applied, both, on every worker
        raw = raws[wg]
        mark = len(raw.msgs)
        raw.send_raw(encode_frame(Bundle(messages=[Set(f"{P}/x", 5, revision=1), Set(f"{P}/y", 6, revision=1)]),
                                  qos=1))
        ack = await raw.wait_for(lambda: [m for m in raw.msgs[mark:] if type(m) in (Error, Ack)], T, "ACK")
        assert type(ack[0]) is Ack and ack[0].revision == 2, ack
        await watcher.wait_for(lambda: len(watcher.calls("w")) >= 7, T, "the conditional bundle")
        await watcher.barrier()
        # the watcher saw nothing of the refused bundles, then both SETs of this one
        assert watcher.calls("w")[5:] == [(f"{P}/x", 5), (f"{P}/y", 6)]
        assert [(m["address"], m["revision"]) for m in watcher.sets()][-2:] == [(f"{P}/x", 2), (f"{P}/y", 2)]
        for address, value in ((f"{P}/x", 5), (f"{P}/y", 6)):
            p = await raw.get(address)
            assert (p.value, p.revision) == (value, 2), p
        assert watcher.errors() == [] and getter.errors() == []
        for c in py.values():
            assert c.alive(), c.msgs[-5:]
    finally:
        await close_all(raws.values())
        for c in py.values():
            await c.close()
