"""The serve loop, the same for ``--workers 1`` (``cli.serve``) and for each worker of
``--workers N`` (``cluster/worker.py``): signals, listen, metrics, wait, shut down.

SIGTERM/SIGINT stop (connections are closed with 1001); SIGHUP reloads the TLS
certificate (with ``--workers N`` the supervisor forwards SIGHUP to every worker).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from typing import Callable, Optional

from . import tls

log = logging.getLogger("clasp_fast")


class StartError(Exception):
    """The server could not start; the message is the one line to show."""


def port_problem(host: str, port: int) -> Optional[str]:
    """Why ``host:port`` cannot be served, or None.

    One router per port: the probe binds without SO_REUSEPORT (with SO_REUSEADDR, so
    connections of an earlier run in TIME_WAIT do not count), which fails while any
    socket listens on the port, another clasp-fast's SO_REUSEPORT workers included."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return listen_error(host, port, exc)
    return None


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


async def run_server(server, *, metrics_port: int = 0, worker: Optional[int] = None,
                     node=None, on_ready: Callable[[str, int], None]) -> int:
    """Runs ``server`` (a ClaspServer; with ``node``, a cluster worker's) until SIGTERM/SIGINT.

    ``on_ready(host, port)`` is called once clients can connect.  Raises StartError."""
    config = server.config
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_tls, server)
    server.prepare()
    if node is not None:
        await node.start()
    try:
        host, port = await server.listen()
    except OSError as exc:
        raise StartError(listen_error(config.host, config.port, exc)) from None
    metrics = None
    if metrics_port:
        from .metrics import start_metrics
        try:
            metrics = await start_metrics(server, config.host, metrics_port, worker=worker)
        except OSError as exc:
            await server.stop()
            raise StartError(f"cannot serve metrics on {config.host}:{metrics_port}: "
                             f"{exc.strerror or exc} (pick another --metrics-port)") from None
    on_ready(host, port)
    await stop.wait()
    log.info("shutting down: closing %d connection(s) with 1001", server.connection_count)
    if metrics is not None:
        metrics.close()
    await server.stop()
    if node is not None:
        await node.stop()
    return 0
