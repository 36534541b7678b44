"""Each node subscribes on NATS only to what its clients' patterns need: NATS' own
monitoring (/connz) shows the node's subscriptions and how many messages each got; a
SUBSCRIBE is answered only once NATS has the subscription (a PUBLISH from another node
right after the answer arrives); the subscription goes with the last client pattern."""
from __future__ import annotations

import asyncio

from clasp_fast.protocol import Publish, encode_frame
from tests.cluster_nats.nodes import start_node, two_nodes_two_clients
from tests.interop.conftest import PyClient

T = 10.0


def routing_subs(server, node: str) -> dict[str, int]:
    """The node's NATS subscriptions to CLASP subjects: subject -> messages delivered."""
    conn = server.connection(node)
    assert conn is not None, f"node {node} has no NATS connection"
    return {s["subject"]: s["msgs"] for s in conn.get("subscriptions_list_detail") or []
            if s["subject"] == "clasp" or s["subject"].startswith("clasp.")}


async def until(pred, timeout: float = T, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (got := pred()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return got


async def test_a_node_subscribes_only_to_its_clients_patterns(nats_server, router_process):
    a, b, sub, pub = await two_nodes_two_clients(router_process, nats_server.url, ("sub", "pub"))
    try:
        assert routing_subs(nats_server, "a") == {}         # no client pattern yet: nothing
        sub.subscribe("a", "/a/**")
        await sub.barrier()
        assert set(routing_subs(nats_server, "a")) == {"clasp.a", "clasp.a.>"}
        for i in range(20):
            await pub.c.emit("/a/x", i)
            await pub.c.emit("/b/y", i)
            await pub.c.set(f"/c/{i}", i)
        await pub.barrier()
        await sub.wait_for(lambda: len(sub.calls("a")) >= 20, T, "the 20 events on /a/x")
        subs = routing_subs(nats_server, "a")
        # NATS handed node a the 20 frames of /a/x (possibly batched) and nothing else:
        # no subscription of a's matches /b/y or /c/*
        assert set(subs) == {"clasp.a", "clasp.a.>"} and 1 <= subs["clasp.a.>"] <= 20, subs
        assert subs["clasp.a"] == 0
        # the SETs of /c/* still reach a's replicas (through the bucket)
        for _ in range(100):
            got = await sub.wire_get("/c/19")
            if got is not None:
                break
            await asyncio.sleep(0.05)
        assert got is not None and got["value"] == 19
    finally:
        await sub.close()
        await pub.close()


async def test_subscribe_then_at_once_a_publish_from_another_node(nats_server, router_process):
    """Twenty clients on node a (on both its workers) each subscribe to a pattern new to
    the node; as soon as a SUBSCRIBE is answered (PONG behind it), node b publishes on it:
    every one arrives."""
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    pub = await PyClient(b.url, "pub").connect()
    subs = [await PyClient(a.url, f"s{i}").connect() for i in range(20)]
    try:
        for i, client in enumerate(subs):
            client.subscribe("n", f"/fresh/{i}/*")
            await client.barrier()          # the SUBSCRIBE is answered
            await pub.c.emit(f"/fresh/{i}/e", i + 1)
        await pub.barrier()
        for i, client in enumerate(subs):
            await client.wait_for(lambda c=client: c.calls("n"), T, f"the event on /fresh/{i}/e")
            assert client.calls("n") == [(f"/fresh/{i}/e", i + 1)]
    finally:
        for client in subs + [pub]:
            await client.close()


async def test_unsubscribe_and_disconnect_remove_the_subscription(nats_server, router_process):
    a, b, one, pub = await two_nodes_two_clients(router_process, nats_server.url, ("one", "pub"))
    two = await PyClient(a.url, "two").connect()
    try:
        unsubscribe = one.subscribe("u", "/u/*")
        two.subscribe("u", "/u/*")
        two.subscribe("v", "/v/k")
        await one.barrier()
        await two.barrier()
        assert set(routing_subs(nats_server, "a")) == {"clasp.u.*", "clasp.v.k"}
        unsubscribe()                       # one of two: the subscription stays
        await one.barrier()
        await pub.c.emit("/u/e", 1)
        await two.wait_for(lambda: two.calls("u"), T, "the event on /u/e")
        assert "clasp.u.*" in routing_subs(nats_server, "a")
        await two.close()                   # the last client of both patterns leaves
        await until(lambda: routing_subs(nats_server, "a") == {}, T, "node a to unsubscribe")
    finally:
        await one.close()
        await pub.close()


async def test_order_and_single_copies_across_overlapping_subscriptions(nats_server, router_process):
    """One client subscribes to two patterns (two NATS subscriptions, each served by its own
    nats-py task), another to a pattern both overlap: the frames of one publisher on the
    other node still arrive in its order, each once."""
    a, b, one, pub = await two_nodes_two_clients(router_process, nats_server.url, ("one", "pub"))
    wide = await PyClient(a.url, "wide").connect()
    try:
        one.subscribe("o", "/o/a/*")
        one.subscribe("o", "/o/b/*")
        wide.subscribe("o", "/o/**")
        await one.barrier()
        await wide.barrier()
        assert set(routing_subs(nats_server, "a")) == {"clasp.o.a.*", "clasp.o.b.*", "clasp.o", "clasp.o.>"}
        frames = [encode_frame(Publish(f"/o/{'ab'[i % 2]}/x", value=i)) for i in range(1, 201)]
        for frame in frames:                # back to back: node b sends them in few NATS writes
            await pub.send_raw(frame)
        await pub.barrier()
        for client in (one, wide):
            await client.wait_for(lambda c=client: len(c.calls("o")) >= 200, T, "200 events")
            await client.barrier()
            assert [v for _, v in client.calls("o")] == list(range(1, 201))
    finally:
        await one.close()
        await wide.close()
        await pub.close()
