"""wss:// (issue 11, TLS): the real clients over TLS with a test-made CA, with one and two
workers; HTTP probes over TLS; client certificates; SIGHUP certificate reload while a
client stays connected; clear start-up errors for bad certificate files; the cipher the
server prefers, the minimum version, and a reader that stalls and catches up (the TLS
layer's switch between sending at once and queueing in uvloop, ``tlsstream.pyx``)."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys

import pytest
import trustme

from clasp_fast.protocol import Ping, Pong, Set, Subscribe, encode_frame
from clasp_fast._native import tlsstream

from clasp_fast.server.proxy_protocol import v1_header, v2_header

from tests.integration.conftest import (connect_hello, read_http_response, recv_msg, recv_until,
                                        upgrade_request)
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


@pytest.mark.parametrize("version", ["TLSv1_3", "TLSv1_2"])
async def test_the_server_prefers_aes128_gcm(router_process, certs, version):
    rp = router_process(*certs.args())
    ctx = certs.client_context()
    ctx.maximum_version = getattr(ssl.TLSVersion, version)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", rp.port, ssl=ctx, server_hostname="127.0.0.1"), T)
    try:
        name, protocol, bits = writer.get_extra_info("ssl_object").cipher()
        assert bits == 128 and "AES" in name and "GCM" in name, (name, protocol)
        assert protocol == version.replace("_", "."), protocol
    finally:
        writer.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_1_1_is_refused(router_process, certs):
    rp = router_process(*certs.args())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")          # so that the client itself offers TLS 1.1
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as err:
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", rp.port, ssl=ctx), T)
    assert "VERSION" in str(err.value).upper(), err.value


async def test_a_stalled_wss_reader_gets_everything_in_order(router_process, certs):
    """A subscriber with a tiny receive buffer stops reading while 4000 SETs of 2 KB each
    (more than the kernel's largest send buffer, 4 MB) are routed to it: the server's
    records then wait in uvloop's transport, behind what the socket took.  Once it reads again every SET arrives intact (a record sent out of order
    would fail TLS's integrity check), and later SETs, sent straight to the socket again,
    follow them."""
    rp = router_process(*certs.args("--max-pending-output", str(32 << 20)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", rp.port))
    sock.setblocking(False)
    slow, _, _ = await connect_hello(wss(rp), ssl=certs.client_context(), sock=sock,
                                     server_hostname="127.0.0.1", max_queue=1)
    pub, _, _ = await connect_hello(wss(rp), ssl=certs.client_context())
    try:
        await slow.send(encode_frame(Subscribe(1, "/stall/**")))
        await slow.send(encode_frame(Ping()))
        await recv_until(slow, lambda m: isinstance(m, Pong), T)       # subscribed
        n = 4000
        for i in range(n):
            await pub.send(encode_frame(Set(f"/stall/{i}", bytes([i % 251]) * 2048)))
        await pub.send(encode_frame(Set("/stall/after", 1)))
        got = {}
        while "/stall/after" not in got:
            m = await recv_msg(slow, T)
            if isinstance(m, Set):
                got[m.address] = m.value
        assert len(got) == n + 1, len(got)
        assert all(got[f"/stall/{i}"] == bytes([i % 251]) * 2048 for i in range(n))
        await pub.send(encode_frame(Set("/stall/later", 2)))
        later, _ = await recv_until(slow, lambda m: isinstance(m, Set) and m.address == "/stall/later", T)
        assert later.value == 2
    finally:
        await slow.close()
        await pub.close()


async def test_permessage_deflate_over_wss(router_process, certs):
    """Compression and TLS together: the websockets client negotiates permessage-deflate
    over wss://, a compressible value goes both ways (compressed by the client, and by the
    server, once for its receivers) next to a client without deflate."""
    rp = router_process(*certs.args("--compression", "--metrics-enabled"))
    big = "abc" * 400
    deflate, _, _ = await connect_hello(wss(rp), ssl=certs.client_context(), compression="deflate")
    plain, _, _ = await connect_hello(wss(rp), ssl=certs.client_context(), compression=None)
    try:
        assert deflate.protocol.extensions and not plain.protocol.extensions
        for c in (deflate, plain):
            await c.send(encode_frame(Subscribe(1, "/z/**")))
            await c.send(encode_frame(Ping()))
            await recv_until(c, lambda m: isinstance(m, Pong), T)
        await deflate.send(encode_frame(Set("/z/big", big)))
        for c in (deflate, plain):
            got, _ = await recv_until(c, lambda m: isinstance(m, Set) and m.address == "/z/big", T)
            assert got.value == big
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port, ssl=certs.client_context(),
                                                       server_hostname="127.0.0.1")
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _, headers, _ = await read_http_response(reader)
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), T)
        finally:
            writer.close()
        assert status == 200
        compressions = [line for line in body.decode().splitlines()
                        if line.startswith("clasp_deflate_compressions_total")]
        assert compressions and float(compressions[0].split()[-1]) >= 1, compressions
    finally:
        await deflate.close()
        await plain.close()


async def upgrade_over_tls(port: int, certs, preamble: bytes = b"", local_host: str = "127.0.0.1"):
    """``preamble`` on the TCP connection, then TLS, then an upgrade request; returns
    (status, body, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local_host, 0))
    if preamble:
        writer.write(preamble)
        await writer.drain()
    await asyncio.wait_for(writer.start_tls(certs.client_context(), server_hostname="127.0.0.1"), T)
    request, _ = upgrade_request("127.0.0.1", port)
    writer.write(request)
    status, _, _, _ = await read_http_response(reader)
    body = b""
    if status != 101:
        body = await asyncio.wait_for(reader.read(), T)
        writer.close()
    return status, body, writer


@pytest.mark.parametrize("header", [v1_header, v2_header])
async def test_proxy_protocol_header_before_tls(router_process, certs, header):
    """A proxy passing TLS through (HAProxy ``send-proxy-v2`` on a ``server ... ssl`` line,
    or in TCP mode) sends the PROXY header and then starts TLS: the client's address counts
    for the per-IP limit."""
    rp = router_process(*certs.args("--proxy-protocol", "--trusted-proxies", "127.0.0.1",
                                    "--max-connections-per-ip", "1"))
    held = []
    try:
        status, body, w = await upgrade_over_tls(rp.port, certs, header("10.2.0.1", "127.0.0.1", 5000, rp.port))
        assert status == 101, body
        held.append(w)
        status, body, _ = await upgrade_over_tls(rp.port, certs, header("10.2.0.1", "127.0.0.1", 5001, rp.port))
        assert status == 503 and b"10.2.0.1" in body, body
        status, body, w = await upgrade_over_tls(rp.port, certs, header("10.2.0.2", "127.0.0.1", 5002, rp.port))
        assert status == 101, body
        held.append(w)
        # a peer that is not a trusted proxy connects directly, without a header
        status, body, w = await upgrade_over_tls(rp.port, certs, local_host="127.0.0.2")
        assert status == 101, body
        held.append(w)
    finally:
        for w in held:
            w.close()


async def test_trusted_proxy_without_a_header_before_tls_is_dropped(router_process, certs):
    rp = router_process(*certs.args("--proxy-protocol", "--trusted-proxies", "127.0.0.1"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await upgrade_over_tls(rp.port, certs)
    assert rp.wait_for_log("refused a connection from trusted proxy 127.0.0.1", T), rp.log()


def test_the_lean_tls_layer_serves_a_plain_server_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert tlsstream.unusable(ctx) is None
    ctx.sni_callback = lambda *a: None          # its callback needs the ssl module's own objects
    assert "SNI" in tlsstream.unusable(ctx)


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
