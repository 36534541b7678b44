"""``clasp-fast --workers N``: the supervisor process.

It creates what the workers share (the connection-limits table in shared
memory and each worker's bus listener), forks N workers, and then only
watches: it restarts a worker that dies (after a short, growing delay), gives a
dead worker's connection count back, forwards SIGHUP (TLS certificate reload) to
every worker, and on SIGTERM/SIGINT passes the signal on and waits for every
worker to close its connections with 1001.
It exits non-zero with a clear message if the workers cannot start.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from typing import Optional

from ..auth.guard import failed_hellos_table, security_note
from ..config import Config

log = logging.getLogger("clasp_fast.supervisor")

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def wait_signal(timeout: float) -> Optional[int]:
    """The next of SIGNALS (blocked, so they queue), or None after ``timeout`` seconds."""
    info = signal.sigtimedwait(SIGNALS, timeout)
    return info.si_signo if info is not None else None


class Supervisor:
    def __init__(self, config: Config):
        from .._native.shmlimits import SharedLimits
        from .node import make_bus_listener

        self.config = config
        self.n = config.workers
        self.group = str(os.getpid())
        #: cluster mode: this node's tag, new at every start (cluster/nats/presence.py)
        self.node_tag = os.urandom(4).hex()
        self.limits = SharedLimits(config.max_connections, config.max_connections_per_ip, self.n)
        self.failed_hellos = failed_hellos_table(config)
        self.listeners = [make_bus_listener(self.group, i) for i in range(self.n)]
        self.ready_r, self.ready_w = os.pipe()
        os.set_blocking(self.ready_r, False)
        self.pids: dict[int, int] = {}           # worker index -> pid
        self.ready: set[int] = set()
        self.errors: dict[int, str] = {}
        self.crashes: dict[int, list[float]] = {}
        self.restart_at: dict[int, float] = {}
        self.buf = b""

    # --- processes ------------------------------------------------------------------

    def spawn(self, index: int, restarted: bool) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(self.ready_r)
                for j, sock in enumerate(self.listeners):
                    if j != index:
                        sock.close()
                from .worker import run_worker
                code = run_worker(self.config, index, self.n, self.group, self.listeners[index],
                                  self.limits, self.ready_w, restarted, self.failed_hellos, self.node_tag)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.pids[index] = pid

    def read_reports(self) -> None:
        try:
            chunk = os.read(self.ready_r, 65536)
        except BlockingIOError:
            return
        self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            parts = line.decode(errors="replace").split(" ", 2)
            if parts[0] == "ready":
                index = int(parts[1])
                if index in self.ready:
                    log.info("worker %d restarted and ready (pid %d)", index, self.pids.get(index, 0))
                self.ready.add(index)
            elif parts[0] == "error":
                self.errors[int(parts[1])] = parts[2] if len(parts) > 2 else "unknown error"

    def reap(self) -> list[tuple[int, int, int]]:
        """[(index, pid, status)] of workers that exited."""
        dead = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            for index, p in list(self.pids.items()):
                if p == pid:
                    del self.pids[index]
                    dead.append((index, pid, status))
        return dead

    def signal_all(self, sig: int) -> None:
        for pid in self.pids.values():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # --- phases ---------------------------------------------------------------------

    def start(self) -> Optional[str]:
        """Forks the workers and waits until every one listens; None, or why they could not."""
        for i in range(self.n):
            self.spawn(i, restarted=False)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(self.ready) < self.n:
            sig = wait_signal(0.05)
            self.read_reports()
            if sig in (signal.SIGTERM, signal.SIGINT):
                return "interrupted while starting"
            for index, pid, status in self.reap():
                self.read_reports()
                return self.errors.get(index) or f"worker {index} exited ({_describe(status)}) while starting"
            if time.monotonic() > deadline:
                return f"workers not ready after {STARTUP_TIMEOUT:.0f} s ({len(self.ready)} of {self.n})"
        return None

    def watch(self) -> None:
        """Restarts dead workers until SIGTERM/SIGINT."""
        while True:
            sig = wait_signal(0.1)
            self.read_reports()
            if sig in (signal.SIGTERM, signal.SIGINT):
                return
            if sig == signal.SIGHUP:
                log.info("SIGHUP: workers reload the TLS certificate and the tokens file")
                self.signal_all(signal.SIGHUP)
            now = time.monotonic()
            for index, pid, status in self.reap():
                self.limits.reclaim(index)
                self.failed_hellos.reclaim(index)
                recent = [t for t in self.crashes.get(index, []) if now - t < 30.0] + [now]
                self.crashes[index] = recent
                delay = min(0.1 * 2 ** (len(recent) - 1), 5.0)
                self.restart_at[index] = now + delay
                log.warning("worker %d (pid %d) died: %s; its connections no longer count; "
                            "restarting in %.1f s", index, pid, _describe(status), delay)
            for index, when in list(self.restart_at.items()):
                if now >= when:
                    del self.restart_at[index]
                    self.spawn(index, restarted=True)

    def stop(self) -> None:
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.pids and time.monotonic() < deadline:
            wait_signal(0.05)
            self.reap()
        if self.pids:
            log.error("workers %s did not stop within %.0f s; killing them", sorted(self.pids), STOP_TIMEOUT)
            self.signal_all(signal.SIGKILL)
            while self.pids:
                self.reap()
                time.sleep(0.01)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def run_supervisor(config: Config) -> int:
    if config.port == 0:
        print("clasp-fast: --port 0 cannot be used with --workers > 1: the workers must share one "
              "port; pick a port with --port", file=sys.stderr)
        return 2
    from ..server.run import PortClaim
    from ..server.tls import TLSError, make_context
    try:
        tls_on = make_context(config) is not None       # each worker builds its own; check once here
    except TLSError as exc:
        print(f"clasp-fast: {exc}", file=sys.stderr)
        return 2
    claim = PortClaim(config.host, config.port)      # held until this process exits
    problem = claim.take()
    if problem:
        print(f"clasp-fast: {problem}", file=sys.stderr)
        return 1
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    sup = Supervisor(config)
    problem = sup.start()
    if problem:
        sup.stop()
        claim.release()
        print(f"clasp-fast: the workers could not start: {problem}", file=sys.stderr)
        return 1
    scheme = "wss" if tls_on else "ws"
    print(f"clasp-fast listening on {scheme}://{config.host}:{config.port} (name {config.name!r}, "
          f"{config.workers} workers; {security_note(config)})", flush=True)
    sup.watch()
    log.info("shutting down: stopping %d worker(s)", len(sup.pids))
    sup.stop()
    claim.release()
    return 0
