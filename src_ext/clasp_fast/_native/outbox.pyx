"""Endpoints and their output buffers (see outbox.pxd)."""
import uuid

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memmove

from clasp_fast._native.wire cimport store_u32
from clasp_fast._native.bus cimport R_PUBLISH
from clasp_fast._native.clock cimport Clock

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
                 f"message(s) dropped for this connection; read faster or subscribe to less")))
        return e.push_direct(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))


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
        """Queues a routed message (SET/PUBLISH fan-out).  At most ``limit_buffer`` bytes
        of routed output wait here (beyond what the transport accepted; an empty buffer
        takes one message of any size): past that the edge is asked to write now, and if
        it cannot (the transport is paused) the message is dropped and counted."""
        if self.closed:
            return 0
        if self.out_routed and self.out_routed + n > self.hub.limit_buffer:
            if not self.paused and self.hub.on_pressure is not None:
                self.hub.on_pressure(self)
            if self.out_routed and self.out_routed + n > self.hub.limit_buffer:
                self.dropped += 1
                self.hub.dropped += 1
                self.hub.overflow(self)
                return 0
        self.out_routed += n
        self.hub.out_by_type[clasp_type(frame, n)] += 1
        return self.append(frame, n)

    cdef int push_direct(self, const uint8_t* frame, Py_ssize_t n) except -1:
        """Queues a direct reply (WELCOME, SNAPSHOT, ACK, ERROR, ...): never dropped."""
        if self.closed:
            return 0
        if not self.is_peer:
            self.hub.out_by_type[clasp_type(frame, n)] += 1
        return self.append(frame, n)

    cdef void reset_output(self) noexcept:
        self.out_size = 0
        self.out_routed = 0
        # a buffer that never grew goes back to malloc (idle connections hold none);
        # a grown one is kept for the next tick unless it is huge
        if self.out_cap <= INITIAL_OUT or self.out_cap > KEEP_OUT:
            free(self.out)
            self.out = NULL
            self.out_cap = 0

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
        self.id = str(uuid.uuid4())
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
