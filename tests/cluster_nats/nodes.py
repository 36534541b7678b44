"""clasp-fast nodes of one cluster for the tests: ``--workers 2`` each (by default), on
their own loopback ports, joined through the given NATS URL(s).

``Nodes`` is what the interop suites get instead of one router when
``CLASP_FAST_TEST_NODES=2``: its ``url`` names the nodes in turn, so the clients a test
opens one after the other are spread over the nodes.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from pathlib import Path

from tests.support import RouterProcess, router_factory


def start_node(start, nats_url: str, name: str, workers: int = 2, *args: str) -> RouterProcess:
    """``start`` is a ``router_factory`` starter (stopped and checked at teardown)."""
    rp = start("--cluster-nats", nats_url, "--cluster-node", name, *args, workers=workers)
    assert rp.wait_for_log(f"node {name} caught up", 15), rp.log()
    return rp


def nodes_wanted() -> int:
    """``CLASP_FAST_TEST_NODES``: 0 (unset) = the suites run against one router."""
    return int(os.environ.get("CLASP_FAST_TEST_NODES", "0") or 0)


class Nodes:
    """Several nodes that act as one router; ``url`` takes them in turn."""

    def __init__(self, nodes: list[RouterProcess]):
        self.nodes = nodes
        self._next = itertools.cycle(nodes)

    @property
    def url(self) -> str:
        return next(self._next).url

    def log(self) -> str:
        return "\n".join(f"--- node {i}\n{n.log()}" for i, n in enumerate(self.nodes))


@contextlib.contextmanager
def nodes_factory(count: int, workers: int):
    """Yields ``start(*cli_args)`` that starts ``count`` nodes on a fresh nats-server each
    time and returns them as ``Nodes``; everything is stopped at the end."""
    from bench.nats_servers import NatsServer
    servers = []
    with tempfile.TemporaryDirectory(prefix="clasp-nats-") as tmp, router_factory(workers=workers) as start:
        def start_nodes(*args: str) -> Nodes:
            server = NatsServer(Path(tmp), f"s{len(servers)}").start()
            servers.append(server)
            return Nodes([start_node(start, server.url, f"n{i}", workers, *args) for i in range(count)])
        try:
            yield start_nodes
        finally:
            pass
    for server in servers:
        server.stop()


async def two_nodes_two_clients(start, nats_url: str, names=("a", "b"), **node_args):
    """Nodes ``a`` and ``b`` and one real Python client on each: (a, b, client on a, client
    on b).  ``node_args``: extra CLI arguments per node name, e.g. a=("--metrics-enabled",)."""
    from tests.interop.conftest import PyClient
    a = start_node(start, nats_url, "a", 2, *node_args.get("a", ()))
    b = start_node(start, nats_url, "b", 2, *node_args.get("b", ()))
    return a, b, await PyClient(a.url, names[0]).connect(), await PyClient(b.url, names[1]).connect()
