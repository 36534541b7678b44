"""Helpers shared by the integration and interop tests: run clasp-fast for real, wait.

* ``RouterProcess`` starts ``python -m clasp_fast`` as a separate process on a free loopback
  port, waits until it prints that it listens, and stops it with SIGTERM.
  ``router_factory()`` starts any number of them and, at the end, stops them and checks that
  each exited 0 on SIGTERM: the fixtures ``router_process`` / ``shared_router`` use it.
* ``free_port``, ``alive(pid)``, ``children(pid)``: the OS helpers of ``bench/procs.py``
  (one implementation for the bench and the tests).
* ``wait_changed`` / ``wait_until`` / ``wait_log_count``: bounded waits.

Nothing here mocks the server.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Union

from bench.procs import child_pids as children, free_port, pid_alive as alive  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


class RouterProcess:
    def __init__(self, *args: str, workers: Optional[int] = None, host: str = "127.0.0.1",
                 port: Optional[int] = None, env: Optional[dict] = None,
                 state_file: Optional[str] = None):
        """``state_file``: persist the state there; without it the router keeps its state in
        memory only (--no-persistence), so tests never share a state file."""
        if workers is None:
            workers = int(os.environ.get("CLASP_FAST_TEST_WORKERS", "1"))
        self.host = host
        self.port = port or free_port(host)
        persistence = ["--persistence", "--state-file", state_file] if state_file else ["--no-persistence"]
        self.args = ["--host", host, "--port", str(self.port), "--workers", str(workers),
                     "--log-level", "info", *persistence, *args]
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc: Optional[subprocess.Popen] = None
        self.output: list[str] = []
        self._ready = threading.Event()
        self.workers = workers

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> "RouterProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clasp_fast", *self.args], cwd=REPO, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True)           # its own process group: see kill_group
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError("clasp-fast did not start:\n" + self.log())
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "listening on" in line:
                self._ready.set()

    def log(self) -> str:
        return "".join(self.output)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code (kills it after ``timeout``)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("clasp-fast did not exit within %.0f s of SIGTERM:\n%s"
                               % (timeout, self.log()))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def kill_group(self, timeout: float = 10.0) -> None:
        """SIGKILL to the supervisor and every worker at once (a power cut, as far as the
        processes can tell); returns once all of them are gone."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise RuntimeError(f"processes of group {self.proc.pid} still alive {timeout} s after SIGKILL")

    def __enter__(self) -> "RouterProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill() if exc[0] else self.stop()


@contextlib.contextmanager
def router_factory(**defaults):
    """Yields ``start(*cli_args, **kw)``, which starts a clasp-fast process (``defaults``
    under ``kw``); at the end all are stopped with SIGTERM, and each must have exited 0."""
    started: list[RouterProcess] = []

    def start(*args: str, **kw) -> RouterProcess:
        rp = RouterProcess(*args, **{**defaults, **kw}).start()
        started.append(rp)
        return rp

    try:
        yield start
    finally:
        codes = [(rp, rp.stop()) for rp in started]     # stop all of them, then check
        for rp, code in codes:
            assert code == 0, f"clasp-fast exited with {code} on SIGTERM:\n{rp.log()}"


async def wait_changed(pred, changed, timeout: float, describe, poll: float = 0.25):
    """Returns ``pred()`` once it is true, re-checking whenever the asyncio Event ``changed``
    is set (and at least every ``poll`` s); after ``timeout`` s raises AssertionError with
    ``describe()`` as the message."""
    deadline = time.monotonic() + timeout
    while True:
        res = pred()
        if res:
            return res
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(describe())
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), min(left, poll))
        except asyncio.TimeoutError:
            pass


async def wait_until(pred: Callable, timeout: float, what: Union[str, Callable[[], str]],
                     poll: float = 0.05):
    """Polls ``pred`` every ``poll`` s until it is true (returns its value); after ``timeout``
    s fails with "no <what> within <timeout> s" (or ``what()`` when it is a function)."""
    describe = what if callable(what) else (lambda: f"no {what} within {timeout} s")
    return await wait_changed(pred, asyncio.Event(), timeout, describe, poll)


async def wait_log_count(rp: RouterProcess, text: str, count: int, timeout: float = 10.0) -> None:
    """Waits until ``text`` occurs at least ``count`` times in the router's output."""
    await wait_until(lambda: rp.log().count(text) >= count, timeout,
                     lambda: f"{text!r} seen {rp.log().count(text)} times, wanted {count}, "
                             f"within {timeout} s:\n{rp.log()[-4000:]}")
