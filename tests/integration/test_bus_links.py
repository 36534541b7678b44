"""docs/operations.md "Bus links": no client input breaks the bus between workers (errors that
echo huge input are clipped, so every record fits), and a worker whose bus link is lost anyway
is replaced by the supervisor instead of staying half-alive."""
from __future__ import annotations

import asyncio
import os
import signal

from clasp_fast.protocol import (Ack, Bundle, Error, Get, Publish, Query, Set, Snapshot, Subscribe,
                                 Unsubscribe)

from tests.integration.workers_support import (ConnLog, clients_on_workers, close_all, start_cluster,
                                               wait_worker_pids)
from tests.support import wait_log_count

# the longest address a 65,536-byte frame carries with a small value (header, type, flags, u16
# length, value, revision)
LONG = "/" + "a" * 65_400
ADDR_40K = "/" + "b" * 40_000
VALUE_60K = "v" * 64_000


async def both_workers_serve(rp, log, tag: str) -> None:
    """A client on each worker: each one's QoS-1 SET is ACKed and reaches the other's
    subscription (the owner and the bus link between them work)."""
    c = await clients_on_workers(rp, log, [0, 1], prefix=tag)
    try:
        for w in (0, 1):
            c[w].send(Subscribe(1, f"/{tag}/**"))
            await c[w].barrier()
        for src, dst in ((1, 0), (0, 1)):
            addr = f"/{tag}/from{src}"
            await c[src].request(Set(addr, src), lambda m: type(m) is Ack and m.address == addr, qos=1,
                                 what=f"ACK of {addr}")
            await c[dst].wait_for(lambda: any(type(m) is Set and m.address == addr for m in c[dst].msgs),
                                  5.0, f"SET {addr} from worker {src}")
    finally:
        await close_all(c.values())


async def test_maximum_length_input_on_every_message_type_leaves_the_bus_up(router_process):
    rp = start_cluster(router_process, 2)
    log = ConnLog(rp)
    c = await clients_on_workers(rp, log, [1], prefix="fuzz")
    f = c[1]
    try:
        # the case that broke the link: a 409 echoing a 40 KB address, decided on the owner
        await f.request(Set(ADDR_40K, 1), lambda m: type(m) is Ack, qos=1, what="ACK of the 40 KB SET")
        err = await f.request(Set(ADDR_40K, 2, revision=0), lambda m: type(m) is Error, qos=1,
                              what="ERROR 409")
        assert err.code == 409 and err.address.endswith("...") and len(err.address) <= 1024
        for msg, qos in [
            (Set(LONG, 1), 1), (Set("/big/value", VALUE_60K), 1), (Set(LONG, 1, lock=True), 1),
            (Publish(LONG, value=1), 1), (Publish("/big/ev", value=VALUE_60K), 1),
            (Subscribe(7, LONG), 1), (Unsubscribe(7), 0), (Subscribe(8, "/" + "*/" * 20_000 + "x"), 1),
            (Get(LONG), 0), (Get("/" + "c" * 65_000), 0), (Query("/" + "q" * 65_000), 0),
            (Bundle([Set(ADDR_40K, 3, revision=0), Set("/ok", 1)]), 1),
            (Bundle([Set("/" + "d" * 20_000 + str(i), i) for i in range(3)]), 1),
        ]:
            f.send(msg, qos)
            await f.barrier(10.0)
        assert not f.closed
        assert all(len(e.message) <= 2048 for e in f.errors())
        await both_workers_serve(rp, log, "after")
        assert "lost its link" not in rp.log()
    finally:
        await close_all([f])


async def test_a_worker_that_loses_its_bus_link_is_replaced_and_serves_again(router_process):
    rp = router_process("--log-level", "debug", workers=2, env={"CLASP_FAST_DEBUG_HOOKS": "1"})
    log = ConnLog(rp)
    pids = await wait_worker_pids(rp, 2)
    os.kill(pids[1], signal.SIGUSR2)            # worker 1 aborts its bus link to the owner
    await wait_log_count(rp, "lost its link to worker", 1, timeout=5.0)
    # LINK_GRACE (10 s) later it exits, and the supervisor starts a new worker 1
    await wait_log_count(rp, "worker 1 restarted and ready", 1, timeout=25.0)
    assert "exiting so that the supervisor restarts it" in rp.log()
    new = await wait_worker_pids(rp, 2, exclude=[pids[1]])
    assert new[0] == pids[0]
    await both_workers_serve(rp, log, "relinked")


async def test_a_publish_with_qos_confirm_is_acked_on_every_worker_and_crosses_them(router_process):
    from clasp_fast.protocol import SignalType
    rp = start_cluster(router_process, 2)
    log = ConnLog(rp)
    c = await clients_on_workers(rp, log, [0, 1], prefix="pub")
    try:
        for w in (0, 1):
            c[w].send(Subscribe(1, "/emit/**"))
            await c[w].barrier()
        for src, dst in ((1, 0), (0, 1)):
            addr = f"/emit/from{src}"
            ack = await c[src].request(Publish(addr, signal=SignalType.EVENT, value=src),
                                       lambda m: type(m) is Ack, qos=1, what=f"ACK of PUBLISH {addr}")
            assert ack.address == addr and ack.revision is None
            await c[dst].wait_for(lambda: any(type(m) is Publish and m.address == addr
                                              for m in c[dst].msgs), 5.0, f"PUBLISH {addr}")
    finally:
        await close_all(c.values())
