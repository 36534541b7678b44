"""One worker's place in the cluster: its bus links and the rare bus records.

Workers talk over Unix stream sockets in the abstract namespace, one per pair
of workers (FIFO both ways).  The supervisor creates every worker's listening
socket before forking, so a peer can connect even before the worker runs.
At the first start worker i connects to every worker j < i; a restarted worker
connects to all.  Each side opens with R_HELLO (its index, restarted or not).

The owner sequences everything that fans out: other workers send it their
sessions' SETs (R_SET_REQ) and PUBLISHes (R_PUB_REQ); it decides, replicates
SETs to every worker (R_REPLICATE) and forwards PUBLISHes to the workers whose
sessions subscribe (R_PUBLISH; workers tell the owner their subscriptions with
R_INTEREST).  Every worker hears about every message from the owner, over one
FIFO link, so all of them see one order: per address and per publisher.  The
hot records are handled natively by ``Router.feed_link``; everything else
comes here.

A restarted worker asks every peer for its state (R_SYNC_REQ), merges what
comes back (highest revision wins) and only then starts accepting clients.  A
restarted owner also re-learns the locks, frees those of its own dead
sessions, sends its merged state to every replica, and only then decides the
requests that peers re-sent to it.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Optional

from .._native.outbox import PeerLink
from .._native.patterns import Subscription
from .._native.wire import decode_payload

log = logging.getLogger("clasp_fast.cluster")

R_HELLO, R_INTEREST, R_PUBLISH, R_SET_REQ, R_REPLICATE, R_REJECT, R_BUNDLE_REQ, R_DONE, \
    R_RELEASE, R_HOLDER, R_ANNOUNCE, R_SYNC_REQ, R_SYNC_PARAM, R_SYNC_DONE, R_DUP, R_PUB_REQ, \
    R_BARRIER = range(1, 18)
REQUESTS = (R_SET_REQ, R_PUB_REQ, R_BUNDLE_REQ, R_RELEASE, R_BARRIER)

OWNER = 0


def bus_address(group: str, index: int) -> str:
    """Abstract-namespace Unix socket name of worker ``index``'s bus listener."""
    return f"\0clasp-fast.{group}.{index}"


def make_bus_listener(group: str, index: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(bus_address(group, index))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _record(kind: int, body: bytes = b"") -> bytes:
    return struct.pack(">IB", 1 + len(body), kind) + body


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
        transport.write(_record(R_HELLO, bytes((self.node.index, int(self.node.syncing_now)))))

    def data_received(self, data: bytes):
        if self.link is not None:
            self.node.router.receive_link(self.link, data)
            return
        self.buf += data
        if len(self.buf) < 7:
            return
        size, kind = struct.unpack(">IB", self.buf[:5])
        if kind != R_HELLO or size != 3:
            log.error("bus: unexpected first record %d from a peer; closing", kind)
            self.transport.close()
            return
        peer, restarted = self.buf[5], bool(self.buf[6])
        rest, self.buf = self.buf[7:], b""
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
        self.peer_subs: dict[int, dict[tuple[str, int], Subscription]] = {}
        self.sub_ids = 0
        self.syncing: set[int] = set()
        self.sync_done = asyncio.Event()
        self.held: list[tuple[PeerLink, int, bytes]] = []
        self.server: Optional[asyncio.AbstractServer] = None
        router.attach_cluster(self, index)
        router.holding = restarted and index == OWNER

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
        return sum(1 for j in self.peers if self.router.links[j] is not None)

    # --- links ------------------------------------------------------------------

    def link_up(self, peer: int, peer_restarted: bool, transport) -> PeerLink:
        old = self.router.links[peer]
        if old is not None:
            self.link_down(old)
        link = self.router.add_link(peer)
        link.io = transport
        if peer_restarted:
            # a new process: its request numbers start again (every worker must forget the
            # old ones, or a later owner would take the new requests for duplicates)
            self.router.forget_origin(peer)
        log.info("bus: worker %d linked to worker %d%s", self.index, peer,
                 " (restarted)" if peer_restarted else "")
        if peer == OWNER:
            # the owner routes every PUBLISH: it must know what our sessions subscribe to
            for pattern, mask in self.router.interest_entries():
                link.send_record(R_INTEREST, self._interest_body(True, pattern, mask))
        if peer == OWNER and not self.router.is_owner and not peer_restarted:
            self.router.owner_link = link
            if len(self.router.pending):
                self.router.resend_pending()
        # a restarted owner first asks for our state (R_SYNC_REQ); we make it our owner then
        if self.syncing_now:
            self.syncing.add(peer)
            link.send_record(R_SYNC_REQ)
        return link

    def link_down(self, link: PeerLink) -> None:
        if self.router.links[link.index] is not link:
            return
        log.warning("bus: worker %d lost its link to worker %d", self.index, link.index)
        for sub in self.peer_subs.pop(link.index, {}).values():
            self.router.trie.unsubscribe(sub)
        self.router.remove_link(link)
        self.syncing.discard(link.index)

    # --- records ------------------------------------------------------------------

    def on_record(self, link: PeerLink, kind: int, body: bytes) -> None:
        r = self.router
        if kind == R_INTEREST:
            self._on_interest(link, body)
        elif kind in REQUESTS and r.holding:
            self.held.append((link, kind, body))
        elif kind == R_SET_REQ:
            r.replay_set_request(link, body)
        elif kind == R_PUB_REQ:
            r.replay_publish_request(link, body)
        elif kind == R_BARRIER:
            r.replay_barrier(link, body)
        elif kind == R_BUNDLE_REQ:
            r.owner_bundle(link, body)
        elif kind == R_RELEASE:
            r.owner_release(link, body)
        elif kind == R_REJECT:
            r.resolve_reject(body)
        elif kind == R_DONE:
            r.resolve_done(body)
        elif kind == R_DUP:
            r.resolve_dup(body)
        elif kind == R_HOLDER:
            r.apply_holder(body)
        elif kind == R_ANNOUNCE:
            r.add_signals(decode_payload(body))
        elif kind == R_SYNC_REQ:
            self._send_state(link)
        elif kind == R_SYNC_PARAM:
            r.merge_param(body)
        elif kind == R_SYNC_DONE:
            self._on_sync_done(link, body)
        else:
            log.error("bus: unknown record kind %d from worker %d", kind, link.index)

    def _interest_body(self, add: bool, pattern: str, mask: int) -> bytes:
        p = pattern.encode()
        return bytes((int(add), mask)) + struct.pack(">H", len(p)) + p

    def _on_interest(self, link: PeerLink, body: bytes) -> None:
        add, mask = body[0], body[1]
        (n,) = struct.unpack(">H", body[2:4])
        pattern = body[4:4 + n].decode()
        subs = self.peer_subs.setdefault(link.index, {})
        key = (pattern, mask)
        if add and key not in subs:
            self.sub_ids += 1
            sub = Subscription(link, self.sub_ids, pattern, mask)
            subs[key] = sub
            self.router.trie.subscribe(sub)
        elif not add and key in subs:
            self.router.trie.unsubscribe(subs.pop(key))

    def interest_changed(self, pattern: str, mask: int, added: bool) -> None:
        owner = self.router.links[OWNER]
        if owner is not None and not self.router.is_owner:
            owner.send_record(R_INTEREST, self._interest_body(added, pattern, mask))

    def broadcast_announce(self, payload: bytes) -> None:
        for link in self.router.links:
            if link is not None:
                link.send_record(R_ANNOUNCE, payload)

    # --- state sync -----------------------------------------------------------------

    def _send_state(self, link: PeerLink) -> None:
        """A restarted peer asks for our state: params, announced signals, decided requests."""
        r = self.router
        r.dump_state(link)
        from .._native.wire import encode_payload
        from ..protocol import Announce
        signals = list(r.signals.values())
        for i in range(0, len(signals), 200):
            link.send_record(R_ANNOUNCE, encode_payload(Announce(namespace="", signals=signals[i:i + 200])))
        vector = r.applied_vector()
        link.send_record(R_SYNC_DONE, bytes((len(vector),)) + b"".join(
            bytes((i,)) + seq.to_bytes(8, "big") for i, seq in vector.items()))
        if link.index == OWNER and not r.is_owner:
            # the owner restarted: it has our state now; send it what it has not decided
            r.owner_link = link
            if len(r.pending):
                r.resend_pending()

    def _on_sync_done(self, link: PeerLink, body: bytes) -> None:
        vector = {body[1 + 9 * i]: int.from_bytes(body[2 + 9 * i:10 + 9 * i], "big")
                  for i in range(body[0])}
        self.router.merge_applied(vector)
        self.syncing.discard(link.index)

    def _finish_sync(self) -> None:
        r = self.router
        log.info("worker %d: state synced from peers (%d params)", self.index, r.param_count)
        if r.is_owner:
            r.rebuild_holders(dead_origin=OWNER)
            r.broadcast_state()
            r.holding = False
            held, self.held = self.held, []
            for link, kind, body in held:
                if r.links[link.index] is link:
                    self.on_record(link, kind, body)
        self.sync_done.set()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for link in list(self.router.links):
            if link is not None and link.io is not None:
                link.io.close()
