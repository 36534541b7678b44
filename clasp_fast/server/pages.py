"""What the edge answers to plain HTTP GETs besides probes: metrics, status, inspector.

One place for both ports: the WebSocket port (through the handshake gate) and
``metrics.port`` (``serve_metrics``).  On the WebSocket port:

* ``/metrics`` when metrics are on (``metrics.enabled``, or ``metrics.port`` set);
* ``/status``, ``/status/sessions`` when the inspector or metrics are on;
* ``/`` (the inspector page) and ``/ui/...`` (its files) when ``server.ui`` is on.

Any other path keeps the probe answer (``200 ok``).  ``HEAD`` never gathers anything.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Optional

from .control import dumps
from .http import BadRequest, read_head, response
from .metrics import CONTENT_TYPE, exposition
from .status import WriteRates, status

log = logging.getLogger("clasp_fast.server")

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
TYPES = {".html": "text/html; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".png": "image/png", ".txt": "text/plain; charset=utf-8", ".svg": "image/svg+xml"}
JSON = "application/json"


class Pages:
    def __init__(self, server):
        self.server = server
        config = server.config
        self.metrics_on = bool(config.metrics_enabled or config.metrics_port)
        self.ui_on = bool(config.ui)
        self.rates = WriteRates()
        self._files: dict[str, tuple[bytes, str]] = {}

    def route(self, path: str, ws_port: bool = True) -> Optional[str]:
        """What ``path`` is on this port: 'metrics', 'status', 'sessions', 'file', or None."""
        if path == "/metrics" and (self.metrics_on or not ws_port):
            return "metrics"
        if path in ("/status", "/status/sessions") and (self.ui_on or self.metrics_on or not ws_port):
            return "status" if path == "/status" else "sessions"
        if ws_port and self.ui_on and (path == "/" or path.startswith("/ui/")):
            return "file"
        return None

    def _file(self, path: str) -> Optional[tuple[bytes, str]]:
        rel = "index.html" if path == "/" else path[len("/ui/"):]
        if rel in self._files:
            return self._files[rel]
        target = (UI_DIR / rel).resolve()
        if UI_DIR not in target.parents or not target.is_file():
            return None
        entry = (target.read_bytes(), TYPES.get(target.suffix, "application/octet-stream"))
        self._files[rel] = entry
        return entry

    async def answer(self, kind: str, method: str, path: str) -> bytes:
        head_only = method == "HEAD"
        if kind == "file":
            found = self._file(path)
            if found is None:
                return response("404 Not Found", b"no such file in the inspector\n", head_only=head_only)
            body, ctype = found
            return response("200 OK", body, head_only=head_only, content_type=ctype,
                            extra="Cache-Control: no-cache\r\n")
        ctype = CONTENT_TYPE if kind == "metrics" else JSON
        if head_only:
            return response("200 OK", b"", head_only=True, content_type=ctype)
        control = self.server.control
        if kind == "metrics":
            body = exposition(await control.gather("figures"), control.nworkers)
        elif kind == "status":
            body = dumps(status(self.server, await control.gather("figures"), control.nworkers,
                                self.rates))
        else:
            rows = [row for rows in await control.gather("sessions") for row in rows]
            body = dumps({"sessions": rows})
        return response("200 OK", body, content_type=ctype, extra="Cache-Control: no-store\r\n")


class _MetricsProtocol(asyncio.Protocol):
    """``metrics.port``: /metrics, /status, /status/sessions; 404 for anything else."""

    def __init__(self, server):
        self.server, self.buf, self.transport = server, b"", None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.buf += data
        try:
            head, _ = read_head(self.buf, 8192)
        except BadRequest as exc:
            self.transport.write(response("400 Bad Request", f"{exc}\n".encode()))
            self.transport.close()
            return
        if head is None:
            return
        kind = self.server.pages.route(head.path, ws_port=False)
        if kind is None or head.method not in ("GET", "HEAD"):
            self.transport.write(response("404 Not Found", b"see /metrics, /status, /status/sessions\n"))
            self.transport.close()
            return
        asyncio.ensure_future(reply(self.transport, self.server.pages, kind, head.method, head.path))


async def reply(transport, pages: Pages, kind: str, method: str, path: str) -> None:
    """Writes the answer for ``kind`` and closes (both ports)."""
    try:
        data = await pages.answer(kind, method, path)
    except Exception:
        log.exception("answering %s %s failed", method, path)
        data = response("500 Internal Server Error", b"see the router's log\n")
    if not transport.is_closing():
        transport.write(data)
        transport.close()


async def serve_metrics(server, host: str, port: int, reuse_port: bool):
    """Serves ``metrics.port`` (every worker, SO_REUSEPORT: any answers with all figures)."""
    srv = await asyncio.get_running_loop().create_server(
        lambda: _MetricsProtocol(server), host, port, reuse_port=reuse_port or None)
    return srv
