"""Endpoints and their output buffers (see outbox.pxd)."""
import uuid

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memmove

from clasp_fast._native.wire cimport store_u32, Reader, SetView, parse_set_address, T_SET
from clasp_fast._native.bus cimport R_PUBLISH
from clasp_fast._native.clock cimport Clock
from clasp_fast._native.deflate cimport deflated_frame, DEFLATE_MIN_FRAME

cdef enum:
    INITIAL_OUT = 512
    KEEP_OUT = 65536            # buffers up to this size are kept between flushes


cdef inline uint8_t clasp_type(const uint8_t* f, Py_ssize_t n) noexcept nogil:
    """The CLASP type (payload byte 0) of a queued client frame: WebSocket header (2, 4 or
    10 bytes), CLASP header (4 bytes, 12 with a timestamp), then the type."""
    cdef Py_ssize_t i
    if n < 2:
        return 0
    i = 2 if (f[1] & 0x7F) < 126 else (4 if (f[1] & 0x7F) == 126 else 10)
    if i + 1 >= n:
        return 0
    i += 12 if f[i + 1] & 0x20 else 4
    return f[i] if i < n else 0


cdef class Hub:
    """Collects endpoints that have output; the I/O edge drains them."""

    def __cinit__(self, *args, **kwargs):
        self.clock = Clock()
        self.dirty = []
        self.limit_buffer = 16384
        self.overflow_interval = 10.0
        self.max_pending = 4194304
        self.output_budget = 0
        self.slow_timeout = 0.0
        self.errors_sent = {}

    def sent_by_type(self) -> dict:
        """{CLASP type code: messages queued for clients} (the non-zero ones)."""
        return {t: self.out_by_type[t] for t in range(256) if self.out_by_type[t]}

    def count_error(self, int code):
        """An ERROR with ``code`` was sent (called where ERRORs are made)."""
        self.errors_sent[code] = self.errors_sent.get(code, 0) + 1

    def take_dirty(self) -> list:
        """Endpoints that have queued output since the last call."""
        cdef Endpoint e
        out = self.dirty
        self.dirty = []
        for e in out:
            e.dirty = False
        return out

    cdef bytes waiting_copy(self, const uint8_t* frame, Py_ssize_t n):
        """The frame as a bytes object for a SET that must wait (conflation).  The stalled
        receivers of one broadcast share one copy, not one copy each: during a fan-out
        (``fanout_frame``, set by the router around it) the frame is the same for every
        receiver, so it is copied once, with no per-receiver work on its bytes."""
        if frame != self.fanout_frame:
            return PyBytes_FromStringAndSize(<const char*>frame, n)
        if self.fanout_copy is None:
            self.fanout_copy = PyBytes_FromStringAndSize(<const char*>frame, n)
        return self.fanout_copy

    cdef int overflow(self, Endpoint e) except -1:
        """A routed message to ``e`` was dropped: tell the client, at most once per interval."""
        cdef double now = self.clock.mono_s()
        cdef bytes frame
        if e.is_peer:
            return 0
        if e.last_overflow_notice and now - e.last_overflow_notice < self.overflow_interval:
            return 0
        e.last_overflow_notice = now
        dropped = e.dropped - e.drops_at_notice
        e.drops_at_notice = e.dropped
        self.count_error(503)
        from clasp_fast.protocol import encode_frame, ws_frame, Error
        frame = ws_frame(encode_frame(Error(
            503, f"send buffer full (buffer_size {self.limit_buffer} bytes): {dropped} "
                 f"event(s) dropped for this connection (SETs are kept: the latest value per "
                 f"address follows); read faster or subscribe to less")))
        return e.push_direct(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))

    def pending_output(self) -> int:
        """Bytes queued on all endpoints (conflated SETs included): what output_budget caps."""
        return self.queued


cdef class Endpoint:
    """A receiver with a buffer of complete frames waiting for the next flush."""

    def __dealloc__(self):
        free(self.out)

    cdef void mark_dirty(self) except *:
        if not self.dirty:
            self.dirty = True
            self.hub.dirty.append(self)
            if len(self.hub.dirty) == 1 and self.hub.on_dirty is not None:
                self.hub.on_dirty()

    cdef int append(self, const uint8_t* data, Py_ssize_t n) except -1:
        """Copies one complete frame into the buffer.  Every queued client frame passes
        here, so this is where it is counted by type and, for a connection that agreed
        permessage-deflate, compressed (once per broadcast: the receivers after the first
        reuse the compressed frame).  What waits before it (conflated SETs, byte caps) sees
        the plain frame."""
        cdef Py_ssize_t cap
        cdef uint8_t* nb
        if not self.is_peer:
            self.hub.out_by_type[clasp_type(data, n)] += 1
            if self.deflate_bits and n >= DEFLATE_MIN_FRAME:
                n = deflated_frame(self.deflate_bits, data, n, &data)
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
        self.hub.queued += n
        self.sent += 1
        self.mark_dirty()
        return 0

    cdef int push_routed(self, const uint8_t* frame, Py_ssize_t n) except -1:
        """Queues a routed message (SET/PUBLISH fan-out).  At most ``limit_buffer`` bytes
        of routed output wait here (beyond what the transport accepted; an empty buffer
        takes one message of any size): past that the edge is asked to write now, and if
        it cannot (the transport is paused) the connection is full (see ``full``)."""
        if self.closed or self.shut:
            return 0
        if self.waiting is not None or (self.out_routed and self.out_routed + n > self.hub.limit_buffer):
            if self.waiting is None and not self.paused and self.hub.on_pressure is not None:
                self.hub.on_pressure(self)
            if self.waiting is not None or (self.out_routed and self.out_routed + n > self.hub.limit_buffer):
                return self.full(frame, n)
        self.out_routed += n
        return self.append(frame, n)

    cdef int full(self, const uint8_t* frame, Py_ssize_t n) except -1:
        """A routed message that does not fit now, or SETs are waiting.  A SET waits,
        replacing any older SET to the same address that waits too (conflation: the
        connection ends on the latest value), and goes out as the connection drains
        (``refill``); while SETs wait every SET to this connection waits with them, so none
        overtakes a newer one.  An event that does not fit is dropped and counted (the
        newest is dropped: what is queued keeps its order)."""
        cdef SetView v
        cdef Reader r
        cdef Py_ssize_t hl = 2 if n < 2 or (frame[1] & 0x7F) < 126 else (4 if (frame[1] & 0x7F) == 126 else 10)
        cdef bint fits = not (self.out_routed and self.out_routed + n > self.hub.limit_buffer)
        cdef bytes key, old
        if n > hl + 4 and frame[hl + 4] == T_SET \
                and not parse_set_address(frame + hl + 4, n - hl - 4, &v, &r):
            if not self.stalled_since:
                self.stalled_since = self.hub.clock.mono_s()
            key = PyBytes_FromStringAndSize(<const char*>frame + hl + 4 + v.addr_pos, v.addr_len)
            if self.waiting is None:
                self.waiting = {}
            old = self.waiting.get(key)
            if old is not None:
                self.waiting_bytes -= len(old)
                self.hub.queued -= len(old)
                self.hub.conflated += 1
            elif self.waiting_bytes + self.out_size + n > self.hub.max_pending:
                return self.request_close(1008, f"slow consumer: more than {self.hub.max_pending} "
                                                f"bytes of SETs to distinct addresses waiting "
                                                f"(max_pending_output)")
            self.over_budget(n)
            if self.shut:
                return 0
            self.waiting[key] = self.hub.waiting_copy(frame, n)
            self.waiting_bytes += n
            self.hub.queued += n
            if fits:
                self.refill()
            return 0
        if fits:
            self.out_routed += n
            return self.append(frame, n)
        if not self.stalled_since:
            self.stalled_since = self.hub.clock.mono_s()
        self.dropped += 1
        self.hub.dropped += 1
        return self.hub.overflow(self)

    cdef int over_budget(self, Py_ssize_t n) except -1:
        """Closes this connection if queuing ``n`` more bytes would pass output_budget and it
        is one of those holding the memory: stalled, with more than buffer_size waiting.
        (A connection that drains, e.g. a new one taking its snapshot, is not closed.)"""
        if self.hub.output_budget and self.hub.queued + n > self.hub.output_budget \
                and self.stalled_since and self.out_size + self.waiting_bytes > self.hub.limit_buffer:
            self.request_close(1008, f"slow consumer: the router's output_budget "
                                     f"({self.hub.output_budget} bytes for all connections) is "
                                     f"spent and this connection holds "
                                     f"{self.out_size + self.waiting_bytes} bytes of it")
        return 0

    cpdef int refill(self) except -1:
        """The connection drained (its buffer was written and the transport takes more):
        queue waiting SETs, then resume unfinished snapshots, up to ``limit_buffer``
        bytes.  Called by the I/O edge."""
        cdef bytes f
        cdef Py_ssize_t n
        if self.waiting is None and not self.cursors and not self.stalled_since:
            return 0                    # the usual case: nothing waits
        if self.closed or self.shut or self.paused:
            return 0
        if self.waiting is not None:
            while self.waiting and self.out_routed < self.hub.limit_buffer:
                key = next(iter(self.waiting))
                f = self.waiting.pop(key)
                n = len(f)
                self.waiting_bytes -= n
                self.hub.queued -= n
                self.out_routed += n
                self.append(<const uint8_t*>PyBytes_AS_STRING(f), n)
            if not self.waiting:
                self.waiting = None
        if self.waiting is None and self.cursors:
            while self.cursors and self.out_size < self.hub.limit_buffer:
                if self.cursors[0].resume(self, 0):
                    self.cursors.pop(0)
        # it drained: the timeout counts from now while output still waits
        self.stalled_since = 0 if self.waiting is None and not self.cursors else self.hub.clock.mono_s()
        return 0

    cpdef int request_close(self, int code, str reason) except -1:
        """The core wants this connection closed (slow consumer, caps): nothing more is
        queued, what was queued is discarded, and the edge closes it at its next flush."""
        if self.is_peer or self.shut:
            return 0
        self.shut = True
        (<Session>self).close_request = (code, reason)
        self.waiting = None
        self.hub.queued -= self.waiting_bytes
        self.waiting_bytes = 0
        self.cursors = None
        self.reset_output()
        self.mark_dirty()
        return 0

    cdef int push_direct(self, const uint8_t* frame, Py_ssize_t n) except -1:
        """Queues a direct reply (WELCOME, SNAPSHOT, ACK, ERROR, ...): never dropped, but a
        connection that lets more than ``max_pending`` bytes of them wait is closed."""
        if self.closed or self.shut:
            return 0
        if not self.is_peer:
            if self.out_size + self.waiting_bytes + n > self.hub.max_pending:
                return self.request_close(1008, f"slow consumer: more than {self.hub.max_pending} "
                                                f"bytes of replies not read (max_pending_output)")
            if self.hub.output_budget and self.hub.queued + n > self.hub.output_budget:
                self.over_budget(n)
                if self.shut:
                    return 0
        return self.append(frame, n)

    cdef void reset_output(self) noexcept:
        self.hub.queued -= self.out_size
        if self.closed and self.waiting_bytes:
            self.hub.queued -= self.waiting_bytes
            self.waiting_bytes = 0
            self.waiting = None
        self.out_size = 0
        self.out_routed = 0
        # a buffer that never grew goes back to malloc (idle connections hold none);
        # a grown one is kept for the next tick unless it is huge
        if self.out_cap <= INITIAL_OUT or self.out_cap > KEEP_OUT:
            free(self.out)
            self.out = NULL
            self.out_cap = 0

    @property
    def waiting_sets(self) -> int:
        """SETs waiting for the connection to drain (at most one per address)."""
        return len(self.waiting) if self.waiting is not None else 0

    @property
    def stalled(self) -> bool:
        """True while it has output it could not take."""
        return self.stalled_since != 0

    def stalled_too_long(self) -> bool:
        """Closes it (request_close) if it stayed unable to drain for slow_consumer_timeout;
        the edge asks once a second, so an idle stalled connection is closed too."""
        if self.stalled_since and self.hub.slow_timeout and not self.shut \
                and self.hub.clock.mono_s() - self.stalled_since > self.hub.slow_timeout:
            self.request_close(1008, f"slow consumer: could not take its messages for "
                                     f"{self.hub.slow_timeout:g} s (slow_consumer_timeout)")
            return True
        return False

    # Python surface ---------------------------------------------------------
    def take_output_raw(self) -> bytes:
        """Everything queued, as written to the socket; clears the buffer."""
        data = PyBytes_FromStringAndSize(<const char*>self.out, self.out_size)
        self.reset_output()
        return data

    def take_output(self) -> list:
        """Everything queued, as a list of CLASP frames; clears the buffer."""
        from clasp_fast.protocol import ws_unframe
        return ws_unframe(self.take_output_raw())


cdef class Session(Endpoint):
    """One client connection, from upgrade to close."""

    def __cinit__(self, Hub hub, str peer=None):
        self.hub = hub
        self.peer = peer
        tag = hub.session_tag        # cluster mode: the node's tag (its lock holders are its own)
        self.id = str(uuid.uuid4()) if tag is None else tag + str(uuid.uuid4())[len(tag):]
        b = self.id.encode()
        memcpy(self.idc, <const char*>b, len(b))
        self.idlen = len(b)
        self.name = None
        self.subs = {}

    def __repr__(self):
        return f"<Session {self.id} {self.name!r} peer={self.peer}>"

    @property
    def subscriptions(self):
        return dict(self.subs)

    @property
    def subscription_count(self) -> int:
        return len(self.subs)

    @property
    def queued(self) -> int:
        """Bytes waiting in this session's buffer for the next flush."""
        return self.out_size


cdef class PeerLink(Endpoint):
    """The bus channel to one other worker: records out, records in (FIFO both ways)."""

    def __cinit__(self, Hub hub, int index):
        self.hub = hub
        self.index = index
        self.is_peer = True

    def __dealloc__(self):
        free(self.inbuf)

    def __repr__(self):
        return f"<PeerLink to worker {self.index}>"

    cdef int push_record(self, uint8_t kind, const uint8_t* a, Py_ssize_t an,
                         const uint8_t* b, Py_ssize_t bn) except -1:
        """Queues one record: its body is ``a`` followed by ``b`` (either may be empty)."""
        cdef uint8_t head[5]
        if self.closed:
            return 0
        store_u32(head, <uint32_t>(1 + an + bn))
        head[4] = kind
        self.bytes_sent += 5 + an + bn
        self.append(head, 5)
        if an:
            self.append(a, an)
        if bn:
            self.append(b, bn)
        self.sent -= 2 if an and bn else (1 if an or bn else 0)
        return 0

    cdef int push_routed(self, const uint8_t* frame, Py_ssize_t n) except -1:
        """A PUBLISH routed to this worker: forward the ready frame (never dropped)."""
        return self.push_record(R_PUBLISH, frame, n, NULL, 0)

    cdef int buffer_input(self, const uint8_t* data, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        cdef uint8_t* nb
        if self.in_size + n > self.in_cap:
            cap = self.in_cap if self.in_cap else 4096
            while cap < self.in_size + n:
                cap *= 2
            nb = <uint8_t*>realloc(self.inbuf, cap)
            if nb == NULL:
                raise MemoryError()
            self.inbuf = nb
            self.in_cap = cap
        memcpy(self.inbuf + self.in_size, data, n)
        self.in_size += n
        return 0

    def send_record(self, int kind, bytes body=b""):
        """Queues one record (Python level: rare kinds)."""
        self.push_record(<uint8_t>kind, <const uint8_t*>PyBytes_AS_STRING(body), len(body), NULL, 0)
