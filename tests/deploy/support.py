"""Helpers for the deployment tests: the real clients' exchange, other programs run for real.

``set_and_see`` is the exchange every set-up must carry: the real Python client and the
real JS client connect to a URL, and each one's subscription sees the other's SET.

``Service`` runs a program (nginx, HAProxy, the Autobahn echo endpoint) as a child process
in the foreground, waits until it accepts TCP connections on its port, and stops it by its
own pid with SIGTERM (SIGKILL after a few seconds).  Its output is kept for failure messages.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Optional, Sequence

import pytest

from bench.procs import wait_port
from tests.support import REPO, free_port

EXAMPLES = REPO / "examples"


def require_binary(name: str) -> str:
    """The path of a system program the test needs; fails (not skips) when it is missing:
    .ci/run installs it from Debian."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"{name} is not installed: run .ci/run, or apt-get install {name}")
    return path


class Service:
    """A foreground child process serving on ``host:port``."""

    def __init__(self, name: str, argv: Sequence[str], port: int, host: str = "127.0.0.1",
                 cwd: Optional[Path] = None, env: Optional[dict] = None):
        self.name = name
        self.argv = list(argv)
        self.host = host
        self.port = port
        self.cwd = cwd or REPO
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc: Optional[subprocess.Popen] = None
        self.output: list[str] = []

    def start(self, timeout: float = 15.0) -> "Service":
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        threading.Thread(target=self._pump, daemon=True).start()
        if not wait_port(self.host, self.port, timeout, self):
            self.stop()
            raise RuntimeError(f"{self.name} did not listen on {self.host}:{self.port}:\n"
                               + self.log())
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 5.0) -> Optional[int]:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def set_and_see(py_clients, js_clients, url: str) -> None:
    """The real Python and JS clients through ``url``: each sees the other's SET."""
    py = await py_clients(url)
    js = await js_clients(url)
    assert py.session and js.session
    py.subscribe("py", "/deploy/js/*")
    await js.cmd("subscribe", label="js", pattern="/deploy/py/*")
    await py.barrier()
    await js.barrier()
    await py.c.set("/deploy/py/level", 0.5)
    await js.cmd("set", address="/deploy/js/name", value="through the proxy")
    await js.wait_for(lambda: js.calls("js"), what="the Python client's SET")
    await py.wait_for(lambda: py.calls("py"), what="the JS client's SET")
    assert js.calls("js") == [("/deploy/py/level", 0.5)]
    assert py.calls("py") == [("/deploy/js/name", "through the proxy")]


__all__ = ["EXAMPLES", "REPO", "Service", "free_port", "require_binary", "set_and_see"]
