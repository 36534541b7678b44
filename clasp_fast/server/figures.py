"""One worker's figures: what the metrics, the status API and the inspector report.

``figures(server)`` reads the core's plain C counters (frames in and messages out by
CLASP type, deliveries, drops, bus records and bytes per link) and the edge's Python
ones (connections accepted and refused, ERRORs by code, the two sampled histograms,
event-loop lag) into one dict of plain values, so it can travel between workers as
JSON (``control.py``).  Reading costs nothing on the hot path: the counters are
incremented anyway, and are only read on a scrape.
"""
from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from typing import Optional

from .._native.deflate import stats as deflate_stats

# seconds; the upper bounds of the histograms' buckets (+Inf is implied)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0)
HANDSHAKE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0)
SAMPLE_EVERY = 1024        # one frame in this many is timed from arrival to write


class Buckets:
    """A histogram's state: counts per bucket (not cumulative), sum, count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def state(self) -> dict:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.sum}


class LoopLag:
    """Event-loop lag: how late a timer set for every ``interval`` seconds fires.

    ``worst`` is the largest lag since the last read (a scrape), ``last`` the latest."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.last = 0.0
        self.worst = 0.0
        self.handle: Optional[asyncio.TimerHandle] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.due = 0.0

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._arm()

    def _arm(self) -> None:
        self.due = self.loop.time() + self.interval
        self.handle = self.loop.call_at(self.due, self._fire)

    def _fire(self) -> None:
        self.last = max(0.0, self.loop.time() - self.due)
        self.worst = max(self.worst, self.last)
        self._arm()

    def take_worst(self) -> float:
        worst, self.worst = max(self.worst, self.last), 0.0
        return worst

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class EdgeCounters:
    """The edge's own counters (per worker): connections accepted and refused (by reason),
    the two histograms, event-loop lag."""

    def __init__(self):
        self.started = time.time()
        self.accepted = 0
        self.refused: dict[str, int] = {}
        self.websocket_errors: dict[int, int] = {}     # close code -> connections closed
        self.latency = Buckets(LATENCY_BUCKETS)
        self.handshake = Buckets(HANDSHAKE_BUCKETS)
        self.lag = LoopLag()

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def websocket_error(self, code: int) -> None:
        self.websocket_errors[code] = self.websocket_errors.get(code, 0) + 1


def refusal_reason(text: str) -> str:
    """The label of a refusal, from the limits' text (clasp_fast/limits.py)."""
    if "max_failed_hellos" in text:
        return "max_failed_hellos"      # token mode's failed-HELLO throttle (server/gate.py)
    if "max_connections_per_ip" in text:
        return "max_connections_per_ip"
    if "max_connections" in text:
        return "max_connections"
    return "other"


def figures(server, worker: int) -> dict:
    """This worker's figures, as plain values (see the module docstring)."""
    router = server.router
    counters: EdgeCounters = server.counters
    sessions = router.sessions.values()
    deflate = deflate_stats()
    return {
        "worker": worker,
        "pid": os.getpid(),
        "started": counters.started,
        "owner": router.is_owner,
        "connections": server.connection_count,
        "accepted": counters.accepted,
        "refused": dict(counters.refused),
        "sessions": len(sessions),
        "subscriptions": sum(s.subscription_count for s in sessions),
        "params": router.param_count,
        "frames_in": router.received_by_type(),
        "messages_out": router.sent_by_type(),
        "deliveries": router.routed - router.dropped - router.conflated,     # copies queued (not replaced)
        "dropped": router.dropped,
        "conflated": router.conflated,
        "deflate_compressions": deflate["compressions"],
        "deflate_reuses": deflate["reuses"],
        "errors": dict(router.errors_sent),
        "websocket_errors": dict(counters.websocket_errors),
        "bus": {link.index: [link.sent, link.bytes_sent] for link in router.peer_links()},
        "pending": len(router.pending),
        "nats_up": server.cross_node_up,        # cluster mode: the node's NATS link (else None)
        "nats": server.cross_node_figures() if server.cross_node_figures else None,   # worker 0
        "loop_lag": counters.lag.take_worst(),
        "latency": counters.latency.state(),
        "handshake": counters.handshake.state(),
    }


def session_rows(server, worker: int) -> list[dict]:
    """One row per session of this worker (the status API's /status/sessions)."""
    return [{"session": s.id, "name": s.name, "ip": s.peer, "worker": worker,
             "subscriptions": s.subscription_count, "queued": s.queued, "dropped": s.dropped,
             "received": s.received, "sent": s.sent}
            for s in list(server.router.sessions.values())]
