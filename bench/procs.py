"""Processes: start them pinned, in their own process group, tied to our life; read /proc.

Every process the bench starts goes through ``spawn``:

* it gets its own session / process group (``killpg`` ends it and its children);
* ``PR_SET_PDEATHSIG`` makes the kernel signal it if the bench itself dies, even by
  SIGKILL (the flag survives ``exec``);
* it can be pinned to CPUs (``sched_setaffinity`` before ``exec``, like ``taskset``).

``cleanup()`` (also run at exit and on SIGINT/SIGTERM) sends SIGTERM to every group
still alive, waits a little, then SIGKILLs what is left.

The small OS helpers at the end (``free_port``, ``wait_port``, ``pid_alive``,
``child_pids``, ``tree_pids``) are also the test suite's (tests/support.py re-exports them):
one implementation each.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

PACKAGE = __package__ or "bench"                  # "bench" in the repo, "clasp_fast_bench" installed
PACKAGE_ROOT = Path(__file__).resolve().parent.parent   # the directory that holds that package
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)     # loaded here, never in a forked child
_PR_SET_PDEATHSIG = 1
_live: list["Proc"] = []
spawned: list[int] = []          # every pid ever started (the report lists them)


def env() -> dict:
    """The environment for child processes: this package's root on PYTHONPATH, unbuffered."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(PACKAGE_ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["PYTHONUNBUFFERED"] = "1"
    return e


def module(name: str) -> str:
    """The importable name of one of this package's modules (for ``python -m``)."""
    return f"{PACKAGE}.{name}"


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


class Proc:
    def __init__(self, popen: subprocess.Popen, name: str, log_path: Optional[Path]):
        self.popen = popen
        self.name = name
        self.log_path = log_path
        self.pid = popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        """This process and all its descendants (``pgrep -P``, recursively)."""
        return tree_pids(self.pid)

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> Optional[int]:
        """Signals the whole group, waits, then SIGKILLs the group."""
        if self in _live:
            _live.remove(self)
        try:
            pgid = os.getpgid(self.pid)
        except ProcessLookupError:
            pgid = None
        if self.popen.poll() is None and pgid is not None:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        if pgid is not None:
            try:                                  # children that outlived the leader
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if code is None:
            self.popen.wait(5)
            code = self.popen.returncode
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        return code


def spawn(argv: list[str], *, name: str, cpus: Optional[Iterable[int]] = None,
          log_path: Optional[Path] = None, pipes: bool = False, pass_fds: tuple = (),
          deathsig: int = signal.SIGTERM, shell: bool = False) -> Proc:
    cpuset = set(cpus) if cpus else None

    def pre() -> None:            # runs in the child between fork and exec: no imports here
        _libc.prctl(_PR_SET_PDEATHSIG, int(deathsig), 0, 0, 0)
        if cpuset:
            os.sched_setaffinity(0, cpuset)

    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        popen = subprocess.Popen(
            argv, cwd=PACKAGE_ROOT, env=env(), shell=shell,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else out,
            stderr=out, start_new_session=True, preexec_fn=pre, pass_fds=pass_fds)
    finally:
        if log_path:
            out.close()
    p = Proc(popen, name, log_path)
    _live.append(p)
    spawned.append(popen.pid)
    return p


def cleanup() -> None:
    procs = list(_live)
    for p in procs:
        try:
            os.killpg(os.getpgid(p.pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.popen.wait(max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        try:
            os.killpg(os.getpgid(p.pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p in _live:
            _live.remove(p)


def install_handlers() -> None:
    """SIGTERM behaves like Ctrl-C (KeyboardInterrupt), so ``finally`` blocks run;
    whatever is still alive at exit is stopped."""
    atexit.register(cleanup)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)


# --- /proc readers ------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (``pgrep -P``)."""
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [int(x) for x in out.split()]


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants that still exist."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        if not os.path.exists(f"/proc/{p}"):
            continue
        pids.append(p)
        todo.extend(child_pids(p))
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (from /proc/<pid>/stat), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_of(pids: Iterable[int]) -> dict[int, float]:
    return {p: cpu_seconds(p) for p in pids}


def cpu_busy(cpus) -> float:
    """Busy seconds (everything but idle and iowait) of the given CPUs, from /proc/stat:
    with our own processes' CPU subtracted, what other work took from those cores."""
    if not cpus:
        return 0.0
    want = {f"cpu{c}" for c in cpus}
    total = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in want:
                    v = [int(x) for x in parts[1:9]]
                    total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]   # user nice system irq softirq steal
    except OSError:
        return 0.0
    return total / CLK_TCK


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_tree_kb(pid: int) -> int:
    return sum(rss_kb(p) for p in tree_pids(pid))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float, proc: Optional[Proc] = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def sockets_per_pid(port: int) -> dict[int, int]:
    """Established TCP connections on local port ``port``, per owning pid (``ss -tnp``)."""
    try:
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    counts: dict[int, int] = {}
    for line in out.splitlines():
        i = line.find("pid=")
        if i < 0:
            continue
        pid = int(line[i + 4:].split(",", 1)[0])
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def loadavg() -> list[float]:
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return []


def python() -> str:
    return sys.executable
