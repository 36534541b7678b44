"""The node's one NATS client, in the owner (worker 0): routed frames between nodes.

The owner sequences everything its node fans out (docs/architecture.md), so it is the
one place that sees every SET decision and every PUBLISH of the node in the node's
order.  The bridge is a bus peer of the owner, a ``PeerLink`` with index ``BRIDGE``
whose transport is this object:

* **out**: the owner's per-tick output to the link (``write``) is bus records; the
  R_PUBLISH (a ready PUBLISH frame; the link subscribes to ``/**``) and R_REPLICATE (a
  decided SET: state + ready frame) records are published unchanged, in the bus's record
  layout, on the subject of their address (``subjects.subject``): consecutive records of
  one address in one tick travel as one NATS message.  One task publishes in order;
  nats-py batches the writes in its flusher.
* **in**: the node subscribes only to the subjects its clients' patterns need
  (``interest.py``: reference-counted, a SUBSCRIBE answered once NATS has the
  subscription, messages stamped so that they are applied in each sender's order, once).
  A frame from another node enters the owner as if a local worker had sent it:
  a PUBLISH as an R_PUB_REQ copy (the owner delivers it to its sessions and forwards it
  to the interested workers, not back to the bridge), a SET as an R_REPLICATE (stored,
  delivered to the owner's sessions, then passed on to every worker link), a lock freed
  because its holder left (R_HOLDER) likewise.  So the order
  per publisher and per address that one node keeps holds across nodes.

The connection uses ``no_echo``: NATS does not hand a node its own frames back.

**State**: each decided SET is also written, unchanged, to the cluster's key-value
bucket (``bucket.py``; the last one per address of each tick, published in the same
ordered stream as the routed frames, acknowledged by JetStream and retried until it is).  A starting node reads
the bucket (``catch_up``) into its owner and workers before its owner takes clients;
frames that arrive from other nodes meanwhile are held and applied after it.  Then it
keeps following the bucket (``_follow``), so its replicas get every param decided
anywhere, subscribed or not.  ``presence.py``: heartbeats, and the locks of a dead node
freed; ``epoch.py``: a lost bucket noticed.

**NATS loss**: the node keeps serving its own clients; the bridge logs it, tells the
workers (R_CLUSTER: ``/readyz`` answers 503 with the reason, ``clasp_cluster_nats_up`` is
0) and lets nats-py queue the outgoing frames.  Once ``cluster.queue_size`` bytes are
queued the owner refuses SETs with ERROR 503 (``Router.cross_node_full``) instead of
deciding writes the other nodes would never see.  When NATS returns, nats-py sends the
queue, and the node re-reads the bucket (``catch_up``: params newer than its own) for
what the other nodes decided meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Optional

import nats
import nats.errors

from nats.js.errors import NotFoundError

from ..._native import bus
from ...protocol import decode_frame, peek
from . import epoch, subjects
from .bucket import open_bucket, with_jetstream
from .interest import NodeInterest
from .presence import NodePresence

log = logging.getLogger("clasp_fast.cluster.nats")

BRIDGE = 63                     # the link index of the bridge (router.pxd MAX_WORKERS - 1)
ALL_SIGNALS = 0xFF
_LEN = struct.Struct(">I")
_REPLICATE_HEAD = bus.REPLICATE_HEAD_SIZE
# R_REPLICATE head of a SET from another node: origin = the bridge, seq 0, journal position 0
_NO_ORIGIN = bytes((BRIDGE,)) + bytes(_REPLICATE_HEAD - 1)
_COPY_HEAD = bus.request_head(0, 0, "")          # R_PUB_REQ head: a copy, no answer


def ws_payload_start(frame: bytes) -> int:
    """Where the payload of an unmasked server WebSocket frame starts."""
    code = frame[1] & 0x7F
    return 2 if code < 126 else (4 if code == 126 else 10)


class NatsBridge:
    def __init__(self, router, servers: list[str], node_name: str, bucket: str, queue_size: int,
                 on_link=None, tag: str = "", node_timeout: float = 10.0):
        self.router = router
        self.queue_size = queue_size
        self.queued = 0                     # bytes written while NATS is away
        self.up = False
        self.on_link = on_link              # called with True/False as NATS comes and goes
        self.servers = servers
        self.node_name = node_name
        self.bucket = bucket
        self.kv = None
        self.held: Optional[list] = []      # frames from other nodes while catching up
        self.nc: Optional[nats.NATS] = None
        self.link = None
        self.out: asyncio.Queue = asyncio.Queue()
        self.sender: Optional[asyncio.Task] = None
        self.closing = False
        self.subject_cache: dict[str, tuple[str, str]] = {}
        self.js = None
        self.unstored: dict[str, bytes] = {}     # bucket writes not yet acknowledged, by subject
        self.locked: dict[str, bytes] = {}       # bucket subject -> last R_REPLICATE body with a holder
        self.interest = NodeInterest(self, self._receive)      # per-pattern subscriptions (interest.py)
        self.presence = NodePresence(self, tag, node_timeout)  # heartbeats, dead nodes' locks
        self.own_writer = tag.encode() or None   # session ids of this node start with it
        self.epoch: Optional[str] = None         # the bucket's epoch this node's cache comes from
        self.feed: Optional[asyncio.Task] = None     # follows the bucket (every decided SET)
        self.tasks: list[asyncio.Task] = []          # interest.run, presence.run

    # --- start, stop -----------------------------------------------------------------

    async def start(self, timeout: float = 15.0) -> None:
        """Connects (RuntimeError naming cluster.nats_url if no server answers within
        ``timeout`` s), opens the bucket and attaches the link to the owner."""
        try:
            self.nc = await asyncio.wait_for(nats.connect(
                self.servers, name=self.node_name, no_echo=True, max_reconnect_attempts=-1,
                reconnect_time_wait=0.5, disconnected_cb=self._disconnected,
                reconnected_cb=self._reconnected, error_cb=self._error,
                pending_size=2 * self.queue_size + 65536), timeout)
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as exc:
            raise RuntimeError(f"no NATS server of cluster.nats_url ({', '.join(self.servers)}) answered "
                               f"within {timeout:.0f} s ({type(exc).__name__}); start NATS or fix "
                               f"--cluster-nats") from None
        self.up = True
        self.js = self.nc.jetstream()
        self.kv = await open_bucket(self.js, self.bucket)
        self.epoch = await with_jetstream(lambda: epoch.read_or_create(self.kv))
        self.link = self.router.link_up(BRIDGE, False, self, False)
        self.router.on_record(self.link, bus.INTEREST, bus.interest(True, "/**", ALL_SIGNALS))
        self.router.cross_node = self.interest   # the node's patterns -> NATS subscriptions
        await self.presence.listen()
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.interest.run()), loop.create_task(self.presence.run())]
        self.sender = asyncio.get_running_loop().create_task(self._send_loop())
        log.info("cluster: node %s joined NATS at %s", self.node_name, self.nc.connected_url.netloc
                 if self.nc.connected_url else self.servers)

    async def stop(self) -> None:
        self.closing = True
        self.router.cross_node = None
        for task in self.tasks + [self.feed]:
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self.link is not None:
            self.router.link_down(self.link)
        if self.sender is not None:
            self.out.put_nowait(None)
            try:
                await asyncio.wait_for(self.sender, 2)
            except asyncio.TimeoutError:
                self.sender.cancel()
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.drain(), 2)
            except Exception:
                await self.nc.close()

    # --- the link's transport: the owner's records out -------------------------------

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def _subjects(self, address: str) -> tuple[str, str]:
        """(routing subject, bucket subject) of ``address`` (cached)."""
        got = self.subject_cache.get(address)
        if got is None:
            if len(self.subject_cache) >= 65536:
                self.subject_cache.clear()
            got = self.subject_cache[address] = (subjects.subject(address),
                                                 f"$KV.{self.bucket}.{subjects.key(address)}")
        return got

    def write(self, data: bytes) -> None:
        """One tick of the owner's records for the bridge link."""
        pos, n = 0, len(data)
        batch = []              # [subject, start, end] runs of records of one address
        latest = {}             # bucket subject -> the last R_REPLICATE body of the tick
        while pos + 5 <= n:
            (size,) = _LEN.unpack_from(data, pos)
            kind = data[pos + 4]
            start, pos = pos, pos + 4 + size
            if kind == bus.PUBLISH:
                frame = data[start + 5:pos]
            elif kind == bus.REPLICATE:
                frame = bus.replicate_frame(data[start + 5:pos])
            elif kind == bus.HOLDER:        # a lock freed without a write (its holder left)
                frame = None
            else:
                continue            # R_DONE, R_DURABLE, …: local bookkeeping, not cluster traffic
            if frame is None:
                address = bus.parse_holder(data[start + 5:pos])[0].decode()
            else:
                _, address = peek(frame[ws_payload_start(frame):])
            subject, kv_subject = self._subjects(address)
            if batch and batch[-1][0] == subject and batch[-1][2] == start:
                batch[-1][2] = pos
            else:
                batch.append([subject, start, pos])
            if kind == bus.REPLICATE:
                body = latest[kv_subject] = data[start + 5:pos]
                if bus.replicate_holder(body):
                    self.locked[kv_subject] = body          # for the bucket when it is freed
                else:
                    self.locked.pop(kv_subject, None)
            elif kind == bus.HOLDER and kv_subject in self.locked:
                # the holder left: the bucket's entry loses its holder too
                latest[kv_subject] = bus.replicate_unlocked(self.locked.pop(kv_subject))
        if batch:
            batch = [(subject, data[a:b], False) for subject, a, b in batch]
            batch += [(subject, body, True) for subject, body in latest.items()]
            self.out.put_nowait(batch)
            if not self.up:
                self.queued += n
                if self.queued + 65536 >= self.queue_size and not self.router.cross_node_full:
                    log.error("cluster: node %s has queued %d bytes for NATS (cluster.queue_size %d): "
                              "SETs are refused with 503 until NATS returns", self.node_name,
                              self.queued, self.queue_size)
                    self.router.cross_node_full = True

    async def _send_loop(self) -> None:
        while True:
            batch = await self.out.get()
            if batch is None:
                return
            for subject, payload, stored in batch:
                try:
                    if stored:
                        self._store(subject, payload)
                    else:
                        await self.nc.publish(subject, self.interest.stamp(payload))
                except Exception as exc:
                    log.error("cluster: a frame for %s was not sent to NATS: %s", subject, exc)

    def _store(self, kv_subject: str, body: bytes) -> None:
        """Writes a decided SET to the bucket: JetStream acknowledges it, and until it has,
        the write is retried (unless a newer write of that key replaced it meanwhile).  One
        task per write; tasks start in order, so the writes of a key reach NATS in order."""
        self.unstored[kv_subject] = body
        asyncio.get_running_loop().create_task(self._store_until_acked(kv_subject, body))

    async def _store_until_acked(self, kv_subject: str, body: bytes) -> None:
        while self.unstored.get(kv_subject) is body and not self.closing:
            try:
                await self.js.publish(kv_subject, body, timeout=2)
            except Exception as exc:
                log.warning("cluster: bucket write for %s not acknowledged (%s); retrying", kv_subject, exc)
                await asyncio.sleep(0.2)
                continue
            if self.unstored.get(kv_subject) is body:
                del self.unstored[kv_subject]
            return

    # --- frames from other nodes -----------------------------------------------------

    async def catch_up(self, timeout: float = 30.0) -> int:
        """Reads the bucket into the node (owner and workers): each param whose revision is
        newer than the node's; then applies the frames that other nodes sent meanwhile, and
        keeps following the bucket (``_follow``).  Returns the number of params taken."""
        if self.feed is not None:
            self.feed.cancel()
            self.feed = None
        count = 0
        watcher = await with_jetstream(self.kv.watchall)
        try:
            while True:
                entry = await watcher.updates(timeout)
                if entry is None:           # the end of the current values
                    break
                if self._param_entry(entry) and self._newer(entry.value):
                    self._take(entry)
                    count += 1
        except BaseException:
            await watcher.stop()
            raise
        held, self.held = self.held, None
        for data in held or ():
            self._apply_records(data)
        self.feed = asyncio.get_running_loop().create_task(self._follow(watcher))
        log.info("cluster: node %s caught up from bucket %s (%d params)", self.node_name, self.bucket, count)
        self._tell(self.up)         # behind the state on each link: the workers may take clients
        return count

    async def _follow(self, watcher) -> None:
        """Every param decided anywhere reaches this node's replicas through the bucket,
        whether or not its clients subscribe to it (they then get it on its subject too;
        the router stores and delivers a SET from another node once, when newer)."""
        try:
            while not self.closing:
                try:
                    entry = await watcher.updates(5.0)
                except (asyncio.TimeoutError, nats.errors.TimeoutError):
                    continue
                if entry is not None and self._param_entry(entry):
                    self._take(entry, follow=True)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.warning("cluster: node %s stopped following bucket %s: %s", self.node_name, self.bucket, exc)
        finally:
            try:
                await watcher.stop()
            except Exception:
                pass

    @staticmethod
    def _param_entry(entry) -> bool:
        """A param's entry (not the epoch key, not a deletion)."""
        return bool(entry.value) and entry.key.startswith("/")

    def _take(self, entry, follow: bool = False) -> None:
        """A param's entry into the node (the router keeps it only if newer).  While
        following, the node's own writes coming back are skipped (the replicas have them)."""
        if not (follow and self.own_writer and bus.replicate_writer(entry.value).startswith(self.own_writer)):
            self._apply_set(entry.value)
        self.presence.note(entry.key, entry.value)

    def _receive(self, data: bytes, subject: str) -> None:
        """Bus records that another node published on ``subject`` (one this node subscribes
        to), in the sender's order (interest.py)."""
        if self.held is not None:
            self.held.append(data)
        else:
            self._apply_records(data)

    def _newer(self, replicate_body: bytes) -> bool:
        frame = bus.replicate_frame(replicate_body)
        msg = decode_frame(frame[ws_payload_start(frame):]).message
        return msg.revision > self.router.param_state(msg.address)[0]

    def _apply_set(self, replicate_body: bytes) -> None:
        """A SET decided on another node (an R_REPLICATE body): into the owner, then to every
        worker."""
        self._apply_records(bus.record(bus.REPLICATE, replicate_body))

    def _apply_records(self, data: bytes) -> None:
        """Bus records from another node: PUBLISHes enter the owner as forwarded copies
        (R_PUB_REQ, sequence 0), SETs as replicates that the workers get too."""
        if self.link is None or self.link.closed:
            return
        own, sets = [], []
        pos, n = 0, len(data)
        while pos + 5 <= n:
            (size,) = _LEN.unpack_from(data, pos)
            kind = data[pos + 4]
            body = data[pos + 5:pos + 4 + size]
            pos += 4 + size
            if kind == bus.PUBLISH:
                own.append(bus.record(bus.PUB_REQ, _COPY_HEAD + body[ws_payload_start(body) + 4:]))
            elif kind == bus.REPLICATE:
                body = _NO_ORIGIN + body[_REPLICATE_HEAD:]
                own.append(bus.record(bus.REPLICATE, body))
                sets.append((bus.REPLICATE, body))
            elif kind == bus.HOLDER:
                body = body[:-1] + bytes((BRIDGE,))         # held by a session of another node
                own.append(bus.record(bus.HOLDER, body))
                sets.append((bus.HOLDER, body))
        self.router.receive_link(self.link, b"".join(own))
        if sets:
            for link in self.router.peer_links():
                if link is not self.link:
                    for kind, body in sets:
                        link.send_record(kind, body)

    # --- NATS connection events ------------------------------------------------------

    async def _disconnected(self) -> None:
        if self.closing or not self.up:
            return
        self.up = False
        log.warning("cluster: node %s lost NATS; serving its own clients only until it returns "
                    "(/readyz 503, clasp_cluster_nats_up 0)", self.node_name)
        self._tell(False)

    async def _reconnected(self) -> None:
        self.up, self.queued = True, 0
        self.router.cross_node_full = False
        log.warning("cluster: node %s is connected to NATS again; re-reading bucket %s",
                    self.node_name, self.bucket)
        self._tell(True)
        try:
            await self.catch_up()
        except Exception as exc:
            log.error("cluster: node %s could not re-read bucket %s after NATS returned: %s",
                      self.node_name, self.bucket, exc)

    def _tell(self, up: bool, reset: bool = False) -> None:
        """The node's workers (R_CLUSTER) and its own server learn the NATS link's state
        (``reset``: and that the cluster's record was lost: their replay horizon moves)."""
        for link in self.router.peer_links():
            if link is not self.link:
                link.send_record(bus.CLUSTER, bytes((up, reset)))
        if self.on_link is not None:
            self.on_link(up)

    # --- locks of dead nodes (presence.py), the epoch (epoch.py) ------------------------

    def free_lock(self, address: str, holder: str) -> bool:
        """Frees ``address`` in the node's replicas if ``holder`` still holds it."""
        if self.router.param_state(address)[1] != holder:
            return False
        self._apply_records(bus.record(bus.HOLDER, bus.holder(address, "", BRIDGE)))
        return True

    def store_unlocked(self, address: str, body: bytes) -> None:
        """Rewrites a param's bucket entry (an R_REPLICATE body) without its lock holder."""
        self._store(self._subjects(address)[1], bus.replicate_unlocked(body))

    def figures(self) -> dict:
        """For /metrics (server.figures: ``nats``)."""
        return {"epoch": self.epoch, "subjects": len(self.interest.subscribed()),
                "received": self.interest.received, "locks_freed": self.presence.freed}

    async def check_epoch(self) -> bool:
        """The bucket still has the epoch this node caught up from?  If it is gone or
        changed (the bucket was lost), recreates what must be, takes the new epoch, moves
        the node's replay horizon and re-reads the bucket; returns True then."""
        try:
            value = (await self.kv.get(epoch.KEY)).value.decode()
        except NotFoundError:           # the key, or the whole bucket, is gone
            value = None
        if value == self.epoch:
            return False
        self.kv = await open_bucket(self.js, self.bucket)
        value = await epoch.read_or_create(self.kv)
        if value == self.epoch:
            return False
        log.error("cluster: node %s found bucket %s lost and recreated (epoch %s, was %s): its params "
                  "stay; clients that reconnect get whole snapshots", self.node_name, self.bucket, value,
                  self.epoch)
        self.epoch = value
        self.router.reset_replay_horizon()
        self._tell(self.up, reset=True)
        await self.catch_up()
        return True

    async def _error(self, exc) -> None:
        if not self.closing and self.up:
            log.warning("cluster: NATS: %s", exc)


def node_name(config) -> str:
    """``cluster.node``, or ``<hostname>-<port>``."""
    return config.cluster_node or f"{socket.gethostname()}-{config.port}"


async def start_bridge(router, config, tag: str, on_link=None) -> NatsBridge:
    bridge = NatsBridge(router, [u.strip() for u in config.cluster_nats.split(",") if u.strip()],
                        node_name(config), config.cluster_bucket, config.cluster_queue_size, on_link,
                        tag, config.cluster_node_timeout)
    await bridge.start()
    return bridge
