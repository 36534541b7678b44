"""Faults: NATS stopped and restarted under two nodes (each keeps serving its own clients'
events and refuses SETs with 503, says so on /readyz, and catches up when NATS returns),
and one NATS server of three killed without a lost acknowledged SET."""
from __future__ import annotations

import asyncio

import pytest

from tests.cluster_nats.nodes import start_node, two_nodes_two_clients
from clasp_fast.client import Clasp, Overloaded
from clasp_fast.cluster.nats.commit import COMMIT_WAIT
from tests.interop.conftest import PyClient

T = 10.0


async def http_get(rp, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(rp.host, rp.port), 5)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def all_readyz(rp, want: int, timeout: float = T) -> str:
    """Polls /readyz (several connections: both workers answer) until every answer is ``want``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answers = [await http_get(rp, "/readyz") for _ in range(6)]
        if all(code == want for code, _ in answers):
            return answers[0][1]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/readyz answered {answers}, wanted {want} from every worker")
        await asyncio.sleep(0.1)


async def test_nats_stopped_and_restarted(nats_server, router_process):
    a, b, pa, pb = await two_nodes_two_clients(router_process, nats_server.url, ("pa", "pb"),
                                               a=("--metrics-enabled",))
    try:
        await all_readyz(a, 200)
        assert "clasp_cluster_nats_up 1.0" in (await http_get(a, "/metrics"))[1]
        pb.subscribe("w", "/f/**")
        await pb.barrier()
        await pa.c.set("/f/before", 1)
        await pb.wait_for(lambda: pb.calls("w"), T, "the SET made before the outage")

        nats_server.stop()
        body = await all_readyz(a, 503)
        assert "NATS unreachable" in body
        assert "clasp_cluster_nats_up 0.0" in (await http_get(a, "/metrics"))[1]
        assert a.wait_for_log("lost NATS", 5), a.log()
        # each node keeps serving its own clients: events flow; a SET is refused with 503
        # after a bounded wait (the bucket must take a SET before anyone hears of it)
        other = await PyClient(a.url, "pa2").connect()
        try:
            other.subscribe("w", "/f/**")
            await other.barrier()
            await pa.c.emit("/f/during", 2)
            await other.wait_for(lambda: ("/f/during", 2) in other.calls("w"), T, "an event on the same node")
            await pa.c.set("/f/refused", 3)
            await pa.wait_for(lambda: pa.errors("/f/refused"), 20, "ERROR 503 for a SET without the bucket")
            assert [e["code"] for e in pa.errors("/f/refused")] == [503]
            assert await pa.wire_get("/f/refused") is None
            await other.barrier()
            assert ("/f/refused", 3) not in other.calls("w")        # nobody heard of the refused SET
        finally:
            await other.close()

        nats_server.start()
        await all_readyz(a, 200, timeout=20)
        await all_readyz(b, 200, timeout=20)
        await pa.c.set("/f/after", 3)
        await pb.wait_for(lambda: ("/f/after", 3) in pb.calls("w"), T, "a SET after the outage")
        got = await pb.wire_get("/f/after")
        assert got is not None and (got["value"], got["revision"]) == (3, 1)
    finally:
        await pa.close()
        await pb.close()


async def test_a_set_the_bucket_did_not_take_fails_in_the_python_client(nats_server, router_process):
    """The node's ERROR 503 for a SET without the bucket (it carries the SET's address) is
    the answer to that SET in the project's own client: ``set(confirm=True)`` raises
    Overloaded after the node's COMMIT_WAIT, instead of waiting for its own timeout (it
    took an addressed 503 for a dropped-messages notice, which answers no request)."""
    a = start_node(router_process, nats_server.url, "a")
    async with await Clasp.connect(a.url, name="writer") as writer:
        assert await writer.set("/f/before", 1, confirm=True, timeout=T) == 1
        nats_server.stop()
        assert a.wait_for_log("lost NATS", 5), a.log()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Overloaded) as refused:
            await writer.set("/f/refused", 2, confirm=True, timeout=COMMIT_WAIT + 20)
        assert loop.time() - started < COMMIT_WAIT + 10
        assert refused.value.address == "/f/refused" and "did not take it" in str(refused.value)


async def set_all(client, values: dict) -> tuple[set, set]:
    """SETs every address with confirm (QoS 1), all at once: (ACKed, refused with 503)."""
    results = await asyncio.gather(*[client.set(address, value, confirm=True, timeout=40)
                                     for address, value in values.items()], return_exceptions=True)
    for r in results:
        assert isinstance(r, (int, Overloaded)), repr(r)
    acked = {address for address, r in zip(values, results) if isinstance(r, int)}
    return acked, set(values) - acked


async def test_a_nats_server_of_three_killed(nats_cluster, router_process):
    """Nodes on different servers of the 3-server cluster; the server of one node is killed
    while its client writes: its node moves to another server, and no acknowledged SET is
    lost (a SET is ACKed only once the bucket, 3 replicas, took it): the other node and a
    node started afterwards read every acknowledged one.  A SET the bucket could not take
    during the failover is refused (ERROR 503), never ACKed."""
    urls = [s.url for s in nats_cluster.servers]
    a = start_node(router_process, ",".join(urls), "a")
    b = start_node(router_process, ",".join(reversed(urls)), "b")
    async with await Clasp.connect(a.url, name="writer") as writer:
        acked, refused = await set_all(writer, {f"/k/{i}": i for i in range(1, 21)})
        assert not refused
        victim = next(s for s in nats_cluster.servers if s.connection("a"))    # node a's server
        victim.kill()
        later, refused = await set_all(writer, {f"/k/{i}": i for i in range(21, 41)})
        acked |= later
        print(f"during the failover: {len(later)} ACKed, {len(refused)} refused with 503")
    survivors = ",".join(s.url for s in nats_cluster.servers if s is not victim)
    # (a node whose own server was the victim answers PING without the cluster barrier
    # until it is back on NATS: docs/cluster.md "NATS unreachable")
    await all_readyz(b, 200, timeout=20)
    for name, rp in (("b", b), ("c", start_node(router_process, survivors, "c"))):
        reader = await PyClient(rp.url, "reader").connect()
        try:
            await reader.barrier()
            for address in sorted(acked):
                got = await reader.wire_get(address)
                assert got is not None and got["value"] == int(address[3:]), \
                    (name, address, got, rp.log()[-4000:])
        finally:
            await reader.close()
