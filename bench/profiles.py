"""Scenario sizes: the full run, ``--quick`` (< 2 minutes) and ``--smoke`` (the test suite's)."""
from __future__ import annotations

import copy

SCENARIOS = ["throughput", "fanout", "fanin", "state", "events", "latency", "connect", "memory",
             "workers", "metrics", "durable", "tls_fanout", "deflate_fanout", "tls_memory", "auth", "nodes"]

DESCRIPTIONS = {
    "throughput": "1 publisher → 1 subscriber, SET with 32-byte values",
    "fanout": "1 publisher → N subscribers (SET), deliveries/s",
    "fanin": "N publishers → 1 subscriber on /**",
    "state": "SETs spread over many addresses, wildcard subscribers",
    "events": "PUBLISH events, 1 → N",
    "latency": "publish → delivery at fixed rates (scheduled send times), and the highest rate with p99 ≤ 1 ms",
    "connect": "connection storm: TCP connect → WELCOME",
    "memory": "router RSS per idle connection",
    "workers": "fan-out with 1 and 2 workers, CPU per delivered message (all router processes)",
    "metrics": "fan-out 1 → N with metrics off and on (--metrics-enabled, sampled latency), same run",
    "durable": "SETs with persistence off vs on (state file), at QoS fire and QoS commit: SET/s, p99",
    "tls_fanout": "fan-out 1 → N over wss:// next to ws:// (target ≥ 0.5×)",
    "deflate_fanout": "fan-out 1 → N of compressible values, permessage-deflate subscribers next to "
                      "plain ones (target ≥ 0.5×, one compression per broadcast)",
    "tls_memory": "router RSS per idle wss:// connection next to ws:// (target ≤ 16 KB at 10,000)",
    "auth": "token mode vs open mode: SET fan-out 1 → 100 and throughput 1 → 1 (token ÷ open)",
    "nodes": "fan-out 1 → 100 with publisher and subscribers on two nodes joined by NATS vs on one node",
}

FULL = {
    "warmup": 1.0, "duration": 5.0, "repeats": 3,
    "window": 1000,
    "throughput": {"block": 100},
    "fanout": {"subs": [100, 1000], "block": 20, "procs_per": 250},
    "fanin": {"pubs": 100, "pub_procs": 2, "block": 5},
    "state": {"addresses": 100_000, "subs": 10, "block": 100},
    "events": {"subs": 10, "block": 50},
    "latency": {"rates": [10_000, 50_000, 100_000], "warmup": 1.0, "duration": 5.0, "repeats": 3,
                "search": {"start": 100_000, "factor": 1.5, "max": 4_000_000, "warmup": 0.5,
                           "duration": 2.0, "bisect": 3, "p99_ns": 1_000_000}},
    "connect": {"rate": 1000, "seconds": 5.0, "repeats": 3},
    "memory": {"counts": [1000, 10000], "repeats": 2, "per_proc": 2500, "settle": 2.0},
    "workers": {"workers": [1, 2], "subs": 100, "block": 20},
    "metrics": {"subs": 100, "block": 20},
    "durable": {"clients": 4, "window": 1000, "block": 50, "addresses": 1000, "warmup": 1.0,
                "duration": 5.0, "repeats": 3},
    "edge": {"fanout_subs": [100], "value_size": 512},
    "auth": {"subs": 100, "fan_block": 20, "block": 100},
    "nodes": {"subs": 100, "block": 20, "set_rate": 10_000},
    # which ceiling servers run which scenarios (and with which sizes, if smaller)
    "baselines": {"throughput": ["tick", "send"], "fanout": ["tick", "send"],
                  "fanin": ["tick", "send"], "state": ["tick", "send"], "events": ["tick", "send"],
                  "latency": ["tick"], "connect": ["tick"], "memory": ["tick"]},
    "baseline_sizes": {"latency_search": True},
}

QUICK = copy.deepcopy(FULL)
QUICK.update({
    "warmup": 0.4, "duration": 1.0, "repeats": 2,
    "latency": {"rates": [10_000, 50_000, 100_000], "warmup": 0.3, "duration": 1.0, "repeats": 1,
                "search": {"start": 200_000, "factor": 1.6, "max": 4_000_000, "warmup": 0.2,
                           "duration": 0.6, "bisect": 1, "p99_ns": 1_000_000}},
    "connect": {"rate": 1000, "seconds": 1.5, "repeats": 1},
    "memory": {"counts": [1000, 10000], "repeats": 1, "per_proc": 2500, "settle": 1.0},
    "durable": {"clients": 4, "window": 1000, "block": 50, "addresses": 1000, "warmup": 0.3,
                "duration": 1.0, "repeats": 1},
    "baselines": {"throughput": ["tick", "send"], "fanout": ["tick", "send"], "latency": ["tick"]},
    "baseline_sizes": {"fanout": [100], "latency_rates": [50_000], "latency_search": False},
})

SMOKE = copy.deepcopy(QUICK)
SMOKE.update({
    "warmup": 0.2, "duration": 0.4, "repeats": 1,
    "fanout": {"subs": [20], "block": 20, "procs_per": 250},
    "fanin": {"pubs": 10, "pub_procs": 1, "block": 5},
    "state": {"addresses": 2000, "subs": 3, "block": 100},
    "events": {"subs": 3, "block": 50},
    "latency": {"rates": [10_000], "warmup": 0.1, "duration": 0.3, "repeats": 1,
                "search": {"start": 100_000, "factor": 2.0, "max": 200_000, "min": 50_000,
                           "warmup": 0.1, "duration": 0.2, "bisect": 0, "p99_ns": 1_000_000}},
    "connect": {"rate": 500, "seconds": 0.2, "repeats": 1},
    "memory": {"counts": [100], "repeats": 1, "per_proc": 2500, "settle": 0.3},
    "workers": {"workers": [1, 2], "subs": 10, "block": 20},
    "metrics": {"subs": 10, "block": 20},
    "durable": {"clients": 2, "window": 200, "block": 50, "addresses": 100, "warmup": 0.1,
                "duration": 0.3, "repeats": 1},
    "edge": {"fanout_subs": [10], "value_size": 512},
    "auth": {"subs": 10, "fan_block": 20, "block": 100},
    "nodes": {"subs": 10, "block": 20, "set_rate": 2_000},
    "baselines": {"throughput": ["tick"]},
    "baseline_sizes": {"latency_search": False},
    "smoke_only": ["throughput", "fanout", "latency"],
})

PROFILES = {"full": FULL, "quick": QUICK, "smoke": SMOKE}
