"""Starting a node: without NATS it exits 1 with one line naming cluster.nats_url; with
one worker it exits 2 (the config is wrong, not the world)."""
import subprocess
import sys

from tests.support import REPO, free_port


def run(*args: str, timeout: float = 40) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1",
                           "--port", str(free_port()), "--no-persistence", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_no_nats_server_answers():
    r = run("--workers", "2", "--cluster-nats", f"nats://127.0.0.1:{free_port()}")
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "no NATS server of cluster.nats_url" in last and "--cluster-nats" in last, last


def test_one_worker_is_refused():
    r = run("--cluster-nats", "nats://127.0.0.1:4222")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]      # one line
    assert "cluster.nats_url needs server.workers from 2" in r.stderr
