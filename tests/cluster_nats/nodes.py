"""clasp-fast nodes of one cluster for the tests: ``--workers 2`` each, on their own
loopback ports, joined through the given NATS URL(s)."""
from __future__ import annotations

from tests.support import RouterProcess


def start_node(start, nats_url: str, name: str, workers: int = 2) -> RouterProcess:
    """``start`` is the ``router_process`` factory (stopped and checked at teardown)."""
    rp = start("--cluster-nats", nats_url, "--cluster-node", name, workers=workers)
    assert rp.wait_for_log(f"node {name} joined NATS", 10), rp.log()
    return rp
