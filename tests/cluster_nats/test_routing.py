"""Two clasp-fast nodes (``--workers 2`` each) joined through one nats-server act as one
router for the real Python client: PUBLISH and SET cross nodes in the publisher's order,
and both nodes agree on each param's revision."""
from __future__ import annotations

import asyncio

from tests.cluster_nats.nodes import start_node, two_nodes_two_clients
from tests.interop.conftest import PyClient

T = 5.0


async def test_publish_and_set_cross_nodes_in_order(nats_server, router_process):
    a, b, pub, sub = await two_nodes_two_clients(router_process, nats_server.url, ("pub", "sub"))
    try:
        sub.subscribe("all", "/x/**")
        await sub.barrier()
        for i in range(1, 51):      # (the client sends emit(address, 0) without a value)
            if i % 2:
                await pub.c.set(f"/x/p{i % 5}", i)
            else:
                await pub.c.emit(f"/x/e{i % 5}", i)
        await pub.barrier()
        await sub.wait_for(lambda: len(sub.calls("all")) >= 50, T, "50 frames from the other node")
        assert [v for _, v in sub.calls("all")] == list(range(1, 51))
        for i in range(5):
            mine, theirs = await pub.wire_get(f"/x/p{i}"), await sub.wire_get(f"/x/p{i}")
            assert mine is not None and theirs is not None
            assert (theirs["value"], theirs["revision"]) == (mine["value"], mine["revision"]), (mine, theirs)
    finally:
        await pub.close()
        await sub.close()


async def test_a_node_receives_only_from_other_nodes(nats_server, router_process):
    """No echo: a subscriber on the publisher's own node gets each frame once."""
    a = start_node(router_process, nats_server.url, "a")
    start_node(router_process, nats_server.url, "b")
    pub, sub = await PyClient(a.url, "pub").connect(), await PyClient(a.url, "sub").connect()
    try:
        sub.subscribe("all", "/y/*")
        await sub.barrier()
        for i in range(1, 11):
            await pub.c.emit("/y/e", i)
        await pub.barrier()
        await sub.wait_for(lambda: len(sub.calls("all")) >= 10, T, "10 events")
        await sub.barrier()
        assert [v for _, v in sub.calls("all")] == list(range(1, 11))
    finally:
        await pub.close()
        await sub.close()


async def test_a_restarted_node_catches_up_from_the_bucket(nats_server, router_process):
    """Node b is stopped; a keeps writing; b restarted has a's params (revisions too)
    before its clients read, and a new node c that never ran has them as well."""
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    writer = await PyClient(a.url, "writer").connect()
    try:
        await writer.c.set("/s/one", 1)
        await writer.barrier()
        assert b.stop() == 0
        await writer.c.set("/s/one", 2)
        await writer.c.set("/s/two", "zwei")
        await writer.barrier()
        expected = {addr: await writer.wire_get(addr) for addr in ("/s/one", "/s/two")}
        b2 = start_node(router_process, nats_server.url, "b")
        c = start_node(router_process, nats_server.url, "c")
        for rp in (b2, c):
            reader = await PyClient(rp.url, "reader").connect()
            try:
                for addr, want in expected.items():
                    got = await reader.wire_get(addr)
                    assert got is not None, f"{addr} missing on the restarted node"
                    assert (got["value"], got["revision"]) == (want["value"], want["revision"])
            finally:
                await reader.close()
    finally:
        await writer.close()


async def write_until_accepted(client: PyClient, address: str, value, attempts: int = 100) -> int:
    """SETs ``address`` until the router stops answering 423 (a lock freed elsewhere reaches
    this node a moment later); returns the number of refusals."""
    refused = 0
    for _ in range(attempts):
        n = len(client.errors(address))
        await client.c.set(address, value)
        await client.barrier()
        if len(client.errors(address)) == n:
            return refused
        refused += 1
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} still refused after {attempts} SETs: {client.errors(address)[-1:]}")


async def test_a_lock_crosses_nodes_and_is_freed_when_its_holder_leaves(nats_server, router_process):
    """A lock taken on node a holds on node b (423), and when the holder disconnects, node b
    frees it too (R_HOLDER crosses like a SET), and so does the bucket (a node started
    afterwards can write)."""
    from clasp_fast.protocol import Set, encode_frame
    a, b, holder, other = await two_nodes_two_clients(router_process, nats_server.url, ("holder", "other"))
    try:
        other.subscribe("x", "/lk/x")
        await other.barrier()
        await holder.send_raw(encode_frame(Set("/lk/x", 1, lock=True)))
        await other.wait_for(lambda: other.calls("x"), T, "the locking SET on the other node")
        await other.c.set("/lk/x", 2)
        await other.barrier()
        assert [e["code"] for e in other.errors("/lk/x")] == [423]
        await holder.close()
        # a node that starts now learns of the release from the bucket
        c = start_node(router_process, nats_server.url, "c")
        late = await PyClient(c.url, "late").connect()
        try:
            await write_until_accepted(late, "/lk/x", 5)
            got = await late.wire_get("/lk/x")
            assert (got["value"], got["writer"]) == (5, late.session), got
        finally:
            await late.close()
        # and node b, which had the lock live, has freed it too
        await other.wait_for(lambda: ("/lk/x", 5) in other.calls("x"), T, "the late node's SET")
        assert await write_until_accepted(other, "/lk/x", 7) == 0
        got = await other.wire_get("/lk/x")
        assert (got["value"], got["writer"]) == (7, other.session), got
    finally:
        await other.close()
