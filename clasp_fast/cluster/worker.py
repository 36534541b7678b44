"""A worker process: one event loop, one router replica, one SO_REUSEPORT listener.

Started by the supervisor in a forked child.  It links to its peers (and, if
it replaces a dead worker, syncs their state) before it opens its listener, so
a client never meets a worker that does not yet know the state.
"""
from __future__ import annotations

import logging
import os
import signal
import socket

from ..config import Config
from ..logs import tag_worker

log = logging.getLogger("clasp_fast.cluster")


def report(fd: int, line: str) -> None:
    """One line to the supervisor (pipe writes below PIPE_BUF are atomic)."""
    os.write(fd, (line.replace("\n", " ")[:400] + "\n").encode())


def run_worker(config: Config, index: int, nworkers: int, group: str, listener: socket.socket,
               limits, ready_fd: int, restarted: bool, failed_hellos=None,
               node_tag: str = "") -> int:
    import uvloop

    _exit_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT,
                                                signal.SIGHUP})
    tag_worker(index, config.log_format)
    limits.bind(index)
    if failed_hellos is not None:
        failed_hellos.bind(index)
    try:
        return uvloop.run(_serve(config, index, nworkers, group, listener, limits, ready_fd, restarted,
                                 failed_hellos, node_tag))
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
                 limits, ready_fd: int, restarted: bool, failed_hellos=None,
                 node_tag: str = "") -> int:
    from ..router import Router
    from ..server.app import ClaspServer
    from ..server.control import Control
    from ..server.run import StartError, run_server
    from .node import ClusterNode

    router = Router(config.router_config())
    if config.cluster_nats:
        router.session_tag = node_tag       # a lock holder's id names its node (nats/presence.py)
    journal = None
    if config.persistence and index == 0:
        from ..state.owner import OwnerJournal
        journal = OwnerJournal(config, router)        # the supervisor holds the file's lock
    node = ClusterNode(router, index, nworkers, group, listener, restarted=restarted)
    if os.environ.get("CLASP_FAST_DEBUG_HOOKS") == "1":
        import asyncio
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, node.drop_links)
    server = ClaspServer(config, router=router, limits=limits, reuse_port=True,
                         failed_hellos=failed_hellos)
    server.control = Control(server, index, nworkers, group)
    bridge = None
    if config.cluster_nats:
        server.cross_node_up = True
        node.on_cross_node = lambda up: setattr(server, "cross_node_up", up)
        node.wait_cross_node = index != 0
        router.ping_barrier = True          # PING waits for the owner's cluster barrier (commit.py)
    if config.cluster_nats and index == 0:
        # the owner is the node's one NATS client (docs/cluster.md); nats is imported only here
        try:
            from .nats.bridge import start_bridge
        except ImportError as exc:
            raise RuntimeError(f"cluster.nats_url is set but the NATS client cannot be imported ({exc}): "
                               f"pip install 'clasp-fast[cluster]'") from None
        bridge = await start_bridge(router, config, node_tag, on_link=node.on_cross_node)
        server.cross_node_figures = bridge.figures
        linked = node.start

        async def start_and_catch_up():
            await linked()                  # the bus links to the workers are up
            await bridge.catch_up()         # then the cluster's state, before clients come

        node.start = start_and_catch_up
    try:
        return await run_server(server, node=node, journal=journal,
                                metrics_port=config.metrics_port,
                                on_ready=lambda host, port: report(ready_fd, f"ready {index}"))
    except StartError as exc:
        report(ready_fd, f"error {index} {exc}")
        return 3
    finally:
        if bridge is not None:
            await bridge.stop()
