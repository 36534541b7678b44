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
* **Fast SETs.**  Once this node's write of a param was the bucket's last (``mine``) and
  nothing of that param waits here, the router marks it fast (``Router.set_fast``): its
  plain fire-and-forget SETs (QoS 0, no expected revision, no lock change, not locked)
  are decided and sent at once, like on a node without NATS, to the other nodes too
  (bucket revision 0: "not in the bucket yet"; a node takes such a state only over an
  older revision).  The bridge hands each such state here (``fast_state``) and the
  newest one is written behind them, one compare-and-set in flight per address as
  above.  If the bucket refuses it (another node wrote the param meanwhile), this
  node's newest state is written again on top of the other one, with a revision above
  both (``_write_fast``), so every node ends on it; if the other node's state is locked,
  that one stands.  Nothing is acknowledged this way: a SET that needs an answer (QoS
  confirm or commit), a conditional or locking SET, the first SET of a param on this
  node, and a SET behind one at the bucket take the path above.
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
WRITE_BACK_BATCH = 256      # params written back into a new bucket at once
FAST_WAIT = 1.0             # s a SET waits for the bucket to have the fast SETs of other nodes here
_PING = b"\x41"             # CLASP type code of PING
_E_UNAVAILABLE = 503
_STATE_REFUSALS = (409, 423)  # refusals that depend on the param's state (stale, locked)


class Ticket:
    """One answer of the owner, in request order: ``run(*args)`` once ``ready``; ``origin``:
    the worker it answers (-1: none, or a session of the owner)."""
    __slots__ = ("ready", "run", "args", "origin")

    def __init__(self, run=None, args=(), ready=False, origin=-1):
        self.ready, self.run, self.args, self.origin = ready, run, args, origin


FAST = object()             # in a slot: write this node's newest fast state of the address


class Release:
    """A lock freed (its holder left): the key's last locked state, without the holder."""
    __slots__ = ("locked",)

    def __init__(self, locked: bytes):
        self.locked = locked


class Commits:
    def __init__(self, router, bridge):
        self.router = router
        self.bridge = bridge
        self.write_behind = bridge.write_behind  # s a fast state waits before its write (cluster.write_behind_ms)
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
        self.mine: set[str] = set()             # keys whose bucket state this node wrote last
        self.fast: dict[bytes, tuple] = {}      # address -> (newest fast state not written yet, its number)
        self.fast_count = 0                     # fast states so far (their numbers)
        self.fast_numbers: dict[bytes, int] = {}  # address -> number of its newest fast state
        self.fast_written: dict[bytes, int] = {}  # address -> number of its last one written
        self.hurry = asyncio.Event()            # a PING waits: fast states are written now
        self.hurrying = 0                       # PINGs waiting
        self.writes = {"decided": 0, "fast": 0}  # compare-and-sets the bucket took, by path
        self.fast_refused = 0                   # fast states the bucket refused (another node wrote)
        self.ahead: dict[str, list] = {}        # key -> [CLASP revision of the newest fast state of
                                                # another node here, the newest the bucket showed]
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
        self.mine.discard(key)
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
                if self._behind_fast(key, entry.value):
                    self.take(key, entry.revision, False)       # its routed state is here already
                elif self.bridge.routed_here(key):
                    self.expected[key] = entry
                    asyncio.get_running_loop().call_later(ROUTED_GRACE, self._overdue, key, entry)
                else:
                    self._apply_entry(key, entry)
        self.seen(entry.revision)

    def fast_seen(self, key: str, revision: int) -> None:
        """Another node's fast state of ``key`` at CLASP ``revision`` came routed (the bucket
        shows it later: an older state there is not taken back)."""
        ahead = self.ahead.get(key)
        if ahead is None:
            if len(self.ahead) >= 65536:
                self.ahead.clear()
            self.ahead[key] = [revision, 0]
        elif revision > ahead[0]:
            ahead[0] = revision
        self.mine.discard(key)

    async def _bucket_has_fast(self, key: str, loop) -> None:
        """Another node's fast SETs of ``key`` came here before the bucket has them: a SET
        decided here after them (its writer may have seen them) waits until the bucket has
        them too (at most FAST_WAIT s: their node may be gone), so that its compare-and-set
        comes after them, not before."""
        ahead = self.ahead.get(key)
        if ahead is None:
            return
        target, limit = ahead[0], loop.time() + FAST_WAIT
        while (ahead := self.ahead.get(key)) is not None and ahead[1] < target and loop.time() < limit:
            try:
                await asyncio.wait_for(self.progress.wait(), limit - loop.time())
            except asyncio.TimeoutError:
                return

    def _behind_fast(self, key: str, value: bytes) -> bool:
        """Whether a bucket state is not newer than a fast state of another node taken here."""
        ahead = self.ahead.get(key)
        if ahead is None:
            return False
        revision = bus.replicate_revision(value)
        if revision > ahead[1]:
            ahead[1] = revision
            self._progress()
        if revision >= ahead[0]:
            del self.ahead[key]
        return revision <= ahead[0]

    def new_bucket(self) -> None:
        """The bucket was lost and made anew (epoch.py): its revisions start again."""
        self.kv = self.bridge.kv
        self.known.clear()
        self.expected.clear()
        self.applied_seq = 0
        self._progress()

    async def write_back(self) -> int:
        """The bucket was lost and made anew (epoch.py): this node's params go into it, each
        unless the new bucket has its key already (another node wrote it back, or a SET
        since).  Returns how many this node wrote."""
        async def one(address: str, body: bytes) -> int:
            key = subjects.key(address)
            if key in self.known:
                return 0
            try:
                revision = await asyncio.wait_for(self.kv.create(key, body), COMMIT_WAIT)
            except KeyWrongLastSequenceError:
                return 0
            self.take(key, revision, False)
            return 1
        states, written = self.router.param_replicates(), 0
        for i in range(0, len(states), WRITE_BACK_BATCH):
            results = await asyncio.gather(*(one(a, b) for a, b in states[i:i + WRITE_BACK_BATCH]),
                                           return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            written += sum(r for r in results if not isinstance(r, BaseException))
            if failed:
                log.warning("cluster: %d param(s) not written back into the new bucket (%r); they "
                            "reach it with their next SET", len(failed), failed[0])
        return written

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
        ticket = self._ticket(Ticket(), -1 if local is not None else origin)
        self.router.set_fast(address, False)       # later SETs of it wait behind this one
        self._enqueue(address, (local, origin, seq, writer, payload, qos, ticket))
        return 0

    def _ticket(self, ticket: Ticket, origin: int) -> Ticket:
        """Queues an answer (to worker ``origin``: its fast SETs wait while it is queued)."""
        if origin >= 0:
            ticket.origin = origin
            self.router.hold_answers(origin, 1)
        self.tickets.append(ticket)
        return ticket

    def fast_state(self, address: bytes, body: bytes) -> None:
        """A fast SET went out (the bridge saw its R_REPLICATE): its state is written to the
        bucket behind what is in flight for ``address`` (the newest one only)."""
        if address not in self.fast:
            self._enqueue(address, FAST)
        self.fast_count += 1
        self.fast[address] = (body, self.fast_count)
        self.fast_numbers[address] = self.fast_count

    def release(self, address: str, locked: Optional[bytes] = None) -> None:
        """A lock freed without a write: the bridge saw an R_HOLDER (``locked`` None: our
        last locked state of the key), or a dead node's lock (presence.py: ``locked`` is its
        state read from the bucket).  The bucket's entry loses its holder too."""
        if locked is None:
            locked = self.locked.pop(subjects.key(address), None)
        if locked is not None:
            self.router.set_fast(address.encode(), False)
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
                    # nothing waits: fast SETs of the address while the bucket's state is ours
                    self.router.set_fast(address, key in self.mine and self.bridge.up)
                    break
                if type(waiting[0]) is Release:
                    await self._release(key, waiting.pop(0))
                    continue
                if waiting[0] is FAST:
                    waiting.pop(0)
                    await self._write_fast(address, key)
                    continue
                n = next((i for i, item in enumerate(waiting) if type(item) is Release or item is FAST),
                         len(waiting))
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
            self.fast.pop(address, None)
            self.fast_numbers.pop(address, None)
            self.fast_written.pop(address, None)
            self._refuse([item for item in rest if type(item) is tuple], _E_UNAVAILABLE,
                         f"{address.decode()} was not written: this node is stopping", address)

    async def _commit_group(self, address: bytes, key: str, group: list) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMIT_WAIT
        requests = [item[:6] for item in group]
        await self._bucket_has_fast(key, loop)
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
            self.mine.add(key)
            self.writes["decided"] += 1
            if bus.replicate_holder(final):
                self.locked[key] = final
            else:
                self.locked.pop(key, None)
            position = self.router.commit_store(final, max(qos for _, qos in decided))
            return self._answer(group, outcomes, position, revision)

    async def _write_fast(self, address: bytes, key: str) -> None:
        """Writes the newest fast state of ``address`` (compare-and-set).  Refused: another
        node wrote the param since this node's last write; this node's newest state is
        written again on top of it with a revision above both and sent out once taken (the
        other nodes move on to it), unless the other state is locked: then it stands here
        too.  Without the bucket for COMMIT_WAIT s the state stays this node's only (logged;
        the node's next write of the param settles it)."""
        loop = asyncio.get_running_loop()
        if not self.hurry.is_set():             # more SETs of it join the write meanwhile
            try:
                await asyncio.wait_for(self.hurry.wait(), self.write_behind)
            except asyncio.TimeoutError:
                pass
        deadline = loop.time() + COMMIT_WAIT
        newest = self.fast.pop(address, None)
        if newest is None:                      # (taken by a restate before)
            return
        written = [newest[1]]                   # the number of the newest state written
        try:
            await self._write_fast_state(address, key, newest[0], loop, deadline, written)
        finally:
            number = written[0]
            self.fast_written[address] = number
            if self.fast_numbers.get(address) == number:
                del self.fast_numbers[address], self.fast_written[address]
            self._progress()

    async def _write_fast_state(self, address: bytes, key: str, body: bytes, loop, deadline: float,
                                written: list) -> None:
        restated = False
        while not self.closing:
            last = self.known.get(key, (0, False))[0]
            self.flying[key] = body
            try:
                revision = await asyncio.wait_for(self.kv.update(key, body, last=last),
                                                  max(0.1, deadline - loop.time()))
            except KeyWrongLastSequenceError:
                revision = None
            except Exception as exc:    # no stream leader (not stored: no read-back), or no answer
                entry = None if isinstance(exc, NoStreamResponseError) else await self._get_quietly(key)
                revision = entry.revision if entry is not None and entry.value == body else None
                if entry is None:
                    if loop.time() >= deadline:
                        log.error("cluster: the bucket did not take %s within %.0f s (%r): its last fast "
                                  "SETs are this node's only until it writes it again", key, COMMIT_WAIT, exc)
                        self.mine.discard(key)
                        return
                    await asyncio.sleep(NO_LEADER_RETRY)
                    continue
            finally:
                self.flying.pop(key, None)
            if revision is not None:
                self.known[key] = (revision, False)
                self.mine.add(key)
                self.writes["fast"] += 1
                if restated:
                    position = self.router.commit_store(body, 0)
                    self.router.commit_emit(body, None, 0, position, revision)
                return
            # another node wrote it first: ours goes on top of its state (or its lock stands)
            self.fast_refused += 1
            self.router.set_fast(address, False)
            self.mine.discard(key)
            try:
                entry = await asyncio.wait_for(self.kv.get(key), max(0.1, deadline - loop.time()))
            except KeyNotFoundError:
                self.known[key] = (0, False)
                continue
            except Exception:
                if loop.time() >= deadline:
                    return
                continue
            self.known[key] = (entry.revision, False)
            newer = self.fast.pop(address, None)
            if newer is not None:
                body, written[0] = newer
            if bus.replicate_holder(entry.value):
                self.bridge.apply_bucket(entry.value, force=True)
                return
            ours = self.router.param_state(address.decode())[0]
            body = bus.replicate_with_revision(body, max(ours, bus.replicate_revision(entry.value)) + 1)
            restated = True

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
        """A bucket entry read back (another node's write): into the node if newer (and not
        behind a fast state of another node that came routed)."""
        if entry.value and self.take(key, entry.revision, False):
            if not self._behind_fast(key, entry.value):
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
            if ticket.origin >= 0:
                self.router.hold_answers(ticket.origin, -1)
            try:
                ticket.run(*ticket.args)
            except Exception:
                log.exception("cluster: an answer of the owner failed")

    # --- requests of the workers that must keep their order --------------------------------

    def later(self, link, kind: int, body: bytes) -> bool:
        """A worker's sequenced request (the router's ``held_in_order``): True when it waits
        in the queue (behind pending answers, or for the cluster barrier of a PING)."""
        if kind == bus.BARRIER and bus.parse_request(body)[3][:1] == _PING:
            ticket = self._ticket(Ticket(self.router.run_in_order, (link, kind, body)), link.index)
            self._spawn(self._ready_after_barrier(ticket))
            return True
        if not self.tickets:
            return False
        self._ticket(Ticket(self.router.run_in_order, (link, kind, body), True), link.index)
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
        pending = dict(self.fast_numbers)       # this node's fast SETs so far: in the bucket first
        self.hurrying += 1
        self.hurry.set()
        try:
            while any(self.fast_written.get(a, 0) < n and a in self.fast_numbers for a, n in pending.items()):
                await asyncio.wait_for(self.progress.wait(), max(0.01, deadline - loop.time()))
            info = await asyncio.wait_for(self.bridge.js.stream_info(self.stream), BARRIER_WAIT)
            target = info.state.last_seq
            if not await self._applied(target, loop.time() + BARRIER_READ) and self.applied_seq < target:
                await asyncio.wait_for(self._read_stream(target), max(0.01, deadline - loop.time()))
            if not await self._applied(target, deadline):
                log.debug("cluster: PING barrier incomplete: the bucket's stream up to %d is not applied "
                          "within %.0f s", target, BARRIER_WAIT)
        except Exception as exc:
            log.debug("cluster: PING barrier incomplete: %r", exc)
        finally:
            self.hurrying -= 1
            if not self.hurrying:
                self.hurry.clear()

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
