"""One worker's place in the cluster: its bus links and the rare bus records.

Workers talk over Unix stream sockets in the abstract namespace, one per pair
of workers (FIFO both ways).  The supervisor creates every worker's listening
socket before forking, so a peer can connect even before the worker runs.
At the first start worker i connects to every worker j < i; a restarted worker
connects to all.  Each side opens with R_HELLO (its index, restarted or not).

The records and their layouts are defined in ``clasp_fast._native.bus``; the
router handles every record that changes state (``Router.feed_link`` and
``Router.on_record``); this module is the socket I/O and the restart handshake.

The owner sequences everything that fans out: other workers send it their
sessions' SETs (R_SET_REQ) and PUBLISHes (R_PUB_REQ); it decides, replicates
SETs to every worker (R_REPLICATE) and forwards PUBLISHes to the workers whose
sessions subscribe (R_PUBLISH; workers tell the owner their subscriptions with
R_INTEREST).  Every worker hears about every message from the owner, over one
FIFO link, so all of them see one order: per address and per publisher.  The
hot records are handled natively by ``Router.feed_link``, the others by
``Router.on_record``.

A restarted worker asks every peer for its state (R_SYNC_REQ), merges what
comes back (highest revision wins) and only then starts accepting clients.  A
restarted owner also re-learns the locks, frees those of its own dead
sessions, sends its merged state to every replica, and only then decides the
requests that peers re-sent to it.

A lost link is normal while a peer restarts (the restarted process links to
everyone).  A link that stays down for LINK_GRACE seconds is not: the worker
with the higher index of the pair (never the owner) exits with code 1, the
supervisor restarts it and the new process links to every peer and syncs.  So
no worker stays half-alive, taking clients it cannot serve.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Optional

from .._native import bus
from .._native.outbox import PeerLink

log = logging.getLogger("clasp_fast.cluster")

OWNER = 0

# seconds a lost bus link may stay down (a peer restarting and syncing) before the worker with
# the higher index of the pair exits to be restarted (docs/operations.md "Bus links")
LINK_GRACE = 10.0


def bus_address(group: str, index: int) -> str:
    """Abstract-namespace Unix socket name of worker ``index``'s bus listener."""
    return f"\0clasp-fast.{group}.{index}"


def make_bus_listener(group: str, index: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(bus_address(group, index))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _BusProtocol(asyncio.Protocol):
    """One bus connection: waits for the peer's R_HELLO, then feeds the router."""

    def __init__(self, node: "ClusterNode", peer: Optional[int]):
        self.node = node
        self.expected_peer = peer
        self.transport = None
        self.link: Optional[PeerLink] = None
        self.buf = b""

    def connection_made(self, transport):
        self.transport = transport
        transport.write(bus.hello(self.node.index, self.node.syncing_now))

    def data_received(self, data: bytes):
        if self.link is not None:
            self.node.router.receive_link(self.link, data)
            return
        self.buf += data
        if len(self.buf) < bus.HELLO_SIZE:
            return
        hello = bus.parse_hello(self.buf)
        if hello is None:
            log.error("bus: the first record from a peer is not R_HELLO; closing")
            self.transport.close()
            return
        peer, restarted = hello
        rest, self.buf = self.buf[bus.HELLO_SIZE:], b""
        self.link = self.node.link_up(peer, restarted, self.transport)
        if rest:
            self.node.router.receive_link(self.link, rest)

    def connection_lost(self, exc):
        if self.link is not None:
            self.node.link_down(self.link)


class ClusterNode:
    def __init__(self, router, index: int, nworkers: int, group: str, listener: socket.socket,
                 restarted: bool = False):
        self.router = router
        self.index = index
        self.nworkers = nworkers
        self.group = group
        self.listener = listener
        self.restarted = restarted
        self.syncing: set[int] = set()
        self.sync_done = asyncio.Event()
        self.server: Optional[asyncio.AbstractServer] = None
        self.stopping = False
        router.attach_cluster(self, index, holding=restarted and index == OWNER)

    @property
    def syncing_now(self) -> bool:
        """A new process that has not got the state yet (what R_HELLO's flag says: a peer
        that sees it forgets the old process's request numbers, and waits for this one's
        R_SYNC_REQ before taking it as the owner).  A restarted worker that has synced is
        an ordinary peer for the workers that link to it later."""
        return self.restarted and not self.sync_done.is_set()

    @property
    def peers(self) -> list[int]:
        return [i for i in range(self.nworkers) if i != self.index]

    async def start(self, timeout: float = 10.0) -> None:
        """Links to every peer (and, after a restart, their state) before clients come."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _BusProtocol(self, None), sock=self.listener)
        targets = self.peers if self.restarted else [j for j in self.peers if j < self.index]
        for j in targets:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(bus_address(self.group, j))    # local and listening: does not block
                sock.setblocking(False)
                await loop.create_unix_connection(lambda j=j: _BusProtocol(self, j), sock=sock)
            except OSError as exc:
                log.warning("bus: worker %d cannot reach worker %d: %s", self.index, j, exc)
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.restarted:
                if not self.syncing and self._links_up() >= len(targets):
                    break
            elif self._links_up() == len(self.peers):
                break
            await asyncio.sleep(0.01)
        else:
            log.warning("bus: worker %d started with %d of %d peers linked%s", self.index,
                        self._links_up(), len(self.peers), " (state sync incomplete)" if self.syncing else "")
        if self.restarted:
            self._finish_sync()

    def _links_up(self) -> int:
        return sum(1 for j in self.peers if self.router.linked(j))

    # --- links ------------------------------------------------------------------

    def link_up(self, peer: int, peer_restarted: bool, transport) -> PeerLink:
        syncing = self.syncing_now
        link = self.router.link_up(peer, peer_restarted, transport, syncing)
        log.debug("bus: worker %d linked to worker %d%s", self.index, peer,
                 " (restarted)" if peer_restarted else "")
        if syncing:
            self.syncing.add(peer)
        return link

    def link_down(self, link: PeerLink) -> None:
        if self.router.link_down(link):
            # a peer that stops or dies: the supervisor reports deaths (and every worker
            # sees every other go at a clean stop), so this is not worth a line by default
            log.debug("bus: worker %d lost its link to worker %d", self.index, link.index)
            self.syncing.discard(link.index)
            if self.index > link.index and not self.stopping:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:        # driven without an event loop (unit tests)
                    return
                loop.call_later(LINK_GRACE, self._check_link, link.index)

    def _check_link(self, peer: int) -> None:
        """LINK_GRACE after losing the link to ``peer``: still down, so restart to relink."""
        if self.stopping or self.router.linked(peer):
            return
        log.error("bus: worker %d has had no link to worker %d for %g s; exiting so that the "
                  "supervisor restarts it linked to every peer", self.index, peer, LINK_GRACE)
        logging.shutdown()
        os._exit(1)

    def drop_links(self) -> None:
        """Debug hook (CLASP_FAST_DEBUG_HOOKS=1, SIGUSR2): aborts every bus link, as a broken
        socket would; tests use it to see the links come back."""
        log.warning("bus: worker %d drops its bus links (debug hook)", self.index)
        for link in self.router.peer_links():
            if link.io is not None:
                link.io.abort()

    # --- state sync -----------------------------------------------------------------

    def peer_synced(self, index: int) -> None:
        """Worker ``index`` has sent us its whole state (R_SYNC_DONE)."""
        self.syncing.discard(index)

    def _finish_sync(self) -> None:
        log.info("worker %d: state synced from peers (%d params)", self.index, self.router.param_count)
        self.router.finish_sync(dead_origin=OWNER)
        self.sync_done.set()

    async def stop(self) -> None:
        self.stopping = True
        if self.server is not None:
            self.server.close()
        for link in self.router.peer_links():
            if link.io is not None:
                link.io.close()
