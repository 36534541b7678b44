"""The benchmark suite runs and writes its report.

This checks that ``python -m bench`` works end to end (servers, generator
processes, report files) — not its numbers, which depend on the machine.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.profiles import SCENARIOS

REPO = Path(__file__).resolve().parent.parent


def run_bench(out: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def check_report(out: Path, proc: subprocess.CompletedProcess, ran: list[str]) -> dict:
    assert proc.returncode == 0, f"bench exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    md = out / "latest.md"
    js = out / "latest.json"
    assert md.exists() and js.exists(), sorted(p.name for p in out.iterdir())
    text = md.read_text()
    data = json.loads(js.read_text())
    for name in SCENARIOS:
        assert f"`{name}`" in text, f"{name} missing from the Markdown report"
        assert name in data["scenarios"], f"{name} missing from the JSON report"
    for name in ran:
        assert data["scenarios"][name]["run"], name
        rows = [r for r in data["results"] if r["scenario"] == name]
        assert rows, f"no result for {name}"
        assert not [r for r in rows if "error" in r], rows
    assert "## Targets (issue 4)" in text
    assert data["meta"]["machine"]["picows"]
    assert data["meta"]["left_running"] == [], "processes outlived the bench"
    for pid in data["meta"]["spawned_pids"]:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", pid
    try:
        import matplotlib  # noqa: F401
        assert (out / "latest.png").exists()
    except ImportError:
        assert "pip install matplotlib" in text
    return data


def test_bench_smoke_writes_markdown_and_json(tmp_path):
    proc = run_bench(tmp_path, "--smoke", timeout=120)
    check_report(tmp_path, proc, ["throughput", "fanout", "latency"])


@pytest.mark.slow
@pytest.mark.bench
def test_bench_quick_runs_every_scenario(tmp_path):
    proc = run_bench(tmp_path, "--quick", timeout=300)
    data = check_report(tmp_path, proc, SCENARIOS)
    assert data["meta"]["elapsed_s"] < 120
