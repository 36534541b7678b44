"""A dead node's locks expire: node a's client locks a param; node a is killed (SIGKILL to
every process of it); after ``cluster.node_timeout`` node b frees the lock (its client's
SET, refused 423 before, is accepted), and so does the bucket (a node started afterwards
does not see the lock)."""
from __future__ import annotations

from clasp_fast.protocol import Set, encode_frame
from tests.cluster_nats.nodes import start_node
from tests.cluster_nats.test_routing import write_until_accepted
from tests.interop.conftest import PyClient
from tests.support import RouterProcess

T = 10.0
TIMEOUT = ("--cluster-node-timeout", "1")


async def test_a_dead_nodes_locks_expire(nats_server, router_process):
    killed = []

    def start_unmanaged(*args, workers):       # killed by the test, so not the factory's
        rp = RouterProcess(*args, workers=workers).start()
        killed.append(rp)
        return rp

    a = start_node(start_unmanaged, nats_server.url, "a", 2, *TIMEOUT)
    b = start_node(router_process, nats_server.url, "b", 2, *TIMEOUT)
    holder, other = await PyClient(a.url, "holder").connect(), await PyClient(b.url, "other").connect()
    try:
        other.subscribe("x", "/dl/x")
        await other.barrier()
        await holder.send_raw(encode_frame(Set("/dl/x", 1, lock=True)))
        await other.wait_for(lambda: other.calls("x"), T, "the locking SET from node a")
        assert holder.session in (await other.wire_get("/dl/x") or {}).get("writer", ""), "lock holder"
        await other.c.set("/dl/x", 2)
        await other.barrier()
        assert [e["code"] for e in other.errors("/dl/x")] == [423]

        a.kill_group()                      # the whole node dies: nobody there frees the lock
        assert b.wait_for_log("(tag ", 15) and "freed 1 lock" in b.log(), b.log()
        # a node started now reads the bucket, which b rewrote without the holder
        c = start_node(router_process, nats_server.url, "c", 2, *TIMEOUT)
        late = await PyClient(c.url, "late").connect()
        try:
            assert await write_until_accepted(late, "/dl/x", 5, attempts=1) == 0
        finally:
            await late.close()
        assert await write_until_accepted(other, "/dl/x", 7) == 0
        got = await other.wire_get("/dl/x")
        assert (got["value"], got["writer"]) == (7, other.session), got
    finally:
        await other.close()
        for rp in killed:
            rp.kill_group()
