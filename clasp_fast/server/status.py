"""The status API (JSON, orjson): ``GET /status`` and ``GET /status/sessions``.

``/status``: uptime, version, a config summary (no secrets: no setting whose name
mentions a token, key, secret or password), per-worker load, totals, and the addresses
written most often since the previous ``/status`` answered by this worker (or since the
start).  Write rates come from the params' revisions (each accepted write bumps one),
read on request: nothing is counted per message for them.
``/status/sessions``: one row per session, across all workers.
"""
from __future__ import annotations

import re
import time

from .. import __version__
from ..settings.table import SETTINGS
from .metrics import by_type

SECRET = re.compile(r"token|key|secret|password", re.I)
TOP = 10
LOAD_KEYS = ("worker", "pid", "owner", "connections", "sessions", "subscriptions", "deliveries",
             "dropped", "pending", "loop_lag")


def config_summary(config) -> dict:
    return {row.key: getattr(config, row.name) for row in SETTINGS
            if not SECRET.search(row.name) and not SECRET.search(row.key)}


class WriteRates:
    """Writes per second per address, between two reads of the params' revisions."""

    def __init__(self):
        self.at = time.monotonic()
        self.revisions: dict[str, int] = {}

    def top(self, router, n: int = TOP) -> list[dict]:
        now = time.monotonic()
        revisions = router.revisions()
        span = max(now - self.at, 1e-3)
        rates = [(rev - self.revisions.get(addr, 0), addr, rev) for addr, rev in revisions.items()]
        rates = sorted((r for r in rates if r[0] > 0), reverse=True)[:n]
        self.at, self.revisions = now, revisions
        return [{"address": addr, "writes_per_second": round(d / span, 3), "revision": rev}
                for d, addr, rev in rates]


def status(server, all_figures: list, nworkers: int, rates: WriteRates) -> dict:
    figs = sorted(all_figures, key=lambda f: f["worker"])
    started = min((f["started"] for f in figs), default=time.time())
    totals = {key: sum(f[key] for f in figs)
              for key in ("connections", "sessions", "subscriptions", "deliveries", "dropped",
                          "accepted")}
    totals["params"] = next((f["params"] for f in figs if f["owner"]), figs[0]["params"] if figs else 0)
    totals["frames_received"] = sum(by_type(figs, "frames_in").values())
    totals["messages_sent"] = sum(by_type(figs, "messages_out").values())
    totals["frames_received_by_type"] = by_type(figs, "frames_in")
    totals["errors_sent"] = sum(n for f in figs for n in f["errors"].values())
    return {
        "name": server.config.name,
        "version": __version__,
        "uptime": round(time.time() - started, 3),
        "workers": nworkers,
        "workers_up": len(figs),
        "config": config_summary(server.config),
        "totals": totals,
        "per_worker": [{k: f[k] for k in LOAD_KEYS} for f in figs],
        "top_addresses": rates.top(server.router),
    }
