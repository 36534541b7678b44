"""Metrics on their own port, in the Prometheus text format (``GET /metrics``).

Off unless ``--metrics-port`` is set.  With ``--workers N`` each worker serves its
own figures on ``metrics_port + worker index`` (scrape all N; sum them for the
router), labelled ``worker="i"``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Optional

from .http import BadRequest, read_head, response

log = logging.getLogger("clasp_fast.server")

_METRICS = [
    # name, type, help, getter(server)
    ("clasp_connections", "gauge", "open WebSocket connections", lambda s: s.connection_count),
    ("clasp_sessions", "gauge", "sessions that completed HELLO", lambda s: len(s.router.sessions)),
    ("clasp_subscriptions", "gauge", "subscriptions in the routing trie (peer workers' included)",
     lambda s: s.router.trie.count),
    ("clasp_params", "gauge", "params in the state", lambda s: s.router.param_count),
    ("clasp_frames_received_total", "counter", "CLASP frames received from clients",
     lambda s: s.router.frames_in),
    ("clasp_deliveries_total", "counter", "routed messages queued for receivers",
     lambda s: s.router.routed),
    ("clasp_dropped_total", "counter", "routed messages dropped for a full send buffer",
     lambda s: s.router.dropped),
    ("clasp_refused_connections_total", "counter", "connections refused by a connection limit",
     lambda s: s.refusals),
    ("clasp_pending_requests", "gauge", "requests waiting for the state owner (workers)",
     lambda s: len(s.router.pending)),
]


def render(server, worker: Optional[int]) -> bytes:
    label = f'{{worker="{worker}"}}' if worker is not None else ""
    lines = []
    for name, kind, help_text, get in _METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{label} {get(server)}"]
    return ("\n".join(lines) + "\n").encode()


class _MetricsProtocol(asyncio.Protocol):
    def __init__(self, server, worker):
        self.server, self.worker, self.buf = server, worker, b""

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
        if head.path == "/metrics":
            self.transport.write(response("200 OK", render(self.server, self.worker),
                                          head_only=head.method == "HEAD",
                                          content_type="text/plain; version=0.0.4"))
        else:
            self.transport.write(response("404 Not Found", b"see /metrics\n"))
        self.transport.close()


async def start_metrics(server, host: str, port: int, worker: Optional[int] = None):
    """Serves ``GET /metrics`` for ``server`` on ``host:port``; returns the asyncio server."""
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: _MetricsProtocol(server, worker), host, port)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return srv
