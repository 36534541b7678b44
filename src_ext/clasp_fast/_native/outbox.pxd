# Output buffers: who the router sends to, and how their output is collected.
#
# An Endpoint holds complete, ready-to-write frames (WebSocket frames for a
# client Session, bus records for a PeerLink to another worker).  The Hub is
# where endpoints report that they have output (the dirty list) and where the
# I/O edge hooks in to flush.  The router core is a Hub.

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from clasp_fast._native.params cimport ID_MAX


cdef class Endpoint


cdef class Hub:
    cdef list dirty                     # endpoints with queued output
    cdef public object on_dirty         # called when `dirty` becomes non-empty
    cdef public object on_pressure      # called with an endpoint whose buffer is full
    cdef Py_ssize_t limit_buffer        # routed messages an endpoint may queue
    cdef double overflow_interval       # seconds between two ERROR 503 to one session
    cdef readonly uint64_t dropped      # routed messages dropped for full buffers, all endpoints
    cdef int overflow(self, Endpoint e) except -1


cdef class Endpoint:
    cdef uint8_t* out
    cdef Py_ssize_t out_size
    cdef Py_ssize_t out_cap
    cdef Py_ssize_t out_count           # routed messages queued since the last flush
    cdef bint dirty                     # listed in Hub.dirty
    cdef readonly bint is_peer
    cdef public bint paused             # the transport asked us to stop writing
    cdef public bint closed
    cdef Hub hub
    cdef public object io               # the I/O edge's handle (opaque to the core)
    cdef readonly uint64_t sent         # messages queued, all kinds
    cdef readonly uint64_t dropped      # routed messages dropped: buffer full
    cdef uint64_t drops_at_notice
    cdef double last_overflow_notice

    cdef int append(self, const uint8_t* data, Py_ssize_t n) except -1
    cdef int push_routed(self, const uint8_t* frame, Py_ssize_t n) except -1
    cdef int push_direct(self, const uint8_t* frame, Py_ssize_t n) except -1
    cdef void mark_dirty(self) except *
    cdef void reset_output(self) noexcept


cdef class Session(Endpoint):
    cdef readonly str id
    cdef char idc[ID_MAX + 1]
    cdef uint8_t idlen
    cdef readonly str name
    cdef readonly int features
    cdef public bint welcomed
    cdef readonly str peer
    cdef public object close_request    # (code, reason) once the core wants it closed
    cdef public object access           # token mode: an access.Access; None in open mode
    cdef dict subs                      # id -> Subscription
    cdef public bint may_hold_locks     # sent a SET with lock: tell the owner on close
    cdef public uint32_t inflight       # requests sent to the owner, not yet decided
    cdef public list held               # frames waiting for `inflight` to drain (in order)
    cdef public object on_released      # called once the owner confirmed its locks are free
    cdef double rate_window
    cdef uint32_t rate_count
    cdef double last_limit_notice       # last ERROR 429
    cdef readonly uint64_t received


# Bus record kinds (a record: u32 length of the rest, u8 kind, body)
cdef enum:
    R_HELLO = 1             # u8 worker, u8 restarted
    R_INTEREST = 2          # u8 op (1 add, 0 remove), u8 mask, pattern
    R_PUBLISH = 3           # a ready WebSocket frame of a PUBLISH, for local fan-out
    R_SET_REQ = 4           # u64 seq, u8 qos, u8 id length, id, SET payload (to the owner)
    R_REPLICATE = 5         # a decided SET: state fields + the ready broadcast frame
    R_REJECT = 6            # u64 seq, u16 code, str message, str address (owner -> origin)
    R_BUNDLE_REQ = 7        # u64 seq, u8 qos, u8 id length, id, BUNDLE payload
    R_DONE = 8              # u64 seq, u64 revision of the last SET (0: none): BUNDLE or RELEASE applied
    R_RELEASE = 9           # u8 id length, id: that session is gone, release its locks
    R_HOLDER = 10           # str address, u8 holder length, holder, u8 holder origin
    R_ANNOUNCE = 11         # an ANNOUNCE payload
    R_SYNC_REQ = 12         # send me your state
    R_SYNC_PARAM = 13       # one param's full state
    R_SYNC_DONE = 14        # u8 count, count x (u8 origin, u64 applied seq)
    R_DUP = 15              # u64 seq, u64 revision: that request was applied already
    R_PUB_REQ = 16          # u64 seq, u8 qos, u8 id length, id, PUBLISH payload (to the owner)
    R_BARRIER = 17          # u64 seq, ...: answered with R_DONE once all earlier decisions are sent


cdef class PeerLink(Endpoint):
    cdef readonly int index             # the worker at the other end
    cdef uint8_t* inbuf                 # bytes of a record not yet complete
    cdef Py_ssize_t in_size
    cdef Py_ssize_t in_cap
    cdef int push_record(self, uint8_t kind, const uint8_t* a, Py_ssize_t an,
                         const uint8_t* b, Py_ssize_t bn) except -1
    cdef int buffer_input(self, const uint8_t* data, Py_ssize_t n) except -1
