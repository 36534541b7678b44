"""Fixtures and helpers for the interop tests: the real clients, unmodified.

* Python: ``clasp-to==4.2.0`` (``clasp.Clasp``) runs in the pytest process and talks
  over a real socket to clasp-fast, which runs as a separate process
  (``tests/support.RouterProcess`` via the ``shared_router`` / ``router_process``
  fixtures).  ``PyClient`` wraps it *without changing it*: it records every message
  the client's own decoder produced (by wrapping the instance's ``_handle_message``
  hook, which still runs) so tests can assert on exactly what the router sent.
* JavaScript: ``@clasp-to/core@3.3.2`` runs in Node (``js/driver.js``) as a real
  separate process.  ``NodeClient`` drives it through JSON lines on stdin/stdout; the
  driver reports every decoded message, every subscription callback, every ACK the
  client logs with ``console.debug`` and every decode warning.

Everything here is bounded by timeouts of a few seconds.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from clasp import Clasp

from tests.support import router_factory, wait_changed

JS_DIR = Path(__file__).resolve().parent / "js"
DRIVER = JS_DIR / "driver.js"
DEFAULT_TIMEOUT = 5.0


# ----------------------------------------------------------------------- routers

@pytest.fixture(scope="module", params=[1, 8], ids=["1-worker", "8-workers"])
def workers(request) -> int:
    """Every interop test runs against a single-process router and against
    ``--workers 8``: the clients must not be able to tell the difference."""
    return request.param


@pytest.fixture(scope="module")
def shared_router(workers):
    with router_factory(workers=workers) as start:
        yield start()


@pytest.fixture
def router_process(workers):
    with router_factory(workers=workers) as start:
        yield start


# --------------------------------------------------------------------------- node

def node_binary() -> Optional[str]:
    return shutil.which("node")


@pytest.fixture(scope="session")
def node_env() -> Path:
    """Node is present and ``tests/interop/js/node_modules`` holds the pinned JS client
    (runs ``npm install`` there when it is missing).  Returns the js directory."""
    if node_binary() is None:
        pytest.fail("node is not installed: the JS interop tests need Node >= 20 (apt-get install nodejs)")
    core = JS_DIR / "node_modules" / "@clasp-to" / "core" / "package.json"
    ws = JS_DIR / "node_modules" / "ws" / "package.json"
    if not (core.exists() and ws.exists()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("tests/interop/js/node_modules is missing and npm is not installed")
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=JS_DIR, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"npm install failed:\n{proc.stdout}\n{proc.stderr}"
    assert json.loads(core.read_text())["version"] == "3.3.2", "the JS client must be @clasp-to/core 3.3.2"
    return JS_DIR


def decode_js_value(v: Any) -> Any:
    """JSON from the driver -> Python: ``{"$bytes": hex}`` -> bytes, ``{"$undefined": true}`` -> ...
    (the Ellipsis, so that it can never be confused with null)."""
    if isinstance(v, dict):
        if set(v) == {"$bytes"}:
            return bytes.fromhex(v["$bytes"])
        if set(v) == {"$undefined"}:
            return ...
        return {k: decode_js_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode_js_value(x) for x in v]
    return v


def encode_js_value(v: Any) -> Any:
    """Python -> JSON for the driver (bytes become a Uint8Array in JS)."""
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, dict):
        return {k: encode_js_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [encode_js_value(x) for x in v]
    return v


async def run_node_script(script: str, *args: str, timeout: float = 10.0,
                          node_args: tuple = (), env: Optional[dict] = None) -> dict:
    """Run ``node [node_args] js/<script> [args]`` with a timeout; return the JSON object it
    printed last on stdout (a line starting with ``{``).  Fails the test on timeout, on a
    non-zero exit, or when no JSON was printed."""
    proc = await asyncio.create_subprocess_exec(
        node_binary(), *node_args, str(JS_DIR / script), *args, cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, **(env or {})))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"node {script} {' '.join(args)} did not finish within {timeout} s")
    text = out.decode()
    assert proc.returncode == 0, (f"node {script} exited with {proc.returncode}\n"
                                  f"stdout:\n{text}\nstderr:\n{err.decode()}")
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    assert lines, f"node {script} printed no JSON\nstdout:\n{text}\nstderr:\n{err.decode()}"
    return json.loads(lines[-1])


class NodeClient:
    """One real ``@clasp-to/core`` client in its own Node process (``js/driver.js``).

    ``events`` holds what the driver reported, in order:
      ``{"event": "msg", "msg": {...}}``  every message the client decoded (observer
                                           around ``handleMessage``, which still runs)
      ``{"event": "sub", "sub": label, "address", "value", "jstype"}``  callbacks
      ``{"event": "ack", "address", "revision"}``  the client's console.debug ACK log
      ``{"event": "warn", "text"}``  console.warn (e.g. the client's "Decode error")
      ``{"event": "close", "code", "reason"}``
    """

    def __init__(self, url: str, impl: str = "ws", name: str = "CLASP JS Client"):
        self.url = url
        self.impl = impl
        self.name = name
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.events: list[dict] = []
        self.session: Optional[str] = None
        self.protocol: Optional[str] = None
        self._replies: dict[int, asyncio.Future] = {}
        self._next = 1
        self._changed = asyncio.Event()
        self._reader: Optional[asyncio.Task] = None
        self._stderr: list[str] = []

    async def start(self, connect: bool = True) -> "NodeClient":
        node_args = ["--experimental-websocket"] if self.impl == "undici" else []
        self.proc = await asyncio.create_subprocess_exec(
            node_binary(), *node_args, str(DRIVER), self.url, cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024,
            env=dict(os.environ, CLASP_WS_IMPL=self.impl))
        self._reader = asyncio.create_task(self._read())
        asyncio.create_task(self._read_stderr())
        ready = await self.wait_for(lambda: self.of("ready"), timeout=10.0, what="driver ready")
        assert ready[0]["impl"] == self.impl
        if connect:
            r = await self.cmd("connect", name=self.name)
            self.session, self.protocol = r["session"], r["protocol"]
        return self

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                obj = json.loads(line)
            except ValueError:
                self.events.append({"event": "stdout", "text": line.decode(errors="replace")})
                continue
            if "reply" in obj:
                fut = self._replies.pop(obj["reply"], None)
                if fut is not None and not fut.done():
                    fut.set_result(obj)
            else:
                self.events.append({k: decode_js_value(v) for k, v in obj.items()})
            self._changed.set()
        self.events.append({"event": "exit"})
        self._changed.set()
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(RuntimeError("node driver exited:\n" + self.stderr()))

    async def _read_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                break
            self._stderr.append(line.decode(errors="replace"))

    def stderr(self) -> str:
        return "".join(self._stderr)

    async def cmd(self, op: str, timeout: float = DEFAULT_TIMEOUT, **kw) -> dict:
        """Send one command; return its reply (fails the test on error or timeout)."""
        assert self.proc and self.proc.stdin
        rid = self._next
        self._next += 1
        fut = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        line = json.dumps({"id": rid, "op": op, **encode_js_value(kw)}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"JS driver: no reply to {op} {kw} within {timeout} s\n{self.stderr()}")
        if not reply.get("ok"):
            raise AssertionError(f"JS driver: {op} failed: {reply.get('error')}\n{self.stderr()}")
        return {k: decode_js_value(v) for k, v in reply.items()}

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]

    def msgs(self, mtype: Optional[str] = None) -> list[dict]:
        return [e["msg"] for e in self.of("msg") if mtype is None or e["msg"].get("type") == mtype]

    def calls(self, label: str) -> list[tuple]:
        """Subscription callback invocations: [(address, value), ...] in order."""
        return [(e["address"], e["value"]) for e in self.of("sub") if e["sub"] == label]

    def acks(self) -> list[tuple]:
        return [(e["address"], e["revision"]) for e in self.of("ack")]

    async def wait_for(self, pred: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
                       what: str = "condition") -> Any:
        return await wait_changed(
            pred, self._changed, timeout,
            lambda: f"JS client: timed out after {timeout} s waiting for {what}; "
                    f"last events: {self.events[-10:]}\nstderr:\n{self.stderr()}")

    async def barrier(self) -> None:
        """PING through the client's own send(); returns when its PONG arrived.  Everything
        the router queued for this connection before the PONG has been received by then."""
        await self.cmd("ping")

    async def close(self, timeout: float = 5.0) -> Optional[int]:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        try:
            self.proc.stdin.write(b'{"id": 0, "op": "exit"}\n')
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    async def kill(self) -> int:
        """SIGKILL the Node process: its TCP connection just drops (no WebSocket close)."""
        assert self.proc is not None
        self.proc.kill()
        code = await self.proc.wait()
        if self._reader:
            await asyncio.wait_for(self._reader, 5)
        return code


@pytest.fixture
async def js_clients(node_env):
    """Factory: ``await js_clients(url, impl="ws"|"undici", connect=True)`` starts a real JS
    client in its own Node process.  All are closed at teardown; each must exit 0 unless the
    test killed it."""
    made: list[NodeClient] = []

    async def make(url: str, impl: str = "ws", connect: bool = True, name: str = "CLASP JS Client"):
        c = NodeClient(url, impl=impl, name=name)
        made.append(c)
        return await c.start(connect=connect)

    yield make
    for c in made:
        killed = c.proc is not None and c.proc.returncode is not None and c.proc.returncode < 0
        code = await c.close()
        if not killed:
            assert code == 0, f"JS driver exited with {code}\n{c.stderr()}"


# --------------------------------------------------------------------------- python

class PyClient:
    """One real ``clasp-to`` 4.2.0 client, plus a recorder of what its decoder produced.

    ``msgs`` is every message dict its receive loop decoded, in order (recorded by wrapping
    the instance's ``_handle_message``; the client's own handler still runs).
    """

    def __init__(self, url: str, name: str = "CLASP Python Client"):
        self.c = Clasp(url, name=name, reconnect=False)
        self.msgs: list[dict] = []
        self.callbacks: dict[str, list[tuple]] = {}
        self._changed = asyncio.Event()
        self._errors: list[Exception] = []
        original = self.c._handle_message

        def observe(msg):
            self.msgs.append(msg)
            self._changed.set()
            original(msg)

        self.c._handle_message = observe
        self.c.on_error(self._errors.append)

    async def connect(self) -> "PyClient":
        await asyncio.wait_for(self.c.connect(), DEFAULT_TIMEOUT)
        return self

    @property
    def session(self) -> str:
        return self.c.session_id

    def subscribe(self, label: str, pattern: str, **options):
        calls = self.callbacks.setdefault(label, [])

        def cb(value, address):
            calls.append((address, value))
            self._changed.set()

        return self.c.subscribe(pattern, cb, **options)

    def calls(self, label: str) -> list[tuple]:
        return self.callbacks.get(label, [])

    def of(self, mtype: str) -> list[dict]:
        return [m for m in self.msgs if m.get("type") == mtype]

    def errors(self, address: Optional[str] = None) -> list[dict]:
        return [m for m in self.of("ERROR") if address is None or m.get("address") == address]

    def sets(self, address: Optional[str] = None, prefix: Optional[str] = None) -> list[dict]:
        return [m for m in self.of("SET")
                if (address is None or m["address"] == address)
                and (prefix is None or m["address"].startswith(prefix))]

    def alive(self) -> bool:
        """The client's receive loop is still running and nothing reached its on_error."""
        t = self.c._receive_task
        return t is not None and not t.done() and not self._errors and self.c.connected

    async def wait_for(self, pred: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
                       what: str = "condition") -> Any:
        return await wait_changed(
            pred, self._changed, timeout,
            lambda: f"Python client: timed out after {timeout} s waiting for {what}; "
                    f"last messages: {self.msgs[-10:]}; errors: {self._errors}")

    async def barrier(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """PING with the client's own encoder; wait for the PONG.  Everything the router
        queued for this connection before it has then been decoded."""
        n = len(self.of("PONG"))
        # the client's subscribe() sends from a task it creates: let those go first, or the
        # PING can overtake a SUBSCRIBE
        for _ in range(3):
            await asyncio.sleep(0)
        await self.c._send({"type": "PING"})
        await self.wait_for(lambda: len(self.of("PONG")) > n, timeout, "PONG")

    async def wire_get(self, address: str, timeout: float = DEFAULT_TIMEOUT) -> Optional[dict]:
        """A GET on the wire (the client's own encoder), bypassing its cache.  Returns the
        SNAPSHOT param for ``address``, or None when the router answered ERROR 404."""
        start = len(self.msgs)
        await self.c._send({"type": "GET", "address": address})

        def answer():
            for m in self.msgs[start:]:
                if m.get("type") == "SNAPSHOT":
                    for p in m["params"]:
                        if p["address"] == address:
                            return [p]
                if m.get("type") == "ERROR" and m.get("address") == address:
                    return [m]
            return None

        (ans,) = await self.wait_for(answer, timeout, f"GET {address}")
        if ans.get("type") == "ERROR":
            assert ans["code"] == 404, ans
            return None
        return ans

    async def send_raw(self, frame: bytes) -> None:
        """Send a frame built elsewhere through the real client's own websocket."""
        await self.c._ws.send(frame)

    async def close(self) -> None:
        if self.c._ws is not None:
            await asyncio.wait_for(self.c.close(), DEFAULT_TIMEOUT)


@pytest.fixture
async def py_clients():
    """Factory: ``await py_clients(url)`` connects a real Python client; all are closed at
    teardown."""
    made: list[PyClient] = []

    async def make(url: str, name: str = "CLASP Python Client", connect: bool = True):
        c = PyClient(url, name=name)
        made.append(c)
        if connect:
            await c.connect()
        return c

    yield make
    for c in made:
        try:
            await c.close()
        except Exception:
            pass
