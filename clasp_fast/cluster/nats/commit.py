"""A NATS node's SETs become the cluster's through the bucket: compare-and-set, then commit.

The owner (worker 0) decides every SET of its node, as without NATS, with the one
decision of the core (``Router.apply_set``: lock, expected revision, TTL, revision).  In
cluster mode that decision is not committed until the bucket took it:

* **One compare-and-set in flight per address.**  The first SET of an address is decided
  against the owner's replica (``Router.decide``, which leaves the replica as it was) and
  written with ``kv.update(key, body, last=<the key's bucket revision>)`` (``last`` 0: the
  key must not exist).  SETs of that address that arrive meanwhile wait; when the answer
  is in, they are decided together, in order, against the new state, and the last of
  their decisions is written with one compare-and-set (group commit: each SET keeps its
  own CLASP revision, ACK and broadcast).
* **Accepted**: the owner's replica and journal take the state (``commit_store``), and the
  decisions go out (``commit_emit``: the owner's subscribers, every worker, the bridge to
  the other nodes, the ACK) or their refusals (``commit_error``), in the order the SETs
  were decided.
* **Refused** (wrong last sequence): another node won.  Its state is read (``kv.get``) and
  applied like a SET from another node, and the waiting SETs are decided again: they may
  now be 409 or 423, or get the next revision.  A group whose SETs were all refused for
  the param's state (409, 423) is checked the same way (the replica may have been behind
  the bucket) before the refusals go out.
* **No answer**: the write may have been stored before the answer was lost, so the key is
  read: our own body there means it was taken.  "No responders" (the bucket's stream has
  no leader: an election after a NATS server died) means it was not stored: it is written
  again every ``NO_LEADER_RETRY`` s.  After ``COMMIT_WAIT`` s without the bucket
  the group is refused with ERROR 503: a write is never acknowledged unless the bucket
  took it.
* **Order.**  A worker matches the owner's answers with its requests in order, and a
  session's frames are answered in order: so every answer the owner makes waits in one
  queue of tickets, in the order of the requests, until the tickets before it are out.
  A worker's sequenced requests (PUBLISH behind a SET, reads, BUNDLE, lock release) wait
  there while tickets are pending (``later``); the owner's own sessions wait through
  their ``inflight`` count, as the other workers' sessions do.
* **Lock releases** (a holder left): its node writes the key's state without the holder
  with a compare-and-set too (``release``).
* **The bucket revision each state has** is kept per key (``known``): from the catch-up
  and the bucket's watch, from the frames of other nodes (the R_REPLICATE head's sequence
  field carries it between nodes) and from our own accepted writes.  A state older than
  the replica's is not applied.
* **PING is a cluster read barrier** (``barrier``): its PONG waits until this node's watch
  of the bucket has applied every write the bucket's stream held when the PING arrived
  (at most ``BARRIER_WAIT`` s).  A watch that stalls (its consumer was on a NATS server
  that died) is not waited for beyond ``BARRIER_READ`` s: the barrier reads the missing
  writes from the stream itself.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Optional

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoStreamResponseError, NotFoundError
from nats.js.kv import KeyValue

from ..._native import bus
from . import subjects

log = logging.getLogger("clasp_fast.cluster.nats")

COMMIT_WAIT = 10.0          # s a SET waits for the bucket (a JetStream leader election) before ERROR 503
BARRIER_WAIT = 2.0          # s a PING waits for this node to apply what the bucket holds
BARRIER_READ = 0.5          # s a PING waits for the watch before it reads the bucket's stream itself
NO_LEADER_RETRY = 0.25      # s between writes while the bucket's stream has no leader (no responders)
ROUTED_GRACE = 0.3          # s a write the watch showed may take to arrive routed, before it is read
_PING = b"\x41"             # CLASP type code of PING
_E_UNAVAILABLE = 503
_STATE_REFUSALS = (409, 423)  # refusals that depend on the param's state (stale, locked)


class Ticket:
    """One answer of the owner, in request order: ``run(*args)`` once ``ready``."""
    __slots__ = ("ready", "run", "args")

    def __init__(self, run=None, args=(), ready=False):
        self.ready, self.run, self.args = ready, run, args


class Release:
    """A lock freed (its holder left): the key's last locked state, without the holder."""
    __slots__ = ("locked",)

    def __init__(self, locked: bytes):
        self.locked = locked


class Commits:
    def __init__(self, router, bridge):
        self.router = router
        self.bridge = bridge
        self.kv = bridge.kv
        self.stream = f"KV_{bridge.bucket}"
        #: bucket key -> (bucket revision of the replica's state, came in a routed frame)
        self.known: dict[str, tuple[int, bool]] = {}
        self.slots: dict[bytes, list] = {}      # address -> what waits for its compare-and-set
        self.flying: dict[str, bytes] = {}      # bucket key -> the body being written
        self.tickets: deque[Ticket] = deque()
        self.locked: dict[str, bytes] = {}      # bucket key -> last committed body with a holder
        self.applied_seq = 0                    # the bucket stream's sequence the watch applied
        self.expected: dict[str, object] = {}   # bucket key -> entry the watch showed, not yet here
        self.progress = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.closing = False

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self) -> None:
        self.closing = True
        for task in list(self.tasks):
            task.cancel()

    # --- the bucket revision of each key ------------------------------------------------

    def take(self, key: str, revision: int, routed: bool) -> bool:
        """Whether a state at bucket ``revision`` (``routed``: a frame from another node,
        else read from the bucket) is newer than the replica's; if so it is recorded.  The
        SETs of one group share the revision of its write: routed, they follow each other."""
        have = self.known.get(key)
        if have is not None and (revision < have[0] or revision == have[0] and not (routed and have[1])):
            return False
        self.known[key] = (revision, routed)
        entry = self.expected.get(key)
        if entry is not None and revision >= entry.revision:
            del self.expected[key]
            self._progress()
        return True

    def ours_in_flight(self, key: str, value: bytes) -> bool:
        """The bucket shows our own write before its answer came (the answer settles it)."""
        return self.flying.get(key) == value

    def seen(self, stream_seq: int) -> None:
        """The watch has seen the bucket's stream up to ``stream_seq``."""
        if stream_seq > self.applied_seq:
            self.applied_seq = stream_seq
            self._progress()

    def _progress(self) -> None:
        event, self.progress = self.progress, asyncio.Event()
        event.set()

    def watched(self, entry) -> None:
        """A write of a param in the bucket, in stream order (the bridge's watch).  Another
        node's write to an address this node subscribes to normally arrives routed (with its
        events, in order, and every SET of its group): it is applied from the watch only if
        it has not arrived ROUTED_GRACE s later.  One that no routed frame brings here (no
        client of the node subscribes to it) is applied at once."""
        key = entry.key
        if not self.ours_in_flight(key, entry.value):
            have = self.known.get(key)
            if have is None or entry.revision > have[0]:
                if self.bridge.routed_here(key):
                    self.expected[key] = entry
                    asyncio.get_running_loop().call_later(ROUTED_GRACE, self._overdue, key, entry)
                else:
                    self._apply_entry(key, entry)
        self.seen(entry.revision)

    def new_bucket(self) -> None:
        """The bucket was lost and made anew (epoch.py): its revisions start again."""
        self.kv = self.bridge.kv
        self.known.clear()
        self.expected.clear()
        self.applied_seq = 0
        self._progress()

    def _overdue(self, key: str, entry) -> None:
        if self.expected.get(key) is entry:
            del self.expected[key]
            self._apply_entry(key, entry)
            self._progress()

    def _behind(self, target: int) -> bool:
        """Whether a write of the bucket's stream up to ``target`` is not applied here yet."""
        return self.applied_seq < target or any(e.revision <= target for e in self.expected.values())

    # --- SETs: the router's apply_set hands them here ------------------------------------

    def submit(self, local, origin: int, seq: int, writer: bytes, payload: bytes, qos: int,
               address: bytes) -> int:
        ticket = Ticket()
        self.tickets.append(ticket)
        self._enqueue(address, (local, origin, seq, writer, payload, qos, ticket))
        return 0

    def release(self, address: str, locked: Optional[bytes] = None) -> None:
        """A lock freed without a write: the bridge saw an R_HOLDER (``locked`` None: our
        last locked state of the key), or a dead node's lock (presence.py: ``locked`` is its
        state read from the bucket).  The bucket's entry loses its holder too."""
        if locked is None:
            locked = self.locked.pop(subjects.key(address), None)
        if locked is not None:
            self._enqueue(address.encode(), Release(locked))

    def _enqueue(self, address: bytes, item) -> None:
        waiting = self.slots.get(address)
        if waiting is None:
            self.slots[address] = [item]
            self._spawn(self._commit(address))
        else:
            waiting.append(item)

    async def _commit(self, address: bytes) -> None:
        """Writes what waits for ``address``, one compare-and-set at a time."""
        key = subjects.key(address.decode())
        try:
            while not self.closing:
                waiting = self.slots[address]
                if not waiting:
                    break
                if type(waiting[0]) is Release:
                    await self._release(key, waiting.pop(0))
                    continue
                n = next((i for i, item in enumerate(waiting) if type(item) is Release), len(waiting))
                group, self.slots[address] = waiting[:n], waiting[n:]
                try:
                    await self._commit_group(address, key, group)
                except Exception as exc:       # a bug: the group is refused, nobody waits forever
                    log.exception("cluster: commit of %s failed", address.decode())
                    self._refuse(group, 500, f"internal error committing {address.decode()} ({exc}); "
                                             f"it was not written", address)
        finally:
            self.flying.pop(key, None)
            rest = self.slots.pop(address, None) or []
            self._refuse([item for item in rest if type(item) is not Release], _E_UNAVAILABLE,
                         f"{address.decode()} was not written: this node is stopping", address)

    async def _commit_group(self, address: bytes, key: str, group: list) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMIT_WAIT
        requests = [item[:6] for item in group]
        while True:
            outcomes = self.router.decide(address, requests)
            decided = [(outcome, item[5]) for item, outcome in zip(group, outcomes)
                       if type(outcome) is bytes]
            last = self.known.get(key, (0, False))[0]
            if not decided:                     # all refused: against the bucket's state?
                if loop.time() >= deadline or not any(o[0] in _STATE_REFUSALS for o in outcomes) \
                        or await self._current(key, last, deadline):
                    return self._answer(group, outcomes)
                continue
            final = decided[-1][0]
            self.flying[key] = final
            try:
                revision = await asyncio.wait_for(self.kv.update(key, final, last=last),
                                                  max(0.1, deadline - loop.time()))
            except KeyWrongLastSequenceError:
                revision, why = None, "other nodes kept writing it first"
                if loop.time() < deadline:
                    await self._fetch(key)      # another node won: its state, then decide again
            except NoStreamResponseError:       # no stream leader (an election): not stored
                revision, why = None, "the cluster's bucket (NATS) did not take it"
                if loop.time() < deadline:
                    await asyncio.sleep(NO_LEADER_RETRY)
            except Exception as exc:
                revision = await self._settle(key, final, exc)
                why = "the cluster's bucket (NATS) did not take it"
                if revision is None and loop.time() < deadline:
                    await asyncio.sleep(0.1)
            finally:
                self.flying.pop(key, None)
            if revision is None:
                if loop.time() >= deadline:
                    return self._refuse(group, _E_UNAVAILABLE, f"{address.decode()} was not written: "
                                        f"{why} within {COMMIT_WAIT:.0f} s; retry later", address)
                continue
            self.known[key] = (revision, False)
            if bus.replicate_holder(final):
                self.locked[key] = final
            else:
                self.locked.pop(key, None)
            position = self.router.commit_store(final, max(qos for _, qos in decided))
            return self._answer(group, outcomes, position, revision)

    def _answer(self, group: list, outcomes: list, position: int = 0, revision: int = 0) -> None:
        """Each SET of the group is answered (in the queue's order): its decision goes out, or
        its refusal."""
        for item, outcome in zip(group, outcomes):
            ticket = item[6]
            if type(outcome) is bytes:
                ticket.run = self.router.commit_emit
                ticket.args = (outcome, item[0], item[5], position, revision)
            else:
                ticket.run, ticket.args = self.router.commit_error, item[:3] + outcome
            ticket.ready = True
        self._emit()

    async def _settle(self, key: str, body: bytes, exc: Exception) -> Optional[int]:
        """A write got no answer: if the bucket has it, its revision; else None (a newer
        state of another node is applied)."""
        log.warning("cluster: bucket write of %s got no answer (%s); reading it back", key, exc)
        entry = await self._get_quietly(key)
        if entry is None:
            return None
        if entry.value == body:
            return entry.revision
        self._apply_entry(key, entry)
        return None

    async def _current(self, key: str, last: int, deadline: float) -> bool:
        """Whether the bucket's state of ``key`` is still revision ``last``; if not, the newer
        one is applied.  Without an answer: True (the refusals stand on this node's state)."""
        loop = asyncio.get_running_loop()
        try:
            entry = await asyncio.wait_for(self.kv.get(key), max(0.1, deadline - loop.time()))
        except KeyNotFoundError:
            return last == 0
        except Exception:
            return True
        if entry.revision == last:
            return True
        self._apply_entry(key, entry)           # (unless it arrived routed meanwhile)
        return False

    async def _fetch(self, key: str) -> None:
        try:
            entry = await asyncio.wait_for(self.kv.get(key), COMMIT_WAIT)
        except KeyNotFoundError:
            self.known[key] = (0, False)
            return
        self._apply_entry(key, entry)

    def _apply_entry(self, key: str, entry) -> bool:
        """A bucket entry read back (another node's write): into the node if newer."""
        if entry.value and self.take(key, entry.revision, False):
            self.bridge.apply_bucket(entry.value)
            return True
        return False

    async def _release(self, key: str, release: Release) -> None:
        """Writes the key's state without the lock holder that left (compare-and-set),
        retried while NATS is away (the key's SETs wait behind it).  If the bucket holds
        another state, that one stands (it is applied), unless it is still locked by the same
        holder (then that state is released)."""
        locked, refused, warned = release.locked, 0, False
        while not self.closing and refused < 3:
            body = bus.replicate_unlocked(locked)
            self.flying[key] = body
            try:
                last = self.known.get(key, (0, False))[0]
                revision = await asyncio.wait_for(self.kv.update(key, body, last=last), COMMIT_WAIT)
                entry = None
            except KeyWrongLastSequenceError:
                refused += 1
                entry = await self._get_quietly(key)
            except Exception as exc:
                if not warned:
                    log.warning("cluster: the release of a lock on %s is not in the bucket yet (%r); "
                                "retrying", key, exc)
                    warned = True
                await asyncio.sleep(0.5)
                continue
            else:
                self.known[key] = (revision, False)
                self.bridge.apply_bucket(body)      # (a catch-up meanwhile may have re-read the lock)
                return
            finally:
                self.flying.pop(key, None)
            if entry is None or not entry.value \
                    or bus.replicate_holder(entry.value) != bus.replicate_holder(locked):
                if entry is not None:
                    self._apply_entry(key, entry)
                return
            self.known[key] = (entry.revision, False)
            locked = entry.value

    async def _get_quietly(self, key: str):
        try:
            return await asyncio.wait_for(self.kv.get(key), COMMIT_WAIT)
        except Exception:
            return None

    def _refuse(self, group: list, code: int, message: str, address: bytes) -> None:
        for item in group:
            item[6].run = self.router.commit_error
            item[6].args = item[:3] + (code, message, address.decode())
            item[6].ready = True
        self._emit()

    def _emit(self) -> None:
        """Runs the ready answers at the head of the queue, in order."""
        tickets = self.tickets
        while tickets and tickets[0].ready:
            ticket = tickets.popleft()
            try:
                ticket.run(*ticket.args)
            except Exception:
                log.exception("cluster: an answer of the owner failed")

    # --- requests of the workers that must keep their order --------------------------------

    def later(self, link, kind: int, body: bytes) -> bool:
        """A worker's sequenced request (the router's ``held_in_order``): True when it waits
        in the queue (behind pending answers, or for the cluster barrier of a PING)."""
        if kind == bus.BARRIER and bus.parse_request(body)[3][:1] == _PING:
            ticket = Ticket(self.router.run_in_order, (link, kind, body))
            self.tickets.append(ticket)
            self._spawn(self._ready_after_barrier(ticket))
            return True
        if not self.tickets:
            return False
        self.tickets.append(Ticket(self.router.run_in_order, (link, kind, body), True))
        return True

    def then(self, fn, *args) -> None:
        """``fn(*args)`` once every answer queued before it is out (a bundle's ACK after the
        SETs it decided)."""
        self.tickets.append(Ticket(fn, args, True))
        self._emit()

    def ping(self, session) -> None:
        """A PING of the owner's own session: PONG after the cluster barrier."""
        self._spawn(self._pong_after_barrier(session))

    async def _pong_after_barrier(self, session) -> None:
        await self.barrier()
        self.router.pong(session)

    async def _ready_after_barrier(self, ticket: Ticket) -> None:
        await self.barrier()
        ticket.ready = True
        self._emit()

    async def barrier(self) -> None:
        """Returns once the watch has applied every write the bucket held when called (at
        most BARRIER_WAIT s; without NATS at once: the node serves its own clients).  A
        watch that shows nothing for BARRIER_READ s may have lost its consumer with a NATS
        server (nats-py re-creates it only after two missed heartbeats, 10 s): the writes
        it has not shown are then read from the bucket's stream."""
        if not self.bridge.up:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BARRIER_WAIT
        try:
            info = await asyncio.wait_for(self.bridge.js.stream_info(self.stream), BARRIER_WAIT)
            target = info.state.last_seq
            if not await self._applied(target, loop.time() + BARRIER_READ) and self.applied_seq < target:
                await asyncio.wait_for(self._read_stream(target), max(0.01, deadline - loop.time()))
            if not await self._applied(target, deadline):
                log.debug("cluster: PING barrier incomplete: the bucket's stream up to %d is not applied "
                          "within %.0f s", target, BARRIER_WAIT)
        except Exception as exc:
            log.debug("cluster: PING barrier incomplete: %r", exc)

    async def _applied(self, target: int, until: float) -> bool:
        """Waits (until loop time ``until``) for the bucket's stream up to ``target`` to be
        applied here; whether it is."""
        loop = asyncio.get_running_loop()
        while self._behind(target):
            if loop.time() >= until:
                return False
            try:
                await asyncio.wait_for(self.progress.wait(), until - loop.time())
            except asyncio.TimeoutError:
                return False
        return True

    async def _read_stream(self, target: int) -> None:
        """The bucket's writes after those the watch showed, up to ``target``, read from its
        stream (the leader's copy) one by one and handed on as the watch would
        (``bridge.watched``)."""
        prefix = f"$KV.{self.bridge.bucket}."
        seq = self.applied_seq + 1
        while seq <= target:
            try:
                msg = await self.bridge.js.get_msg(self.stream, seq=seq, subject=prefix + ">", next=True)
            except NotFoundError:           # nothing from seq on (older writes of a key are gone)
                break
            if msg.seq > target:
                break
            self.bridge.watched(KeyValue.Entry(bucket=self.bridge.bucket, key=msg.subject[len(prefix):],
                                               value=msg.data or b"", revision=msg.seq, delta=None,
                                               created=None, operation=None))
            seq = msg.seq + 1
        self.seen(target)
