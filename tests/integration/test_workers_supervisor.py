"""``--workers N``: the supervisor (clasp_fast/cluster/supervisor.py).

* SIGTERM reaches every worker: every client, whatever its worker, gets close 1001; the
  supervisor exits 0 within a few seconds and leaves no worker behind.
* A port that is already in use makes ``--workers 4`` exit non-zero, naming the port.
* A worker that keeps dying is restarted after growing delays.
"""
from __future__ import annotations

import asyncio
import datetime
import os
import re
import socket
import subprocess
import sys
import time

from clasp_fast.protocol import Ack, Error, Set, Subscribe

from tests.integration.workers_support import (ConnLog, alive, children, clients_on_workers, close_all,
                                               open_clients, sigkill, spread, start_cluster,
                                               wait_log_count, wait_worker_pids)
from tests.support import REPO


async def test_sigterm_closes_clients_on_every_worker_with_1001_and_exits_0(router_process):
    rp = start_cluster(router_process, 4)
    log = ConnLog(rp)
    one_each = await clients_on_workers(rp, log, range(4), prefix="s")
    clients = [*one_each.values(), *await open_clients(rp, log, 8, prefix="x"),
               *await open_clients(rp, log, 2, prefix="nohello", hello=False)]   # upgraded, no HELLO
    try:
        print(f"\nclients: {spread((c.name, c.worker) for c in clients)}")
        assert {c.worker for c in clients} == {0, 1, 2, 3}
        # live sessions: a subscription and a write routed across workers
        one_each[1].send(Subscribe(1, "/bye/**"))
        await one_each[1].barrier()
        one_each[2].send(Set("/bye/x", 1))
        await one_each[1].wait_for(lambda: one_each[1].of(Set), 5.0, "the SET")
        pids = await wait_worker_pids(rp, 4)

        t0 = time.monotonic()
        stopper = asyncio.ensure_future(asyncio.to_thread(rp.stop, 8.0))
        codes = await asyncio.gather(*(c.wait_closed(6.0) for c in clients))
        exit_code = await asyncio.wait_for(stopper, 10.0)
        elapsed = time.monotonic() - t0
        assert codes == [1001] * len(clients), list(zip([c.worker for c in clients], codes))
        assert exit_code == 0, rp.log()[-3000:]
        assert elapsed < 4.0, f"took {elapsed:.2f} s to shut down"
        print(f"all {len(clients)} clients got 1001; supervisor exited 0 after {elapsed:.2f} s")
        assert [pid for pid in pids.values() if alive(pid)] == [], "worker processes remain"
        assert children(rp.proc.pid) == []
    finally:
        await close_all(clients)


def _processes_on_port(port: int) -> list[int]:
    """Live processes whose command line says ``--port <port>`` (a supervisor or its workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"clasp_fast" in b" ".join(args) and any(
                a == b"--port" and i + 1 < len(args) and args[i + 1] == str(port).encode()
                for i, a in enumerate(args)) and alive(int(entry)):
            out.append(int(entry))
    return out


def test_port_in_use_exits_nonzero_naming_the_port():
    with socket.socket() as busy:                   # no SO_REUSEPORT
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", "4", "--no-persistence"], cwd=REPO, capture_output=True, text=True, timeout=20)
        elapsed = time.monotonic() - t0
        leftovers = _processes_on_port(port)
    print(f"\nexit {r.returncode} after {elapsed:.2f} s: {r.stderr.strip()}")
    assert r.returncode != 0, r
    assert str(port) in r.stderr, r.stderr
    assert "listening on" not in r.stdout
    assert leftovers == [], f"processes left on port {port}: {leftovers}"


DIED_RE = re.compile(r"^(\S+ \S+) WARNING clasp_fast\.supervisor: worker 1 \(pid (\d+)\) died: (.*); "
                     r"restarting in ([0-9.]+) s$", re.M)
READY_RE = re.compile(r"^(\S+ \S+) INFO clasp_fast\.supervisor: worker 1 restarted and ready \(pid (\d+)\)$", re.M)


def _ts(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


async def test_a_worker_that_keeps_dying_is_restarted_with_growing_delays(router_process):
    rp = start_cluster(router_process, 4)
    killed = []
    for i in range(3):
        pids = await wait_worker_pids(rp, 4, exclude=killed)
        sigkill(pids[1])
        killed.append(pids[1])
        await wait_log_count(rp, "worker 1 restarted and ready", i + 1, timeout=10.0)
    text = rp.log()
    died = DIED_RE.findall(text)
    ready = READY_RE.findall(text)
    print("\n" + "\n".join(f"killed pid {d[1]}: restarting in {d[3]} s" for d in died))
    assert [int(d[1]) for d in died] == killed, died
    assert all("SIGKILL" in d[2] for d in died)
    delays = [float(d[3]) for d in died]
    assert len(delays) == 3 and delays[0] < delays[1] < delays[2], delays
    # and each restart really waited at least that long
    for d, r, delay in zip(died, ready, delays):
        waited = _ts(r[0]) - _ts(d[0])
        assert waited >= delay - 0.01, (d, r, waited)
    # the worker is back and serving: a client on it writes (ACK, reads it back), and a
    # subscriber on another worker gets the write
    log = ConnLog(rp)
    on = await clients_on_workers(rp, log, (1, 3), prefix="after")
    try:
        on[3].send(Subscribe(1, "/back"), qos=1)
        await on[3].wait_for(lambda: on[3].acks(), 5.0, "ACK of SUBSCRIBE")
        ack = await on[1].request(Set("/back", 1), lambda m: type(m) in (Ack, Error), qos=1)
        assert type(ack) is Ack and ack.revision == 1, ack
        p = await on[1].get("/back")
        assert (p.value, p.revision) == (1, 1), p
        got = await on[3].wait_for(lambda: on[3].of(Set), 5.0, "the SET")
        assert [(m.address, m.value, m.revision) for m in got] == [("/back", 1, 1)]
    finally:
        await close_all(on.values())
