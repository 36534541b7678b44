"""The node's one NATS client, in the owner (worker 0): routed frames between nodes.

The owner sequences everything its node fans out (docs/architecture.md), so it is the
one place that sees every SET decision and every PUBLISH of the node in the node's
order.  The bridge is a bus peer of the owner, a ``PeerLink`` with index ``BRIDGE``
whose transport is this object:

* **out**: the owner's per-tick output to the link (``write``) is bus records; each
  R_PUBLISH (a ready PUBLISH frame; the link subscribes to ``/**``) and R_REPLICATE (a
  decided SET: state + ready frame) is published unchanged, kind byte in front, on the
  subject of its address (``subjects.subject``).  One task publishes in order; nats-py
  batches the writes in its flusher.
* **in**: a frame from another node enters the owner as if a local worker had sent it:
  a PUBLISH as an R_PUB_REQ copy (the owner delivers it to its sessions and forwards it
  to the interested workers, not back to the bridge), a SET as an R_REPLICATE (stored,
  delivered to the owner's sessions, then passed on to every worker link).  So the order
  per publisher and per address that one node keeps holds across nodes.

The connection uses ``no_echo``: NATS does not hand a node its own frames back.

**State**: each decided SET is also written, unchanged, to the cluster's key-value
bucket (``bucket.py``; a core publish on the key's subject, in the same ordered stream
of publishes, so the bucket holds the last decision per address).  A starting node reads
the bucket (``catch_up``) into its owner and workers before its owner takes clients;
frames that arrive from other nodes meanwhile are held and applied after it.

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

from ..._native import bus
from ...protocol import decode_frame, peek
from . import subjects
from .bucket import open_bucket, with_jetstream

log = logging.getLogger("clasp_fast.cluster.nats")

BRIDGE = 63                     # the link index of the bridge (router.pxd MAX_WORKERS - 1)
ALL_SIGNALS = 0xFF
_LEN = struct.Struct(">I")
_NO_ORIGIN = bytes((BRIDGE,)) + bytes(8)     # R_REPLICATE head: origin = bridge, seq 0
_REPLICATE_HEAD = len(_NO_ORIGIN)


def ws_payload_start(frame: bytes) -> int:
    """Where the payload of an unmasked server WebSocket frame starts."""
    code = frame[1] & 0x7F
    return 2 if code < 126 else (4 if code == 126 else 10)


class NatsBridge:
    def __init__(self, router, servers: list[str], node_name: str, bucket: str, queue_size: int,
                 on_link=None):
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

    # --- start, stop -----------------------------------------------------------------

    async def start(self) -> None:
        self.nc = await nats.connect(self.servers, name=self.node_name, no_echo=True,
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                     disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
                                     error_cb=self._error, pending_size=2 * self.queue_size + 65536)
        self.up = True
        self.kv = await open_bucket(self.nc.jetstream(), self.bucket)
        self.link = self.router.link_up(BRIDGE, False, self, False)
        self.router.on_record(self.link, bus.INTEREST, bus.interest(True, "/**", ALL_SIGNALS))
        await self.nc.subscribe(subjects.ROOT + ".>", cb=self._on_message)
        await self.nc.subscribe(subjects.ROOT, cb=self._on_message)
        self.sender = asyncio.get_running_loop().create_task(self._send_loop())
        log.info("cluster: node %s joined NATS at %s", self.node_name, self.nc.connected_url.netloc
                 if self.nc.connected_url else self.servers)

    async def stop(self) -> None:
        self.closing = True
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

    def write(self, data: bytes) -> None:
        """One tick of the owner's records for the bridge link."""
        pos, n = 0, len(data)
        batch = []
        while pos + 5 <= n:
            (size,) = _LEN.unpack_from(data, pos)
            kind = data[pos + 4]
            body = data[pos + 5:pos + 4 + size]
            pos += 4 + size
            if kind == bus.PUBLISH:
                frame = body
            elif kind == bus.REPLICATE:
                frame = bus.replicate_frame(body)
            else:
                continue            # R_DONE, R_HOLDER, …: local bookkeeping, not cluster traffic
            _, address = peek(frame[ws_payload_start(frame):])
            batch.append((subjects.subject(address), bytes((kind,)) + body))
            if kind == bus.REPLICATE:
                batch.append((f"$KV.{self.bucket}.{subjects.key(address)}", body))
        if batch:
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
            for subject, payload in batch:
                try:
                    await self.nc.publish(subject, payload)
                except Exception as exc:
                    log.error("cluster: a frame for %s was not sent to NATS: %s", subject, exc)

    # --- frames from other nodes -----------------------------------------------------

    async def catch_up(self, timeout: float = 30.0) -> int:
        """Reads the bucket into the node (owner and workers): each param whose revision is
        newer than the node's; then applies the frames that other nodes sent meanwhile.
        Returns the number of params taken."""
        count = 0
        watcher = await with_jetstream(self.kv.watchall)
        try:
            while True:
                entry = await watcher.updates(timeout)
                if entry is None:           # the end of the current values
                    break
                if entry.value and self._newer(entry.value):
                    self._apply_set(entry.value)
                    count += 1
        finally:
            await watcher.stop()
        held, self.held = self.held, None
        for data in held or ():
            self._apply(data)
        log.info("cluster: node %s caught up from bucket %s (%d params)", self.node_name, self.bucket, count)
        return count

    async def _on_message(self, msg) -> None:
        if self.held is not None:
            self.held.append(msg.data)
        else:
            self._apply(msg.data)

    def _newer(self, replicate_body: bytes) -> bool:
        frame = bus.replicate_frame(replicate_body)
        msg = decode_frame(frame[ws_payload_start(frame):]).message
        return msg.revision > self.router.param_state(msg.address)[0]

    def _apply_set(self, replicate_body: bytes) -> None:
        """A SET decided on another node: into the owner, then to every worker."""
        body = _NO_ORIGIN + replicate_body[_REPLICATE_HEAD:]
        self.router.receive_link(self.link, bus.record(bus.REPLICATE, body))
        for link in self.router.peer_links():
            if link is not self.link:
                link.send_record(bus.REPLICATE, body)

    def _apply(self, data: bytes) -> None:
        kind = data[0]
        if self.link is None or self.link.closed:
            return
        if kind == bus.PUBLISH:
            frame = data[1:]
            payload = frame[ws_payload_start(frame) + 4:]
            self.router.receive_link(self.link, bus.record(bus.PUB_REQ, bus.request_head(0, 0, "") + payload))
        elif kind == bus.REPLICATE:
            self._apply_set(data[1:])

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

    def _tell(self, up: bool) -> None:
        """The node's workers (R_CLUSTER) and its own server learn the NATS link's state."""
        for link in self.router.peer_links():
            if link is not self.link:
                link.send_record(bus.CLUSTER, bytes((up,)))
        if self.on_link is not None:
            self.on_link(up)

    async def _error(self, exc) -> None:
        if not self.closing:
            log.warning("cluster: NATS: %s", exc)


def node_name(config) -> str:
    """``cluster.node``, or ``<hostname>-<port>``."""
    return config.cluster_node or f"{socket.gethostname()}-{config.port}"


async def start_bridge(router, config, on_link=None) -> NatsBridge:
    bridge = NatsBridge(router, [u.strip() for u in config.cluster_nats.split(",") if u.strip()],
                        node_name(config), config.cluster_bucket, config.cluster_queue_size, on_link)
    await bridge.start()
    return bridge
