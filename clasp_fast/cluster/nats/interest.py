"""The node's NATS subscriptions: only what its clients' patterns need.

The owner knows every pattern its node's sessions subscribe to (its own sessions, and
the workers' R_INTEREST records); it tells this object (``Router.cross_node``) when a
pattern's count goes from 0 to 1 or back (``interest``).  Each pattern maps to NATS
subjects (``subjects.pattern_subjects``); subjects are reference-counted, subscribed when
the first pattern needs them and unsubscribed when the last one goes.

**A SUBSCRIBE is answered only once NATS has its subscription**: a frame another node
publishes right after the answer must reach this node.  NATS has a subscription once it
answered a PING sent after the SUB (nats-py ``flush``).  So, until the flush that follows
a new subscription returns:

* a SUBSCRIBE of the owner's own sessions waits (``hold_subscribe``: the router resumes
  it with ``resume_read``; the session's later messages wait behind it);
* the owner's output to a worker whose R_INTEREST needed that subscription is corked
  (``Cork``): the worker's SUBSCRIBE is answered on the owner's R_DONE to the barrier that
  follows its R_INTEREST on the same FIFO link, so it waits too, and so does everything
  after it on that link (one NATS round trip, only when a subject is new to the node).

While NATS is unreachable nothing waits (the node serves its own clients; nats-py sends
the subscriptions when it reconnects).

**Order and duplicates.**  The routed frames are taken from nats-py's parser as they are
read (``direct.py``), so they come in the order the server sent them, which is each
sender's order.  A frame on a subject that two overlapping subscriptions match (``/a/**``
and ``/a/b``) arrives twice, so every message a node publishes carries a stamp: the
sender's instance id (8 random bytes per bridge) and a counter; a counter not above the
sender's last applied one is a second copy and is dropped.
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
from typing import Callable

from . import subjects

log = logging.getLogger("clasp_fast.cluster.nats")

STAMP = struct.Struct(">8sQ")           # sender instance id, counter
FLUSH_TIMEOUT = 2.0


class Cork:
    """A bus link's transport whose writes can be held back (in order) for a while."""

    def __init__(self, transport):
        self.transport = transport
        self.holds = 0
        self.queued: list[bytes] = []

    def write(self, data: bytes) -> None:
        if self.holds:
            self.queued.append(data)
        else:
            self.transport.write(data)

    def release(self) -> None:
        self.holds -= 1
        if self.holds == 0 and self.queued:
            data, self.queued = b"".join(self.queued), []
            if not self.transport.is_closing():
                self.transport.write(data)

    def __getattr__(self, name):            # is_closing, close, abort, …: the transport's
        return getattr(self.transport, name)


class _Subject:
    __slots__ = ("count", "sub", "confirmed", "waiters")

    def __init__(self):
        self.count = 0
        self.sub = None                     # the nats-py Subscription, once made
        self.confirmed = False              # NATS answered a PING sent after its SUB
        self.waiters: list[Callable[[], None]] = []


class NodeInterest:
    def __init__(self, bridge, apply: Callable[[bytes], None]):
        self.bridge = bridge
        self.apply = apply                  # apply(payload, subject): one message's bus records
        self.subjects: dict[str, _Subject] = {}
        self.covered: dict[str, bool] = {}  # subject -> receives(subject), until the counts change
        self.changed = asyncio.Event()
        self.instance = os.urandom(8)       # this bridge's stamp
        self.counter = 0
        self.last: dict[bytes, int] = {}    # sender instance -> last counter applied
        self.received = 0                   # messages taken from NATS (second copies included)
        self.duplicates = 0

    # --- what the router tells us --------------------------------------------------

    def _count(self, subject_list: list[str], delta: int) -> list[_Subject]:
        """Counts; returns the entries not confirmed yet."""
        waiting = []
        self.covered.clear()
        for subject in subject_list:
            entry = self.subjects.get(subject)
            if entry is None:
                entry = self.subjects[subject] = _Subject()
            entry.count += delta
            if entry.count <= 0:
                # leaving: unsubscribed at the next reconcile, unless it is wanted again
                # before that, and then confirmed again (a SUBSCRIBE may not trust it now)
                entry.confirmed = False
            elif delta > 0 and not entry.confirmed:
                waiting.append(entry)
        self.changed.set()
        return waiting

    def interest(self, pattern: str, add: bool, link) -> None:
        """The node gained its first, or lost its last, subscriber to ``pattern`` (``link``:
        the worker's bus link, None for the owner's own sessions)."""
        if link is not None and link.index == self.bridge.link.index:
            return                          # the bridge's own "/**"
        waiting = self._count(subjects.pattern_subjects(pattern), 1 if add else -1)
        if waiting and link is not None and self.bridge.up:
            io = link.io
            if not isinstance(io, Cork):
                io = link.io = Cork(io)
            io.holds += 1
            self._wait(waiting, io.release)

    def hold_subscribe(self, session, msg, qos: int) -> bool:
        """The owner's own session subscribes: True if its answer must wait for NATS (the
        router is called back with ``resume_read``)."""
        if not self.bridge.up:
            return False
        try:
            subject_list = subjects.pattern_subjects(msg.pattern)
        except Exception:
            return False                    # not a valid pattern: the router answers the error
        if all(s in self.subjects and self.subjects[s].confirmed for s in subject_list):
            return False
        waiting = self._count(subject_list, 1)     # held: the subjects stay while we wait
        if not waiting:
            self._count(subject_list, -1)
            return False

        def resume():
            try:
                self.bridge.router.resume_read(session, msg, qos)
            finally:
                self._count(subject_list, -1)
        self._wait(waiting, resume)
        return True

    def _wait(self, entries: list[_Subject], then: Callable[[], None]) -> None:
        left = [len(entries)]

        def one_done():
            left[0] -= 1
            if left[0] == 0:
                then()
        for entry in entries:
            entry.waiters.append(one_done)

    # --- NATS subscriptions -----------------------------------------------------------

    async def run(self) -> None:
        """(The bridge's task.)  Makes NATS' subscriptions follow the counts; after new ones, a flush (PING/PONG)
        confirms them and releases what waited."""
        nc = self.bridge.nc
        while True:
            await self.changed.wait()
            self.changed.clear()
            fresh = []
            for subject, entry in list(self.subjects.items()):
                if entry.count > 0 and entry.sub is None:
                    try:
                        entry.sub = await nc.subscribe_direct(subject, self._on_message)
                    except Exception as exc:     # (a closing connection): nobody may wait forever
                        log.error("cluster: subscribing to %s failed: %s", subject, exc)
                        self._confirm(entry)
                        continue
                    fresh.append(entry)
                elif entry.count > 0 and not entry.confirmed:
                    fresh.append(entry)         # wanted again before it was unsubscribed
                elif entry.count <= 0:
                    del self.subjects[subject]
                    if entry.sub is not None:
                        try:
                            await entry.sub.unsubscribe()
                        except Exception as exc:
                            log.warning("cluster: unsubscribing %s: %s", subject, exc)
                    self._confirm(entry)    # nobody waits for a subject that is gone
            if fresh:
                try:
                    await nc.flush(FLUSH_TIMEOUT)
                except Exception as exc:
                    log.warning("cluster: NATS did not confirm %d new subscription(s) within %.0f s "
                                "(%s); answering the SUBSCRIBEs anyway", len(fresh), FLUSH_TIMEOUT, exc)
                for entry in fresh:
                    self._confirm(entry)

    def _confirm(self, entry: _Subject) -> None:
        entry.confirmed = True
        waiters, entry.waiters = entry.waiters, []
        for done in waiters:
            try:
                done()
            except Exception:
                log.exception("cluster: resuming a held SUBSCRIBE failed")

    def receives(self, subject: str) -> bool:
        """Whether frames published on ``subject`` (an address's) reach this node: one of
        the subjects it wants covers it.  (A write seen in the bucket whose frame will not
        come routed need not be waited for.)"""
        got = self.covered.get(subject)
        if got is None:
            if len(self.covered) >= 65536:
                self.covered.clear()
            tokens = subject.split(".")
            got = self.covered[subject] = any(
                _covers(wanted.split("."), tokens) for wanted, e in self.subjects.items() if e.count > 0)
        return got

    def subscribed(self) -> list[str]:
        """The NATS subjects this node subscribes to now (for tests and /status)."""
        return sorted(s for s, e in self.subjects.items() if e.sub is not None)

    # --- messages: stamped out, ordered and deduplicated in ----------------------------

    def stamp(self, payload: bytes) -> bytes:
        self.counter += 1
        return STAMP.pack(self.instance, self.counter) + payload

    def _on_message(self, data: bytes, subject: bytes) -> None:
        """A routed message, in the order NATS sent it (direct.py)."""
        if len(data) < STAMP.size:
            return
        sender, counter = STAMP.unpack_from(data)
        self.received += 1
        if counter <= self.last.get(sender, 0):
            self.duplicates += 1            # a second subscription's copy
            return
        self.last[sender] = counter
        self.apply(data[STAMP.size:], subject.decode())


def _covers(pattern: list[str], tokens: list[str]) -> bool:
    """NATS subject matching, token by token: ``*`` one token, a last ``>`` one or more."""
    for i, p in enumerate(pattern):
        if p == ">":
            return len(tokens) > i
        if i >= len(tokens) or p != "*" and p != tokens[i]:
            return False
    return len(tokens) == len(pattern)
