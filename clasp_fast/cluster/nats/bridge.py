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

**State**: a SET is committed only once the cluster's key-value bucket took it with a
compare-and-set (``commit.py``); its R_REPLICATE reaches this link only then, with the
bucket revision of its state in the head's sequence field, so a receiving node applies
only states newer than its own.  A starting node reads the bucket (``catch_up``) into its
owner and workers before its owner takes clients; frames that arrive from other nodes
meanwhile are held and applied after it.  The node then keeps watching the bucket
(``_watch``, the node's one watcher): what it does not receive routed (no client of the
node subscribes to it) or what a lost routed frame missed, the PING barrier, and the
locks of other nodes (``presence.py``: heartbeats, and the locks of a dead node freed).
``epoch.py``: a lost bucket noticed.

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
import collections
import functools
import logging
import socket
import struct
from typing import Optional

import nats
import nats.errors

from nats.js.errors import NotFoundError

from ..._native import bus
from ...protocol import decode_frame, ws_payload_start
from . import direct, epoch, subjects
from .bucket import open_bucket, with_jetstream
from .commit import Commits
from .direct import DirectClient
from .interest import NodeInterest
from .presence import NodePresence

log = logging.getLogger("clasp_fast.cluster.nats")

BRIDGE = 63                     # the link index of the bridge (router.pxd MAX_WORKERS - 1)
ALL_SIGNALS = 0xFF
_LEN = struct.Struct(">I")
_REPLICATE_HEAD = bus.REPLICATE_HEAD_SIZE
# R_REPLICATE head of a SET from another node: origin = the bridge, seq 0, journal position 0;
# with seq 1: a fast SET (not in the bucket yet: taken only over an older revision)
_NO_ORIGIN = bytes((BRIDGE,)) + bytes(_REPLICATE_HEAD - 1)
_FAST_ORIGIN = bytes((BRIDGE,)) + (1).to_bytes(8, "big") + bytes(8)
_COPY_HEAD = bus.request_head(0, 0, "")          # R_PUB_REQ head: a copy, no answer


class NatsBridge:
    def __init__(self, router, servers: list[str], node_name: str, bucket: str, queue_size: int,
                 on_link=None, tag: str = "", node_timeout: float = 10.0, *, write_behind: float):
        self.router = router
        self.queue_size = queue_size
        self.write_behind = write_behind
        self.queued = 0                     # bytes written while NATS is away
        self.up = False
        self.on_link = on_link              # called with True/False as NATS comes and goes
        self.servers = servers
        self.node_name = node_name
        self.bucket = bucket
        self.kv = None
        self.held: Optional[list] = []      # frames from other nodes while catching up
        self.nc: Optional[nats.NATS] = None            # routed frames, subscriptions, presence
        self.bucket_nc: Optional[nats.NATS] = None     # the bucket (JetStream) and its watch
        self.lost: set[str] = set()                    # which of the two is away
        self.link = None
        self.out: asyncio.Queue = asyncio.Queue()
        self.backlog: collections.deque = collections.deque()
        self.sender: Optional[asyncio.Task] = None
        self.closing = False
        self.js = None
        self.commits: Optional[Commits] = None
        self.watching: Optional[asyncio.Task] = None    # the bucket's watch (_watch)
        self.interest = NodeInterest(self, self._receive)      # per-pattern subscriptions (interest.py)
        self.presence = NodePresence(self, tag, node_timeout)  # heartbeats, dead nodes' locks
        self.epoch: Optional[str] = None         # the bucket's epoch this node's cache comes from
        self.tasks: list[asyncio.Task] = []      # interest.run, presence.run

    # --- start, stop -----------------------------------------------------------------

    async def start(self, timeout: float = 15.0) -> None:
        """Connects (RuntimeError naming cluster.nats_url if no server answers within
        ``timeout`` s), opens the bucket and attaches the link to the owner."""
        direct.check()
        try:
            self.nc = await asyncio.wait_for(self._connect("routes", 2 * self.queue_size + 65536), timeout)
            self.bucket_nc = await asyncio.wait_for(self._connect("bucket"), timeout)
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as exc:
            if self.nc is not None:
                await self.nc.close()
            raise RuntimeError(f"no NATS server of cluster.nats_url ({', '.join(self.servers)}) answered "
                               f"within {timeout:.0f} s ({type(exc).__name__}); start NATS or fix "
                               f"--cluster-nats") from None
        self.up = True
        self.js = self.bucket_nc.jetstream()
        self.kv = await open_bucket(self.js, self.bucket)
        self.epoch = await with_jetstream(lambda: epoch.read_or_create(self.kv))
        self.commits = self.router.commit = Commits(self.router, self)
        self.link = self.router.link_up(BRIDGE, False, self, False)
        self.router.on_record(self.link, bus.INTEREST, bus.interest(True, "/**", ALL_SIGNALS))
        self.router.cross_node = self.interest   # the node's patterns -> NATS subscriptions
        await self.presence.listen()
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.interest.run()), loop.create_task(self.presence.run())]
        self.sender = asyncio.get_running_loop().create_task(self._send_loop())
        log.info("cluster: node %s joined NATS at %s", self.node_name, self.nc.connected_url.netloc
                 if self.nc.connected_url else self.servers)

    async def _connect(self, role: str, pending_size: int = 2 * 1024 * 1024):
        """One of the node's two NATS connections: ``routes`` (the routed frames, the
        subscriptions, presence) and ``bucket`` (the key-value bucket and its watch).  Two,
        because a NATS server handles a connection's messages in order and a JetStream
        write waits there for its disk: the routed frames behind a bucket write would wait
        for its fsync too.  ``routes`` is a ``DirectClient`` (direct.py): routed frames are
        taken as nats-py's parser reads them."""
        nc = DirectClient() if role == "routes" else nats.NATS()
        await nc.connect(
            self.servers, name=f"{self.node_name}" if role == "routes" else f"{self.node_name}-{role}",
            no_echo=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            disconnected_cb=functools.partial(self._disconnected, role),
            reconnected_cb=functools.partial(self._reconnected, role), error_cb=self._error,
            pending_size=pending_size)
        return nc

    async def stop(self) -> None:
        self.closing = True
        self.router.cross_node = None
        for task in self.tasks + [self.watching]:
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self.commits is not None:
            await self.commits.stop()
        if self.link is not None:
            self.router.link_down(self.link)
        if self.sender is not None:
            self.out.put_nowait(None)
            try:
                await asyncio.wait_for(self.sender, 2)
            except asyncio.TimeoutError:
                self.sender.cancel()
        for nc in (self.nc, self.bucket_nc):
            if nc is not None:
                try:
                    await asyncio.wait_for(nc.drain(), 2)
                except Exception:
                    await nc.close()

    # --- the link's transport: the owner's records out -------------------------------

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def write(self, data: bytes) -> None:
        """One tick of the owner's records for the bridge link: its routed records (R_PUBLISH,
        R_REPLICATE, R_HOLDER; not local bookkeeping such as R_DONE) in runs of one address."""
        batch = []
        for address, start, end, fast, holders in bus.route_runs(data):
            for _ in range(holders):            # a lock freed without a write (its holder left):
                self.commits.release(address.decode())   # the bucket's entry loses it too
            if fast is not None:                # a fast SET: its newest state to the bucket
                self.commits.fast_state(address, fast)
            batch.append((subjects.subject(address.decode()), start, end))
        if batch:
            stamp = self.interest.stamp
            items = [(subject, stamp(data[a:b])) for subject, a, b in batch]
            if not self.backlog:
                publish = self.nc.publish_now
                i = 0
                while i < len(items) and publish(*items[i]):
                    i += 1
                items = items[i:]
            if items:
                self.backlog.extend(items)
                self.out.put_nowait(True)
            if not self.up:
                self.queued += len(data)
                if self.queued + 65536 >= self.queue_size and not self.router.cross_node_full:
                    log.error("cluster: node %s has queued %d bytes for NATS (cluster.queue_size %d): "
                              "SETs are refused with 503 until NATS returns", self.node_name,
                              self.queued, self.queue_size)
                    self.router.cross_node_full = True

    async def _send_loop(self) -> None:
        while True:
            if await self.out.get() is None:
                return
            while self.backlog:
                subject, payload = self.backlog[0]
                try:
                    await self.nc.publish(subject, payload)
                except Exception as exc:
                    log.error("cluster: a frame for %s was not sent to NATS: %s", subject, exc)
                self.backlog.popleft()

    # --- frames from other nodes -----------------------------------------------------

    async def catch_up(self, timeout: float = 30.0) -> int:
        """Reads the bucket into the node (owner and workers): each param whose revision is
        newer than the node's; then applies the frames that other nodes sent meanwhile, and
        keeps watching the bucket.  Returns the number of params taken."""
        count = 0
        if self.watching is not None:
            self.watching.cancel()
            self.watching = None
        watcher = await with_jetstream(self.kv.watchall)
        try:
            while True:
                entry = await watcher.updates(timeout)
                if entry is None:           # the end of the current values
                    break
                if param_entry(entry):
                    if self.commits.take(entry.key, entry.revision, False) \
                            and self.apply_bucket(entry.value, only_newer=True):
                        count += 1
                    self.presence.note(entry.key, entry.value)
                self.commits.seen(entry.revision)
        except BaseException:
            await watcher.stop()
            raise
        held, self.held = self.held, None
        for data, subject in held or ():
            self._apply_records(data, subject)
        log.info("cluster: node %s caught up from bucket %s (%d params)", self.node_name, self.bucket, count)
        self._tell(self.up)         # behind the state on each link: the workers may take clients
        self.watching = asyncio.get_running_loop().create_task(self._watch(watcher))
        return count

    async def _watch(self, watcher) -> None:
        """The node's one watcher of the bucket: every later write, in stream order
        (``Commits.watched``).  What this node lacks is applied (at once a write of an
        address no pattern of the node covers; a routed frame lost with a NATS server),
        presence learns the locks of other nodes, and the PING barrier counts on it.  The
        ``epoch`` key is not a param."""
        try:
            while not self.closing:
                try:
                    entry = await watcher.updates(5.0)
                except (asyncio.TimeoutError, nats.errors.TimeoutError):
                    continue
                if entry is not None:
                    self.watched(entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("cluster: node %s stopped watching bucket %s: %r", self.node_name, self.bucket, exc)
        finally:
            try:
                await watcher.stop()
            except Exception:
                pass

    def watched(self, entry) -> None:
        """One write of the bucket, in stream order: from the watch, or read by a PING
        barrier that the watch kept waiting (commit.py)."""
        if param_entry(entry):
            self.commits.watched(entry)
            self.presence.note(entry.key, entry.value)
        else:
            self.commits.seen(entry.revision)       # the epoch key, a deletion

    def _receive(self, data: bytes, subject: str) -> None:
        """Bus records that another node published on ``subject`` (one this node subscribes
        to), in the sender's order (interest.py)."""
        if self.held is not None:
            self.held.append((data, subject))
        else:
            self._apply_records(data, subject)

    def apply_bucket(self, body: bytes, only_newer: bool = False, force: bool = False) -> bool:
        """A state read from the bucket (an R_REPLICATE body) into the node.  The same CLASP
        revision as the node's is the same write, perhaps with its lock freed since: only the
        holder is taken.  ``only_newer``: an older CLASP revision is not taken either;
        ``force``: taken whatever the node has."""
        if force:
            self._apply_set(body)
            return True
        frame = bus.replicate_frame(body)
        msg = decode_frame(frame[ws_payload_start(frame):]).message
        revision, holder = self.router.param_state(msg.address)
        if msg.revision == revision or only_newer and msg.revision < revision:
            now = bus.replicate_holder(body).decode()
            if msg.revision == revision and now != (holder or ""):
                self._apply_records(bus.record(bus.HOLDER, bus.holder(msg.address, now, BRIDGE)), None)
                return True
            return False
        self._apply_set(body)
        return True

    def _apply_set(self, replicate_body: bytes) -> None:
        """A SET decided on another node (an R_REPLICATE body): into the owner, then to every
        worker."""
        self._apply_records(bus.record(bus.REPLICATE, replicate_body), None)

    def _apply_records(self, data: bytes, subject: Optional[str]) -> None:
        """Bus records from another node (on ``subject``; None: read from the bucket):
        PUBLISHes enter the owner as forwarded copies (R_PUB_REQ, sequence 0), SETs as
        replicates that the workers get too, if their bucket revision is newer than the
        node's."""
        if self.link is None or self.link.closed:
            return
        own = []                # records for the owner, in order
        pos, n = 0, len(data)
        key = fast = None
        while pos + 5 <= n:
            (size,) = _LEN.unpack_from(data, pos)
            kind = data[pos + 4]
            body = data[pos + 5:pos + 4 + size]
            pos += 4 + size
            if kind == bus.PUBLISH:
                own.append(bus.record(bus.PUB_REQ, _COPY_HEAD + body[ws_payload_start(body) + 4:]))
            elif kind == bus.REPLICATE:
                revision = int.from_bytes(body[1:9], "big")
                if subject is not None and key is None:
                    key = subjects.key(subjects.address(subject))
                if revision == 0 and subject is not None:       # a fast SET of another node
                    fast = body
                    body = _FAST_ORIGIN + body[_REPLICATE_HEAD:]
                elif subject is not None and not self.commits.take(key, revision, True):
                    continue            # the node has this state or a newer one
                else:
                    body = _NO_ORIGIN + body[_REPLICATE_HEAD:]
                own.append(bus.record(bus.REPLICATE, body))
            elif kind == bus.HOLDER:
                body = body[:-1] + bytes((BRIDGE,))         # held by a session of another node
                own.append((bus.HOLDER, body))
        if fast is not None:
            self.commits.fast_seen(key, bus.replicate_revision(fast))
        # the owner stores and delivers each state and passes on to every worker those it
        # took (Router.on_replicate); a lock holder it learns here goes to the workers in order
        start = 0
        for i, item in enumerate(own):
            if type(item) is tuple:
                kind, body = item
                self.router.receive_link(self.link, b"".join(own[start:i]) + bus.record(kind, body))
                for link in self.router.peer_links():
                    if link is not self.link:
                        link.send_record(kind, body)
                start = i + 1
        if start < len(own):
            self.router.receive_link(self.link, b"".join(own[start:]))

    # --- NATS connection events ------------------------------------------------------

    async def _disconnected(self, role: str) -> None:
        self.lost.add(role)
        if self.closing or not self.up:
            return
        self.up = False
        log.warning("cluster: node %s lost NATS; serving its own clients only until it returns "
                    "(/readyz 503, clasp_cluster_nats_up 0)", self.node_name)
        self._tell(False)

    async def _reconnected(self, role: str) -> None:
        self.lost.discard(role)
        if self.lost or self.closing:
            return
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
        self.router.fast_sets = up
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
        self._apply_records(bus.record(bus.HOLDER, bus.holder(address, "", BRIDGE)), None)
        return True

    def routed_here(self, key: str) -> bool:
        """Whether the frames of the address of bucket ``key`` reach this node routed (a
        pattern of its clients covers it)."""
        return self.interest.receives(subjects.subject(subjects.key_address(key)))

    def figures(self) -> dict:
        """For /metrics (server.figures: ``nats``)."""
        return {"epoch": self.epoch, "subjects": len(self.interest.subscribed()),
                "received": self.interest.received, "locks_freed": self.presence.freed,
                "bucket_writes": dict(self.commits.writes), "fast_refused": self.commits.fast_refused}

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
        self.commits.new_bucket()
        self.router.reset_replay_horizon()
        self._tell(self.up, reset=True)
        await self.catch_up()
        written = await self.commits.write_back()
        log.warning("cluster: node %s wrote %d param(s) back into bucket %s", self.node_name, written,
                    self.bucket)
        return True

    async def _error(self, exc) -> None:
        if not self.closing and self.up:
            log.warning("cluster: NATS: %s", exc)


def param_entry(entry) -> bool:
    """A bucket entry of a param (not the epoch key, not a deletion)."""
    return bool(entry.value) and entry.key.startswith("/")


def node_name(config) -> str:
    """``cluster.node``, or ``<hostname>-<port>``."""
    return config.cluster_node or f"{socket.gethostname()}-{config.port}"


async def start_bridge(router, config, tag: str, on_link=None) -> NatsBridge:
    bridge = NatsBridge(router, [u.strip() for u in config.cluster_nats.split(",") if u.strip()],
                        node_name(config), config.cluster_bucket, config.cluster_queue_size, on_link,
                        tag, config.cluster_node_timeout,
                        write_behind=config.cluster_write_behind_ms / 1000)
    await bridge.start()
    return bridge
