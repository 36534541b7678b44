"""What the bucket's compare-and-set makes consistent across nodes (docs/cluster.md "What is
consistent"): conditional SETs racing on two nodes have one winner per revision, a lock
taken on one node holds on the other, and an acknowledged SET survives its node's death.
Real clasp-fast nodes (``--workers 2``) on one nats-server, real clients (the project's
own ``clasp_fast.client``, which reports ACKs, 409 and 423) on loopback sockets."""
from __future__ import annotations

import asyncio

from clasp_fast.client import Clasp, Conflict, Locked
from tests.cluster_nats.nodes import start_node
from tests.interop.conftest import PyClient
from tests.support import RouterProcess

T = 10.0


async def test_conditional_sets_racing_on_two_nodes(nats_server, router_process):
    """Each round, a client on node a and a client on node b both SET one address expecting
    its current revision, at the same moment: exactly one wins (the next revision), the other
    gets 409.  The winners' revisions are contiguous, and both nodes read the same state."""
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    rounds = 30
    async with await Clasp.connect(a.url, name="on-a") as ca, await Clasp.connect(b.url, name="on-b") as cb:
        current = await ca.set("/race/x", 0, confirm=True)
        assert current == 1
        winners, wins = [], {"a": 0, "b": 0}
        for i in range(rounds):
            results = await asyncio.gather(ca.set("/race/x", f"a{i}", revision=current, timeout=T),
                                           cb.set("/race/x", f"b{i}", revision=current, timeout=T),
                                           return_exceptions=True)
            won = [(name, r) for name, r in zip("ab", results) if isinstance(r, int)]
            lost = [r for r in results if not isinstance(r, int)]
            assert len(won) == 1 and len(lost) == 1, (i, results)
            assert isinstance(lost[0], Conflict) and lost[0].code == 409, (i, results)
            name, revision = won[0]
            assert revision == current + 1, (i, results)
            winners.append((name, revision))
            wins[name] += 1
            current = revision
        assert [r for _, r in winners] == list(range(2, rounds + 2))
        last_value = f"{winners[-1][0]}{rounds - 1}"
        for client in (ca, cb):
            await client.ping()
            param = await client.param("/race/x")
            assert (param.value, param.revision) == (last_value, rounds + 1)
    print(f"wins: {wins}")


async def test_a_lock_on_one_node_refuses_a_set_from_the_other(nats_server, router_process):
    """A lock taken on node a: a SET from node b, sent right after the lock's ACK, is
    refused with 423 (node b decides it against the bucket, not against its own replica);
    once the holder unlocks, node b's SET takes the next revision."""
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    async with await Clasp.connect(a.url, name="holder") as holder, \
            await Clasp.connect(b.url, name="other") as other:
        for round_ in range(5):
            address = f"/lk/{round_}"
            assert await holder.lock(address, 1) == 1
            try:
                await other.set(address, 2, confirm=True, timeout=T)
            except Locked as exc:
                assert exc.code == 423
            else:
                raise AssertionError(f"{address}: a SET from the other node passed the lock")
            assert await holder.unlock(address, 3) == 2
            assert await other.set(address, 4, confirm=True, timeout=T) == 3


async def test_an_acked_set_survives_its_node_killed(nats_server, router_process):
    """SETs acknowledged by node a (QoS 1) are in the bucket before their ACK: node a is
    SIGKILLed (supervisor and workers) right after, and node b has every one of them."""
    def start_unchecked(*args, **kw):           # killed on purpose: no exit-code check
        return RouterProcess(*args, **kw).start()

    a = start_node(start_unchecked, nats_server.url, "a")
    try:
        b = start_node(router_process, nats_server.url, "b")
        async with await Clasp.connect(a.url, name="writer") as writer:
            revisions = await asyncio.gather(*[writer.set(f"/kill/{i}", i, confirm=True, timeout=T)
                                               for i in range(50)])
            await writer.set("/kill/0", "again", confirm=True, timeout=T)
            a.kill_group()
        reader = await PyClient(b.url, "reader").connect()
        try:
            await reader.barrier()
            for i, revision in enumerate(revisions):
                got = await reader.wire_get(f"/kill/{i}")
                want = ("again", 2) if i == 0 else (i, revision)
                assert got is not None and (got["value"], got["revision"]) == want, (i, got)
        finally:
            await reader.close()
    finally:
        a.kill_group()


async def test_ping_is_a_read_barrier_across_nodes(nats_server, router_process):
    """A client on node b that PINGs after a client on node a got its ACK reads that write
    (GET), however soon: its node's PONG waits until the bucket's writes are applied."""
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    async with await Clasp.connect(a.url, name="writer") as writer, \
            await Clasp.connect(b.url, name="reader") as reader:
        for i in range(40):
            revision = await writer.set(f"/turn/{i % 3}", i, confirm=True, timeout=T)
            await reader.ping(timeout=T)
            param = await reader.param(f"/turn/{i % 3}", timeout=T)
            assert (param.value, param.revision) == (i, revision), (i, param)
