"""Faults: NATS stopped and restarted under two nodes (each keeps serving its own clients,
says so on /readyz, and catches up when NATS returns), and one NATS server of three
killed without a lost acknowledged SET."""
from __future__ import annotations

import asyncio

from tests.cluster_nats.nodes import start_node, two_nodes_two_clients
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
        # each node keeps serving its own clients
        other = await PyClient(a.url, "pa2").connect()
        try:
            other.subscribe("w", "/f/**")
            await other.barrier()
            await pa.c.set("/f/during", 2)
            await other.wait_for(lambda: ("/f/during", 2) in other.calls("w"), T, "a SET on the same node")
        finally:
            await other.close()

        nats_server.start()
        await all_readyz(a, 200, timeout=20)
        await all_readyz(b, 200, timeout=20)
        # what a decided while NATS was away reaches b (its queue, or the bucket re-read)
        await pb.wait_for(lambda: ("/f/during", 2) in pb.calls("w"), 20, "the SET made during the outage")
        got = await pb.wire_get("/f/during")
        assert got is not None and (got["value"], got["revision"]) == (2, 1)
        await pa.c.set("/f/after", 3)
        await pb.wait_for(lambda: ("/f/after", 3) in pb.calls("w"), T, "a SET after the outage")
    finally:
        await pa.close()
        await pb.close()


async def test_a_nats_server_of_three_killed(nats_cluster, router_process):
    """Nodes on different servers of the 3-server cluster; the server of one node is
    killed: its node moves to another server, and no acknowledged SET is lost (the
    bucket has 3 replicas): a node started afterwards reads every one of them."""
    urls = [s.url for s in nats_cluster.servers]
    a = start_node(router_process, ",".join(urls), "a")
    b = start_node(router_process, ",".join(reversed(urls)), "b")
    pa, pb = await PyClient(a.url, "pa").connect(), await PyClient(b.url, "pb").connect()
    try:
        pb.subscribe("w", "/k/**")
        await pb.barrier()
        for i in range(1, 21):
            await pa.c.set(f"/k/{i}", i)
        await pa.barrier()
        await pb.wait_for(lambda: len(pb.calls("w")) >= 20, T, "20 SETs from the other node")
        nats_cluster.servers[0].kill()
        for i in range(21, 41):
            await pa.c.set(f"/k/{i}", i)
        await pa.barrier()
        await pb.wait_for(lambda: len(pb.calls("w")) >= 40, 20, "the SETs after the server kill")
        c = start_node(router_process, ",".join(urls[1:]), "c")
        pc = await PyClient(c.url, "pc").connect()
        try:
            for i in range(1, 41):
                got = await pc.wire_get(f"/k/{i}")
                assert got is not None and got["value"] == i, (i, got)
        finally:
            await pc.close()
    finally:
        await pa.close()
        await pb.close()
