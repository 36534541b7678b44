"""A real headless Chromium (Debian's ``chromium``) driven over the DevTools protocol.

``Chromium`` launches the browser with ``--remote-debugging-port=0`` and its own
``--user-data-dir``, reads the port it picked from ``DevToolsActivePort``, and talks to
it with the ``websockets`` client: ``open(url)`` creates a tab and attaches to it (a
flattened session), ``evaluate(expr)`` runs JavaScript in the page (awaiting promises)
and returns the value, or raises ``JSError`` with the page's exception.  Console messages
and uncaught exceptions of the page are kept for failure messages.

``page_server(root)`` serves the test page (tests/deploy/browser/) and, under
``/node_modules/``, the npm packages the interop tests install (tests/interop/js).
Nothing is downloaded: the browser is the Debian package .ci/run installs.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from websockets.asyncio.client import connect

from tests.deploy.support import require_binary

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
NODE_MODULES = Path(__file__).resolve().parent.parent / "interop" / "js" / "node_modules"


class JSError(AssertionError):
    pass


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript",
                      ".html": "text/html; charset=utf-8"}

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/node_modules/"):
            rel = Path(path[len("/node_modules/"):])
            root = NODE_MODULES
        else:
            rel = Path(path.lstrip("/") or "index.html")
            root = BROWSER_DIR
        target = (root / rel).resolve()
        if root.resolve() not in target.parents and target != root.resolve():
            return str(BROWSER_DIR / "missing")         # no escaping the two roots: 404
        return str(target)

    def log_message(self, *args) -> None:
        pass


class PageServer:
    """The test's HTTP server on a loopback port, in a thread."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(BROWSER_DIR)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "PageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Chromium:
    def __init__(self, *flags: str):
        self.binary = require_binary("chromium")
        self.flags = list(flags)
        self.tmp = tempfile.TemporaryDirectory(prefix="clasp-chromium-")
        self.proc: Optional[subprocess.Popen] = None
        self.ws = None
        self.session: Optional[str] = None
        self.events: list[dict] = []
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future] = {}
        self._reader: Optional[asyncio.Task] = None

    async def start(self, timeout: float = 30.0) -> "Chromium":
        user_dir = Path(self.tmp.name)
        self.proc = subprocess.Popen(
            [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--remote-debugging-port=0", f"--user-data-dir={user_dir}", *self.flags,
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(user_dir / "stderr.log", "wb"),
            start_new_session=True)
        port_file = user_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start its DevTools endpoint:\n" + self.stderr())
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10,
                                ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        return self

    def stderr(self) -> str:
        try:
            return (Path(self.tmp.name) / "stderr.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            fut = self._replies.pop(msg.get("id"), None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(msg)
            else:
                self.events.append(msg)

    async def send(self, method: str, timeout: float = 10.0, session: bool = True, **params) -> dict:
        mid = next(self._ids)
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params}
        if session and self.session:
            msg["sessionId"] = self.session
        fut = asyncio.get_running_loop().create_future()
        self._replies[mid] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"DevTools {method}: {reply['error']}")
        return reply["result"]

    async def open(self, url: str, ready: str = "window.claspReady === true",
                   timeout: float = 15.0) -> None:
        """A new tab on ``url``; returns once ``ready`` is true in it."""
        target = await self.send("Target.createTarget", session=False, url=url)
        attached = await self.send("Target.attachToTarget", session=False,
                                   targetId=target["targetId"], flatten=True)
        self.session = attached["sessionId"]
        await self.send("Runtime.enable")
        deadline = time.monotonic() + timeout
        while not await self.evaluate(ready):
            if time.monotonic() > deadline:
                raise JSError(f"the page {url} did not get ready ({ready}); page log:\n"
                              + self.page_log())
            await asyncio.sleep(0.05)

    async def evaluate(self, expression: str, timeout: float = 10.0) -> Any:
        res = await self.send("Runtime.evaluate", timeout=timeout, expression=expression,
                              awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise JSError(f"{expression}: {text}\npage log:\n{self.page_log()}")
        return res["result"].get("value")

    def page_log(self) -> str:
        lines = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled":
                lines.append(p["type"] + ": " + " ".join(str(a.get("value", a.get("description")))
                                                         for a in p.get("args", [])))
            elif e.get("method") == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                lines.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        return "\n".join(lines[-30:]) or "(nothing)"

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.send("Browser.close", session=False), 5)
            except Exception:
                pass
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)    # the browser's own process group
                self.proc.wait(5)
        self.tmp.cleanup()
