"""nginx and HAProxy in front of clasp-fast, configured from the files in examples/.

Each proxy terminates TLS with a test-made certificate (wss:// to the proxy, ws:// to
clasp-fast ``--workers 2`` on loopback), the real Python client (``clasp-to``) and the real
JS client (``@clasp-to/core`` under Node) connect through it, and a SET by one reaches a
subscriber on the other.  Per-IP limits are checked through each proxy with two client
source addresses (127.0.0.2, 127.0.0.3): with ``--trusted-proxies`` the router counts the
clients, not the proxy; without it, every client is the proxy's 127.0.0.1 (the trap
docs/deploy.md warns about).  The PROXY protocol v2 variant of examples/haproxy.cfg runs
(and v1, ``send-proxy``) once clasp-fast has ``--proxy-protocol``.
"""
from __future__ import annotations

import asyncio
import ssl
import subprocess
import urllib.request
from contextlib import AsyncExitStack

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.deploy import proxies
from tests.deploy.support import require_binary, set_and_see

PROXIES = ["nginx", "haproxy"]


def start_proxy(kind: str, tmp_path, router_port: int, tls, proxy_protocol: str = "",
                upstream_tls: bool = False):
    if kind == "nginx":
        return proxies.nginx(tmp_path, router_port, tls.cert, tls.key).start()
    return proxies.haproxy(tmp_path, router_port, tls.pem, proxy_protocol,
                           tls.ca if upstream_tls else None).start()


@pytest.fixture
def proxy(request, tmp_path, trust_test_ca):
    """``proxy(kind, router, proxy_protocol="")`` starts nginx or HAProxy in front of
    ``router`` (HAProxy with PROXY protocol "v1" or "v2" if asked); returns its ``wss://``
    URL.  Stopped at teardown."""
    started = []

    def start(kind: str, router, proxy_protocol: str = "", upstream_tls: bool = False) -> str:
        d = tmp_path / f"{kind}{len(started)}"
        d.mkdir()
        svc = start_proxy(kind, d, router.port, trust_test_ca, proxy_protocol, upstream_tls)
        started.append(svc)
        return f"wss://127.0.0.1:{svc.port}"

    yield start
    for svc in started:
        svc.stop()


def client_tls() -> ssl.SSLContext:
    return ssl.create_default_context()      # trusts the test CA through SSL_CERT_FILE


async def open_from(url: str, source: str):
    """A WebSocket (subprotocol clasp) from the client source address ``source``; returns the
    connection, or ``(status, body)`` when the upgrade was refused."""
    try:
        return await connect(url, subprotocols=["clasp"], ssl=client_tls(), open_timeout=5,
                             close_timeout=2, ping_interval=None, compression=None,
                             local_addr=(source, 0))
    except websockets.InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode(errors="replace")


async def assert_per_ip_limit(url: str, router, stack: AsyncExitStack) -> None:
    """With ``--max-connections-per-ip 2``: two clients from each of two addresses get in,
    a third from the first address is refused naming that address (not the proxy's)."""
    for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"):
        ws = await open_from(url, source)
        assert not isinstance(ws, tuple), f"a client from {source} was refused: {ws}\n{router.log()}"
        stack.push_async_callback(ws.close)
    refused = await open_from(url, "127.0.0.2")
    assert isinstance(refused, tuple), "a third client from 127.0.0.2 got in past the per-IP limit of 2"
    status, body = refused
    assert status == 503 and "max_connections_per_ip" in body and "127.0.0.2" in body, refused
    assert router.wait_for_log("refused connection from 127.0.0.2"), router.log()


@pytest.mark.parametrize("kind", PROXIES)
async def test_real_clients_through_proxy(kind, router_process, proxy, py_clients, js_clients):
    router = router_process("--trusted-proxies", "127.0.0.1", workers=2)
    url = proxy(kind, router)
    await set_and_see(py_clients, js_clients, url)


@pytest.mark.parametrize("kind", PROXIES)
async def test_probes_through_proxy(kind, router_process, proxy, trust_test_ca):
    """A load balancer's GET /healthz and /readyz reach clasp-fast through the proxy."""
    router = router_process("--trusted-proxies", "127.0.0.1", workers=2)
    url = proxy(kind, router).replace("wss://", "https://")

    def get(path):
        with urllib.request.urlopen(url + path, context=client_tls(), timeout=5) as r:
            return r.status, r.read()

    for path in ("/healthz", "/readyz"):
        assert await asyncio.to_thread(get, path) == (200, b"ok\n")


@pytest.mark.parametrize("kind", PROXIES)
async def test_per_ip_limit_counts_forwarded_clients(kind, router_process, proxy):
    router = router_process("--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "2",
                            workers=2)
    url = proxy(kind, router)
    async with AsyncExitStack() as stack:
        await assert_per_ip_limit(url, router, stack)


@pytest.mark.parametrize("kind", PROXIES)
async def test_untrusted_proxy_counts_every_client_as_the_proxy(kind, router_process, proxy):
    """The trap: without --trusted-proxies every client is the proxy's 127.0.0.1, so the
    per-IP limit (here 2, by default 100) caps the whole service."""
    router = router_process("--max-connections-per-ip", "2", workers=2)
    url = proxy(kind, router)
    async with AsyncExitStack() as stack:
        for source in ("127.0.0.2", "127.0.0.3"):
            ws = await open_from(url, source)
            assert not isinstance(ws, tuple), ws
            stack.push_async_callback(ws.close)
        refused = await open_from(url, "127.0.0.4")
        assert isinstance(refused, tuple), "a third client got in: the proxy's IP was not the one counted"
        status, body = refused
        assert status == 503 and "127.0.0.1" in body, refused


@pytest.mark.parametrize("version", ["v2", "v1"])
async def test_haproxy_proxy_protocol(version, router_process, proxy, py_clients, js_clients):
    """examples/haproxy.cfg's send-proxy-v2 variant (and the same with v1's ``send-proxy``):
    the router takes each client's address from the PROXY header (trusted from 127.0.0.1
    only), and the real clients work."""
    router = router_process("--proxy-protocol", "--trusted-proxies", "127.0.0.1",
                            "--max-connections-per-ip", "2", workers=2)
    url = proxy("haproxy", router, proxy_protocol=version)
    await set_and_see(py_clients, js_clients, url)
    async with AsyncExitStack() as stack:
        await assert_per_ip_limit(url, router, stack)


async def test_haproxy_proxy_protocol_to_wss_clasp_fast(router_process, proxy, py_clients,
                                                      js_clients, trust_test_ca):
    """HAProxy speaking TLS to clasp-fast too (``ssl verify required`` on the server line):
    its PROXY v2 header goes before that TLS handshake, health checks included
    (``check-ssl``), and the router still counts each client under its own address."""
    router = router_process("--tls-cert", str(trust_test_ca.cert), "--tls-key", str(trust_test_ca.key),
                            "--proxy-protocol", "--trusted-proxies", "127.0.0.1",
                            "--max-connections-per-ip", "2", workers=2)
    url = proxy("haproxy", router, proxy_protocol="v2", upstream_tls=True)
    await set_and_see(py_clients, js_clients, url)
    async with AsyncExitStack() as stack:
        await assert_per_ip_limit(url, router, stack)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_haproxy_proxy_protocol_variant_is_a_valid_config(version, tmp_path, tls):
    """The PROXY-protocol variant of examples/haproxy.cfg passes ``haproxy -c`` (it runs
    for real in test_haproxy_proxy_protocol once clasp-fast has --proxy-protocol)."""
    conf = proxies.haproxy_config(tmp_path, 8443, 7330, tls.pem, proxy_protocol=version)
    text = conf.read_text()
    assert ("send-proxy-v2" in text) == (version == "v2") and " send-proxy" in text
    assert "option forwardfor" in text      # kept: it names the same client as the PROXY header
    check = subprocess.run([require_binary("haproxy"), "-c", "-f", str(conf)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
