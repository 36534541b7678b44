"""wss:// (issue 11, TLS): the real clients over TLS with a test-made CA, with one and two
workers; HTTP probes over TLS; client certificates; SIGHUP certificate reload while a
client stays connected; clear start-up errors for bad certificate files."""
from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys

import pytest
import trustme

from clasp_fast.protocol import Set, Subscribe, encode_frame

from tests.integration.conftest import connect_hello, read_http_response, recv_msg, recv_until
from tests.interop.conftest import node_env, run_node_script  # noqa: F401 (fixture)
from tests.support import REPO, free_port

T = 5.0


class Certs:
    """A test CA and a server certificate for 127.0.0.1/localhost, written as PEM files."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.ca = trustme.CA()
        self.ca_pem = tmp_path / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        self.cert = tmp_path / "server.pem"
        self.key = tmp_path / "server.key"
        self.issue()

    def issue(self, ca=None):
        """(Re)writes the server certificate and key; returns the certificate's PEM bytes."""
        leaf = (ca or self.ca).issue_cert("127.0.0.1", "localhost")
        leaf.private_key_pem.write_to_path(str(self.key))
        with open(self.cert, "wb") as f:
            for blob in leaf.cert_chain_pems:
                f.write(blob.bytes())
        return leaf.cert_chain_pems[0].bytes()

    def args(self, *extra: str) -> tuple:
        return ("--tls-cert", str(self.cert), "--tls-key", str(self.key), *extra)

    def client_context(self, client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_pem))
        ctx.set_alpn_protocols(["http/1.1"])      # as browsers do
        if client_cert:
            self.ca.issue_cert("client.example").configure_cert(ctx)
        return ctx


@pytest.fixture
def certs(tmp_path):
    return Certs(tmp_path)


def wss(rp) -> str:
    return f"wss://127.0.0.1:{rp.port}"


async def served_cert(port: int, ctx: ssl.SSLContext) -> bytes:
    """The DER certificate a new TLS connection to ``port`` is served."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"), T)
    try:
        return writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()


@pytest.mark.parametrize("workers", [1, 2])
async def test_wss_with_websockets_and_the_real_python_client(router_process, certs, monkeypatch,
                                                              workers):
    from clasp.client import Clasp

    rp = router_process(*certs.args(), workers=workers)
    assert "listening on wss://" in rp.log()
    ws, welcome, _ = await connect_hello(wss(rp), ssl=certs.client_context())
    try:
        assert ws.transport.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        assert ws.transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        await ws.send(encode_frame(Subscribe(1, "/tls/**")))
        # the real client trusts the test CA through the default context's CA file
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_pem))
        client = Clasp(wss(rp), name="tls py", reconnect=False)
        await asyncio.wait_for(client.connect(), T)
        try:
            assert client.connected and client.session_id
            await client.set("/tls/py", 42)
            got, _ = await recv_until(ws, lambda m: isinstance(m, Set) and m.address == "/tls/py", T)
            assert got.value == 42
        finally:
            await client.close()
    finally:
        await ws.close()


async def test_wss_with_the_real_js_client_two_workers(router_process, certs, node_env):  # noqa: F811
    rp = router_process(*certs.args(), workers=2)
    for i in range(2):        # two connections: the kernel may pick either worker
        result = await run_node_script("connect.js", f"wss://localhost:{rp.port}", f"/tls/js{i}",
                                       env={"NODE_EXTRA_CA_CERTS": str(certs.ca_pem)})
        assert result.get("connected") is True, result
        assert result["protocol"] == "clasp"
        assert result["echoes"] == [{"address": f"/tls/js{i}", "value": 7}], result


async def test_plain_ws_is_refused_on_a_tls_port(router_process, certs):
    rp = router_process(*certs.args())
    reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(100), T)
        assert not data.startswith(b"HTTP/1.1 200"), data
    finally:
        writer.close()


async def test_http_probes_work_over_tls(router_process, certs):
    rp = router_process(*certs.args(), workers=2)
    for path in ("/healthz", "/readyz", "/"):
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port, ssl=certs.client_context(),
                                                       server_hostname="127.0.0.1")
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status, _, _, _ = await read_http_response(reader)
            assert status == 200, path
        finally:
            writer.close()


async def test_client_certificate_required(router_process, certs):
    rp = router_process(*certs.args("--tls-ca", str(certs.ca_pem), "--tls-client-auth", "required"))
    ws, welcome, _ = await connect_hello(wss(rp), ssl=certs.client_context(client_cert=True))
    await ws.close()
    with pytest.raises(Exception):              # the TLS handshake fails: no client certificate
        ws2, _, _ = await connect_hello(wss(rp), ssl=certs.client_context())
        await ws2.close()


async def test_client_certificate_optional(router_process, certs):
    rp = router_process(*certs.args("--tls-ca", str(certs.ca_pem), "--tls-client-auth", "optional"))
    for with_cert in (True, False):
        ws, welcome, _ = await connect_hello(wss(rp), ssl=certs.client_context(client_cert=with_cert))
        assert welcome.session
        await ws.close()
    stranger = trustme.CA()                       # a certificate from a CA we do not trust
    ctx = certs.client_context()
    stranger.issue_cert("stranger.example").configure_cert(ctx)
    with pytest.raises(Exception):
        ws, _, _ = await connect_hello(wss(rp), ssl=ctx)
        await ws.close()


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_reloads_the_certificate_without_dropping_clients(router_process, certs, workers):
    rp = router_process(*certs.args(), workers=workers)
    ctx = certs.client_context()
    old = await served_cert(rp.port, ctx)
    kept, _, _ = await connect_hello(wss(rp), ssl=ctx)
    try:
        await kept.send(encode_frame(Subscribe(1, "/rot/**")))
        new_pem = certs.issue()
        new = ssl.PEM_cert_to_DER_cert(new_pem.decode())
        assert new != old
        rp.proc.send_signal(signal.SIGHUP)
        assert rp.wait_for_log("TLS certificate reloaded", T), rp.log()
        if workers > 1:
            deadline = asyncio.get_running_loop().time() + T
            while rp.log().count("TLS certificate reloaded") < workers:
                assert asyncio.get_running_loop().time() < deadline, rp.log()
                await asyncio.sleep(0.05)
        for _ in range(4):                          # whichever worker a new connection lands on
            assert await served_cert(rp.port, ctx) == new
        # the connection made before the reload still works both ways
        other, _, _ = await connect_hello(wss(rp), ssl=ctx)
        await other.send(encode_frame(Set("/rot/x", 5)))
        got, _ = await recv_until(kept, lambda m: isinstance(m, Set) and m.address == "/rot/x", T)
        assert got.value == 5
        await other.close()
    finally:
        await kept.close()


async def test_sighup_with_a_broken_certificate_keeps_the_old_one(router_process, certs):
    rp = router_process(*certs.args())
    ctx = certs.client_context()
    old = await served_cert(rp.port, ctx)
    certs.key.write_text("not a key\n")
    rp.proc.send_signal(signal.SIGHUP)
    assert rp.wait_for_log("not reloaded", T), rp.log()
    assert await served_cert(rp.port, ctx) == old


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1",
                           "--port", str(free_port()), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_missing_certificate_is_a_clear_startup_error(certs, workers):
    missing = str(certs.dir / "nope.pem")
    proc = run_cli("--tls-cert", missing, "--tls-key", str(certs.key), "--workers", workers)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "server.tls.cert" in lines[0] and missing in lines[0] and "--tls-cert" in lines[0]


def test_unreadable_key_is_a_clear_startup_error(certs):
    if os.geteuid() == 0:
        bad = certs.dir / "dir.key"        # root reads everything: a directory cannot be read as a file
        bad.mkdir()
    else:
        bad = certs.key
        bad.chmod(0)
    proc = run_cli(*("--tls-cert", str(certs.cert), "--tls-key", str(bad)))
    assert proc.returncode == 2, proc.stderr
    assert "server.tls.key" in proc.stderr and str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_mismatched_key_is_a_clear_startup_error(certs, tmp_path):
    other = trustme.CA().issue_cert("127.0.0.1")
    other_key = tmp_path / "other.key"
    other.private_key_pem.write_to_path(str(other_key))
    proc = run_cli("--tls-cert", str(certs.cert), "--tls-key", str(other_key))
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "does not match" in line and str(other_key) in line and "--tls-key" in line, line


def test_client_auth_without_ca_is_a_clear_startup_error(certs):
    proc = run_cli(*certs.args("--tls-client-auth", "required"))
    assert proc.returncode == 2, proc.stderr
    assert "server.tls.ca" in proc.stderr and "--tls-ca" in proc.stderr
