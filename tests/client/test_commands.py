"""``clasp-fast sub|set|get|pub|snapshot`` run as real subprocesses against a real router:
their output and their exit codes (clasp_fast/client/commands.py, EXIT_*)."""
import asyncio
import json
import ssl
import subprocess
import sys

import pytest

from clasp_fast import Clasp
from clasp_fast.client import commands
from tests.support import REPO, free_port

T = 20.0


async def cli(*args, timeout=T):
    """Runs ``python -m clasp_fast ARGS``; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clasp_fast", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"clasp-fast {' '.join(args)} did not finish within {timeout} s")
    return proc.returncode, out.decode(), err.decode()


async def test_set_get_snapshot_output_and_exit_codes(shared_router):
    url = ("--url", shared_router.url)
    assert await cli("set", "/cli/f", "0.5", *url) == (0, "1\n", "")
    assert (await cli("set", "/cli/f", "1", *url))[:2] == (0, "2\n")
    assert (await cli("set", "/cli/s", "hello world", *url))[:2] == (0, "1\n")   # not JSON: a string
    assert (await cli("set", "/cli/j", '{"a": [1, 2.5, false]}', *url))[0] == 0
    assert (await cli("set", "/cli/q", '"7"', *url))[0] == 0
    async with await Clasp.connect(shared_router.url) as c:     # the types as stored
        assert await c.get("/cli/f") == 1 and type(await c.get("/cli/f")) is int
        assert await c.get("/cli/s") == "hello world"
        assert await c.get("/cli/j") == {"a": [1, 2.5, False]}
        assert await c.get("/cli/q") == "7"
    assert await cli("get", "/cli/s", *url) == (0, '"hello world"\n', "")
    code, out, _ = await cli("get", "/cli/f", "--json", *url)
    doc = json.loads(out)
    assert code == 0 and (doc["address"], doc["value"], doc["revision"]) == ("/cli/f", 1, 2)

    code, out, _ = await cli("snapshot", "/cli/**", *url)
    assert code == 0
    assert out.splitlines() == [
        "ADDRESS  VALUE                REVISION",
        '/cli/f   1                    2',
        '/cli/j   {"a":[1,2.5,false]}  1',
        '/cli/q   "7"                  1',
        '/cli/s   "hello world"        1']
    code, out, _ = await cli("snapshot", "/cli/*", "--json", *url)
    assert code == 0 and [(p["address"], p["value"]) for p in json.loads(out)] == [
        ("/cli/f", 1), ("/cli/j", {"a": [1, 2.5, False]}), ("/cli/q", "7"), ("/cli/s", "hello world")]

    code, out, err = await cli("get", "/cli/none", *url)
    assert (code, out) == (commands.EXIT_NOT_FOUND, "")
    assert err == "clasp-fast get: not found (ERROR 404): no param at /cli/none\n"
    code, out, err = await cli("set", "/cli/f", "3", "--revision", "1", *url)
    assert code == commands.EXIT_REFUSED
    assert err.startswith("clasp-fast set: conflict (stale revision) (ERROR 409): stale revision for /cli/f")
    code, _, err = await cli("set", "no-slash", "1", *url)
    assert code == commands.EXIT_USAGE and "invalid address (ERROR 202)" in err


async def test_lock_refusal_exit_code(shared_router):
    url = ("--url", shared_router.url)
    async with await Clasp.connect(shared_router.url) as holder:
        await holder.lock("/cli/locked", 1)
        code, _, err = await cli("set", "/cli/locked", "2", *url)
        assert code == commands.EXIT_REFUSED and "locked by another session (ERROR 423)" in err


async def test_sub_prints_sets_and_publishes(shared_router):
    url = ("--url", shared_router.url)
    async with await Clasp.connect(shared_router.url) as c:
        await c.set("/cli2/a", 0, confirm=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clasp_fast", "sub", "/cli2/**", "--count", "4", *url, cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        first = await asyncio.wait_for(proc.stdout.readline(), T)       # the snapshot
        assert first == b"/cli2/a 0 1\n"
        await c.set("/cli2/a", False, confirm=True)
        await c.emit("/cli2/ev", {"x": 1}, confirm=True)
        await c.set("/cli2/b", "", confirm=True)
        out, err = await asyncio.wait_for(proc.communicate(), T)
        assert proc.returncode == 0, err
        assert out.decode().splitlines() == ['/cli2/a false 2', '/cli2/ev {"x":1} -', '/cli2/b "" 1']

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clasp_fast", "sub", "/cli2/*", "--json", "--count", "3", *url,
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        lines = [json.loads(await asyncio.wait_for(proc.stdout.readline(), T)) for _ in range(2)]
        await c.stream("/cli2/lvl", 0.5, confirm=True)
        out, _ = await asyncio.wait_for(proc.communicate(), T)
        lines += [json.loads(x) for x in out.decode().splitlines()]
    assert proc.returncode == 0
    # the two params of the snapshot, then the stream sample
    assert sorted((x["address"], x["value"], x["revision"], x["type"]) for x in lines[:2]) == [
        ("/cli2/a", False, 2, "set"), ("/cli2/b", "", 1, "set")]
    assert lines[2] == {"address": "/cli2/lvl", "value": 0.5, "revision": None, "type": "publish"}


async def test_pub_event_stream_and_gesture(shared_router):
    url = ("--url", shared_router.url)
    async with await Clasp.connect(shared_router.url, record=True) as c:
        got = []
        await c.subscribe("/cli3/**", lambda v, a: got.append((a, v)))
        assert await cli("pub", "/cli3/go", '{"n": 1}', *url) == (0, "", "")
        assert (await cli("pub", "/cli3/lvl", "0.25", "--stream", *url))[0] == 0
        assert (await cli("pub", "/cli3/t", "[1, 2]", "--gesture", "--id", "4", "--phase", "end",
                          *url))[0] == 0
        assert (await cli("pub", "/cli3/bang", *url))[0] == 0
        await c.ping()
    assert got == [("/cli3/go", {"n": 1}), ("/cli3/lvl", 0.25), ("/cli3/t", [1, 2]),
                   ("/cli3/bang", None)]


async def test_unreachable_router_and_usage_errors():
    port = free_port()
    code, out, err = await cli("get", "/x", "--url", f"ws://127.0.0.1:{port}")
    assert (code, out) == (commands.EXIT_UNREACHABLE, "")
    assert err.startswith(f"clasp-fast get: cannot reach the router at ws://127.0.0.1:{port}")
    assert "is clasp-fast running there? check --url" in err
    code, _, err = await cli("get", "/x", "--url", "http://127.0.0.1:1")
    assert code == commands.EXIT_USAGE and "use ws://host:port or wss://host:port" in err
    code, _, err = await cli("set", "/x")
    assert code == commands.EXIT_USAGE and "the following arguments are required: value" in err
    code, out, _ = await cli("sub", "--help")
    assert code == 0 and "--json" in out and "exit codes:" in out


@pytest.fixture
def tls_proxy(shared_router, tmp_path):
    """A TLS endpoint (self-signed certificate) in front of the router: wss://127.0.0.1:port."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def pipe(r, w):
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def handle(r, w):
        ur, uw = await asyncio.open_connection(shared_router.host, shared_router.port)
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    async def start():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        return server, f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    return start


async def test_wss_with_insecure_and_certificate_errors(tls_proxy):
    server, url = await tls_proxy()
    try:
        code, out, err = await cli("set", "/tls/x", "1", "--url", url, "--insecure")
        assert (code, out) == (0, "1\n"), err
        code, out, err = await cli("get", "/tls/x", "--url", url)      # the self-signed cert
        assert code == commands.EXIT_UNREACHABLE and "CERTIFICATE_VERIFY_FAILED" in err
        from clasp_fast.client import insecure_ssl_context
        async with await Clasp.connect(url, ssl=insecure_ssl_context()) as c:
            assert await c.get("/tls/x") == 1
    finally:
        server.close()


def test_docs_list_every_exit_code():
    text = (REPO / "docs" / "client.md").read_text()
    for code, meaning in commands.EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in text, f"docs/client.md lacks exit code {code}"
