"""The servers the scenarios run against.

* ``clasp-fast`` (``--workers N``), started as ``python -m clasp_fast`` with the
  connection limits off (the bench opens thousands of connections from 127.0.0.x) and
  without a state file (``--no-persistence``; the ``durable`` scenario turns it on);
* ``ceiling-tick`` / ``ceiling-send``: the bare picows forwarder (bench/ceiling.py);
* ``peer``: any other CLASP router, started by ``--peer 'COMMAND {port}'``;
* ``clasp-fast-nodes``: two clasp-fast nodes (``--workers 2`` each) joined through a
  nats-server (docs/cluster.md); subscribers connect to one node, publishers to the other.

Every server runs pinned to the router CPU(s), in its own process group, and is
stopped (SIGTERM, then SIGKILL of the group) when its scenario ends.
"""
from __future__ import annotations

import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import procs


class TargetError(RuntimeError):
    pass


@dataclass
class Server:
    target: "Target"
    proc: procs.Proc
    host: str
    port: int
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"{self.target.scheme}://{self.host}:{self.port}/"

    def pids(self) -> list[int]:
        return self.proc.tree()

    def alive(self) -> bool:
        return self.proc.alive()

    def stop(self) -> None:
        self.proc.stop(signal.SIGTERM, timeout=8)


@dataclass
class Target:
    name: str
    kind: str                       # clasp-fast | ceiling | peer
    workers: int = 1
    mode: str = ""                  # ceiling: tick | send
    command: str = ""               # peer: shell command with {port}
    extra_args: list = field(default_factory=list)
    scheme: str = "ws"              # wss: extra_args hold --tls-cert/--tls-key
    metrics_port: int = 0           # scraped by scenarios that report server counters
    tails: Optional[dict] = None    # calibration: bytes after the value in a delivered SET / PUBLISH
    hello_token: Optional[str] = None   # token mode: the token generators send in HELLO

    @property
    def description(self) -> str:
        if self.kind == "clasp-fast":
            return f"clasp-fast, {self.workers} worker{'s' if self.workers > 1 else ''}"
        if self.kind == "ceiling":
            return ("bare picows forwarder, one write per connection per loop tick" if self.mode == "tick"
                    else "bare picows forwarder, one send() per delivery")
        return f"peer: {self.command}"

    def argv(self, host: str, port: int) -> tuple[list, bool]:
        py = procs.python()
        if self.kind == "clasp-fast":
            return ([py, "-m", "clasp_fast", "--host", host, "--port", str(port),
                     "--workers", str(self.workers), "--log-level", "warning",
                     "--max-connections", "0", "--max-connections-per-ip", "0",
                     "--no-persistence", *self.extra_args], False)
        if self.kind == "ceiling":
            return [py, "-m", procs.module("ceiling"), "--host", host, "--port", str(port),
                    "--mode", self.mode], False
        return [self.command.replace("{port}", str(port)).replace("{host}", host)], True

    def start(self, cpus, log_dir: Path, host: str = "127.0.0.1", timeout: float = 30.0) -> Server:
        port = procs.free_port(host)
        argv, shell = self.argv(host, port)
        log_path = log_dir / f"server-{self.name}-{port}.log"
        p = procs.spawn(argv[0] if shell else argv, name=self.name, cpus=cpus, log_path=log_path,
                        shell=shell, deathsig=signal.SIGTERM)
        if not procs.wait_port(host, port, timeout, p):
            code = p.stop(signal.SIGKILL, 3)
            raise TargetError(f"{self.name} did not start listening on {host}:{port} "
                              f"(exit code {code}); command: "
                              f"{argv[0] if shell else shlex.join(argv)}\n{p.log_tail()}")
        if self.kind == "clasp-fast" and self.workers > 1:
            # the supervisor checks the port before its workers listen: wait for all of them
            deadline = time.monotonic() + timeout
            while len(p.tree()) < self.workers + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        return Server(self, p, host, port)


@dataclass
class NodesServer:
    """Two clasp-fast nodes and their nats-server, as one server of a scenario: ``url`` is
    the node the subscribers use, ``pub_url`` the node the publishers use."""
    target: "Target"
    nats: object
    nodes: list

    host = property(lambda self: self.nodes[1].host)
    port = property(lambda self: self.nodes[1].port)
    url = property(lambda self: self.nodes[1].url)
    pub_url = property(lambda self: self.nodes[0].url)

    def pids(self) -> list[int]:
        """The nodes' processes and the nats-server (the system measured)."""
        return [p for n in self.nodes for p in n.pids()] + [self.nats.proc.pid]

    def alive(self) -> bool:
        return all(n.alive() for n in self.nodes)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
        self.nats.stop()


class NodesTarget(Target):
    def start(self, cpus, log_dir: Path, host: str = "127.0.0.1", timeout: float = 30.0) -> NodesServer:
        from .nats_servers import NatsServer
        # the nats-server runs on the router's CPUs: it is part of the system measured
        nats = NatsServer(log_dir, f"nats-{procs.free_port(host)}").start(cpus=cpus)
        nodes = []
        try:
            for name in ("a", "b"):
                node = Target(f"{self.name}-{name}", "clasp-fast", workers=self.workers,
                              extra_args=[*self.extra_args, "--cluster-nats", nats.url, "--cluster-node", name])
                nodes.append(node.start(cpus, log_dir, host, timeout))
        except Exception:
            for n in nodes:
                n.stop()
            nats.stop()
            raise
        return NodesServer(self, nats, nodes)


def clasp_fast_nodes(workers: int = 2, extra_args=()) -> Target:
    return NodesTarget("clasp-fast-2-nodes", "clasp-fast", workers=workers, extra_args=list(extra_args))


def clasp_fast(workers: int = 1, extra_args=(), name: str = "", scheme: str = "ws",
               metrics: bool = False) -> Target:
    name = name or ("clasp-fast" if workers == 1 else f"clasp-fast-{workers}w")
    t = Target(name, "clasp-fast", workers=workers, extra_args=list(extra_args), scheme=scheme)
    if metrics:
        t.metrics_port = procs.free_port("127.0.0.1")
        t.extra_args += ["--metrics-port", str(t.metrics_port)]
    return t


def ceiling(mode: str) -> Target:
    return Target(f"ceiling-{mode}", "ceiling", mode=mode)


def peer(command: str, name: str = "peer") -> Target:
    if "{port}" not in command:
        raise ValueError("--peer needs a command with {port} in it, e.g. 'my-router --port {port}'")
    return Target(name, "peer", command=command)
