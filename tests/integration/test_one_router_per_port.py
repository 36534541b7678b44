"""One router per port (issue 12, item 3): a second clasp-fast on a port a running one holds
fails at once with a clear error, whatever --workers is on either side, and the first one
keeps serving alone; of two started at the same moment exactly one runs."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import connect_hello
from tests.support import REPO, free_port


@pytest.mark.parametrize("first,second", [(1, 1), (1, 2), (2, 1), (2, 2)])
async def test_second_router_on_a_busy_port_is_refused(router_process, first, second):
    rp = router_process(workers=first)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1",
                           "--port", str(rp.port), "--workers", str(second)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert f"127.0.0.1:{rp.port}" in line and "in use" in line and "--port" in line, line
    assert "listening" not in proc.stdout
    assert elapsed < 10, f"took {elapsed:.1f} s to refuse"
    # the first router still serves
    ws, welcome, _ = await connect_hello(rp.url)
    assert welcome.session
    await ws.close()


def test_bind_address_not_on_this_machine_is_named():
    proc = subprocess.run([sys.executable, "-m", "clasp_fast", "--host", "192.0.2.77", "--port", "7399"],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr          # a settings error (clasp_fast.settings)
    assert "192.0.2.77" in proc.stderr and "no such address" in proc.stderr, proc.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_two_routers_started_at_once_one_wins(workers):
    """Both start before either listens: the lock file lets exactly one through."""
    port = free_port()
    cmd = [sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 20
        while sum(p.poll() is not None for p in procs) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        loser = [p for p in procs if p.poll() is not None]
        assert len(loser) == 1, "neither router refused the port"
        assert loser[0].returncode == 1
        assert "in use" in loser[0].stderr.read()
        winner = next(p for p in procs if p is not loser[0])
        line = winner.stdout.readline()             # blocks until it listens (or exits)
        assert "listening on" in line, line + winner.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                assert p.wait(10) == 0
