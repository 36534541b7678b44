"""The router's Prometheus metrics: a custom collector over the figures of all workers.

``exposition(all_figures)`` turns the list ``Control.gather("figures")`` returns into
the Prometheus text format with ``prometheus_client`` (a ``CollectorRegistry`` holding
one ``RouterCollector``; no hand-written exposition).  Load figures carry a ``worker``
label (sum them for the router); the by-type and by-code counters are summed over the
workers already.  docs/operations.md lists every metric.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, InfoMetricFamily)

from .. import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# CLASP message types (docs/protocol.md); other first bytes are legacy MessagePack maps
TYPE_NAMES = {0x01: "HELLO", 0x02: "WELCOME", 0x03: "ANNOUNCE", 0x04: "FEDERATION_SYNC",
              0x10: "SUBSCRIBE", 0x11: "UNSUBSCRIBE", 0x20: "PUBLISH", 0x21: "SET", 0x22: "GET",
              0x23: "SNAPSHOT", 0x24: "REPLAY", 0x30: "BUNDLE", 0x40: "SYNC", 0x41: "PING",
              0x42: "PONG", 0x50: "ACK", 0x51: "ERROR", 0x60: "QUERY", 0x61: "RESULT"}


def type_name(code) -> str:
    code = int(code)
    if code in TYPE_NAMES:
        return TYPE_NAMES[code]
    if 0x80 <= code <= 0x8F or code in (0xDE, 0xDF):
        return "MSGPACK"
    return "OTHER"


def by_type(all_figures: list, key: str) -> dict:
    out: dict[str, int] = {}
    for f in all_figures:
        for code, n in f[key].items():
            name = type_name(code)
            out[name] = out.get(name, 0) + n
    return out


def summed(all_figures: list, key: str) -> dict:
    out: dict[str, int] = {}
    for f in all_figures:
        for label, n in f[key].items():
            out[str(label)] = out.get(str(label), 0) + n
    return out


def labelled(name: str, doc: str, label: str, counts: dict) -> CounterMetricFamily:
    """A counter with one label, one sample per key of ``counts``."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(counts.items()):
        family.add_metric([key], n)
    return family


def histogram(name: str, doc: str, states: list) -> HistogramMetricFamily:
    bounds = states[0]["bounds"] if states else []
    counts = [0] * (len(bounds) + 1)
    total = 0.0
    for st in states:
        counts = [a + b for a, b in zip(counts, st["counts"])]
        total += st["sum"]
    cumulative, running = [], 0
    for bound, n in zip([repr(float(b)) for b in bounds] + ["+Inf"], counts):
        running += n
        cumulative.append((bound, running))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=total)


class RouterCollector:
    """Yields the metric families of one set of gathered figures."""

    def __init__(self, all_figures: list, nworkers: int):
        self.all = sorted(all_figures, key=lambda f: f["worker"])
        self.nworkers = nworkers

    def _per_worker(self, family, key: str):
        for f in self.all:
            family.add_metric([str(f["worker"])], f[key])
        return family

    def collect(self):
        figs = self.all
        info = GaugeMetricFamily("clasp_router_info", "the router's version (value 1)",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("clasp_workers", "worker processes configured (--workers)",
                                value=self.nworkers)
        yield GaugeMetricFamily("clasp_workers_up", "workers whose figures are in this scrape",
                                value=len(figs))
        start = GaugeMetricFamily("clasp_start_time_seconds", "when the worker started (Unix time)",
                                  labels=["worker"])
        yield self._per_worker(start, "started")
        yield self._per_worker(GaugeMetricFamily(
            "clasp_connections", "open WebSocket connections", labels=["worker"]), "connections")
        yield self._per_worker(CounterMetricFamily(
            "clasp_connections_accepted", "connections admitted to the WebSocket upgrade",
            labels=["worker"]), "accepted")
        yield labelled("clasp_connections_refused", "connections refused, by reason", "reason",
                       summed(figs, "refused"))
        yield self._per_worker(GaugeMetricFamily(
            "clasp_sessions", "sessions that completed HELLO", labels=["worker"]), "sessions")
        yield self._per_worker(GaugeMetricFamily(
            "clasp_subscriptions", "subscriptions of the worker's sessions", labels=["worker"]),
            "subscriptions")
        owner = next((f for f in figs if f["owner"]), figs[0] if figs else None)
        yield GaugeMetricFamily("clasp_params", "params in the state (every worker holds all)",
                                value=owner["params"] if owner else 0)
        if owner and owner.get("nats_up") is not None:
            yield GaugeMetricFamily("clasp_cluster_nats_up", "1 while this node's NATS link is up "
                                    "(cluster mode, docs/cluster.md)", value=int(owner["nats_up"]))
        nats = owner.get("nats") if owner else None
        if nats:
            yield InfoMetricFamily("clasp_cluster_epoch", "the epoch of the cluster's bucket this node's "
                                   "state comes from (docs/cluster.md)", value={"epoch": nats["epoch"] or ""})
            yield GaugeMetricFamily("clasp_cluster_nats_subscriptions", "NATS subjects this node "
                                    "subscribes to for its clients' patterns", value=nats["subjects"])
            yield CounterMetricFamily("clasp_cluster_nats_messages_received", "messages taken from the "
                                      "node's NATS subscriptions (second copies included)",
                                      value=nats["received"])
            yield CounterMetricFamily("clasp_cluster_locks_freed", "locks freed because their node "
                                      "was not heard for cluster.node_timeout", value=nats["locks_freed"])
            writes = CounterMetricFamily("clasp_cluster_bucket_writes", "compare-and-sets of this node "
                                         "the bucket took: SETs decided against it, or fast SETs' states "
                                         "written behind them", labels=["path"])
            for path, count in sorted(nats["bucket_writes"].items()):
                writes.add_metric([path], count)
            yield writes
            yield CounterMetricFamily("clasp_cluster_fast_refused", "fast SETs' states the bucket refused "
                                      "(another node wrote the param meanwhile; written again on top)",
                                      value=nats["fast_refused"])
        yield labelled("clasp_frames_received", "CLASP frames received from clients, by type",
                       "type", by_type(figs, "frames_in"))
        yield labelled("clasp_messages_sent", "CLASP messages queued for clients, by type",
                       "type", by_type(figs, "messages_out"))
        yield self._per_worker(CounterMetricFamily(
            "clasp_deliveries",
            "routed SET/PUBLISH copies queued for subscribers (drops excluded)",
            labels=["worker"]), "deliveries")
        yield self._per_worker(CounterMetricFamily(
            "clasp_dropped", "routed messages dropped: a slow consumer's buffer was full",
            labels=["worker"]), "dropped")
        yield self._per_worker(CounterMetricFamily(
            "clasp_conflated",
            "routed SETs replaced by a newer SET to the same address while a slow consumer's "
            "buffer was full (it gets the latest value when it drains)",
            labels=["worker"]), "conflated")
        yield self._per_worker(CounterMetricFamily(
            "clasp_deflate_compressions",
            "outgoing messages compressed (permessage-deflate; once per broadcast, not per receiver)",
            labels=["worker"]), "deflate_compressions")
        yield self._per_worker(CounterMetricFamily(
            "clasp_deflate_reuses",
            "deliveries served an already compressed frame (the other receivers of a broadcast)",
            labels=["worker"]), "deflate_reuses")
        yield labelled("clasp_errors_sent", "ERROR messages sent, by code", "code",
                       summed(figs, "errors"))
        yield labelled("clasp_websocket_errors", "connections closed for a WebSocket protocol "
                       "error (bad frame, oversize message, ...), by close code", "code",
                       summed(figs, "websocket_errors"))
        records = CounterMetricFamily("clasp_bus_records", "bus records sent to another worker",
                                      labels=["worker", "peer"])
        nbytes = CounterMetricFamily("clasp_bus_bytes", "bus bytes sent to another worker",
                                     labels=["worker", "peer"])
        for f in figs:
            for peer, (n, b) in sorted(f["bus"].items()):
                records.add_metric([str(f["worker"]), str(peer)], n)
                nbytes.add_metric([str(f["worker"]), str(peer)], b)
        yield records
        yield nbytes
        yield self._per_worker(GaugeMetricFamily(
            "clasp_pending_requests", "requests sent to the state owner, not yet decided",
            labels=["worker"]), "pending")
        yield self._per_worker(GaugeMetricFamily(
            "clasp_event_loop_lag_seconds", "largest event-loop lag since the last scrape",
            labels=["worker"]), "loop_lag")
        yield histogram("clasp_delivery_latency_seconds",
                        "frame arrival to the write of its deliveries (1 frame in 1024 sampled)",
                        [f["latency"] for f in figs])
        yield histogram("clasp_handshake_seconds",
                        "TCP accept (after TLS) to the WebSocket upgrade",
                        [f["handshake"] for f in figs])


def exposition(all_figures: list, nworkers: int) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(all_figures, nworkers))
    return generate_latest(registry)
