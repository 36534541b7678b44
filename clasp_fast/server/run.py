"""The serve loop, the same for ``--workers 1`` (``cli.serve``) and for each worker of
``--workers N`` (``cluster/worker.py``): signals, listen, metrics, wait, shut down.

SIGTERM/SIGINT stop (connections are closed with 1001); SIGHUP reloads the TLS
certificate and, in token mode, the tokens file (with ``--workers N`` the supervisor
forwards SIGHUP to every worker).
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import signal
import socket
import tempfile
from typing import Callable, Optional

from . import tls

log = logging.getLogger("clasp_fast")


class StartError(Exception):
    """The server could not start; the message is the one line to show."""


class PortClaim:
    """The claim a router holds on its port for as long as it runs: one router per port.

    Two checks, made before any listener exists (by the single process, or by the
    supervisor before it forks):

    * a lock file, ``clasp-fast-<host>-<port>.lock`` in the temporary directory, held with
      ``flock`` for the life of the process (and its forked workers): two routers started
      at the same moment cannot both pass, and the lock goes away with the process (the
      file too, at a clean exit);
    * a probe bind without SO_REUSEPORT (with SO_REUSEADDR, so connections of an earlier
      run in TIME_WAIT do not count), which fails while any socket listens on the port:
      another clasp-fast's SO_REUSEPORT workers, one bound to an overlapping address
      (0.0.0.0 against 127.0.0.1), or any other server.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.path = os.path.join(tempfile.gettempdir(), f"clasp-fast-{host}-{port}.lock")
        self.fd: Optional[int] = None

    def take(self) -> Optional[str]:
        """None once claimed, else the one line saying why the port cannot be served."""
        if self.port == 0:
            return None
        in_use = listen_error(self.host, self.port, OSError(errno.EADDRINUSE, "in use"))
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:
            fd = None               # no usable temporary directory: the probe still holds
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return in_use
            self.fd = fd
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                self.release()
                return listen_error(self.host, self.port, exc)
        return None

    def release(self) -> None:
        """At a clean exit: removes the lock file (while still holding it) and lets go."""
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


def listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot listen on {host}:{port}: the port is in use (another clasp-fast or another "
                f"server holds it; one router per port): stop it or pick another --port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {host}:{port}: {host} is not an address of this machine; "
                f"pick one with --host (0.0.0.0 = all)")
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def reload_tls(server) -> None:
    try:
        server.reload_tls()
    except tls.TLSError as exc:
        log.error("SIGHUP: TLS certificate not reloaded, still serving the old one: %s", exc)


def on_sighup(server) -> None:
    """SIGHUP: the TLS certificate and the tokens file (token mode) again."""
    reload_tls(server)
    server.reload_tokens()


async def run_server(server, *, metrics_port: int = 0, node=None, journal=None,
                     on_ready: Callable[[str, int], None]) -> int:
    """Runs ``server`` (a ClaspServer; with ``node``, a cluster worker's) until SIGTERM/SIGINT.

    ``journal``: the state owner's OwnerJournal (clasp_fast.state), restored before anything
    listens (and before a restarted owner syncs), closed after the connections.
    ``on_ready(host, port)`` is called once clients can connect.  Raises StartError."""
    config = server.config
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_sighup, server)
    server.prepare()
    if journal is not None:
        journal.restore()
        journal.start()
    if node is not None:
        await node.start()
    await server.control.start()
    try:
        host, port = await server.listen()
    except OSError as exc:
        raise StartError(listen_error(config.host, config.port, exc)) from None
    metrics = None
    if metrics_port:
        from .pages import serve_metrics
        try:
            metrics = await serve_metrics(server, config.host, metrics_port,
                                          reuse_port=server.control.nworkers > 1)
        except OSError as exc:
            await server.stop()
            raise StartError(f"cannot serve metrics on {config.host}:{metrics_port}: "
                             f"{exc.strerror or exc} (pick another --metrics-port)") from None
    on_ready(host, port)
    await stop.wait()
    log.info("shutting down: closing %d connection(s) with 1001", server.connection_count)
    if metrics is not None:
        metrics.close()
    server.control.stop()
    await server.stop()
    if journal is not None:
        journal.close()
    if node is not None:
        await node.stop()
    return 0
