"""Which nodes are alive, and the locks of those that are not.

Every node has a **tag**: 8 random hex digits drawn by its supervisor at start (a node
that restarts gets a new one).  In cluster mode the id of every session of the node
starts with it (``Router.session_tag``), so a lock holder in any param, wherever it came
from (a frame, the bucket), says which node it lives on.

Each node's owner publishes a heartbeat on ``clasp-node.<tag>`` (payload: the node's
name) every ``cluster.node_timeout`` / 5 seconds and listens to everybody's.  It keeps
the locks that sessions of *other* nodes hold (learned from the bucket's watch, which
brings every committed SET: ``note``).  A node not heard for ``cluster.node_timeout``
seconds (or, one never heard, for that long after its lock was learned) is dead: every
surviving node frees its locks in its own replicas (an R_HOLDER without holder, as when
a holder disconnects), and the surviving node with the lowest tag also writes those
entries to the bucket without their holder (``Commits.release``: a compare-and-set, as
any lock release), so nodes that start later do not see the locks either.

The same timer checks the bucket's **epoch** (``bridge.check_epoch``).
"""
from __future__ import annotations

import asyncio
import logging

from ..._native import bus
from . import subjects

log = logging.getLogger("clasp_fast.cluster.nats")

SUBJECT = "clasp-node"
TAG_LEN = 8                                 # Supervisor.node_tag: 4 random bytes in hex


class NodePresence:
    def __init__(self, bridge, tag: str, timeout: float):
        self.bridge = bridge
        self.tag = tag
        self.timeout = timeout
        self.interval = max(timeout / 5, 0.05)
        self.seen: dict[str, float] = {}            # other node's tag -> when last heard
        self.names: dict[str, str] = {}
        self.locks: dict[str, tuple[str, str, bytes]] = {}  # bucket key -> (tag, holder, R_REPLICATE body)
        self.freed = 0                              # locks freed because their node died

    async def listen(self) -> None:
        await self.bridge.nc.subscribe(f"{SUBJECT}.*", cb=self._heard)

    async def _heard(self, msg) -> None:
        tag = msg.subject[len(SUBJECT) + 1:]
        self.seen[tag] = asyncio.get_running_loop().time()
        self.names[tag] = msg.data.decode(errors="replace")

    async def run(self) -> None:
        """(The bridge's task.)  Heartbeats; dead nodes' locks; the epoch."""
        nc = self.bridge.nc
        name = self.bridge.node_name.encode()
        while True:
            try:
                if self.bridge.up:
                    await nc.publish(f"{SUBJECT}.{self.tag}", name)
                    self.free_dead()
                    await self.bridge.check_epoch()
            except Exception as exc:
                log.warning("cluster: node %s presence check failed: %s", self.bridge.node_name, exc)
            await asyncio.sleep(self.interval)

    # --- locks of other nodes ------------------------------------------------------------

    def note(self, key: str, body: bytes) -> None:
        """A decided SET (an R_REPLICATE body) from the bucket, under ``key``: learn or
        forget a lock held on another node."""
        holder = bus.replicate_holder(body)
        if not holder and key not in self.locks:
            return                          # the common case: no lock, none known
        holder = holder.decode()
        if holder and not holder.startswith(self.tag):
            tag = holder[:TAG_LEN]
            self.locks[key] = (tag, holder, body)
            self.seen.setdefault(tag, asyncio.get_running_loop().time())   # never heard: from now
            return
        # held here, or freed on its node (its holder left: the entry that lost its holder
        # frees it in the replicas, bridge.apply_bucket)
        self.locks.pop(key, None)

    def live(self, now: float) -> set[str]:
        return {tag for tag, at in self.seen.items() if now - at < self.timeout} | {self.tag}

    def free_dead(self) -> int:
        """Frees the locks of nodes not heard for ``timeout``; returns how many."""
        now = asyncio.get_running_loop().time()
        live = self.live(now)
        dead = {tag for tag, _, _ in self.locks.values() if tag not in live}
        if not dead:
            return 0
        write_bucket = min(live) == self.tag        # one survivor rewrites the bucket
        freed = 0
        for key, (tag, holder, body) in list(self.locks.items()):
            if tag in dead:
                del self.locks[key]
                address = subjects.key_address(key)
                if self.bridge.free_lock(address, holder):      # still held, by that session
                    freed += 1
                    if write_bucket:           # compare-and-set, as any release (commit.py)
                        self.bridge.commits.release(address, body)
        for tag in dead:
            log.warning("cluster: node %s (tag %s) not heard for %.1f s (cluster.node_timeout): freed %d "
                        "lock(s) its sessions held", self.names.get(tag, "?"), tag, self.timeout, freed)
            self.seen.pop(tag, None)
        self.freed += freed
        return freed
