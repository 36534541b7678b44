"""The CLASP router core, sans I/O.

``Router.feed(session, frame)`` is the whole input; the output is WebSocket
frames appended to each receiver's ``Endpoint.out`` (drained by the I/O edge
once per loop tick), ``Session.close_request`` and timer deadlines
(``next_deadline`` / ``run_timers``).

Hot path (SET, PUBLISH): parsed in place with the wire layer's C parsers,
checked, stored in C structs, and fanned out by copying one pre-framed outgoing
frame into each receiver's buffer.  Receivers come from a per-address cache of
trie matches.  No Python object is created per message.

Everything else (HELLO, SUBSCRIBE, GET, BUNDLE, QUERY, legacy MessagePack
payloads, errors) goes through the Python-level codec: rare, and clearer so.
"""
import heapq
import time
import uuid

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memcmp
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME, CLOCK_MONOTONIC

from clasp_fast._native.bytesmap cimport (BytesMap, bm_init, bm_free, bm_clear, bm_get, bm_put,
                                         bm_hash)
from clasp_fast._native.patterns cimport (Trie, Subscription, MatchList, MatchEntry, Seg,
                                         MAX_SEGMENTS, split_address, split_pattern,
                                         address_error, pattern_match, matchlist_free)
from clasp_fast._native.params cimport ParamStore, Param, param_expired, ID_MAX
from clasp_fast._native.wire cimport (
    FrameHeader, Reader, SetView, PublishView, parse_header, parse_set, parse_publish,
    reader_error, ws_binary_header, clasp_header, publish_qos, set_broadcast_size,
    write_set_broadcast, store_u16, store_u64, load_u64, MAX_PAYLOAD, MAX_WS_HEADER,
    NARROW_CODES, T_SET, T_PUBLISH, T_ACK, T_SNAPSHOT, SET_HAS_REVISION, SET_LOCK,
    SET_UNLOCK, SET_HAS_TTL, SIG_GESTURE, V_I64, V_F64, V_BOOL)

from clasp_fast._native.wire import (DecodeError, decode_payload, encode_frame, encode_payload,
                                    header_error)
from clasp_fast._native.patterns import check_address, check_pattern, matches_signal
from clasp_fast.protocol import messages as M
from clasp_fast.router.config import RouterConfig
from clasp_fast.router.gates import SubscriptionGate, admit as gates_admit
from clasp_fast.router.gestures import GestureThrottle

cdef enum:
    INITIAL_OUT = 512
    KEEP_OUT = 65536            # buffers up to this size are kept between flushes
    PRESSURE_BYTES = 1 << 20    # ask the edge to flush a connection this full
    SCRATCH = 65536 + 64
    SNAPSHOT_HEAD = 3           # type + u16 count
    # the largest SNAPSHOT entry for a param, beyond address and value:
    # address len 2 + type 1 (counted in value_len) + revision 8 + flags 1 + writer 2+ID + ts 8
    ENTRY_OVERHEAD = 2 + 8 + 1 + 2 + ID_MAX + 8
    PUB_CACHE_LIMIT = 65536

# ERROR codes (PROTOCOL.md "Errors")
cdef enum:
    E_BAD_FRAME = 400
    E_ADDRESS = 202
    E_NOT_FOUND = 404
    E_STALE = 409
    E_LOCKED = 423
    E_LIMIT = 429
    E_OVERFLOW = 503
    E_UNSUPPORTED = 501

_TYPE_NAMES = {0: "null", 1: "bool", 2: "i8", 3: "i16", 4: "i32", 5: "i64", 6: "f32", 7: "f64",
               8: "string", 9: "bytes", 10: "array", 11: "map"}


cdef inline uint64_t wall_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>(ts.tv_nsec // 1000)


cdef inline double mono_s() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef struct CacheEntry:
    char* key
    Py_ssize_t len
    MatchList* ml


cdef bytes _ws(bytes frame):
    """One CLASP frame as a server WebSocket frame."""
    cdef uint8_t hdr[MAX_WS_HEADER]
    cdef Py_ssize_t hl = ws_binary_header(hdr, len(frame))
    return PyBytes_FromStringAndSize(<const char*>hdr, hl) + frame


# ---------------------------------------------------------------------------

cdef class Endpoint:
    """A receiver with an output buffer of complete WebSocket frames."""

    def __dealloc__(self):
        free(self.out)

    cdef void mark_dirty(self) except *:
        if not self.dirty:
            self.dirty = True
            self.router.dirty.append(self)
            if len(self.router.dirty) == 1 and self.router.on_dirty is not None:
                self.router.on_dirty()

    cdef int append(self, const uint8_t* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        cdef uint8_t* nb
        if self.out_size + n > self.out_cap:
            cap = self.out_cap if self.out_cap else INITIAL_OUT
            while cap < self.out_size + n:
                cap *= 2
            nb = <uint8_t*>realloc(self.out, cap)
            if nb == NULL:
                raise MemoryError()
            self.out = nb
            self.out_cap = cap
        memcpy(self.out + self.out_size, data, n)
        self.out_size += n
        self.sent += 1
        self.mark_dirty()
        return 0

    cdef int push_routed(self, const uint8_t* frame, Py_ssize_t n) except -1:
        """Queues a routed message (SET/PUBLISH fan-out); dropped if the buffer is full."""
        if self.closed:
            return 0
        if self.out_count >= self.router.limit_buffer or self.out_size >= PRESSURE_BYTES:
            if not self.paused and self.router.on_pressure is not None:
                self.router.on_pressure(self)
            if self.out_count >= self.router.limit_buffer:
                self.dropped += 1
                self.router.overflow(self)
                return 0
        self.out_count += 1
        return self.append(frame, n)

    cdef int push_direct(self, const uint8_t* frame, Py_ssize_t n) except -1:
        """Queues a direct reply (WELCOME, SNAPSHOT, ACK, ERROR, ...): never dropped."""
        if self.closed:
            return 0
        return self.append(frame, n)

    cdef void reset_output(self) noexcept:
        self.out_size = 0
        self.out_count = 0
        if self.out_cap > KEEP_OUT:
            free(self.out)
            self.out = NULL
            self.out_cap = 0

    # Python surface --------------------------------------------------------
    @property
    def pending_bytes(self):
        return self.out_size

    def take_output_raw(self) -> bytes:
        """Everything queued, as WebSocket frames; clears the buffer."""
        data = PyBytes_FromStringAndSize(<const char*>self.out, self.out_size)
        self.reset_output()
        return data

    def take_output(self) -> list:
        """Everything queued, as a list of CLASP frames; clears the buffer."""
        from clasp_fast.protocol import ws_unframe
        return ws_unframe(self.take_output_raw())


cdef class Session(Endpoint):
    """One client connection, from upgrade to close."""

    def __cinit__(self, Router router, str peer=None):
        self.router = router
        self.peer = peer
        self.id = str(uuid.uuid4())
        b = self.id.encode()
        memcpy(self.idc, <const char*>b, len(b))
        self.idlen = len(b)
        self.name = None
        self.subs = {}
        self.locks = set()

    def __repr__(self):
        return f"<Session {self.id} {self.name!r} peer={self.peer}>"

    @property
    def subscriptions(self):
        return dict(self.subs)


cdef inline bint _same_id(const char* a, uint8_t alen, const char* b, uint8_t blen) noexcept nogil:
    return alen == blen and memcmp(a, b, alen) == 0


# ---------------------------------------------------------------------------

cdef class Router:
    """The router core.  See the module docstring."""

    def __cinit__(self, config=None, clock=None):
        bm_init(&self.pub_cache, 1024)
        self.scratch = <uint8_t*>malloc(SCRATCH)
        self.scratch_cap = SCRATCH
        if self.scratch == NULL:
            raise MemoryError()

    def __init__(self, config=None, clock=None):
        self.config = config if config is not None else RouterConfig()
        self.params = ParamStore(self.config.param_ttl)
        self.trie = Trie()
        self.pub_cache_limit = PUB_CACHE_LIMIT
        self.dirty = []
        self.sessions = {}
        self.clock = clock if clock is not None else time.monotonic
        self.gestures = GestureThrottle(self, self.config.gesture_interval_ms / 1000.0)
        self.signals = {}
        self.timers = []
        self.limit_buffer = self.config.buffer_size
        self.max_payload = min(self.config.max_frame_size, MAX_PAYLOAD)
        self.max_rate_in = self.config.max_messages_per_second
        self.max_subs = self.config.max_subscriptions_per_session
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
        cdef Param* prm
        cdef bytes b
        if s.closed:
            return
        s.closed = True
        for sub in s.subs.values():
            self.trie.remove(sub)
            if sub.gate is not None:
                sub.gate.close(self)
        s.subs.clear()
        for address in s.locks:
            b = address.encode()
            prm = self.params.get(b, len(b), bm_hash(b, len(b)))
            if prm != NULL and _same_id(prm.holder, prm.holder_len, s.idc, s.idlen):
                prm.holder_len = 0
        s.locks.clear()
        self.gestures.drop_session(s)
        if self.sessions.get(s.id) is s:
            del self.sessions[s.id]
        s.reset_output()

    def take_dirty(self) -> list:
        """Endpoints that have queued output since the last call."""
        cdef Endpoint e
        out = self.dirty
        self.dirty = []
        for e in out:
            e.dirty = False
        return out

    # --- input ----------------------------------------------------------------

    def receive(self, Session s, data):
        """Feeds one CLASP frame (one WebSocket message) from ``s``."""
        cdef const uint8_t[::1] view = bytes(data) if not isinstance(data, bytes) else data
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
            return self.reject_frame(s, header_error(err, PyBytes_FromStringAndSize(<const char*>data, min(n, 16)), n))
        if h.payload_size > self.max_payload:
            return self.reject_frame(s, f"payload of {h.payload_size} bytes exceeds max_frame_size "
                                        f"({self.max_payload})")
        if not s.welcomed:
            return self.slow_path(s, data, n, h.qos, h.header_size)
        if self.max_rate_in:
            now = mono_s()
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
        t = data[h.header_size]
        if t == T_SET:
            return self.on_set(s, data + h.header_size, h.payload_size, h.qos)
        if t == T_PUBLISH:
            return self.on_publish(s, data + h.header_size, h.payload_size, h.qos, False)
        return self.slow_path(s, data, n, h.qos, h.header_size)

    # --- SET ------------------------------------------------------------------

    cdef int on_set(self, Session s, const uint8_t* p, Py_ssize_t n, uint8_t qos) except -1:
        cdef SetView v
        cdef Reader r
        cdef Seg segs[MAX_SEGMENTS]
        cdef int nseg
        if parse_set(p, n, &v, &r):
            return self.reject_frame(s, reader_error(&r, "SET"))
        nseg = split_address(<const char*>p + v.addr_pos, v.addr_len, segs)
        if nseg < 0:
            address = (<const char*>p + v.addr_pos)[:v.addr_len].decode()
            return self.error(s, E_ADDRESS, address_error(nseg, "address", address), address)
        if v.codes_seen & NARROW_CODES:
            # i8/i16/i32/f32 go out as i64/f64: re-encode (rare: no real client sends them)
            return self._reencode_set(s, PyBytes_FromStringAndSize(<const char*>p, n), qos)
        if v.addr_len + (v.value_end - v.value_pos) + 1 + ENTRY_OVERHEAD + SNAPSHOT_HEAD > MAX_PAYLOAD:
            address = (<const char*>p + v.addr_pos)[:v.addr_len].decode()
            return self.error(s, E_BAD_FRAME,
                              f"SET of {address} too large to store: address and value must fit one "
                              f"SNAPSHOT entry ({MAX_PAYLOAD - ENTRY_OVERHEAD - SNAPSHOT_HEAD - 1} bytes)",
                              address)
        return self.apply_set(s, p, &v, segs, nseg, qos)

    def _reencode_set(self, Session s, bytes payload, uint8_t qos):
        cdef bytes widened = encode_payload(decode_payload(payload))
        return self.on_set(s, <const uint8_t*>PyBytes_AS_STRING(widened), len(widened), qos)

    cdef int apply_set(self, Session s, const uint8_t* p, SetView* v, Seg* segs, int nseg,
                       uint8_t qos) except -1:
        cdef const char* addr = <const char*>p + v.addr_pos
        cdef uint64_t h = bm_hash(addr, v.addr_len)
        cdef uint64_t now = wall_us()
        cdef Param* prm = self.params.get(addr, v.addr_len, h)
        cdef uint64_t current = 0
        cdef Py_ssize_t size, hl, total
        cdef uint8_t* frame
        cdef MatchList* ml
        if prm != NULL and param_expired(prm, now):
            self.params.remove(prm)
            prm = NULL
        if prm != NULL:
            current = prm.revision
        if prm != NULL and v.flags & SET_HAS_REVISION and v.revision != current:
            address = addr[:v.addr_len].decode()
            return self.error(s, E_STALE, f"stale revision for {address}: the SET expected revision "
                                          f"{v.revision} but the current revision is {current}; "
                                          f"nothing was written", address)
        if prm != NULL and prm.holder_len and not _same_id(prm.holder, prm.holder_len, s.idc, s.idlen):
            address = addr[:v.addr_len].decode()
            return self.error(s, E_LOCKED, f"{address} is locked by another session; only the lock "
                                           f"holder can write or unlock it; nothing was written", address)
        if prm == NULL:
            prm = self.params.create(addr, v.addr_len, h)
        if v.flags & SET_UNLOCK and prm.holder_len:
            prm.holder_len = 0
            s.locks.discard(addr[:v.addr_len].decode())
        if v.flags & SET_LOCK:
            memcpy(prm.holder, s.idc, s.idlen)
            prm.holder_len = s.idlen
            s.locks.add(addr[:v.addr_len].decode())
        self.params.store_value(prm, v.vtype, p + v.value_pos, v.value_end - v.value_pos)
        prm.revision = current + 1
        prm.timestamp_us = now
        memcpy(prm.writer, s.idc, s.idlen)
        prm.writer_len = s.idlen
        self.params.set_expiry(prm, (v.flags & SET_HAS_TTL) != 0, v.ttl, now)

        # the broadcast: the same SET with the new revision, framed once
        size = set_broadcast_size(v)
        frame = self.reserve_scratch(MAX_WS_HEADER + 4 + size)
        hl = ws_binary_header(frame, 4 + size)
        clasp_header(frame + hl, 1, size)
        write_set_broadcast(frame + hl + 4, p, v, prm.revision)
        total = hl + 4 + size
        ml = self.param_receivers(prm, segs, nseg)
        self.deliver(ml, 0x01, None, frame, total, addr, v.addr_len, prm)
        if qos >= 1:
            self.send_ack(s, addr, v.addr_len, prm.revision)
        return 0

    cdef MatchList* param_receivers(self, Param* prm, Seg* segs, int nseg) except NULL:
        if prm.match == NULL or prm.match.gen != self.trie.gen:
            matchlist_free(prm.match)
            prm.match = NULL
            prm.match = self.trie.match(prm.address, segs, nseg)
        return prm.match

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
        if v.codes_seen & NARROW_CODES or v.indicator == 2:
            return self._reencode_publish(s, PyBytes_FromStringAndSize(<const char*>p, n), qos, throttled)
        if v.signal == SIG_GESTURE and not throttled and self.gestures.enabled:
            if not self.gestures.admit(s, PyBytes_FromStringAndSize(<const char*>p, v.end),
                                       PyBytes_FromStringAndSize(<const char*>p + v.addr_pos, v.addr_len),
                                       v.gesture_id, v.phase):
                return 0
        return self.route_publish(s, p, &v, segs, nseg)

    def _reencode_publish(self, Session s, bytes payload, uint8_t qos, bint throttled):
        """Narrow value codes widen; samples (which the Python client cannot read) become an array."""
        msg = decode_payload(payload)
        if msg.samples is not None:
            msg.value = list(msg.samples)
            msg.samples = None
        cdef bytes out = encode_payload(msg)
        return self.on_publish(s, <const uint8_t*>PyBytes_AS_STRING(out), len(out), qos, throttled)

    def forward_publish(self, Session s, bytes payload):
        """Routes a PUBLISH payload that already passed the gesture throttle."""
        if not s.closed:
            self.on_publish(s, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload), 0, True)

    cdef int route_publish(self, Session s, const uint8_t* p, PublishView* v, Seg* segs, int nseg) except -1:
        cdef Py_ssize_t hl, size = v.end
        cdef uint8_t* frame = self.reserve_scratch(MAX_WS_HEADER + 4 + size)
        cdef MatchList* ml
        hl = ws_binary_header(frame, 4 + size)
        clasp_header(frame + hl, publish_qos(v.signal), size)
        memcpy(frame + hl + 4, p, size)
        ml = self.publish_receivers(<const char*>p + v.addr_pos, v.addr_len, segs, nseg)
        return self.deliver(ml, <uint8_t>(1 << v.signal), s, frame, hl + 4 + size,
                            <const char*>p + v.addr_pos, v.addr_len, NULL)

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

    cdef int deliver(self, MatchList* ml, uint8_t bit, Endpoint exclude, const uint8_t* frame,
                     Py_ssize_t n, const char* addr, Py_ssize_t alen, Param* prm) except -1:
        cdef Py_ssize_t i
        cdef MatchEntry* e
        cdef PyObject* skip = <PyObject*>exclude
        for i in range(ml.n):
            e = &ml.entries[i]
            if e.target == skip:
                continue
            if e.mask & bit:
                (<Endpoint>e.target).push_routed(frame, n)
                self.routed += 1
            elif e.gated_mask & bit:
                self._deliver_gated(<Endpoint>e.target, <list>e.gated, bit,
                                    PyBytes_FromStringAndSize(<const char*>frame, n),
                                    PyBytes_FromStringAndSize(addr, alen), prm)
        return 0

    cdef _deliver_gated(self, Endpoint target, list gated, uint8_t bit, bytes frame, bytes address,
                        Param* prm):
        cdef Subscription sub
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
        subs = [sub for sub in gated if sub.mask & bit]
        if subs and gates_admit(self, target, subs, address, frame, number):
            target.push_routed(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))
            self.routed += 1

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

    def overflow(self, Endpoint e):
        """A routed message to ``e`` was dropped: tell the client, at most once per interval."""
        cdef double now = mono_s()
        if not isinstance(e, Session):
            return
        if e.last_overflow_notice and now - e.last_overflow_notice < self.config.overflow_notice_interval:
            return
        e.last_overflow_notice = now
        dropped = e.dropped - e.drops_at_notice
        e.drops_at_notice = e.dropped
        frame = _ws(encode_frame(M.Error(
            E_OVERFLOW, f"send buffer full (buffer_size {self.limit_buffer} messages): {dropped} "
                        f"message(s) dropped for this connection; read faster or subscribe to less")))
        e.push_direct(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))

    # --- direct replies -------------------------------------------------------

    cdef int send_ack(self, Session s, const char* addr, Py_ssize_t n, uint64_t revision) except -1:
        cdef Py_ssize_t size = 1 + 1 + 2 + n + 8
        cdef uint8_t* frame = self.reserve_scratch(MAX_WS_HEADER + 4 + size)
        cdef Py_ssize_t hl = ws_binary_header(frame, 4 + size)
        cdef uint8_t* o = frame + hl + 4
        clasp_header(frame + hl, 0, size)
        o[0] = T_ACK
        o[1] = 0x03                 # address + revision
        store_u16(o + 2, <uint16_t>n)
        memcpy(o + 4, addr, n)
        store_u64(o + 4 + n, revision)
        return s.push_direct(frame, hl + 4 + size)

    def send(self, Session s, msg, int qos=0):
        """Queues one message (a protocol dataclass) for ``s``."""
        cdef bytes frame = _ws(encode_frame(msg, qos))
        s.push_direct(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))

    cdef int error(self, Session s, int code, str message, str address=None) except -1:
        self.send(s, M.Error(code, message, address))
        return 0

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

    cdef int send_snapshot(self, Session s, object pattern, bint always) except -1:
        """SNAPSHOT(s) of the params matching ``pattern`` (None: all), split to fit 65535 bytes."""
        cdef SnapshotWriter w = SnapshotWriter(self, s)
        cdef Seg psegs[MAX_SEGMENTS]
        cdef Seg asegs[MAX_SEGMENTS]
        cdef int np = 0, na
        cdef bytes pb = pattern.encode() if pattern is not None else b""
        cdef Py_ssize_t i
        cdef Param* prm
        cdef uint64_t now = wall_us()
        if pattern is not None:
            np = split_pattern(pb, len(pb), psegs)
        for i in range(self.params.capacity()):
            prm = self.params.slot(i)
            if prm == NULL or param_expired(prm, now):
                continue
            if pattern is not None:
                na = split_address(prm.address, prm.addr_len, asegs)
                if na < 0 or not pattern_match(pb, psegs, np, prm.address, asegs, na):
                    continue
            w.add(prm)
        w.finish(always)
        return 0

    # --- the slow path: everything but SET and PUBLISH --------------------------

    cdef int slow_path(self, Session s, const uint8_t* data, Py_ssize_t n, uint8_t qos, Py_ssize_t hs) except -1:
        payload = PyBytes_FromStringAndSize(<const char*>data + hs, n - hs)
        try:
            msg = decode_payload(payload)
        except DecodeError as exc:
            return self.reject_frame(s, str(exc))
        self.handle(s, msg, qos)
        return 0

    def handle(self, Session s, msg, int qos=0):
        """Applies one decoded message from ``s`` (any type, any encoding)."""
        kind = type(msg)
        if not s.welcomed:
            if kind is M.Hello:
                return self._hello(s, msg)
            name = kind.__name__.upper()
            return self.reject_frame(s, f"expected HELLO as the first message, got {name}")
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, s, msg, qos)
        # server-only types (WELCOME, SNAPSHOT, ACK, ERROR, RESULT, PONG) are ignored

    def _hello(self, Session s, msg, int qos=0):
        if s.welcomed:
            return self.error(s, E_BAD_FRAME, f"duplicate HELLO: this connection already has session "
                                              f"{s.id}; the first session stays")
        s.welcomed = True
        s.name = msg.name
        s.features = msg.features
        self.sessions[s.id] = s
        self.send(s, M.Welcome(session=s.id, name=self.config.name, time=wall_us(), version=1,
                               features=0xF8))
        self.send_snapshot(s, None, True)

    def _set(self, Session s, msg, int qos):
        cdef bytes payload = encode_payload(msg)
        self.on_set(s, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload), qos)

    def _publish(self, Session s, msg, int qos):
        cdef bytes payload = encode_payload(msg)
        self.on_publish(s, <const uint8_t*>PyBytes_AS_STRING(payload), len(payload), qos, False)

    def _subscribe(self, Session s, msg, int qos):
        problem = check_pattern(msg.pattern)
        if problem is not None:
            return self.error(s, E_ADDRESS, problem, msg.pattern)
        if msg.id not in s.subs and len(s.subs) >= self.max_subs:
            now = mono_s()
            if now - s.last_limit_notice >= 1.0:
                s.last_limit_notice = now
                self.error(s, E_LIMIT, f"subscription limit reached: this session already has "
                                       f"{len(s.subs)} subscriptions (max_subscriptions_per_session)",
                           msg.pattern)
            return
        old = s.subs.pop(msg.id, None)
        if old is not None:
            self.trie.remove(old)
            if old.gate is not None:
                old.gate.close(self)
        sub = Subscription(s, msg.id, msg.pattern, msg.types & 0xFF,
                           SubscriptionGate.from_options(msg.options))
        self.trie.add(sub)
        s.subs[msg.id] = sub
        if sub.mask & 0x01:
            self.send_snapshot(s, msg.pattern, False)
        if qos >= 1:
            self.send(s, M.Ack(address=msg.pattern))

    def _unsubscribe(self, Session s, msg, int qos):
        sub = s.subs.pop(msg.id, None)
        if sub is not None:
            self.trie.remove(sub)
            if sub.gate is not None:
                sub.gate.close(self)

    def _get(self, Session s, msg, int qos):
        cdef bytes b
        cdef Param* prm
        cdef SnapshotWriter w
        problem = check_address(msg.address)
        if problem is not None:
            return self.error(s, E_ADDRESS, problem, msg.address)
        b = msg.address.encode()
        prm = self.params.get(b, len(b), bm_hash(b, len(b)))
        if prm == NULL or param_expired(prm, wall_us()):
            return self.error(s, E_NOT_FOUND, f"no param at {msg.address}", msg.address)
        w = SnapshotWriter(self, s)
        w.add(prm)
        w.finish(True)

    def _sync(self, Session s, msg, int qos):
        t2 = wall_us()
        self.send(s, M.Sync(t1=msg.t1, t2=t2, t3=wall_us()))

    def _ping(self, Session s, msg, int qos):
        self.send(s, M.Pong())

    def _announce(self, Session s, msg, int qos):
        for sig in msg.signals:
            self.signals[sig.address] = sig
        if qos >= 1:
            self.send(s, M.Ack(address=msg.namespace))

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
        now = wall_us()
        if msg.timestamp is not None and msg.timestamp > now:
            self.call_later((msg.timestamp - now) / 1e6, self._run_bundle, s, msg, qos)
        else:
            self._run_bundle(s, msg, qos)

    def _run_bundle(self, Session s, msg, int qos):
        """All or nothing: every SET is checked against the state first.

        A scheduled bundle whose session has closed by then is dropped."""
        cdef bytes payload
        cdef SetView v
        cdef Reader r
        cdef Param* prm
        cdef const uint8_t* p
        if s.closed:
            return
        payloads = [encode_payload(m) for m in msg.messages]
        # simulate the bundle's own effect on revisions and locks while checking
        planned = {}
        for m, payload in zip(msg.messages, payloads):
            if type(m) is not M.Set:
                continue
            state = planned.get(m.address)
            if state is None:
                state = self.param_state(m.address)
            revision, holder = state
            if holder is not None and holder != s.id:
                return self.error(s, E_LOCKED, f"BUNDLE rejected, nothing applied: {m.address} is locked "
                                               f"by another session", m.address)
            exists = revision != 0 or m.address in planned
            if m.revision is not None and exists and m.revision != revision:
                return self.error(s, E_STALE, f"BUNDLE rejected, nothing applied: stale revision for "
                                              f"{m.address} (expected {m.revision}, current {revision})",
                                  m.address)
            if m.unlock:
                holder = None
            if m.lock:
                holder = s.id
            planned[m.address] = (revision + 1, holder)
        last = None
        for m, payload in zip(msg.messages, payloads):
            p = <const uint8_t*>PyBytes_AS_STRING(payload)
            if type(m) is M.Set:
                self.on_set(s, p, len(payload), 0)
                last = self.param_state(m.address)[0]
            else:
                self.on_publish(s, p, len(payload), 0, True)
        if qos >= 1:
            self.send(s, M.Ack(revision=last))

    # --- state access (Python level) -------------------------------------------

    def param_state(self, str address):
        """(revision, lock holder or None) of ``address``; (0, None) if it has no param."""
        cdef bytes b = address.encode()
        cdef Param* prm = self.params.get(b, len(b), bm_hash(b, len(b)))
        if prm == NULL or param_expired(prm, wall_us()):
            return (0, None)
        holder = prm.holder[:prm.holder_len].decode() if prm.holder_len else None
        return (prm.revision, holder)

    def get(self, str address):
        """The param at ``address`` as a ParamValue, or None."""
        params = self._params_where(address, exact=True)
        return params[0] if params else None

    def snapshot(self, str pattern="/**"):
        """Every param matching ``pattern``, as ParamValues."""
        return self._params_where(pattern, exact=False)

    def _params_where(self, str text, bint exact):
        cdef SnapshotWriter w = SnapshotWriter(self, None)
        cdef bytes b = text.encode()
        cdef Param* prm
        cdef Seg psegs[MAX_SEGMENTS]
        cdef Seg asegs[MAX_SEGMENTS]
        cdef int np, na
        cdef Py_ssize_t i
        cdef uint64_t now = wall_us()
        out = []
        if exact:
            prm = self.params.get(b, len(b), bm_hash(b, len(b)))
            if prm != NULL and not param_expired(prm, now):
                out.append(w.to_value(prm))
            return out
        np = split_pattern(b, len(b), psegs)
        if np < 0:
            raise ValueError(address_error(np, "pattern", text))
        for i in range(self.params.capacity()):
            prm = self.params.slot(i)
            if prm == NULL or param_expired(prm, now):
                continue
            na = split_address(prm.address, prm.addr_len, asegs)
            if na >= 0 and pattern_match(b, psegs, np, prm.address, asegs, na):
                out.append(w.to_value(prm))
        return out

    @property
    def param_count(self):
        return len(self.params)

    # --- timers -------------------------------------------------------------------

    def call_later(self, double delay, fn, *args):
        """Runs ``fn(*args)`` after ``delay`` seconds of ``clock``; returns a cancellable handle."""
        entry = [self.clock() + delay, self.timer_seq, fn, args]
        self.timer_seq += 1
        heapq.heappush(self.timers, entry)
        if self.timers[0] is entry and self.on_timer is not None:
            self.on_timer(entry[0])
        return entry

    def cancel_timer(self, entry):
        entry[2] = None

    def next_deadline(self):
        """The ``clock`` time of the earliest pending timer, or None."""
        while self.timers and self.timers[0][2] is None:
            heapq.heappop(self.timers)
        return self.timers[0][0] if self.timers else None

    def run_timers(self, now=None):
        """Runs every timer due at ``now`` (default: ``clock()``)."""
        if now is None:
            now = self.clock()
        while self.timers and self.timers[0][0] <= now:
            entry = heapq.heappop(self.timers)
            fn = entry[2]
            if fn is not None:
                fn(*entry[3])

    def _sweep(self):
        self.params.sweep(wall_us())
        self.call_later(self.config.expiry_sweep_interval, self._sweep)


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


# ---------------------------------------------------------------------------

cdef class SnapshotWriter:
    """Builds SNAPSHOT frames param by param, starting a new frame before 65535 bytes."""

    def __cinit__(self, Router router, Session session):
        self.router = router
        self.session = session
        self.buf = <uint8_t*>malloc(MAX_WS_HEADER + 4 + MAX_PAYLOAD)
        if self.buf == NULL:
            raise MemoryError()
        self._start()

    def __dealloc__(self):
        free(self.buf)

    cdef void _start(self) noexcept:
        self.buf[MAX_WS_HEADER + 4] = T_SNAPSHOT
        self.size = SNAPSHOT_HEAD
        self.count = 0

    cdef Py_ssize_t entry_size(self, Param* prm) noexcept:
        return 2 + prm.addr_len + prm.value_len + 8 + 1 + (2 + prm.writer_len if prm.writer_len else 0) + 8

    cdef int add(self, Param* prm) except -1:
        cdef Py_ssize_t need = self.entry_size(prm)
        cdef uint8_t* o
        if self.size + need > MAX_PAYLOAD or self.count == 65535:
            self._emit()
            self._start()
        o = self.buf + MAX_WS_HEADER + 4 + self.size
        store_u16(o, <uint16_t>prm.addr_len)
        memcpy(o + 2, prm.address, prm.addr_len)
        o += 2 + prm.addr_len
        memcpy(o, prm.value, prm.value_len)
        o += prm.value_len
        store_u64(o, prm.revision)
        o += 8
        if prm.writer_len:
            o[0] = 0x03
            store_u16(o + 1, prm.writer_len)
            memcpy(o + 3, prm.writer, prm.writer_len)
            o += 3 + prm.writer_len
        else:
            o[0] = 0x02
            o += 1
        store_u64(o, prm.timestamp_us)
        self.size += need
        self.count += 1
        return 0

    cdef int _emit(self) except -1:
        cdef uint8_t* payload = self.buf + MAX_WS_HEADER + 4
        cdef uint8_t hdr[MAX_WS_HEADER]
        cdef Py_ssize_t hl = ws_binary_header(hdr, 4 + self.size)
        cdef uint8_t* start = payload - 4 - hl
        store_u16(payload + 1, self.count)
        memcpy(start, hdr, hl)
        clasp_header(payload - 4, 0, self.size)
        self.sent_any = True
        if self.session is not None:
            self.session.push_direct(start, hl + 4 + self.size)
        return 0

    cdef int finish(self, bint always) except -1:
        """Sends the last frame if it holds params (or, with ``always``, if none was sent)."""
        if self.count or (always and not self.sent_any):
            self._emit()
        return 0

    cdef object to_value(self, Param* prm):
        """A ParamValue of ``prm`` (through the codec, so it decodes like a client would)."""
        self._start()
        self.add(prm)
        cdef uint8_t* payload = self.buf + MAX_WS_HEADER + 4
        store_u16(payload + 1, 1)
        return decode_payload(PyBytes_FromStringAndSize(<const char*>payload, self.size)).params[0]
