"""The benchmark suite runs end to end and its report holds real, consistent figures.

``python -m bench --smoke`` starts clasp-fast, the ceiling server and the generator
processes, measures for a fraction of a second and writes Markdown + JSON.  Speed depends
on the machine and is never asserted; what is asserted can fail: messages were delivered
(and counted) with zero loss, per-publisher order was kept, latency samples arrived, the
JSON and the Markdown agree, the header names the installed clasp-fast and the Cython that
built the load generator, and no process outlived the run.
"""
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from bench import _loadgen
from bench.procs import pid_alive
from bench.profiles import SCENARIOS

REPO = Path(__file__).resolve().parent.parent
FLOW_METRICS = ("throughput", "fanout")


def run_bench(out: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def check_flow_row(row: dict) -> None:
    """A throughput / fan-out row: every repeat sent and delivered messages with nothing
    lost, out of order, missing or refused, and the row's figures are its repeats'."""
    what = f"{row['scenario']} {row['variant']} on {row['target']}"
    reps = row["repeats"]
    assert reps, f"{what}: no repeat measured"
    for rep in reps:
        assert rep["sent"] > 0, f"{what}: nothing was published: {rep}"
        assert rep["deliveries_per_s"] > 0 and rep["messages_per_s"] > 0, f"{what}: {rep}"
        for key in ("loss", "out_of_order", "gaps", "errors", "disconnected"):
            assert rep[key] == 0, f"{what}: {key} = {rep[key]}: {rep}"
        # a fan-out to N subscribers delivers N times what it routes
        subs = row["config"]["subs"]
        assert rep["deliveries_per_s"] == pytest.approx(rep["messages_per_s"] * subs, rel=0.02), rep
    assert row["median"] == pytest.approx(statistics.median(r["deliveries_per_s"] for r in reps))
    assert row["min"] <= row["median"] <= row["max"]
    assert (row["loss"], row["out_of_order"], row["gaps"]) == (0, 0, 0), row


def check_latency_row(row: dict) -> None:
    what = f"latency {row['variant']} on {row['target']}"
    assert row["samples"] > 0, f"{what}: no latency sample arrived"
    assert row["lost"] == 0 and row["out_of_order"] == 0, row
    ps = [row[k] for k in ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns")]
    assert 0 < ps[0] and ps == sorted(ps), f"{what}: percentiles out of order: {ps}"
    assert row["achieved_rate"]["median"] > 0, row


def check_report(out: Path, proc: subprocess.CompletedProcess, ran: list[str]) -> dict:
    assert proc.returncode == 0, f"bench exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    md = out / "latest.md"
    js = out / "latest.json"
    assert md.exists() and js.exists(), sorted(p.name for p in out.iterdir())
    text = md.read_text()
    data = json.loads(js.read_text())
    assert data["scenarios_run"] == [s for s in SCENARIOS if s in ran]
    for name in ran:
        rows = [r for r in data["results"] if r["scenario"] == name]
        assert rows, f"no result for {name}"
        assert not [r for r in rows if "error" in r], rows
        assert any(r["target"] == "clasp-fast" for r in rows), f"{name}: clasp-fast not measured"
        for r in rows:
            if name in FLOW_METRICS:
                check_flow_row(r)
            elif name == "latency" and r["metric"] == "latency":
                check_latency_row(r)
            elif name == "latency":             # the search for the highest rate
                assert r["steps"], r
                for step in r["steps"]:
                    assert step["lost"] == 0 and step["achieved"] > 0, step

    # the Markdown shows the JSON's figures
    tp = next(r for r in data["results"] if r["scenario"] == "throughput" and r["target"] == "clasp-fast")
    target_row = next(t for t in data["targets"] if t["scenario"] == "throughput 1 → 1")
    assert f"{tp['median']:,.0f} msg/s delivered, loss 0" == target_row["measured"], target_row
    assert target_row["measured"] in text

    # the header: the installed clasp-fast, the Cython that compiled the load generator
    machine = data["meta"]["machine"]
    assert machine["clasp_fast"] == importlib.metadata.version("clasp-fast")
    assert machine["cython"] == _loadgen.cython_version() and machine["cython"][0].isdigit()
    assert f"Cython {machine['cython']}, clasp-fast {machine['clasp_fast']}" in text

    # nothing outlived the bench
    assert data["meta"]["spawned_pids"], "the bench started no process"
    assert data["meta"]["left_running"] == [], "processes outlived the bench"
    assert [p for p in data["meta"]["spawned_pids"] if pid_alive(p)] == []
    try:
        import matplotlib  # noqa: F401
        assert (out / "latest.png").exists()
    except ImportError:
        assert "pip install matplotlib" in text
    return data


def test_bench_smoke_delivers_without_loss_and_reports_it(tmp_path):
    proc = run_bench(tmp_path, "--smoke", timeout=120)
    check_report(tmp_path, proc, ["throughput", "fanout", "latency"])


def test_bench_writes_to_bench_results_in_the_current_directory(tmp_path):
    """Without --out the report goes to ./bench-results of the directory it is run from."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--only", "throughput",
                           "--no-baselines", "--no-plot"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    data = json.loads((tmp_path / "bench-results" / "latest.json").read_text())
    assert [r["target"] for r in data["results"]] == ["clasp-fast"]
    check_flow_row(data["results"][0])


@pytest.mark.slow
@pytest.mark.bench
def test_bench_quick_runs_every_scenario(tmp_path):
    proc = run_bench(tmp_path, "--quick", timeout=300)
    data = check_report(tmp_path, proc, SCENARIOS)
    assert data["meta"]["elapsed_s"] < 120
