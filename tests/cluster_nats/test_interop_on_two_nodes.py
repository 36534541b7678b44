"""Issue 17: the project's interop suites (the real Python and JS clients) pass against two
NATS-joined nodes, ``--workers 2`` each, with the clients spread over both nodes
(``CLASP_FAST_TEST_NODES=2``, tests/cluster_nats/nodes.py), as they do against one router.

The suites run in a pytest of their own: every test collected there must pass; none may
be skipped."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_interop(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLASP_FAST_TEST_NODES": "2"}
    return subprocess.run([sys.executable, "-m", "pytest", "tests/interop", "-q", "-p", "no:randomly",
                           "-p", "no:cacheprovider", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_interop_suites_pass_against_two_nodes():
    collected = run_interop("--collect-only")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    wanted = len([line for line in collected.stdout.splitlines() if "::" in line])
    assert wanted >= 20, collected.stdout[-3000:]       # both clients' suites, not a stray few
    run = run_interop()
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) == wanted, summary
    assert not re.search(r"skipped|failed|error|xfail|xpass", summary), summary
