"""bench/report.py judges issue 17's two targets from the ``nodes`` scenario's results:
cross-node fan-out ≥ 0.5× one node, SET p99 ≤ 2 ms at 10,000 SET/s (another rate is not
the target's: not judged)."""
from bench.report import evaluate_targets


def nodes_results(two_fanout: float, p99_ns: int, rate: int = 10_000, lost: int = 0) -> list[dict]:
    return [
        {"scenario": "nodes", "nodes": 1, "metric": "deliveries/s", "target": "clasp-fast-2w",
         "median": 20e6, "loss": 0},
        {"scenario": "nodes", "nodes": 2, "metric": "deliveries/s", "target": "clasp-fast-2-nodes",
         "median": two_fanout, "loss": 0},
        {"scenario": "nodes", "nodes": 2, "metric": "latency", "target": "clasp-fast-2-nodes",
         "rate": rate, "p50_ns": 500_000, "p99_ns": p99_ns, "lost": lost},
    ]


def rows(results) -> dict:
    return {r["scenario"]: r for r in evaluate_targets(results) if r["scenario"].startswith("two nodes")}


def test_both_met():
    got = rows(nodes_results(13e6, 1_600_000))
    assert got["two nodes: fan-out 1 → 100"]["status"] == "met"
    assert "0.65×" in got["two nodes: fan-out 1 → 100"]["measured"]
    assert got["two nodes: SET latency"]["status"] == "met"
    assert "p99 1,600 µs at 10,000 SET/s" in got["two nodes: SET latency"]["measured"]


def test_missed_and_not_judged():
    got = rows(nodes_results(9e6, 2_100_000))
    assert got["two nodes: fan-out 1 → 100"]["status"] == "missed"
    assert got["two nodes: SET latency"]["status"] == "missed"
    assert rows(nodes_results(13e6, 1_000_000, lost=3))["two nodes: SET latency"]["status"] == "missed"
    smoke = rows(nodes_results(13e6, 900_000, rate=2_000))["two nodes: SET latency"]
    assert smoke["status"] == "not measured" and "not the target's rate" in smoke["measured"]
    assert rows([])["two nodes: fan-out 1 → 100"]["status"] == "not measured"
