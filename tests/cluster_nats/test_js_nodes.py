"""The real JS client (``@clasp-to/core``) and the real Python client on different nodes
of a two-node cluster: each sees the other's SETs and PUBLISHes in order, with the same
revisions, in both directions."""
from __future__ import annotations

from tests.cluster_nats.nodes import start_node

T = 10.0


async def test_js_and_python_on_different_nodes(nats_server, router_process, js_clients, py_clients):
    a = start_node(router_process, nats_server.url, "a")
    b = start_node(router_process, nats_server.url, "b")
    js = await js_clients(a.url)
    py = await py_clients(b.url)
    await js.cmd("subscribe", label="all", pattern="/jn/**")
    await js.barrier()
    py.subscribe("all", "/jn/**")
    await py.barrier()

    for i in range(1, 11):
        await js.cmd("set", address=f"/jn/js/{i % 3}", value=i)
    await js.cmd("emit", address="/jn/js/event", payload={"n": 11})
    await js.barrier()
    await py.wait_for(lambda: len(py.calls("all")) >= 11, T, "the JS client's 11 frames")
    assert [v for _, v in py.calls("all")] == list(range(1, 11)) + [{"n": 11}]

    for i in range(12, 22):
        await py.c.set(f"/jn/py/{i % 3}", i)
    await py.c.emit("/jn/py/event", {"n": 22})
    await py.barrier()
    await js.wait_for(lambda: len([c for c in js.calls("all") if c[0].startswith("/jn/py/")]) >= 11, T,
                      "the Python client's 11 frames")
    assert [v for addr, v in js.calls("all") if addr.startswith("/jn/py/")] == list(range(12, 22)) + [{"n": 22}]

    # revisions agree: both nodes answer GET alike
    for addr in [f"/jn/js/{k}" for k in range(3)] + [f"/jn/py/{k}" for k in range(3)]:
        got = await py.wire_get(addr)
        assert got is not None
    assert (await py.wire_get("/jn/js/1"))["revision"] == 4      # 1, 4, 7, 10
    assert (await py.wire_get("/jn/py/0"))["revision"] == 4      # 12, 15, 18, 21
