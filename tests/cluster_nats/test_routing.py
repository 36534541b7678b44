"""Two clasp-fast nodes (``--workers 2`` each) joined through one nats-server act as one
router for the real Python client: PUBLISH and SET cross nodes in the publisher's order,
and both nodes agree on each param's revision."""
from __future__ import annotations

from tests.cluster_nats.nodes import start_node
from tests.interop.conftest import PyClient

T = 5.0


async def test_publish_and_set_cross_nodes_in_order(nats_server, router_process):
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    pub, sub = await PyClient(a.url, "pub").connect(), await PyClient(b.url, "sub").connect()
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
