"""A worker process: one event loop, one router replica, one SO_REUSEPORT listener.

Started by the supervisor in a forked child.  It links to its peers (and, if
it replaces a dead worker, syncs their state) before it opens its listener, so
a client never meets a worker that does not yet know the state.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from ..config import Config

log = logging.getLogger("clasp_fast.cluster")


def report(fd: int, line: str) -> None:
    """One line to the supervisor (pipe writes below PIPE_BUF are atomic)."""
    os.write(fd, (line.replace("\n", " ")[:400] + "\n").encode())


def run_worker(config: Config, index: int, nworkers: int, group: str, listener: socket.socket,
               limits, ready_fd: int, restarted: bool, failed_hellos=None) -> int:
    import uvloop

    _exit_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT,
                                                signal.SIGHUP})
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s w{index} %(name)s: %(message)s"))
    limits.bind(index)
    if failed_hellos is not None:
        failed_hellos.bind(index)
    try:
        return uvloop.run(_serve(config, index, nworkers, group, listener, limits, ready_fd, restarted,
                                 failed_hellos))
    except Exception as exc:       # anything that escapes is a failed start or a crash
        report(ready_fd, f"error {index} {type(exc).__name__}: {exc}")
        log.exception("worker %d crashed", index)
        return 1


def _exit_with_parent() -> None:
    """Linux: get SIGTERM if the supervisor dies, so no orphan keeps serving the port."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


async def _serve(config: Config, index: int, nworkers: int, group: str, listener: socket.socket,
                 limits, ready_fd: int, restarted: bool, failed_hellos=None) -> int:
    from ..router import Router
    from ..server.app import ClaspServer
    from .node import ClusterNode

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    router = Router(config.router_config())
    node = ClusterNode(router, index, nworkers, group, listener, restarted=restarted)
    server = ClaspServer(config, router=router, limits=limits, reuse_port=True,
                         failed_hellos=failed_hellos)
    loop.add_signal_handler(signal.SIGHUP, server.reload_tokens)
    server.prepare()
    await node.start()
    try:
        await server.listen()
    except OSError as exc:
        report(ready_fd, f"error {index} cannot listen on {config.host}:{config.port}: "
                         f"{exc.strerror or exc}")
        return 3
    metrics = None
    if config.metrics_port:
        from ..server.metrics import start_metrics
        try:
            metrics = await start_metrics(server, config.host, config.metrics_port + index, worker=index)
        except OSError as exc:
            report(ready_fd, f"error {index} cannot serve metrics on {config.host}:"
                             f"{config.metrics_port + index}: {exc.strerror or exc} "
                             f"(pick another --metrics-port)")
            return 3
    report(ready_fd, f"ready {index}")
    await stop.wait()
    if metrics is not None:
        metrics.close()
    log.info("worker %d shutting down: closing %d connection(s) with 1001", index, server.connection_count)
    await server.stop()
    await node.stop()
    return 0
