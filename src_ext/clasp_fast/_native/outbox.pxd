# Output buffers: who the router sends to, and how their output is collected.
#
# An Endpoint holds complete, ready-to-write frames (WebSocket frames for a
# client Session, bus records for a PeerLink to another worker).  The Hub is
# where endpoints report that they have output (the dirty list) and where the
# I/O edge hooks in to flush.  The router core is a Hub.

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from clasp_fast._native.params cimport ID_MAX
from clasp_fast._native.clock cimport Clock


cdef class Endpoint


cdef class Hub:
    cdef readonly Clock clock           # the core's time (see clock.pxd)
    cdef list dirty                     # endpoints with queued output
    cdef public object on_dirty         # called when `dirty` becomes non-empty
    cdef public object on_pressure      # called with an endpoint whose buffer is full
    cdef Py_ssize_t limit_buffer        # bytes of routed output an endpoint may queue
    cdef double overflow_interval       # seconds between two ERROR 503 to one session
    cdef readonly uint64_t dropped      # routed messages dropped for full buffers, all endpoints
    cdef uint64_t out_by_type[256]      # messages queued for clients, by CLASP type (metrics)
    cdef readonly dict errors_sent      # ERROR code -> how many were sent (rare: Python)
    cdef readonly uint64_t conflated    # routed SETs replaced by a newer one while waiting
    cdef Py_ssize_t max_pending         # bytes of direct replies + conflated SETs per connection
    cdef Py_ssize_t output_budget       # bytes queued on all endpoints (0 = unlimited)
    cdef double slow_timeout            # seconds a connection may stay unable to drain (0 = never)
    cdef readonly Py_ssize_t queued     # bytes queued on all endpoints, conflated SETs included
    cdef const uint8_t* fanout_frame    # the frame being fanned out (router.deliver), else NULL
    cdef bytes fanout_copy              # its copy shared by the receivers where it must wait
    cdef public str session_tag         # cluster mode: session ids start with the node's tag
    cdef bytes waiting_copy(self, const uint8_t* frame, Py_ssize_t n)
    cdef int overflow(self, Endpoint e) except -1


cdef class Endpoint:
    cdef uint8_t* out
    cdef Py_ssize_t out_size
    cdef Py_ssize_t out_cap
    cdef Py_ssize_t out_routed          # bytes of routed output queued since the last flush
    cdef bint dirty                     # listed in Hub.dirty
    cdef readonly bint is_peer
    cdef public bint paused             # the transport asked us to stop writing
    cdef public bint closed
    cdef public uint8_t deflate_bits    # permessage-deflate window agreed (9-15), 0 = plain
    cdef Hub hub
    cdef public object io               # the I/O edge's handle (opaque to the core)
    cdef readonly uint64_t sent         # messages queued, all kinds
    cdef readonly uint64_t dropped      # routed messages dropped: buffer full
    cdef uint64_t drops_at_notice
    cdef double last_overflow_notice
    cdef dict waiting                   # address -> latest SET frame not yet queued (conflation)
    cdef Py_ssize_t waiting_bytes
    cdef public list cursors            # snapshots still being written (resumed on drain)
    cdef double stalled_since           # when it first could not take a routed message (0 = not)
    cdef public bint shut               # a close was requested: queue nothing more

    cdef int append(self, const uint8_t* data, Py_ssize_t n) except -1
    cdef int push_routed(self, const uint8_t* frame, Py_ssize_t n) except -1
    cdef int push_direct(self, const uint8_t* frame, Py_ssize_t n) except -1
    cdef int full(self, const uint8_t* frame, Py_ssize_t n) except -1
    cdef int over_budget(self, Py_ssize_t n) except -1
    cpdef int refill(self) except -1
    cpdef int request_close(self, int code, str reason) except -1
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
    cdef public uint64_t inflight_bytes # their payload bytes
    cdef public list held               # frames waiting for `inflight` to drain (in order)
    cdef public object on_released      # called once the owner confirmed its locks are free
    cdef double rate_window
    cdef uint32_t rate_count
    cdef double last_limit_notice       # last ERROR 429
    cdef readonly uint64_t received


cdef class PeerLink(Endpoint):
    cdef readonly int index             # the worker at the other end
    cdef uint8_t* inbuf                 # bytes of a record not yet complete
    cdef Py_ssize_t in_size
    cdef Py_ssize_t in_cap
    cdef readonly uint64_t bytes_sent   # bus bytes queued for the other worker (metrics)
    cdef int push_record(self, uint8_t kind, const uint8_t* a, Py_ssize_t an,
                         const uint8_t* b, Py_ssize_t bn) except -1
    cdef int buffer_input(self, const uint8_t* data, Py_ssize_t n) except -1
