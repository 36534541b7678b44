"""Fast SETs (docs/cluster.md "Fast SETs"): a node whose write of a param was the bucket's
last sends that param's plain fire-and-forget SETs at once, to its own subscribers and to
the other nodes', and writes the newest state to the bucket behind them.  Real clasp-fast
nodes (``--workers 2``) on one nats-server, the project's own client on loopback sockets;
the bucket's stream is read with nats-py to count its writes."""
from __future__ import annotations

import asyncio

import nats

from clasp_fast.client import Clasp
from tests.cluster_nats.nodes import start_node
from tests.cluster_nats.test_faults import http_get

T = 10.0
STREAM = "KV_clasp-state"


async def bucket_writes(nats_url: str) -> int:
    """How many writes the bucket's stream has taken so far."""
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info(STREAM)).state.last_seq
    finally:
        await nc.close()


def metric(text: str, name: str) -> float:
    """One sample of a Prometheus text exposition (``name`` with its labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


async def until(predicate, what: str, timeout: float = T) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def test_fast_sets_cross_nodes_in_order_and_the_bucket_takes_the_newest(nats_server, router_process):
    """A writer on node a SETs one address again and again, each time waiting until the
    subscriber on node b has it: b gets every value in order with contiguous revisions,
    the SETs do not each wait for a bucket write (the bucket takes far fewer writes than
    SETs), and once the writer's PING is answered the bucket has the last value: a node
    started afterwards reads it.  /metrics counts node a's bucket writes by path."""
    a = start_node(router_process, nats_server.url, "a", 2, "--metrics-enabled")
    b = start_node(router_process, nats_server.url, "b")
    n = 200
    got: list = []
    async with await Clasp.connect(a.url, name="writer") as writer, \
            await Clasp.connect(b.url, name="reader") as reader:
        reader.subscribe("/fs/**", lambda value, address: got.append(value))
        await reader.ping()
        await writer.set("/fs/x", 0, confirm=True)          # the first write: through the bucket
        await until(lambda: got == [0], "the first value on node b")
        before = await bucket_writes(nats_server.url)
        for i in range(1, n + 1):
            await writer.set("/fs/x", i)
            await until(lambda: len(got) > i, f"value {i} on node b")
        await writer.ping()                                 # the node's fast SETs are in the bucket
        writes = await bucket_writes(nats_server.url) - before
        assert got == list(range(n + 1))
        param = await reader.param("/fs/x")
        assert (param.value, param.revision) == (n, n + 1)
    print(f"{n} fast SETs, {writes} bucket writes")
    assert 1 <= writes < n / 2
    text = (await http_get(a, "/metrics"))[1]
    assert metric(text, 'clasp_cluster_bucket_writes_total{path="decided"}') == 1     # the first SET
    assert metric(text, 'clasp_cluster_bucket_writes_total{path="fast"}') == writes
    assert metric(text, "clasp_cluster_fast_refused_total") == 0
    c = start_node(router_process, nats_server.url, "c")
    async with await Clasp.connect(c.url, name="late") as late:
        param = await late.param("/fs/x")
        assert (param.value, param.revision) == (n, n + 1)


async def test_a_set_on_another_node_after_the_writers_ping_comes_after(nats_server, router_process):
    """Fast SETs on node a, then the writer's PING; then a SET on node b, whose client does
    not subscribe (node b learns of the param from the bucket only): it takes the next
    revision, on every node."""
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    async with await Clasp.connect(a.url, name="writer") as writer, \
            await Clasp.connect(b.url, name="other") as other:
        await writer.set("/fo/x", 0, confirm=True)
        for i in range(1, 51):
            await writer.set("/fo/x", i)
        await writer.ping()
        assert await other.set("/fo/x", "b", confirm=True) == 52
        for client in (writer, other):
            await client.ping()
            param = await client.param("/fo/x")
            assert (param.value, param.revision) == ("b", 52)


async def test_fast_writers_on_two_nodes_at_once_end_on_one_state(nats_server, router_process):
    """Writers on two nodes SET one address as fast as they can at the same time, each
    having written it before (so each may take the fast path): whatever the interleaving,
    both nodes and a node started afterwards end on the same value and revision, and it is
    the last value of one of the two writers."""
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    n = 300
    async with await Clasp.connect(a.url, name="wa") as wa, await Clasp.connect(b.url, name="wb") as wb:
        await wa.set("/fw/x", "a-start", confirm=True)

        async def burst(client, name):
            for i in range(n):
                await client.set("/fw/x", f"{name}{i}")
                if i % 20 == 0:
                    await asyncio.sleep(0)
            await client.ping()

        await asyncio.gather(burst(wa, "a"), burst(wb, "b"))
        await wa.ping()
        await wb.ping()
        await asyncio.sleep(0.5)        # a restate of a refused write (both orders) settles
        states = []
        for client in (wa, wb):
            await client.ping()
            param = await client.param("/fw/x")
            states.append((param.value, param.revision))
    c = start_node(router_process, nats_server.url, "c")
    async with await Clasp.connect(c.url, name="late") as late:
        param = await late.param("/fw/x")
        states.append((param.value, param.revision))
    print(f"end states: {states}")
    assert states[0] == states[1] == states[2]
    assert states[0][0] in (f"a{n - 1}", f"b{n - 1}")
