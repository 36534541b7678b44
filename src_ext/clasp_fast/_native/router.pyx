"""The CLASP router core, sans I/O.

Input: ``feed(session, frame)`` for client frames and ``feed_link(link, bytes)``
for bus records from other workers.  Output: frames appended to endpoints'
buffers (drained by the I/O edge once per loop tick), ``Session.close_request``
and timer deadlines (``next_deadline`` / ``run_timers``).

Hot path (SET, PUBLISH, and their bus forms): parsed in place with the wire
layer's C parsers, checked, stored in C structs, and fanned out by copying one
pre-framed outgoing frame into each receiver's buffer.  Receivers come from a
per-address cache of trie matches.  No Python object is created per message.

Everything else (HELLO, SUBSCRIBE, GET, BUNDLE, QUERY, legacy MessagePack
payloads, errors, rare bus records) goes through the Python-level codec.

Several workers (see router.pxd): the owner decides SETs and replicates them
(R_REPLICATE, in decision order on every FIFO link, so every worker sees one
revision sequence per address); other workers forward their sessions' SETs to
it (R_SET_REQ) and keep them in a pending queue until the decision comes back.
Record kinds and layouts: bus.pxd; the socket side: clasp_fast.cluster.node.

Elsewhere: SNAPSHOT writing (snapshot.pyx), timers (timers.pyx), time
(clock.pyx: the core reads no system clock itself), output buffers (outbox.pyx).
"""
import logging

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memcmp, memmove, memset

from clasp_fast._native.bytesmap cimport (BytesMap, bm_init, bm_free, bm_clear, bm_get, bm_put,
                                         bm_hash)
from clasp_fast._native.patterns cimport (Trie, Subscription, MatchList, MatchEntry, Seg,
                                         MAX_SEGMENTS, split_address, address_error, matchlist_free)
from clasp_fast._native.params cimport (ParamStore, Param, param_expired, param_get, param_store,
                                       param_expiry, ID_MAX)
from clasp_fast._native.wire cimport (
    FrameHeader, Reader, SetView, PublishView, parse_header, parse_set, parse_publish,
    reader_error, ws_binary_header, ws_header_len, clasp_header, publish_qos, set_broadcast_size,
    write_set_broadcast, set_payload_size, write_set_payload, store_u16, store_u32, store_u64, load_u16, load_u32, load_u64,
    MAX_PAYLOAD, MAX_WS_HEADER, NARROW_CODES, T_SET, T_PUBLISH, T_ACK, T_SNAPSHOT,
    SET_HAS_REVISION, SET_LOCK, SET_UNLOCK, SET_HAS_TTL, SET_TYPE_MASK, SIG_GESTURE, V_I64, V_F64)
from clasp_fast._native.outbox cimport Hub, Endpoint, Session, PeerLink
from clasp_fast._native.bus cimport (
    R_INTEREST, R_PUBLISH, R_SET_REQ, R_REPLICATE, R_REJECT, R_BUNDLE_REQ, R_DONE, R_RELEASE, R_HOLDER,
    R_ANNOUNCE, R_SYNC_REQ, R_SYNC_PARAM, R_SYNC_DONE, R_DUP, R_PUB_REQ, R_BARRIER, R_DURABLE, R_CLUSTER, RECORD_HEAD, REQUEST_HEAD, REQUEST_HEAD_MAX, DONE_SIZE, REPLICATE_HEAD,
    STATE_MAX, write_request_head, request_head_size, write_done, write_state, state_size, apply_state)
from clasp_fast._native.clock cimport Clock
from clasp_fast._native.snapshot cimport (SnapshotWriter, write_snapshot, params_where, SNAPSHOT_HEAD,
                                         ENTRY_OVERHEAD)
from clasp_fast._native.timers cimport TimerQueue
from clasp_fast._native.access cimport Access
from clasp_fast._native.pending cimport (PendingQueue, Pending, PK_SET, PK_BUNDLE, PK_RELEASE,
                                        PK_PUBLISH, PK_READ)

from clasp_fast._native import bus
from clasp_fast._native.wire import (DecodeError, EncodeError, decode_payload, encode_frame,
                                    encode_payload, header_error, ws_frame)
from clasp_fast._native.patterns import check_address, check_pattern, matches_signal
from clasp_fast.protocol import messages as M
from clasp_fast.throttles.gates import SubscriptionGate, admit as gates_admit
from clasp_fast.throttles.gestures import GestureThrottle

log = logging.getLogger("clasp_fast.router")

cdef enum:
    SCRATCH = 65536 + 64
    OWNER = 0                   # the worker that decides SETs
    PUB_CACHE_LIMIT = 65536

# ERROR codes (docs/protocol.md "Errors")
cdef enum:
    E_BAD_FRAME = 400
    E_ADDRESS = 202
    E_NOT_FOUND = 404
    E_UNAUTHORIZED = 401
    E_FORBIDDEN = 403
    E_STALE = 409
    E_LOCKED = 423
    E_LIMIT = 429
    E_UNSUPPORTED = 501
    E_UNAVAILABLE = 503

_TYPE_NAMES = {0: "null", 1: "bool", 2: "i8", 3: "i16", 4: "i32", 5: "i64", 6: "f32", 7: "f64",
               8: "string", 9: "bytes", 10: "array", 11: "map"}


# ERROR text echoes client input (addresses, values): clipped so the frame always fits,
# here and in a bus record (characters; UTF-8 takes at most 4 bytes each)
cdef enum:
    ECHO_MESSAGE = 2048
    ECHO_ADDRESS = 1024


def _clip(str text, Py_ssize_t limit):
    """``text`` cut to ``limit`` characters, marked with "..." when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 3] + "..."


cdef struct CacheEntry:
    char* key
    Py_ssize_t len
    MatchList* ml


cdef inline bint _same_id(const char* a, uint8_t alen, const char* b, uint8_t blen) noexcept nogil:
    return alen == blen and memcmp(a, b, alen) == 0


cdef Py_ssize_t _ack_frame(Router r, const char* addr, Py_ssize_t n, uint64_t revision) except -1:
    """Builds ACK(address, revision) as a WebSocket frame in ``r.scratch``; returns its size."""
    cdef Py_ssize_t size = 1 + 1 + 2 + n + 8
    cdef uint8_t* frame = r.reserve_scratch(MAX_WS_HEADER + 4 + size)
    cdef Py_ssize_t hl = ws_binary_header(frame, 4 + size)
    cdef uint8_t* o = frame + hl + 4
    clasp_header(frame + hl, 0, size)
    o[0] = T_ACK
    o[1] = 0x03                 # address + revision
    store_u16(o + 2, <uint16_t>n)
    memcpy(o + 4, addr, n)
    store_u64(o + 4 + n, revision)
    return hl + 4 + size


cdef class Router(Hub):
    """The router core.  See the module docstring."""

    def __cinit__(self, config=None, clock=None):
        bm_init(&self.pub_cache, 1024)
        self.scratch = <uint8_t*>malloc(SCRATCH)
        self.scratch_cap = SCRATCH
        if self.scratch == NULL:
            raise MemoryError()

    def __init__(self, config, clock=None):
        """``config``: a clasp_fast.router.RouterConfig; ``clock``: a Clock (default: the
        system clocks; tests pass a ManualClock)."""
        self.config = config
        self.params = ParamStore(self.config.param_ttl)
        self.trie = Trie()
        self.pub_cache_limit = PUB_CACHE_LIMIT
        self.sessions = {}
        if clock is not None:
            if not isinstance(clock, Clock):
                raise TypeError(f"clock must be a clasp_fast._native.clock.Clock (e.g. ManualClock), "
                                f"not {type(clock).__name__}")
            self.clock = clock
        self.gestures = GestureThrottle(self, self.config.gesture_interval_ms / 1000.0)
        self.signals = {}
        self.timers = TimerQueue()
        self.interest = {}
        self.holders = {}
        self.holder_origin = {}
        self.limit_buffer = self.config.buffer_size
        self.overflow_interval = self.config.overflow_notice_interval
        self.max_pending = self.config.max_pending_output
        self.output_budget = self.config.output_budget
        self.slow_timeout = self.config.slow_consumer_timeout
        self.max_payload = min(self.config.max_frame_size, MAX_PAYLOAD)
        self.max_rate_in = self.config.max_messages_per_second
        self.max_subs = self.config.max_subscriptions_per_session
        self.worker_index = 0
        self.is_owner = True
        self.links = [None] * MAX_WORKERS
        self.pending = PendingQueue()
        self.durable_acks = PendingQueue()
        # what changed before we started (or while we were down) is unknown: replay from here
        self.replay_horizon = self.clock.wall_us()
        self.call_later(self.config.expiry_sweep_interval, self._sweep)

    def __dealloc__(self):
        self._clear_pub_cache()
        bm_free(&self.pub_cache)
        free(self.scratch)

    # --- sessions ---------------------------------------------------------------

    def open_session(self, str peer=None) -> Session:
        """A new connection (before its HELLO)."""
        return Session(self, peer)

    def close_session(self, Session s):
        """The connection is gone: its subscriptions go, its locks are released."""
        if s.closed:
            return
        s.closed = True
        for sub in s.subs.values():
            self.trie.remove(sub)
            self._interest(sub, -1)
            if sub.gate is not None:
                sub.gate.close(self)
        s.subs.clear()
        if self.is_owner:
            self.release_locks(s.id)
        elif s.may_hold_locks:
            self._forward_request(PK_RELEASE, R_RELEASE, s, 0, b"")
            if self.owner_link is not None and self.on_pressure is not None:
                self.on_pressure(self.owner_link)       # now, not at the next tick
        self.gestures.drop_session(s)
        if self.sessions.get(s.id) is s:
            del self.sessions[s.id]
        s.reset_output()

    def close_and_release(self, Session s, on_released):
        """A client closes gracefully: close its session now; if its locks live on the owner,
        call ``on_released`` once the owner has freed them (and return True) so the edge can
        finish the close handshake only then: a client that saw its close complete knows its
        locks are free.  Returns False when there is nothing to wait for."""
        wait = not self.is_owner and s.may_hold_locks and self.owner_link is not None and not s.closed
        if wait:
            s.on_released = on_released
        self.close_session(s)
        return wait

    def _interest(self, Subscription sub, int delta):
        self._interest_key(sub.pattern, sub.mask, delta)

    def _interest_key(self, str pattern, int mask, int delta):
        """Counts local subscriptions per (pattern, mask); the owner hears of changes."""
        key = (pattern, mask)
        n = self.interest.get(key, 0) + delta
        if n > 0:
            self.interest[key] = n
        else:
            self.interest.pop(key, None)
        if not (n == 1 and delta > 0 or n == 0 and delta < 0):
            return
        if not self.is_owner:
            link = self.links[OWNER]
            if link is not None:
                (<PeerLink>link).send_record(R_INTEREST, bus.interest(delta > 0, pattern, mask))
        elif self.cross_node is not None:
            self.cross_node.interest(pattern, delta > 0, None)

    def _provisional_interest(self, msg, int delta):
        """A SUBSCRIBE waiting for its barrier: the owner is told of its interest *before* the
        barrier, so once the subscription is answered, every PUBLISH the owner routes later
        reaches this worker.  Counted until the SUBSCRIBE itself has been handled."""
        if type(msg) is M.Subscribe and check_pattern(msg.pattern) is None:
            self._interest_key(msg.pattern, (msg.types & 0xFF) or 0xFF, delta)

    # --- input ----------------------------------------------------------------

    def receive(self, Session s, data):
        """Feeds one CLASP frame (one WebSocket message) from ``s``."""
        cdef const uint8_t[::1] view = bytes(data) if not isinstance(data, bytes) else data
        self.clock_fresh = False
        if view.shape[0] == 0:
            self.reject_frame(s, "empty WebSocket message: a CLASP frame has at least 5 bytes")
            return
        self.feed(s, &view[0], view.shape[0])

    cdef int feed(self, Session s, const uint8_t* data, Py_ssize_t n) except -1:
        cdef FrameHeader h
        cdef int err
        cdef double now
        cdef uint8_t t
        if s.closed:
            return 0
        self.frames_in += 1
        s.received += 1
        err = parse_header(data, n, &h)
        if err:
            return self.reject_frame(s, header_error(
                err, PyBytes_FromStringAndSize(<const char*>data, min(n, 16)), n))
        self.in_by_type[data[h.header_size]] += 1
        if h.payload_size > self.max_payload:
            return self.reject_frame(s, f"payload of {h.payload_size} bytes exceeds max_frame_size "
                                        f"({self.max_payload})")
        if not s.welcomed and not s.inflight:
            return self.slow_path(s, data, n, h.qos, h.header_size)
        if self.max_rate_in:
            now = self.clock.mono_s()
            if now - s.rate_window >= 1.0:
                s.rate_window = now
                s.rate_count = 0
            s.rate_count += 1
            if s.rate_count > self.max_rate_in:
                if now - s.last_limit_notice >= 1.0:
                    s.last_limit_notice = now
                    self.error(s, E_LIMIT, f"rate limit: more than {self.max_rate_in} messages in one "
                                           f"second (max_messages_per_second); messages are being dropped")
                return 0
        return self.gated(s, data, n, &h)

    cdef int gated(self, Session s, const uint8_t* data, Py_ssize_t n, FrameHeader* h) except -1:
        """Keeps a session's own order across workers: while it has requests at the owner,
        anything that would be answered here (GET, SUBSCRIBE, PING, ...) waits for them, and
        so does everything after it.  (One worker: never waits.)"""
        cdef uint8_t t = data[h.header_size]
        if s.held is not None:
            s.held.append(PyBytes_FromStringAndSize(<const char*>data, n))
            return 0
        if s.inflight and (t != T_SET and t != T_PUBLISH or not s.welcomed
                           or t == T_PUBLISH and self.commit is not None):
            s.held = [PyBytes_FromStringAndSize(<const char*>data, n)]
            return 0
        if t == T_SET:
            return self.on_set(s, data + h.header_size, h.payload_size, h.qos)
        if t == T_PUBLISH:
            return self.on_publish(s, data + h.header_size, h.payload_size, h.qos, False)
        return self.slow_path(s, data, n, h.qos, h.header_size)

    def _drain(self, Session s):
        """The session's requests are all decided: run what waited, in order."""
        cdef FrameHeader h
        cdef bytes f
        frames, s.held = s.held, None
        for i, f in enumerate(frames):
            if s.closed:
                return
            if s.held is not None:
                s.held.extend(frames[i:])
                return
            parse_header(<const uint8_t*>PyBytes_AS_STRING(f), len(f), &h)
            if s.welcomed:
                self.gated(s, <const uint8_t*>PyBytes_AS_STRING(f), len(f), &h)
            else:
                self.slow_path(s, <const uint8_t*>PyBytes_AS_STRING(f), len(f), h.qos, h.header_size)

    # --- SET ------------------------------------------------------------------

    cdef int on_set(self, Session s, const uint8_t* p, Py_ssize_t n, uint8_t qos) except -1:
        cdef SetView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef int nseg
        if parse_set(p, n, &v, &r):
            return self.reject_frame(s, reader_error(&r, "SET"))
        nseg = -1      # an address that has a param was validated when it got it
        if param_get(self.params, <const char*>p + v.addr_pos, v.addr_len,
                           bm_hash(<const char*>p + v.addr_pos, v.addr_len)) == NULL:
            nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
            if nseg < 0:
                address = (<const char*>p + v.addr_pos)[:v.addr_len].decode()
                return self.error(s, E_ADDRESS, address_error(nseg, "address", address), address)
        if s.access is not None and not (<Access>s.access).may_write(<const char*>p + v.addr_pos, v.addr_len):
            return self.forbidden(s, "SET", <const char*>p + v.addr_pos, v.addr_len)
        if v.codes_seen & NARROW_CODES:
            # i8/i16/i32/f32 go out as i64/f64: re-encode (rare: no real client sends them)
            return self._reencode(s, PyBytes_FromStringAndSize(<const char*>p, n), qos, False)
        if v.addr_len + (v.value_end - v.value_pos) + 1 + ENTRY_OVERHEAD + SNAPSHOT_HEAD > MAX_PAYLOAD:
            address = (<const char*>p + v.addr_pos)[:v.addr_len].decode()
            return self.error(s, E_BAD_FRAME,
                              f"SET of {address} too large to store: address and value must fit one "
                              f"SNAPSHOT entry ({MAX_PAYLOAD - ENTRY_OVERHEAD - SNAPSHOT_HEAD - 1} bytes)",
                              address)
        if not self.is_owner:
            if v.flags & SET_LOCK:
                s.may_hold_locks = True
            return self.forward_request(s, PK_SET, R_SET_REQ, p, n, qos)
        return self.apply_set(s.idc, s.idlen, s, self.worker_index, 0, p, &v, segs, nseg, qos)

    def _reencode(self, Session s, bytes payload, uint8_t qos, bint throttled):
        """Narrow value codes widen; PUBLISH samples (which the Python client cannot read)
        become an array value."""
        msg = decode_payload(payload)
        if type(msg) is M.Publish and msg.samples is not None:
            msg.value = list(msg.samples)
            msg.samples = None
        try:
            out = encode_payload(msg)
        except EncodeError as exc:
            return self.error(s, E_BAD_FRAME, f"{type(msg).__name__.upper()} cannot be forwarded: {exc}",
                              msg.address)
        if type(msg) is M.Set:
            return self.on_set(s, <const uint8_t*>PyBytes_AS_STRING(out), len(out), qos)
        return self.on_publish(s, <const uint8_t*>PyBytes_AS_STRING(out), len(out), qos, throttled)

    cdef int forward_publish_copy(self, Session s, const uint8_t* p, Py_ssize_t n) except -1:
        """An R_PUB_REQ with sequence 0: the owner routes it to the other workers and answers
        nothing (the origin has delivered it to its own sessions)."""
        cdef uint8_t head[REQUEST_HEAD_MAX]
        return self.owner_link.push_record(R_PUB_REQ, head, write_request_head(head, 0, 0, s.idc, s.idlen),
                                           p, n)

    cdef int forward_request(self, Session s, uint8_t kind, uint8_t record, const uint8_t* p,
                             Py_ssize_t n, uint8_t qos) except -1:
        """Not the owner: send a SET or PUBLISH to it; the result comes back in order
        (R_REPLICATE / R_DONE / R_REJECT) and is matched with the pending queue."""
        cdef uint8_t head[REQUEST_HEAD_MAX]
        cdef uint64_t seq
        if self.owner_link is None and self.owner_queue_full(s, n):
            return 0
        self.next_seq += 1
        seq = self.next_seq
        self.pending.push(seq, s, qos, kind, p, n)
        s.inflight += 1
        s.inflight_bytes += n
        if self.owner_link is not None:
            self.owner_link.push_record(record, head, write_request_head(head, seq, qos, s.idc, s.idlen),
                                        p, n)
        return 0

    cdef bint owner_queue_full(self, Session s, Py_ssize_t n) except -1:
        """The owner is down (restarting): a write waits in the pending queue, within the
        owner_queue_* limits; beyond them it is refused with ERROR 503 (True)."""
        cdef object why = None
        cdef object cfg = self.config
        if len(self.pending) >= cfg.owner_queue_messages:
            why = f"this worker already holds {len(self.pending)} writes (owner_queue_messages)"
        elif self.pending.log_size - self.pending.log_head + n > cfg.owner_queue_bytes:
            why = f"this worker's writes held pass {cfg.owner_queue_bytes} bytes (owner_queue_bytes)"
        elif s.inflight >= cfg.owner_queue_session_messages:
            why = f"this session already has {s.inflight} writes held (owner_queue_session_messages)"
        elif s.inflight_bytes + n > cfg.owner_queue_session_bytes:
            why = (f"this session's writes held pass {cfg.owner_queue_session_bytes} bytes "
                   f"(owner_queue_session_bytes)")
        if why is None:
            return False
        self.dropped_writes += 1
        self.error(s, E_UNAVAILABLE, f"state owner (worker 0) restarting and {why}: the write was "
                                     f"not applied; retry in a moment")
        return True

    cdef int apply_set(self, const char* wid, uint8_t wlen, Session local, int origin, uint64_t seq,
                       const uint8_t* p, SetView* v, Seg* segs, int nseg, uint8_t qos) except -1:
        """The owner's decision on one SET (from ``local`` here, or from worker ``origin``)."""
        cdef const char* addr = <const char*>p + v.addr_pos
        cdef uint64_t h = bm_hash(addr, v.addr_len)
        cdef uint64_t now = self.now_us()
        cdef Param* prm = param_get(self.params, addr, v.addr_len, h)
        cdef uint64_t current = 0
        cdef Py_ssize_t size, hl, total, hn, i
        cdef uint8_t* frame
        cdef MatchList* ml
        cdef uint8_t head[REPLICATE_HEAD + STATE_MAX]
        cdef PeerLink link
        cdef uint64_t position = 0
        if self.commit is not None and self.staged is None and not (
                self.fast_sets and qos == 0 and prm != NULL and prm.fast and prm.holder_len == 0
                and not v.flags & (SET_HAS_REVISION | SET_LOCK | SET_UNLOCK)
                and (local is not None or origin >= MAX_WORKERS or self.answers_held[origin] == 0)
                and not param_expired(prm, now)):
            # a NATS node: the bucket takes the decision before anyone hears of it (commit.py),
            # unless this node wrote the param last and the SET is a plain fire-and-forget one:
            # then it goes out now and commit.py writes the param's newest state behind it
            if local is not None:
                local.inflight += 1
            return self.commit.submit(local, origin, seq, wid[:wlen], PyBytes_FromStringAndSize(
                <const char*>p, v.end), qos, addr[:v.addr_len])
        if self.cross_node_full:
            address = addr[:v.addr_len].decode()
            return self._write_error(local, origin, seq, E_UNAVAILABLE,
                                     f"{address} was not written: this node cannot reach the "
                                     f"other nodes (NATS) and its cross-node queue "
                                     f"(cluster.queue_size) is full; retry later", address)
        if prm != NULL and param_expired(prm, now):
            self.params.remove(prm)
            prm = NULL
        if prm != NULL:
            current = prm.revision
        if prm != NULL and v.flags & SET_HAS_REVISION and v.revision != current:
            address = addr[:v.addr_len].decode()
            return self._write_error(local, origin, seq, E_STALE,
                                     f"stale revision for {address}: the SET expected revision "
                                     f"{v.revision} but the current revision is {current}; "
                                     f"nothing was written", address)
        if prm != NULL and prm.holder_len and not _same_id(prm.holder, prm.holder_len, wid, wlen):
            address = addr[:v.addr_len].decode()
            return self._write_error(local, origin, seq, E_LOCKED,
                                     f"{address} is locked by another session; only the lock "
                                     f"holder can write or unlock it; nothing was written", address)
        if prm == NULL:
            prm = self.params.create(addr, v.addr_len, h)
        if v.flags & SET_UNLOCK and prm.holder_len:
            prm.holder_len = 0
            self._lock_changed(wid[:wlen].decode(), origin, addr[:v.addr_len].decode(), False)
        if v.flags & SET_LOCK:
            memcpy(prm.holder, wid, wlen)
            prm.holder_len = wlen
            prm.holder_origin = origin
            self._lock_changed(wid[:wlen].decode(), origin, addr[:v.addr_len].decode(), True)
        param_store(self.params, prm, v.vtype, p + v.value_pos, v.value_end - v.value_pos)
        prm.revision = current + 1
        prm.timestamp_us = now
        memcpy(prm.writer, wid, wlen)
        prm.writer_len = wlen
        param_expiry(self.params, prm, (v.flags & SET_HAS_TTL) != 0, v.ttl, now)
        if self.journal_link is not None and self.staged is None:
            self.push_param(self.journal_link, prm)
            self.journal_seq += 1
            position = self.journal_seq
            if qos >= 2:
                self.want_commit(position)

        # the broadcast: the same SET with the new revision, framed once
        size = set_broadcast_size(v)
        frame = self.reserve_scratch(MAX_WS_HEADER + 4 + size)
        hl = ws_binary_header(frame, 4 + size)
        clasp_header(frame + hl, 1, size)
        write_set_broadcast(frame + hl + 4, p, v, prm.revision)
        total = hl + 4 + size
        if self.staged is not None:
            return self._stage(origin, seq, prm, frame, total)
        ml = self.param_receivers(prm, segs, nseg)
        self.deliver(ml, 0x01, None, False, frame, total, addr, v.addr_len, prm)
        # every other worker keeps a replica and serves its own subscribers
        if self.cluster is not None:
            head[0] = origin
            store_u64(head + 1, seq)
            store_u64(head + 9, position)
            hn = REPLICATE_HEAD + write_state(prm, head + REPLICATE_HEAD)
            for i in range(MAX_WORKERS - 1):
                link = self.links[i]
                if link is not None:
                    link.push_record(R_REPLICATE, head, hn, frame, total)
            link = self.links[MAX_WORKERS - 1]
            if link is not None:
                # the NATS bridge (a fast SET): bucket revision 0, not in the bucket yet
                memset(head + 1, 0, 16)
                link.push_record(R_REPLICATE, head, hn, frame, total)
            if origin < MAX_WORKERS and seq > self.applied[origin]:
                self.applied[origin] = seq
        if local is not None and qos >= 1:
            if qos >= 2 and position > self.durable_at:
                self.ack_when_durable(local, addr, v.addr_len, prm.revision, position)
            else:
                self.send_ack(local, addr, v.addr_len, prm.revision)
        return 0

    def _write_error(self, Session local, int origin, uint64_t seq, int code, str message, str address):
        """A SET (or BUNDLE) was refused: tell its writer, here or on its worker."""
        message, address = _clip(message, ECHO_MESSAGE), _clip(address, ECHO_ADDRESS)
        if self.staged is not None:
            self.staged.append((code, message, address))        # decided for commit.py
            return 0
        if local is not None:
            return self.error(local, code, message, address)
        if origin < MAX_WORKERS and seq > self.applied[origin]:
            self.applied[origin] = seq
        link = self.links[origin] if origin < MAX_WORKERS else None
        if link is not None:
            (<PeerLink>link).send_record(R_REJECT, bus.reject(seq, code, message, address))
        return 0

    def _lock_changed(self, str holder, int origin, str address, bint locked):
        held = self.holders.get(holder)
        if locked:
            if held is None:
                held = self.holders[holder] = set()
                self.holder_origin[holder] = origin
            held.add(address)
        elif held is not None:
            held.discard(address)
            if not held:
                del self.holders[holder]
                self.holder_origin.pop(holder, None)

    def release_locks(self, str holder):
        """Owner: ``holder`` (a session id) is gone; free every param it locked."""
        cdef bytes b, hb = holder.encode()
        cdef Param* prm
        for address in self.holders.pop(holder, ()):
            b = address.encode()
            prm = param_get(self.params, b, len(b), bm_hash(b, len(b)))
            if prm != NULL and _same_id(prm.holder, prm.holder_len, hb, len(hb)):
                prm.holder_len = 0
                self._broadcast_holder(address, "", 0)
        self.holder_origin.pop(holder, None)

    def release_origin(self, int origin):
        """Owner: worker ``origin`` is gone; free the locks of its sessions."""
        for holder, o in list(self.holder_origin.items()):
            if o == origin:
                self.release_locks(holder)

    def _broadcast_holder(self, str address, str holder, int horigin):
        if self.cluster is None:
            return
        body = bus.holder(address, holder, horigin)
        for link in self.links:
            if link is not None:
                (<PeerLink>link).send_record(R_HOLDER, body)

    def apply_holder(self, bytes body):
        """Replica: the owner changed a lock holder without a write."""
        cdef bytes b, holder
        cdef Param* prm
        b, holder, origin = bus.parse_holder(body)
        prm = param_get(self.params, b, len(b), bm_hash(b, len(b)))
        if prm != NULL:
            memcpy(prm.holder, <const char*>holder, len(holder))
            prm.holder_len = len(holder)
            prm.holder_origin = origin
            if origin == MAX_WORKERS - 1:
                prm.fast = 0                # another node changed it (a NATS node's bridge)

    cdef MatchList* param_receivers(self, Param* prm, Seg* segs, int nseg) except NULL:
        """The cached receivers of a param; ``nseg`` < 0: the address is not split yet."""
        if prm.match == NULL or prm.match.gen != self.trie.gen:
            if nseg < 0:
                nseg = split_address(prm.address, prm.addr_len, segs)
            matchlist_free(prm.match)
            prm.match = NULL
            prm.match = self.trie.match(prm.address, segs, nseg)
        return prm.match

    cdef uint64_t now_us(self) noexcept:
        """Server time for writes: read once per batch of input (the edge marks a batch's
        end), not once per SET; within a batch of frames it is the same microsecond range."""
        if not self.clock_fresh:
            self.clock_us = self.clock.wall_us()
            self.clock_fresh = True
        return self.clock_us

    # --- bus records ------------------------------------------------------------

    def receive_link(self, PeerLink link, data):
        """Feeds bytes read from the bus connection to worker ``link.index``."""
        cdef const uint8_t[::1] view = data
        if view.shape[0]:
            self.feed_link(link, &view[0], view.shape[0])

    cdef int feed_link(self, PeerLink link, const uint8_t* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t pos = 0, size, rest
        cdef const uint8_t* buf
        cdef uint8_t kind
        if link.in_size:
            link.buffer_input(data, n)
            buf = link.inbuf
            n = link.in_size
        else:
            buf = data
        while n - pos >= 5:
            size = load_u32(buf + pos)
            if n - pos - 4 < size:
                break
            kind = buf[pos + 4]
            try:
                if kind == R_PUBLISH:
                    self.on_forwarded_publish(buf + pos + 5, size - 1)
                elif kind == R_REPLICATE:
                    self.on_replicate(buf + pos + 5, size - 1)
                elif kind == R_SET_REQ and not self.holding:
                    self.on_set_request(link, buf + pos + 5, size - 1)
                elif kind == R_PUB_REQ and not self.holding:
                    self.on_publish_request(link, buf + pos + 5, size - 1)
                elif kind == R_DONE:
                    self.on_done(buf + pos + 5, size - 1)
                elif kind == R_BARRIER and not self.holding:
                    if not self.held_in_order(link, R_BARRIER, buf + pos + 5, size - 1):
                        self.answer_barrier(link, buf + pos + 5)
                elif self.cluster is not None:
                    self.on_record(link, kind, PyBytes_FromStringAndSize(<const char*>buf + pos + RECORD_HEAD,
                                                                         size - 1))
            except Exception:
                # a bug, never the client's doing: the record is skipped, the link stays up
                self._record_failed(link, kind, PyBytes_FromStringAndSize(<const char*>buf + pos + RECORD_HEAD,
                                                                          size - 1))
            pos += 4 + size
        rest = n - pos
        self.clock_fresh = False
        if buf == link.inbuf:
            if rest and pos:
                memmove(link.inbuf, link.inbuf + pos, rest)
            link.in_size = rest
        elif rest:
            link.buffer_input(data + pos, rest)
        return 0

    def _record_failed(self, PeerLink link, int kind, bytes body):
        """A bus record could not be applied (a bug).  It is logged and skipped; a request
        from another worker is answered ERROR 500 for its one session, which its worker then
        closes (1011), so that session is not left waiting and the link keeps serving
        everybody else."""
        log.exception("bus: record kind %d (%d bytes) from worker %d failed; skipped", kind,
                      len(body), link.index)
        if kind in (R_SET_REQ, R_PUB_REQ, R_BUNDLE_REQ) and len(body) >= 8:
            link.send_record(R_REJECT, bus.reject(load_u64(<const uint8_t*>PyBytes_AS_STRING(body)), 500,
                                                  "internal error applying this request on the state "
                                                  "owner (logged there); it was not applied", None))

    cdef int on_forwarded_publish(self, const uint8_t* b, Py_ssize_t n) except -1:
        """Another worker's PUBLISH (a ready frame): deliver it to our own subscribers."""
        cdef PublishView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef int nseg
        cdef Py_ssize_t hl = ws_header_len(b, n)
        cdef const uint8_t* p
        if hl < 0 or n < hl + 4:
            return 0
        p = b + hl + 4
        if parse_publish(p, n - hl - 4, &v, &r):
            return 0
        nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
        if nseg < 0:
            return 0
        return self.deliver(self.publish_receivers(<const char*>p + v.addr_pos, v.addr_len, segs, nseg),
                            <uint8_t>(1 << v.signal), None, False, b, n,
                            <const char*>p + v.addr_pos, v.addr_len, NULL)

    cdef int on_set_request(self, PeerLink link, const uint8_t* b, Py_ssize_t n) except -1:
        """Owner: a SET from a session on worker ``link.index``."""
        cdef SetView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef int nseg
        cdef uint64_t seq = load_u64(b)
        cdef uint8_t qos = b[8]
        cdef uint8_t idlen = b[9]
        cdef const char* wid = <const char*>b + REQUEST_HEAD
        cdef const uint8_t* p = b + request_head_size(b)
        cdef Py_ssize_t pn = n - request_head_size(b)
        cdef int origin = link.index
        if parse_set(p, pn, &v, &r):
            return self._write_error(None, origin, seq, E_BAD_FRAME, reader_error(&r, "SET"), None)
        if seq <= self.applied[origin]:
            # decided before this owner restarted: answer, do not apply twice
            return self._duplicate(link, seq, (<const char*>p + v.addr_pos)[:v.addr_len])
        nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
        if nseg < 0:
            address = (<const char*>p + v.addr_pos)[:v.addr_len].decode()
            return self._write_error(None, origin, seq, E_ADDRESS, address_error(nseg, "address", address),
                                     address)
        return self.apply_set(wid, idlen, None, origin, seq, p, &v, segs, nseg, qos)

    def _duplicate(self, PeerLink link, uint64_t seq, bytes address):
        cdef Param* prm = param_get(self.params, address, len(address), bm_hash(address, len(address)))
        rev = prm.revision if prm != NULL else 0
        link.send_record(R_DUP, bus.done(seq, rev))
        return 0

    cdef int on_replicate(self, const uint8_t* b, Py_ssize_t n) except -1:
        """Replica: the owner decided a SET: store it, deliver it to our subscribers."""
        cdef Seg segs[MAX_SEGMENTS]
        cdef uint8_t origin = b[0]
        cdef uint64_t seq = load_u64(b + 1)
        cdef uint64_t position = load_u64(b + 9)
        cdef const uint8_t* frame
        cdef Py_ssize_t fn, i
        cdef PeerLink link
        # a fast SET of another node (NATS bridge, sequence 1: not in the bucket yet) is
        # taken only over an older revision (commit.py: the bucket's order settles races)
        cdef Param* prm = self._store_replicate(b, n, &frame, &fn, origin == MAX_WORKERS - 1 and seq == 1)
        if prm == NULL:
            return 0
        if origin == MAX_WORKERS - 1:
            prm.fast = 0                    # another node wrote it
            if self.commit is not None:     # the owner: every worker takes it as taken here
                for i in range(MAX_WORKERS - 1):
                    link = self.links[i]
                    if link is not None:
                        link.push_record(R_REPLICATE, b, n, NULL, 0)
        self.deliver(self.param_receivers(prm, segs, -1), 0x01, None, False, frame, fn,
                     prm.address, prm.addr_len, prm)
        if seq > self.applied[origin]:
            self.applied[origin] = seq
        if position > self.journal_seen:
            self.journal_seen = position
        if origin == self.worker_index and seq:
            self.resolve_pending(seq, prm.revision, prm.address, prm.addr_len, position)
        return 0

    cdef Param* _store_replicate(self, const uint8_t* b, Py_ssize_t n, const uint8_t** frame,
                                 Py_ssize_t* fn, bint only_if_newer=False) except? NULL:
        """Stores the decided state of an R_REPLICATE body; returns its param (NULL: malformed)
        and its ready broadcast frame in ``frame``/``fn``."""
        cdef SetView v
        cdef Reader r
        cdef const uint8_t* st = b + REPLICATE_HEAD
        cdef Py_ssize_t sh = state_size(st)
        cdef Py_ssize_t hl
        cdef const uint8_t* p
        frame[0] = st + sh
        fn[0] = n - REPLICATE_HEAD - sh
        hl = ws_header_len(frame[0], fn[0])
        if hl < 0 or fn[0] < hl + 4:
            return NULL
        p = frame[0] + hl + 4
        if parse_set(p, fn[0] - hl - 4, &v, &r):
            return NULL
        return self._store_replica(<const char*>p + v.addr_pos, v.addr_len, v.vtype, p + v.value_pos,
                                   v.value_end - v.value_pos, v.revision, st, only_if_newer)

    cdef Param* _store_replica(self, const char* addr, Py_ssize_t alen, uint8_t vtype, const uint8_t* data,
                               Py_ssize_t dlen, uint64_t revision, const uint8_t* st,
                               bint only_if_newer) except? NULL:
        """Replica: sets a param to the owner's decided state (``st``: a bus state block).
        With ``only_if_newer``, a param at ``revision`` or later is kept (returns NULL)."""
        cdef uint64_t h = bm_hash(addr, alen)
        cdef Param* prm = param_get(self.params, addr, alen, h)
        if prm != NULL and only_if_newer and prm.revision >= revision:
            return NULL
        if prm == NULL:
            prm = self.params.create(addr, alen, h)
        param_store(self.params, prm, vtype, data, dlen)
        prm.revision = revision
        apply_state(prm, st)
        return prm

    cdef int resolve_pending(self, uint64_t seq, uint64_t revision, const char* addr, Py_ssize_t alen,
                             uint64_t position) except -1:
        """A request of ours was decided (and journaled at ``position``, 0: not journaled):
        answer the session that sent it; QoS commit once the journal is on disk there."""
        cdef Pending* f = self._pending_for(seq)
        if f == NULL:
            return 0
        if f.kind == PK_SET and f.qos >= 1 and f.session != NULL and not (<Session>f.session).closed:
            if f.qos >= 2 and position > self.durable_at:
                self.ack_when_durable(<Session>f.session, addr, alen, revision, position)
            else:
                self.send_ack(<Session>f.session, addr, alen, revision)
        return self.complete(f)

    cdef int complete(self, Pending* f) except -1:
        """Pops the oldest pending request; its session may run what waited for it."""
        cdef Session s = <Session>f.session if f.session != NULL else None
        cdef bint counted = f.kind != PK_RELEASE
        self.pending.pop()
        if not counted and s is not None and s.on_released is not None:
            callback, s.on_released = s.on_released, None
            callback()
        if s is not None and counted and s.inflight:
            s.inflight -= 1
            s.inflight_bytes -= min(<uint64_t>f.len, s.inflight_bytes)
            if s.inflight == 0 and s.held is not None and not s.closed:
                self._drain(s)
        return 0

    cdef int on_publish_request(self, PeerLink link, const uint8_t* b, Py_ssize_t n) except -1:
        """Owner: a PUBLISH from a session on worker ``link.index``: route it to our sessions
        and to the other interested workers; the origin delivers to its own after R_DONE."""
        cdef PublishView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef int nseg
        cdef uint64_t seq = load_u64(b)
        cdef const uint8_t* p = b + request_head_size(b)
        cdef Py_ssize_t pn = n - request_head_size(b)
        cdef uint8_t done[DONE_SIZE]
        if seq and self.held_in_order(link, R_PUB_REQ, b, n):
            return 0
        if seq == 0 or seq > self.applied[link.index]:
            if seq:
                self.applied[link.index] = seq
            if not parse_publish(p, pn, &v, &r):
                nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
                if nseg >= 0:
                    self.route_publish(link, True, p, &v, segs, nseg)
        if seq == 0:
            return 0                # a copy: the origin expects no answer
        write_done(done, seq, 0)
        return link.push_record(R_DONE, done, DONE_SIZE, NULL, 0)

    cdef int answer_barrier(self, PeerLink link, const uint8_t* b) except -1:
        """Owner: R_DONE after every decision sent so far (the link is FIFO)."""
        cdef uint8_t done[DONE_SIZE]
        write_done(done, load_u64(b), 0)
        return link.push_record(R_DONE, done, DONE_SIZE, NULL, 0)

    cdef int on_done(self, const uint8_t* b, Py_ssize_t n) except -1:
        """Origin: the owner has routed our PUBLISH (or applied a BUNDLE / lock release)."""
        cdef uint64_t seq = load_u64(b)
        cdef Pending* f = self._pending_for(seq)
        cdef PublishView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef int nseg
        cdef const uint8_t* p
        if f == NULL:
            return 0
        if f.kind != PK_PUBLISH:
            self.resolve_done(PyBytes_FromStringAndSize(<const char*>b, n))
            return 0
        p = self.pending.payload(f)
        if f.session != NULL and not parse_publish(p, f.len, &v, &r):
            nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
            if nseg >= 0:
                self.route_publish(<Session>f.session, False, p, &v, segs, nseg)
            if f.qos:
                self.send_publish_ack(<Session>f.session, <const char*>p + v.addr_pos, v.addr_len)
        return self.complete(f)

    def resolve_reject(self, bytes body):
        """Our request was refused by the owner: ERROR to the session."""
        cdef Pending* f
        seq, code, message, address = bus.parse_reject(body)
        f = self._pending_for(seq)
        if f == NULL:
            return
        if f.session != NULL and not (<Session>f.session).closed:
            self.error(<Session>f.session, code, message, address)
            if code == 500:
                # the owner failed on it (a bug, logged there): this one session is closed,
                # the bus link and every other session carry on
                (<Session>f.session).request_close(1011, "internal error on the state owner")
        self.complete(f)

    def resolve_done(self, bytes body):
        """Our BUNDLE (or lock release) was applied by the owner."""
        cdef Pending* f
        cdef Session s
        seq, revision = bus.parse_done(body)
        f = self._pending_for(seq)
        if f == NULL:
            return
        if f.kind == PK_READ and f.session != NULL:
            s = <Session>f.session
            payload = PyBytes_FromStringAndSize(<const char*>self.pending.payload(f), f.len)
            qos = f.qos
            self.pending.pop()          # before handling: the read may start new requests
            if s.inflight:
                s.inflight -= 1
            msg = decode_payload(payload)
            if not s.closed:
                self.handle(s, msg, qos)       # barrier passed
            self._provisional_interest(msg, -1)
            if not s.closed and s.inflight == 0 and s.held is not None:
                self._drain(s)
            return
        if f.kind == PK_BUNDLE and f.session != NULL:
            s = <Session>f.session
            bundle = decode_payload(PyBytes_FromStringAndSize(<const char*>self.pending.payload(f), f.len))
            qos = f.qos
            self._publish_bundle_part(s, bundle, False)
            if qos >= 1 and not s.closed:
                # the bundle's SETs were replicated ahead of this R_DONE: journal_seen covers them
                self._ack_maybe_durable(s, M.Ack(revision=revision or None), qos, self.journal_seen)
        self.complete(f)

    def resolve_dup(self, bytes body):
        """Our request had been applied before the owner restarted."""
        cdef Pending* f
        seq, revision = bus.parse_done(body)
        f = self._pending_for(seq)
        if f == NULL:
            return
        if f.kind == PK_SET and f.qos >= 1 and f.session != NULL and not (<Session>f.session).closed:
            msg = decode_payload(PyBytes_FromStringAndSize(<const char*>self.pending.payload(f), f.len))
            self.send(<Session>f.session, M.Ack(address=msg.address, revision=revision))
        self.complete(f)

    cdef Pending* _pending_for(self, uint64_t seq):
        cdef Pending* f = self.pending.front()
        while f != NULL and f.seq < seq:
            log.warning("bus: request %d of worker %d got no decision; dropped", f.seq, self.worker_index)
            self.complete(f)
            f = self.pending.front()
        return f if f != NULL and f.seq == seq else NULL

    def _forward_request(self, int kind, int record, Session s, int qos, bytes payload):
        """Not the owner: queue a BUNDLE or lock-release request and send it if the owner is up."""
        if kind == PK_BUNDLE and self.owner_link is None and self.owner_queue_full(s, len(payload)):
            return
        self.next_seq += 1
        seq = self.next_seq
        self.pending.push(seq, s, qos, kind, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload))
        if kind != PK_RELEASE:
            s.inflight += 1
            s.inflight_bytes += len(payload)
        if self.owner_link is not None:
            self.owner_link.send_record(record, bus.request_head(seq, qos, s.id if s is not None else "")
                                        + payload)

    def resend_pending(self):
        """The owner restarted: send it every request it has not decided, in order."""
        cdef Pending* f
        cdef Py_ssize_t i
        cdef Session s
        for i in range(len(self.pending)):
            f = self.pending.at(i)
            s = <Session>f.session if f.session != NULL else None
            payload = PyBytes_FromStringAndSize(<const char*>self.pending.payload(f), f.len)
            record = {PK_SET: R_SET_REQ, PK_BUNDLE: R_BUNDLE_REQ, PK_RELEASE: R_RELEASE,
                      PK_PUBLISH: R_PUB_REQ, PK_READ: R_BARRIER}[f.kind]
            self.owner_link.send_record(record, bus.request_head(f.seq, f.qos, s.id if s is not None else "")
                                        + payload)

    def owner_release(self, PeerLink link, bytes body):
        """Owner: a session of worker ``link.index`` closed; free its locks."""
        if self.held_in_order(link, R_RELEASE, <const uint8_t*>PyBytes_AS_STRING(body), len(body)):
            return
        seq, _, holder, _ = bus.parse_request(body)
        self.release_locks(holder)
        if seq > self.applied[link.index]:
            self.applied[link.index] = seq
        link.send_record(R_DONE, bus.done(seq))

    def owner_bundle(self, PeerLink link, bytes body):
        """Owner: a BUNDLE from a session of worker ``link.index``."""
        if self.held_in_order(link, R_BUNDLE_REQ, <const uint8_t*>PyBytes_AS_STRING(body), len(body)):
            return
        seq, qos, holder, payload = bus.parse_request(body)
        if seq <= self.applied[link.index]:
            link.send_record(R_DONE, bus.done(seq))
            return
        msg = decode_payload(payload)
        ok, last = self._apply_bundle_sets(holder, None, link.index, seq, msg)
        if ok:
            if seq > self.applied[link.index]:
                self.applied[link.index] = seq
            self._after_bundle(self._bundle_forwarded, link, msg, qos, seq, last)

    def _bundle_forwarded(self, PeerLink link, msg, int qos, uint64_t seq, last):
        self._publish_bundle_part(link, msg, True)
        self._bundle_wants_commit(qos)
        link.send_record(R_DONE, bus.done(seq, last or 0))

    def _after_bundle(self, fn, Endpoint writer, msg, *args):
        """``fn(writer, msg, *args)``: what an applied bundle sends (its PUBLISHes, ACK or
        R_DONE).  On a NATS node it waits until the bucket took the bundle's SETs
        (commit.py), and ``args``' last, the last SET's revision, is read then."""
        if self.commit is None:
            return fn(writer, msg, *args)
        if isinstance(writer, Session):
            (<Session>writer).inflight += 1
        self.commit.then(self._bundle_committed, fn, writer, msg, args)

    def _bundle_committed(self, fn, writer, msg, args):
        last = None
        for m in msg.messages:
            if type(m) is M.Set:
                last = m.address
        fn(writer, msg, *args[:len(args) - 1], self.param_state(last)[0] if last is not None else None)
        if isinstance(writer, Session):
            self.local_done(writer)

    # --- PUBLISH ----------------------------------------------------------------

    cdef int on_publish(self, Session s, const uint8_t* p, Py_ssize_t n, uint8_t qos, bint throttled) except -1:
        cdef PublishView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef int nseg
        if parse_publish(p, n, &v, &r):
            return self.reject_frame(s, reader_error(&r, "PUBLISH"))
        nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
        if nseg < 0:
            address = (<const char*>p + v.addr_pos)[:v.addr_len].decode()
            return self.error(s, E_ADDRESS, address_error(nseg, "address", address), address)
        if s.access is not None and not (<Access>s.access).may_write(<const char*>p + v.addr_pos, v.addr_len):
            return self.forbidden(s, "PUBLISH", <const char*>p + v.addr_pos, v.addr_len)
        if v.codes_seen & NARROW_CODES or v.indicator == 2:
            return self._reencode(s, PyBytes_FromStringAndSize(<const char*>p, n), qos, throttled)
        if v.signal == SIG_GESTURE and not throttled and self.gestures.enabled:
            if not self.gestures.admit(s, PyBytes_FromStringAndSize(<const char*>p, v.end),
                                       PyBytes_FromStringAndSize(<const char*>p + v.addr_pos, v.addr_len),
                                       v.gesture_id, v.phase):
                return 0
        if not self.is_owner:
            if s.inflight or self.owner_link is None:
                # behind its own requests (or the owner is restarting): the owner sequences it,
                # local delivery after its R_DONE
                return self.forward_request(s, PK_PUBLISH, R_PUB_REQ, p, v.end, qos)
            # nothing of this session in flight: deliver here now (everything it sent before is
            # delivered here already); the owner gets a copy for the other workers
            self.route_publish(s, False, p, &v, segs, nseg)
            self.forward_publish_copy(s, p, v.end)
        else:
            self.route_publish(s, True, p, &v, segs, nseg)
        if qos:
            self.send_publish_ack(s, <const char*>p + v.addr_pos, v.addr_len)
        return 0

    def forward_publish(self, Session s, bytes payload):
        """Routes a PUBLISH payload that already passed the gesture throttle."""
        if not s.closed:
            self.on_publish(s, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload), 0, True)

    cdef int route_publish(self, Endpoint exclude, bint to_peers, const uint8_t* p, PublishView* v,
                           Seg* segs, int nseg) except -1:
        """Delivers a PUBLISH to every matching session but ``exclude`` (its sender, or the
        link of its origin worker); the owner also forwards it to interested workers."""
        cdef Py_ssize_t hl, size = v.end
        cdef uint8_t* frame = self.reserve_scratch(MAX_WS_HEADER + 4 + size)
        cdef MatchList* ml
        hl = ws_binary_header(frame, 4 + size)
        clasp_header(frame + hl, publish_qos(v.signal), size)
        memcpy(frame + hl + 4, p, size)
        ml = self.publish_receivers(<const char*>p + v.addr_pos, v.addr_len, segs, nseg)
        return self.deliver(ml, <uint8_t>(1 << v.signal), exclude, to_peers and self.is_owner,
                            frame, hl + 4 + size, <const char*>p + v.addr_pos, v.addr_len, NULL)

    cdef MatchList* publish_receivers(self, const char* addr, Py_ssize_t n, Seg* segs, int nseg) except NULL:
        cdef uint64_t h = bm_hash(addr, n)
        cdef CacheEntry* ce = <CacheEntry*>bm_get(&self.pub_cache, addr, n, h)
        if ce != NULL:
            if ce.ml.gen == self.trie.gen:
                return ce.ml
            matchlist_free(ce.ml)
            ce.ml = NULL
            ce.ml = self.trie.match(addr, segs, nseg)
            return ce.ml
        if self.pub_cache.count >= self.pub_cache_limit:
            self._clear_pub_cache()
        ce = <CacheEntry*>malloc(sizeof(CacheEntry))
        if ce == NULL:
            raise MemoryError()
        ce.key = <char*>malloc(n + 1)
        memcpy(ce.key, addr, n)
        ce.len = n
        ce.ml = NULL
        bm_put(&self.pub_cache, ce.key, n, h, ce)
        ce.ml = self.trie.match(addr, segs, nseg)
        return ce.ml

    cdef void _clear_pub_cache(self) noexcept:
        cdef Py_ssize_t i
        cdef CacheEntry* ce
        if self.pub_cache.slots == NULL:
            return
        for i in range(self.pub_cache.mask + 1):
            if self.pub_cache.slots[i].key != NULL:
                ce = <CacheEntry*>self.pub_cache.slots[i].value
                matchlist_free(ce.ml)
                free(ce.key)
                free(ce)
        bm_clear(&self.pub_cache)

    # --- fan-out ----------------------------------------------------------------

    cdef int deliver(self, MatchList* ml, uint8_t bit, Endpoint exclude, bint to_peers,
                     const uint8_t* frame, Py_ssize_t n, const char* addr, Py_ssize_t alen,
                     Param* prm) except -1:
        cdef Py_ssize_t i
        cdef MatchEntry* e
        cdef PyObject* skip = <PyObject*>exclude
        cdef Endpoint target
        self.fanout_frame = frame       # stalled receivers share one copy (Hub.waiting_copy)
        try:
            for i in range(ml.n):
                e = &ml.entries[i]
                if e.target == skip:
                    continue
                target = <Endpoint>e.target
                if target.is_peer and not to_peers:
                    continue
                if e.mask & bit:
                    target.push_routed(frame, n)
                    self.routed += not target.is_peer       # deliveries to clients, not bus forwards
                elif e.gated_mask & bit:
                    self._deliver_gated(target, <list>e.gated, bit,
                                        PyBytes_FromStringAndSize(<const char*>frame, n),
                                        PyBytes_FromStringAndSize(addr, alen), prm)
        finally:
            self.fanout_frame = NULL
            self.fanout_copy = None
        return 0

    cdef _deliver_gated(self, Endpoint target, list gated, uint8_t bit, bytes frame, bytes address,
                        Param* prm):
        cdef object number = None
        cdef int64_t iv
        cdef uint64_t raw
        if prm != NULL:
            if prm.value[0] == V_I64:
                iv = <int64_t>load_u64(prm.value + 1)
                number = float(iv)
            elif prm.value[0] == V_F64:
                raw = load_u64(prm.value + 1)
                number = (<double*>&raw)[0]
        subs = [sub for sub in gated if (<Subscription>sub).mask & bit]
        if subs and gates_admit(self, target, subs, address, frame, number):
            target.push_routed(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))
            self.routed += not target.is_peer

    def push_frame(self, Endpoint target, bytes ws_frame):
        """Queues an already framed routed message (gate trailing flushes)."""
        target.push_routed(<const uint8_t*>PyBytes_AS_STRING(ws_frame), len(ws_frame))

    cdef uint8_t* reserve_scratch(self, Py_ssize_t n) except NULL:
        cdef uint8_t* nb
        if n > self.scratch_cap:
            nb = <uint8_t*>realloc(self.scratch, n)
            if nb == NULL:
                raise MemoryError()
            self.scratch = nb
            self.scratch_cap = n
        return self.scratch

    # --- direct replies -------------------------------------------------------

    cdef int send_ack(self, Session s, const char* addr, Py_ssize_t n, uint64_t revision) except -1:
        return s.push_direct(self.scratch, _ack_frame(self, addr, n, revision))

    cdef int ack_when_durable(self, Session s, const char* addr, Py_ssize_t n, uint64_t revision,
                              uint64_t position) except -1:
        """A QoS-commit ACK, sent once the journal is on disk up to ``position``."""
        cdef Py_ssize_t size = _ack_frame(self, addr, n, revision)
        return self.durable_acks.push(position, s, 2, PK_SET, self.scratch, size)

    def _ack_maybe_durable(self, Session s, ack, int qos, uint64_t position):
        """``ack`` now, or at QoS commit once the journal is on disk up to ``position``."""
        cdef bytes frame
        if qos >= 2 and position > self.durable_at:
            frame = ws_frame(encode_frame(ack))
            self.durable_acks.push(position, s, 2, PK_SET, <const uint8_t*>PyBytes_AS_STRING(frame),
                                   len(frame))
        else:
            self.send(s, ack)

    # --- durability: the owner's journal (see clasp_fast.state) ------------------------

    def attach_journal(self, io):
        """Owner: from now on every decided SET is queued for ``io`` (the journal: ``write``,
        ``is_closing``, like a bus link's transport) as an R_SYNC_PARAM record."""
        self.journal_link = PeerLink(self, -1)
        self.journal_link.io = io

    def flush_journal(self):
        """Hands the journal what is queued for it now (at shutdown, after the last tick)."""
        cdef PeerLink link = self.journal_link
        if link is not None and link.out_size:
            link.io.write(PyBytes_FromStringAndSize(<const char*>link.out, link.out_size))
            link.reset_output()

    def journal_durable(self, uint64_t position):
        """The journal is on disk up to ``position`` (the owner's writer thread, or R_DURABLE
        from the owner): send the QoS-commit ACKs waiting for it; the owner tells the
        other workers."""
        cdef Pending* f
        cdef Session s
        if position > self.durable_at:
            self.durable_at = position
        f = self.durable_acks.front()
        while f != NULL and f.seq <= self.durable_at:
            s = <Session>f.session if f.session != NULL else None
            if s is not None and not s.closed:
                s.push_direct(self.durable_acks.payload(f), f.len)
            self.durable_acks.pop()
            f = self.durable_acks.front()
        if self.journal_link is not None:
            self.journal_hurried = False
            if self.commit_wanted > position:
                self.want_commit(self.commit_wanted)     # decided after the writer's last gather
            body = bus.durable(position)
            for link in self.links:
                if link is not None:
                    (<PeerLink>link).send_record(R_DURABLE, body)

    def _new_owner_journal(self):
        """The owner restarted: its journal positions start again.  The ACKs waiting for the
        old owner's journal go out with the new owner's first R_DURABLE, which comes after
        it journaled the merged state (finish_sync)."""
        cdef Py_ssize_t i
        for i in range(len(self.durable_acks)):
            self.durable_acks.at(i).seq = 0
        self.durable_at = 0
        self.journal_seen = 0

    cdef int want_commit(self, uint64_t position) except -1:
        """Owner: a QoS-commit ACK (here or on another worker) waits until ``position`` is on
        disk: the writer stops gathering (once per commit)."""
        if position > self.commit_wanted:
            self.commit_wanted = position
        if not self.journal_hurried:
            self.journal_hurried = True
            self.journal_link.io.hurry()
        return 0

    def _bundle_wants_commit(self, int qos):
        if qos >= 2 and self.journal_link is not None:
            self.want_commit(self.journal_seq)

    cdef int push_param(self, PeerLink link, Param* prm) except -1:
        """One R_SYNC_PARAM record for ``prm`` (a whole param) on ``link``."""
        cdef uint8_t* head = self.reserve_scratch(8 + STATE_MAX + 2 + prm.addr_len)
        cdef Py_ssize_t hn
        store_u64(head, prm.revision)
        hn = 8 + write_state(prm, head + 8)
        store_u16(head + hn, <uint16_t>prm.addr_len)
        memcpy(head + hn + 2, prm.address, prm.addr_len)
        return link.push_record(R_SYNC_PARAM, head, hn + 2 + prm.addr_len, prm.value, prm.value_len)

    def restore_param(self, bytes body):
        """Owner at start-up: one param from the journal (an R_SYNC_PARAM body); its lock is
        not restored (the sessions that held locks are gone)."""
        cdef Param* prm = self.merge_record(body)
        if prm != NULL:
            prm.holder_len = 0

    cdef int send_publish_ack(self, Session s, const char* addr, Py_ssize_t n) except -1:
        """ACK{address}: a PUBLISH with QoS >= 1 was routed (no revision: events have none)."""
        cdef Py_ssize_t size = 1 + 1 + 2 + n
        cdef uint8_t* frame = self.reserve_scratch(MAX_WS_HEADER + 4 + size)
        cdef Py_ssize_t hl = ws_binary_header(frame, 4 + size)
        cdef uint8_t* o = frame + hl + 4
        clasp_header(frame + hl, 0, size)
        o[0] = T_ACK
        o[1] = 0x01                 # address
        store_u16(o + 2, <uint16_t>n)
        memcpy(o + 4, addr, n)
        return s.push_direct(frame, hl + 4 + size)

    def send(self, Session s, msg, int qos=0):
        """Queues one message (a protocol dataclass) for ``s``."""
        cdef bytes frame = ws_frame(encode_frame(msg, qos))
        s.push_direct(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))

    cdef int error(self, Session s, int code, str message, str address=None) except -1:
        self.count_error(code)
        self.send(s, M.Error(code, _clip(message, ECHO_MESSAGE), _clip(address, ECHO_ADDRESS)))
        return 0

    cdef int forbidden(self, Session s, str action, const char* addr, Py_ssize_t n) except -1:
        """ERROR 403 naming the address a write was refused for."""
        address = addr[:n].decode("utf-8", "replace")
        return self.error(s, E_FORBIDDEN, f"{action} {address} refused: token {s.access.name!r} has "
                                          f"no write scope covering it", address)

    def reject(self, Session s, str message):
        """ERROR 400 for something that is not a valid frame (see reject_frame)."""
        self.reject_frame(s, message)

    cdef int reject_frame(self, Session s, str message) except -1:
        """ERROR 400 for a frame that could not be decoded; before HELLO also close 1008."""
        self.error(s, E_BAD_FRAME, message)
        if not s.welcomed and s.close_request is None:
            s.close_request = (1008, "the first message must be a valid HELLO")
        return 0

    # --- snapshots --------------------------------------------------------------

    cdef int send_snapshot(self, Session s, object pattern, bint always, uint64_t since=0) except -1:
        """SNAPSHOT(s) of the params matching ``pattern`` (None: all), written after ``since``
        (wall µs) when that is not before the replay horizon; see snapshot.pyx."""
        if since < self.replay_horizon:
            since = 0
        return write_snapshot(self.params, s, pattern, always, self.clock.wall_us(), since)

    # --- the slow path: everything but SET and PUBLISH --------------------------

    cdef int slow_path(self, Session s, const uint8_t* data, Py_ssize_t n, uint8_t qos, Py_ssize_t hs) except -1:
        payload = PyBytes_FromStringAndSize(<const char*>data + hs, n - hs)
        try:
            msg = decode_payload(payload)
        except DecodeError as exc:
            return self.reject_frame(s, str(exc))
        self.handle(s, msg, qos, payload)
        return 0

    def handle(self, Session s, msg, int qos=0, bytes payload=None):
        """Applies one decoded message from ``s`` (any type, any encoding).

        On a worker that is not the owner, a message answered from the shared state (HELLO's
        snapshot, SUBSCRIBE's, GET, QUERY) first waits for a barrier from the owner: when its
        answer arrives, every decision made before it has been applied here too, so a client
        reads what any other client was already told."""
        kind = type(msg)
        if payload is not None and (kind in _READS or kind is M.Ping and self.ping_barrier) \
                and not self.is_owner and self.cluster is not None:
            self._provisional_interest(msg, +1)
            self._forward_request(PK_READ, R_BARRIER, s, qos, payload)
            return
        if kind is M.Subscribe and self.cross_node is not None and s.welcomed and \
                self.cross_node.hold_subscribe(s, msg, qos):
            # the owner in cluster mode: answered once NATS has the subscription
            # (resume_read); the session's later messages wait behind it
            s.inflight += 1
            if s.held is None:
                s.held = []
            return
        if not s.welcomed:
            if kind is M.Hello:
                return self._hello(s, msg)
            name = kind.__name__.upper()
            return self.reject_frame(s, f"expected HELLO as the first message, got {name}")
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, s, msg, qos)
        # server-only types (WELCOME, SNAPSHOT, ACK, ERROR, RESULT, PONG) are ignored

    def resume_read(self, Session s, msg, int qos):
        """Owner: a SUBSCRIBE held by ``cross_node.hold_subscribe`` is answered now."""
        if not s.closed:
            self.handle(s, msg, qos)
        self.local_done(s)

    def _hello(self, Session s, msg, int qos=0):
        if s.welcomed:
            return self.error(s, E_BAD_FRAME, f"duplicate HELLO: this connection already has session "
                                              f"{s.id}; the first session stays")
        if self.guard is not None:
            access, why = self.guard.admit(msg.token, s.peer, self.clock.wall_us() / 1e6, self.clock.mono_s())
            if access is None:
                self.error(s, E_UNAUTHORIZED, f"{why}: this router admits only clients with a valid "
                                              f"token in HELLO (security.mode token)")
                s.close_request = (1008, "authentication failed")
                return
            s.access = access
        s.welcomed = True
        s.name = msg.name
        s.features = msg.features
        self.sessions[s.id] = s
        self.send(s, M.Welcome(session=s.id, name=self.config.name, time=self.clock.wall_us(), version=1,
                               features=0xF8))
        self.send_snapshot(s, None, True)

    def recheck_access(self, bint reloaded=True):
        """Token mode: ERROR 401 and close 1008 for every session whose token is no longer
        valid: gone from the tokens file or with other scopes (``reloaded``), or expired.
        Returns how many sessions it asked to close."""
        cdef Session s
        cdef int n = 0
        if self.guard is None:
            return 0
        now = self.clock.wall_us() / 1e6
        for s in list(self.sessions.values()):
            if s.access is None or s.close_request is not None:
                continue
            entry = s.access.entry
            if entry.expired(now) or (reloaded and not self.guard.still_valid(entry, now)):
                self.error(s, E_UNAUTHORIZED, f"token {entry.name!r} was revoked or has expired; "
                                              f"the session is closed")
                s.close_request = (1008, "token revoked or expired")
                n += 1
        return n

    def _set(self, Session s, msg, int qos):
        try:
            payload = encode_payload(msg)
        except EncodeError as exc:
            return self.error(s, E_BAD_FRAME, f"SET cannot be applied: {exc}", msg.address)
        self.on_set(s, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload), qos)

    def _publish(self, Session s, msg, int qos):
        try:
            payload = encode_payload(msg)
        except EncodeError as exc:
            return self.error(s, E_BAD_FRAME, f"PUBLISH cannot be forwarded: {exc}", msg.address)
        self.on_publish(s, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload), qos, False)

    def _subscribe(self, Session s, msg, int qos):
        problem = check_pattern(msg.pattern)
        if problem is not None:
            return self.error(s, E_ADDRESS, problem, msg.pattern)
        if s.access is not None and not s.access.covers_read(msg.pattern):
            return self.error(s, E_FORBIDDEN, f"SUBSCRIBE {msg.pattern} refused: token {s.access.name!r} "
                                              f"has no read scope covering every address it matches "
                                              f"(a pattern wider than the scopes is refused)", msg.pattern)
        if msg.id not in s.subs and len(s.subs) >= self.max_subs:
            now = self.clock.mono_s()
            if now - s.last_limit_notice >= 1.0:
                s.last_limit_notice = now
                self.error(s, E_LIMIT, f"subscription limit reached: this session already has "
                                       f"{len(s.subs)} subscriptions (max_subscriptions_per_session)",
                           msg.pattern)
            return
        old = s.subs.pop(msg.id, None)
        if old is not None:
            self.trie.remove(old)
            self._interest(old, -1)
            if old.gate is not None:
                old.gate.close(self)
        sub = Subscription(s, msg.id, msg.pattern, msg.types & 0xFF,
                           SubscriptionGate.from_options(msg.options))
        self.trie.add(sub)
        self._interest(sub, +1)
        s.subs[msg.id] = sub
        if sub.mask & 0x01:
            since = msg.options.since if msg.options is not None else None
            self.send_snapshot(s, msg.pattern, False, since or 0)
        if qos >= 1:
            self.send(s, M.Ack(address=msg.pattern))

    def _unsubscribe(self, Session s, msg, int qos):
        sub = s.subs.pop(msg.id, None)
        if sub is not None:
            self.trie.remove(sub)
            self._interest(sub, -1)
            if sub.gate is not None:
                sub.gate.close(self)

    def _get(self, Session s, msg, int qos):
        cdef bytes b
        cdef Param* prm
        cdef SnapshotWriter w
        problem = check_address(msg.address)
        if problem is not None:
            return self.error(s, E_ADDRESS, problem, msg.address)
        if s.access is not None and not s.access.may_read(msg.address):
            return self.error(s, E_FORBIDDEN, f"GET {msg.address} refused: token {s.access.name!r} has no "
                                              f"read scope covering it", msg.address)
        b = msg.address.encode()
        prm = param_get(self.params, b, len(b), bm_hash(b, len(b)))
        if prm == NULL or param_expired(prm, self.clock.wall_us()):
            return self.error(s, E_NOT_FOUND, f"no param at {msg.address}", msg.address)
        w = SnapshotWriter(s)
        w.add(prm)
        w.finish(True)

    def _sync(self, Session s, msg, int qos):
        t2 = self.clock.wall_us()
        self.send(s, M.Sync(t1=msg.t1, t2=t2, t3=self.clock.wall_us()))

    def _ping(self, Session s, msg, int qos):
        if self.commit is not None:
            # a NATS node: PONG once this node has every write the bucket had (commit.py)
            s.inflight += 1
            self.commit.ping(s)
            return
        self.send(s, M.Pong())

    def _announce(self, Session s, msg, int qos):
        self.add_signals(msg)
        if self.cluster is not None:
            body = encode_payload(msg)
            for link in self.links:
                if link is not None:
                    (<PeerLink>link).send_record(R_ANNOUNCE, body)
        if qos >= 1:
            self.send(s, M.Ack(address=msg.namespace))

    def add_signals(self, msg):
        for sig in msg.signals:
            self.signals[sig.address] = sig

    def _query(self, Session s, msg, int qos):
        problem = check_pattern(msg.pattern)
        if problem is not None:
            return self.error(s, E_ADDRESS, problem, msg.pattern)
        found = [M.SignalDef(address=d.address, signal=d.signal, datatype=d.datatype, access=d.access)
                 for d in self.signals.values() if matches_signal(msg.pattern, d.address)]
        announced = {d.address for d in found}
        for p in self.snapshot(msg.pattern):
            if p.address not in announced:
                found.append(M.SignalDef(address=p.address, signal=M.SignalType.PARAM,
                                         datatype=_TYPE_NAMES.get(_value_code(p.value)), access="rw"))
        if s.access is not None and not s.access.read_all:
            found = [d for d in found if s.access.may_read(d.address)]
        # one RESULT (the Python client pairs each RESULT with one pending query): keep what fits
        size = 3
        kept = []
        for d in found:
            size += 2 + len(d.address.encode()) + 2 + (2 + len(d.datatype) if d.datatype else 0) \
                + (2 + len(d.access.encode()) if d.access else 0)
            if size > MAX_PAYLOAD:
                break
            kept.append(d)
        self.send(s, M.Result(signals=kept))

    def _unsupported(self, Session s, msg, int qos):
        name = type(msg).__name__.upper()
        self.error(s, E_UNSUPPORTED, f"{name} is not supported by this router (no journal, no federation)")

    # --- BUNDLE -------------------------------------------------------------------

    def _bundle(self, Session s, msg, int qos):
        for i, m in enumerate(msg.messages):
            if type(m) not in (M.Set, M.Publish):
                return self.error(s, E_BAD_FRAME, f"BUNDLE entry {i} is a {type(m).__name__.upper()}; a "
                                                  f"bundle may only hold SET and PUBLISH; nothing was applied")
            problem = check_address(m.address)
            if problem is not None:
                return self.error(s, E_ADDRESS, f"BUNDLE rejected, nothing applied: {problem}", m.address)
            if s.access is not None and not s.access.may_write_address(m.address):
                return self.error(s, E_FORBIDDEN, f"BUNDLE rejected, nothing applied: "
                                                  f"{type(m).__name__.upper()} {m.address} refused: token "
                                                  f"{s.access.name!r} has no write scope covering it",
                                  m.address)
        now = self.clock.wall_us()
        if msg.timestamp is not None and msg.timestamp > now:
            self.call_later((msg.timestamp - now) / 1e6, self._run_bundle, s, msg, qos)
        else:
            self._run_bundle(s, msg, qos)

    def _run_bundle(self, Session s, msg, int qos):
        """All or nothing: every SET is checked against the state first, then the SETs are
        applied in order, then the PUBLISHes are routed.  A scheduled bundle whose session
        has closed by then is dropped."""
        if s.closed:
            return
        if not self.is_owner:
            # the owner applies it whole and routes its PUBLISHes to the other workers
            if any(type(m) is M.Set and m.lock for m in msg.messages):
                s.may_hold_locks = True
            self._forward_request(PK_BUNDLE, R_BUNDLE_REQ, s, qos,
                                  encode_payload(M.Bundle(messages=msg.messages)))
            return
        ok, last = self._apply_bundle_sets(s.id, s, self.worker_index, 0, msg)
        if ok:
            self._after_bundle(self._bundle_applied, s, msg, qos, last)

    def _bundle_applied(self, Session s, msg, int qos, last):
        self._publish_bundle_part(s, msg, True)
        self._bundle_wants_commit(qos)
        if qos >= 1 and not s.closed:
            self._ack_maybe_durable(s, M.Ack(revision=last), qos, self.journal_seq)

    def _apply_bundle_sets(self, str holder, Session local, int origin, uint64_t seq, msg):
        """Owner: checks then applies the SETs of a bundle; returns (applied?, last revision)."""
        cdef bytes wid = holder.encode()
        planned = {}
        for m in msg.messages:
            if type(m) is not M.Set:
                continue
            state = planned.get(m.address)
            if state is None:
                state = self.param_state(m.address)
            revision, lock_holder = state
            exists = revision != 0 or m.address in planned
            if m.revision is not None and exists and m.revision != revision:
                self._write_error(local, origin, seq, E_STALE,
                                  f"BUNDLE rejected, nothing applied: stale revision for {m.address} "
                                  f"(expected {m.revision}, current {revision})", m.address)
                return False, None
            if lock_holder is not None and lock_holder != holder:
                self._write_error(local, origin, seq, E_LOCKED,
                                  f"BUNDLE rejected, nothing applied: {m.address} is locked by another "
                                  f"session", m.address)
                return False, None
            if m.unlock:
                lock_holder = None
            if m.lock:
                lock_holder = holder
            planned[m.address] = (revision + 1, lock_holder)
        last = None
        for m in msg.messages:
            if type(m) is M.Set:
                self._apply_encoded_set(wid, local, origin, encode_payload(m))
                last = self.param_state(m.address)[0]
        return True, last

    def _apply_encoded_set(self, bytes wid, Session local, int origin, bytes payload):
        cdef SetView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(payload)
        parse_set(p, len(payload), &v, &r)
        nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
        self.apply_set(wid, len(wid), local, origin, 0, p, &v, segs, nseg, 0)

    def _publish_bundle_part(self, Endpoint exclude, msg, bint to_peers):
        """Routes the PUBLISHes of an applied bundle (after its SETs)."""
        cdef PublishView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef const uint8_t* p
        for m in msg.messages:
            if type(m) is M.Publish:
                payload = encode_payload(m)
                p = <const uint8_t*>PyBytes_AS_STRING(payload)
                if parse_publish(p, len(payload), &v, &r) == 0:
                    nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
                    if nseg >= 0:
                        self.route_publish(exclude, to_peers, p, &v, segs, nseg)

    # --- state access (Python level) -------------------------------------------

    def param_state(self, str address):
        """(revision, lock holder or None) of ``address``; (0, None) if it has no param."""
        cdef bytes b = address.encode()
        cdef Param* prm = param_get(self.params, b, len(b), bm_hash(b, len(b)))
        if prm == NULL or param_expired(prm, self.clock.wall_us()):
            return (0, None)
        holder = prm.holder[:prm.holder_len].decode() if prm.holder_len else None
        return (prm.revision, holder)

    def param_replicates(self):
        """Every live param as ``(address, R_REPLICATE body)``: its state and a SET frame
        carrying its revision, as a decided SET's (a NATS node writes them into a bucket
        that was lost and made anew, commit.py)."""
        cdef uint64_t now = self.clock.wall_us()
        cdef Param* prm
        cdef Py_ssize_t i, size, hl, n, dlen
        cdef uint8_t flags
        cdef uint8_t head[REPLICATE_HEAD + STATE_MAX]
        cdef Py_ssize_t hn
        cdef uint8_t* f
        cdef bytearray frame
        out = []
        for i in range(self.params.capacity()):
            prm = self.params.slot(i)
            if prm == NULL or prm.value_len < 1 or param_expired(prm, now):
                continue
            dlen = prm.value_len - 1
            flags = (prm.value[0] & SET_TYPE_MASK) | (SET_HAS_TTL if prm.has_ttl else 0)
            size = set_payload_size(prm.addr_len, dlen, flags)
            frame = bytearray(MAX_WS_HEADER + 4 + size)
            f = <uint8_t*>PyByteArray_AS_STRING(frame)
            hl = ws_binary_header(f, 4 + size)
            clasp_header(f + hl, 1, size)
            n = hl + 4 + write_set_payload(f + hl + 4, flags, prm.address, prm.addr_len, prm.value + 1, dlen,
                                           prm.revision, prm.ttl_raw)
            memset(head, 0, REPLICATE_HEAD)
            hn = REPLICATE_HEAD + write_state(prm, head + REPLICATE_HEAD)
            out.append((prm.address[:prm.addr_len].decode(),
                        PyBytes_FromStringAndSize(<const char*>head, hn) + bytes(frame[:n])))
        return out

    def get(self, str address):
        """The param at ``address`` as a ParamValue, or None."""
        params = self._params_where(address, exact=True)
        return params[0] if params else None

    def snapshot(self, str pattern="/**"):
        """Every param matching ``pattern``, as ParamValues."""
        return self._params_where(pattern, exact=False)

    def _params_where(self, str text, bint exact):
        return params_where(self.params, text, exact, self.clock.wall_us())

    @property
    def param_count(self):
        return len(self.params)

    def received_by_type(self) -> dict:
        """{CLASP type code: frames received from clients} (the non-zero ones; metrics)."""
        return {t: self.in_by_type[t] for t in range(256) if self.in_by_type[t]}

    def revisions(self) -> dict:
        """{address: revision} of every param (the status API's write rates; on demand)."""
        cdef Py_ssize_t i
        cdef Param* p
        out = {}
        for i in range(self.params.capacity()):
            p = self.params.slot(i)
            if p != NULL:
                out[PyBytes_FromStringAndSize(p.address, p.addr_len).decode(errors="replace")] = p.revision
        return out

    # --- cluster plumbing: the API of clasp_fast.cluster.node ---------------------
    #
    # node.py does the socket I/O and the restart handshake; every bus record that
    # changes state is handled here (hot kinds in feed_link, the rest in on_record).

    def attach_cluster(self, node, int worker_index, bint holding=False):
        """Makes this router worker ``worker_index`` of a cluster whose owner is worker 0.
        ``node`` is told ``peer_synced(index)`` when a peer has sent its whole state.
        ``holding``: a restarted owner queues requests until ``finish_sync``."""
        if not 0 <= worker_index < MAX_WORKERS:
            raise ValueError(f"worker index {worker_index} out of range (at most {MAX_WORKERS} workers)")
        self.cluster = node
        self.worker_index = worker_index
        self.is_owner = worker_index == OWNER
        self.holding = holding
        self.held_requests = []
        self.peer_subs = {}

    def linked(self, int index) -> bool:
        """Whether the bus link to worker ``index`` is up."""
        return self.links[index] is not None

    def peer_links(self) -> list:
        """The bus links that are up."""
        return [link for link in self.links if link is not None]

    def link_up(self, int peer, bint peer_restarted, io, bint syncing) -> PeerLink:
        """A bus connection to worker ``peer`` is open (its R_HELLO came); ``io`` is the edge's
        transport.  ``syncing``: we are a restarted process that asks the peer for its state."""
        cdef PeerLink link
        old = self.links[peer]
        if old is not None:
            self.link_down(old)
        link = PeerLink(self, peer)
        link.io = io
        self.links[peer] = link
        if peer_restarted:
            # a new process: its request numbers start again (every worker must forget the
            # old ones, or a later owner would take the new requests for duplicates)
            self.applied[peer] = 0
        if peer == OWNER:
            # the owner routes every PUBLISH: it must know what our sessions subscribe to
            for pattern, mask in self.interest:
                link.send_record(R_INTEREST, bus.interest(True, pattern, mask))
            if not self.is_owner and not peer_restarted:
                self._owner_up(link)
            if peer_restarted:
                self._new_owner_journal()
        elif self.is_owner and not syncing and not peer_restarted and len(self.params):
            # a cold start: the state we restored from the journal, for the new replica
            self.dump_state(link)
        # a restarted owner first asks for our state (R_SYNC_REQ); it becomes our owner then
        if syncing:
            link.send_record(R_SYNC_REQ)
        return link

    def link_down(self, PeerLink link) -> bool:
        """The bus connection to ``link.index`` is gone (that worker died or restarts): drop
        its subscriptions, and as the owner free its sessions' locks.  False if ``link`` was
        already replaced."""
        if self.links[link.index] is not link:
            return False
        for (pattern, mask), sub in self.peer_subs.pop(link.index, {}).items():
            self.trie.remove(sub)
            if self.cross_node is not None:
                self.cross_node.interest(pattern, False, link)
        self.links[link.index] = None
        if self.owner_link is link:
            self.owner_link = None
        link.closed = True
        link.reset_output()
        if self.is_owner:
            self.release_origin(link.index)
        return True

    def interest_entries(self):
        """The (pattern, mask) pairs our sessions subscribe to."""
        return list(self.interest)

    def _owner_up(self, PeerLink link):
        """The owner can take requests: send it what it has not decided, in order."""
        self.owner_link = link
        if len(self.pending):
            self.resend_pending()

    def on_record(self, PeerLink link, int kind, bytes body):
        """A bus record that is not handled on the hot path."""
        if kind == R_INTEREST:
            self._peer_interest(link, body)
        elif kind in bus.REQUESTS and self.holding:
            self.held_requests.append((link, kind, body))
        elif kind == R_SET_REQ:
            self.on_set_request(link, <const uint8_t*>PyBytes_AS_STRING(body), len(body))
        elif kind == R_PUB_REQ:
            self.on_publish_request(link, <const uint8_t*>PyBytes_AS_STRING(body), len(body))
        elif kind == R_BARRIER:
            if not self.held_in_order(link, R_BARRIER, <const uint8_t*>PyBytes_AS_STRING(body), len(body)):
                self.answer_barrier(link, <const uint8_t*>PyBytes_AS_STRING(body))
        elif kind == R_BUNDLE_REQ:
            self.owner_bundle(link, body)
        elif kind == R_RELEASE:
            self.owner_release(link, body)
        elif kind == R_REJECT:
            self.resolve_reject(body)
        elif kind == R_DONE:
            self.resolve_done(body)
        elif kind == R_DUP:
            self.resolve_dup(body)
        elif kind == R_HOLDER:
            self.apply_holder(body)
        elif kind == R_ANNOUNCE:
            self.add_signals(decode_payload(body))
        elif kind == R_SYNC_REQ:
            self._send_state(link)
        elif kind == R_SYNC_PARAM:
            self.merge_param(body)
        elif kind == R_SYNC_DONE:
            self.merge_applied(bus.parse_sync_done(body))
            self.cluster.peer_synced(link.index)
        elif kind == R_DURABLE:
            self.journal_durable(bus.parse_durable(body))
        elif kind == R_CLUSTER:
            if len(body) > 1 and body[1]:
                self.reset_replay_horizon()
            self.cluster.cross_node_link(body[0] == 1)
        else:
            log.error("bus: unknown record kind %d from worker %d", kind, link.index)

    def _peer_interest(self, PeerLink link, bytes body):
        """Worker ``link.index`` gained or lost local subscribers to (pattern, mask)."""
        add, pattern, mask = bus.parse_interest(body)
        subs = self.peer_subs.setdefault(link.index, {})
        key = (pattern, mask)
        if add and key not in subs:
            self.peer_sub_ids += 1
            sub = Subscription(link, self.peer_sub_ids, pattern, mask)
            subs[key] = sub
            self.trie.add(sub)
        elif not add and key in subs:
            self.trie.remove(subs.pop(key))
        else:
            return
        if self.cross_node is not None:
            self.cross_node.interest(pattern, add, link)

    def _send_state(self, PeerLink link):
        """A restarted peer asks for our state: params, announced signals, decided requests."""
        self.dump_state(link)
        signals = list(self.signals.values())
        for i in range(0, len(signals), 200):
            link.send_record(R_ANNOUNCE, encode_payload(M.Announce(namespace="", signals=signals[i:i + 200])))
        link.send_record(R_SYNC_DONE, bus.sync_done(self.applied_vector()))
        if link.index == OWNER and not self.is_owner:
            # the owner restarted: it has our state now
            self._owner_up(link)

    def finish_sync(self, int dead_origin):
        """A restarted worker has every peer's state.  The owner also re-learns the locks (and
        frees those of sessions of ``dead_origin``, the previous owner process), sends its
        merged state to every replica, then decides the requests held meanwhile."""
        if not self.is_owner:
            return
        self.rebuild_holders(dead_origin)
        self.broadcast_state()
        if self.journal_link is not None:
            # what the replicas had and our journal missed (the dead owner's last decisions)
            self.dump_state(self.journal_link)
        self.holding = False
        held, self.held_requests = self.held_requests, []
        for link, kind, body in held:
            if self.links[(<PeerLink>link).index] is link:
                self.on_record(link, kind, body)

    def dump_state(self, PeerLink link):
        """Sends ``link`` every param (R_SYNC_PARAM records): for a restarted worker, or the
        journal."""
        cdef Py_ssize_t i
        cdef Param* prm
        cdef uint64_t now = self.clock.wall_us()
        for i in range(self.params.capacity()):
            prm = self.params.slot(i)
            if prm == NULL or param_expired(prm, now):
                continue
            self.push_param(link, prm)
            if link is self.journal_link:
                self.journal_seq += 1

    def merge_param(self, bytes body):
        """One R_SYNC_PARAM (a restarted worker's sync, or a restarted owner's state): kept
        if newer than what we have, and then sent to our subscribers as a SET: they missed
        it (the previous owner died before replicating it here, or it came from its journal)."""
        cdef Param* prm = self.merge_record(body)
        cdef Seg segs[MAX_SEGMENTS]
        cdef bytes frame
        if prm == NULL:
            return
        param = self.get(prm.address[:prm.addr_len].decode())
        if param is None:
            return
        frame = ws_frame(encode_frame(M.Set(param.address, param.value, revision=param.revision), 1))
        self.deliver(self.param_receivers(prm, segs, -1), 0x01, None, False,
                     <const uint8_t*>PyBytes_AS_STRING(frame), len(frame), prm.address, prm.addr_len, prm)

    cdef Param* merge_record(self, bytes body) except? NULL:
        cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(body)
        cdef const uint8_t* st = b + 8
        cdef Py_ssize_t sh = state_size(st)
        cdef const uint8_t* a = st + sh
        cdef Py_ssize_t alen = load_u16(a)
        cdef const uint8_t* value = a + 2 + alen
        cdef Py_ssize_t vlen = len(body) - 8 - sh - 2 - alen
        return self._store_replica(<const char*>a + 2, alen, value[0], value + 1, vlen - 1, load_u64(b),
                                   st, True)

    def applied_vector(self):
        return {i: self.applied[i] for i in range(MAX_WORKERS) if self.applied[i]}

    def merge_applied(self, dict vector):
        for i, seq in vector.items():
            if seq > self.applied[i]:
                self.applied[i] = seq

    def rebuild_holders(self, int dead_origin=-1):
        """Owner after a restart: re-learn who holds which lock from the merged state, and free
        the locks of sessions that lived on ``dead_origin`` (the previous owner process)."""
        cdef Py_ssize_t i
        cdef Param* prm
        self.holders.clear()
        self.holder_origin.clear()
        for i in range(self.params.capacity()):
            prm = self.params.slot(i)
            if prm != NULL and prm.holder_len:
                self._lock_changed(prm.holder[:prm.holder_len].decode(), prm.holder_origin,
                                   prm.address[:prm.addr_len].decode(), True)
        if dead_origin >= 0:
            self.release_origin(dead_origin)

    def broadcast_state(self):
        """Owner after a restart: every param to every worker, so replicas that missed the
        last decisions of the previous owner catch up."""
        for link in self.links:
            if link is not None:
                self.dump_state(link)

    # --- a NATS node: decisions the bucket must take first (clasp_fast/cluster/nats/commit.py) --
    #
    # The owner decides as everywhere else (apply_set is the one decision); commit.py holds
    # what a decision sends (replicate, deliver, ACK, ERROR) until the bucket took it, and
    # keeps the owner's answers to each worker in the order of its requests.

    cdef bint held_in_order(self, PeerLink link, uint8_t kind, const uint8_t* b, Py_ssize_t n) except -1:
        """Owner of a NATS node: a sequenced request of a worker waits behind the SETs still at
        the bucket (its worker matches the answers in order): True when commit.py took it."""
        if self.commit is None or self.in_order:
            return False
        return self.commit.later(link, kind, PyBytes_FromStringAndSize(<const char*>b, n))

    def run_in_order(self, PeerLink link, int kind, bytes body):
        """commit.py: the request held back by ``held_in_order`` runs now."""
        if self.links[link.index] is not link:
            return
        self.in_order = True
        try:
            self.on_record(link, kind, body)
        finally:
            self.in_order = False

    def decide(self, bytes address, list requests):
        """commit.py: ``requests`` [(local session, origin, seq, writer id, SET payload, qos)],
        all of ``address``, decided in order by ``apply_set`` against the param's current
        state, and nothing sent: one outcome each, the R_REPLICATE body of the decision
        (journal position 0) or the (code, message, address) of its refusal.  The param is
        left as it was."""
        cdef SetView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef Session local
        cdef bytes wid, payload
        cdef const uint8_t* p
        saved = self._param_record(address)
        self.clock_fresh = False
        self.staged = []
        try:
            for local, origin, seq, wid, payload, qos in requests:
                p = <const uint8_t*>PyBytes_AS_STRING(payload)
                if parse_set(p, len(payload), &v, &r):
                    self.staged.append((E_BAD_FRAME, reader_error(&r, "SET"), None))
                    continue
                self.apply_set(wid, len(wid), local, origin, seq, p, &v, segs,
                               split_address(<const char*>p + v.addr_pos, v.addr_len, segs), qos)
            return self.staged
        finally:
            self.staged = None
            self._restore_param(address, saved)

    cdef int _stage(self, int origin, uint64_t seq, Param* prm, const uint8_t* frame, Py_ssize_t n) except -1:
        """A decision for ``decide``: its R_REPLICATE body."""
        cdef uint8_t head[REPLICATE_HEAD + STATE_MAX]
        cdef Py_ssize_t hn
        head[0] = origin
        store_u64(head + 1, seq)
        store_u64(head + 9, 0)
        hn = REPLICATE_HEAD + write_state(prm, head + REPLICATE_HEAD)
        self.staged.append(PyBytes_FromStringAndSize(<const char*>head, hn)
                           + PyBytes_FromStringAndSize(<const char*>frame, n))
        return 0

    def _param_record(self, bytes address):
        """The param at ``address`` as an R_SYNC_PARAM body (None: no param)."""
        cdef Param* prm = param_get(self.params, address, len(address), bm_hash(address, len(address)))
        cdef uint8_t head[8 + STATE_MAX]
        cdef Py_ssize_t hn
        if prm == NULL:
            return None
        store_u64(head, prm.revision)
        hn = 8 + write_state(prm, head + 8)
        return (PyBytes_FromStringAndSize(<const char*>head, hn)
                + PyBytes_FromStringAndSize(<const char*>prm.value, prm.value_len))

    def _restore_param(self, bytes address, saved):
        """Puts back what ``_param_record`` returned (and re-learns its lock holder)."""
        cdef Param* prm = param_get(self.params, address, len(address), bm_hash(address, len(address)))
        cdef const uint8_t* b
        cdef Py_ssize_t sh
        if saved is None:
            if prm != NULL:
                self.params.remove(prm)
            return
        b = <const uint8_t*>PyBytes_AS_STRING(saved)
        sh = state_size(b + 8)
        prm = self._store_replica(address, len(address), b[8 + sh], b + 9 + sh, len(saved) - 9 - sh,
                                  load_u64(b), b + 8, False)
        if prm.holder_len:
            self._lock_changed(prm.holder[:prm.holder_len].decode(), prm.holder_origin, address.decode(),
                               True)

    def commit_store(self, bytes body, int qos):
        """commit.py: the bucket took a decision (``body``, the last of a group): the owner's
        replica and journal have it from now on.  Returns its journal position (0: none)."""
        cdef const uint8_t* frame
        cdef Py_ssize_t fn
        cdef Param* prm = self._store_replicate(<const uint8_t*>PyBytes_AS_STRING(body), len(body),
                                                &frame, &fn)
        if prm == NULL or self.journal_link is None:
            return 0
        self.push_param(self.journal_link, prm)
        self.journal_seq += 1
        if qos >= 2:
            self.want_commit(self.journal_seq)
        return self.journal_seq

    def commit_emit(self, bytes body, Session local, int qos, uint64_t position, uint64_t bucket_revision):
        """commit.py: a decision the bucket took goes out, in decision order: to the owner's
        subscribers, to every worker (R_REPLICATE at journal ``position``), to the bridge
        (the same, its sequence field holding the ``bucket_revision``), ACK to a local writer."""
        cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(body)
        cdef Py_ssize_t hn = REPLICATE_HEAD + state_size(b + REPLICATE_HEAD)
        cdef const uint8_t* frame = b + hn
        cdef Py_ssize_t fn = len(body) - hn
        cdef Py_ssize_t hl = ws_header_len(frame, fn)
        cdef uint8_t head[REPLICATE_HEAD + STATE_MAX]
        cdef uint8_t origin = b[0]
        cdef uint64_t seq = load_u64(b + 1)
        cdef SetView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef const uint8_t* p = frame + hl + 4
        cdef Param* prm
        cdef PeerLink link
        cdef Py_ssize_t i
        if hl < 0 or parse_set(p, fn - hl - 4, &v, &r):
            return
        prm = param_get(self.params, <const char*>p + v.addr_pos, v.addr_len,
                        bm_hash(<const char*>p + v.addr_pos, v.addr_len))
        if prm != NULL:
            self.deliver(self.param_receivers(prm, segs, -1), 0x01, None, False, frame, fn,
                         <const char*>p + v.addr_pos, v.addr_len, prm)
        memcpy(head, b, hn)
        for i in range(MAX_WORKERS):
            link = self.links[i]
            if link is None:
                continue
            if i == MAX_WORKERS - 1:            # the NATS bridge: the bucket revision travels
                store_u64(head + 1, bucket_revision)
                store_u64(head + 9, 0)
            else:
                store_u64(head + 9, position)
            link.push_record(R_REPLICATE, head, hn, frame, fn)
            memcpy(head, b, hn)
        if origin < MAX_WORKERS and seq > self.applied[origin]:
            self.applied[origin] = seq
        if local is not None:
            if qos >= 1 and not local.closed:
                if qos >= 2 and position > self.durable_at:
                    self.ack_when_durable(local, <const char*>p + v.addr_pos, v.addr_len, v.revision, position)
                else:
                    self.send_ack(local, <const char*>p + v.addr_pos, v.addr_len, v.revision)
            self.local_done(local)

    def set_fast(self, bytes address, bint fast):
        """commit.py: whether this node's plain QoS-fire SETs of ``address`` may go out before
        the bucket takes them (this node wrote its bucket state last; nothing waits there)."""
        cdef Param* prm = param_get(self.params, address, len(address), bm_hash(address, len(address)))
        if prm != NULL:
            prm.fast = fast

    def hold_answers(self, int origin, int delta):
        """commit.py: answers to worker ``origin`` waiting in its queue (+1 queued, -1 out);
        while any wait, that worker's SETs take the bucket's path (its answers stay in order)."""
        if 0 <= origin < MAX_WORKERS:
            self.answers_held[origin] += delta

    def commit_error(self, Session local, int origin, uint64_t seq, int code, str message, address):
        """commit.py: a SET refused (409, 423, 503, ...) is answered, in decision order."""
        self._write_error(local, origin, seq, code, message, address)
        if local is not None:
            self.local_done(local)

    def pong(self, Session s):
        """commit.py: the cluster barrier of ``s``'s PING passed."""
        if not s.closed:
            self.send(s, M.Pong())
        self.local_done(s)

    def local_done(self, Session s):
        """Something ``s`` waited for at the bucket is answered: what it sent after runs."""
        if s.inflight:
            s.inflight -= 1
        if s.inflight == 0 and s.held is not None and not s.closed:
            self._drain(s)

    # --- timers (see timers.pyx) ---------------------------------------------------

    @property
    def on_timer(self):
        """Called with the new earliest deadline when a timer becomes the earliest."""
        return self.timers.on_earliest

    @on_timer.setter
    def on_timer(self, fn):
        self.timers.on_earliest = fn

    def call_later(self, double delay, fn, *args):
        """Runs ``fn(*args)`` after ``delay`` seconds of ``clock``; returns a cancellable handle."""
        return self.timers.add(self.clock.mono_s() + delay, fn, args)

    def cancel_timer(self, entry):
        TimerQueue.cancel(entry)

    def next_deadline(self):
        """The ``clock`` time of the earliest pending timer, or None."""
        return self.timers.next_deadline()

    def run_timers(self, now=None):
        """Runs every timer due at ``now`` (default: the clock's monotonic time)."""
        self.clock_fresh = False
        self.timers.run_due(self.clock.mono_s() if now is None else now)

    def reset_replay_horizon(self):
        """What changed before now cannot be replayed (SUBSCRIBE ``since`` gets whole
        snapshots): the cluster's state was lost and rebuilt (a new bucket epoch)."""
        self.replay_horizon = self.clock.wall_us()

    def _sweep(self):
        cdef uint64_t now = self.clock.wall_us()
        if self.params.sweep(now):
            self.replay_horizon = now       # removed params: a replay from before cannot say so
        self.call_later(self.config.expiry_sweep_interval, self._sweep)


_READS = (M.Hello, M.Subscribe, M.Get, M.Query)

_HANDLERS = {
    M.Hello: Router._hello,
    M.Set: Router._set,
    M.Publish: Router._publish,
    M.Subscribe: Router._subscribe,
    M.Unsubscribe: Router._unsubscribe,
    M.Get: Router._get,
    M.Bundle: Router._bundle,
    M.Sync: Router._sync,
    M.Ping: Router._ping,
    M.Announce: Router._announce,
    M.Query: Router._query,
    M.Replay: Router._unsupported,
    M.FederationSync: Router._unsupported,
}


def _value_code(v):
    from clasp_fast._native.wire import value_code
    return value_code(v)
