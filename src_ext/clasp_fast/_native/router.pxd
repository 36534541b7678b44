# The sans-I/O router core: sessions, their output buffers, and routing.
#
# The core takes "session S sent these bytes" and produces "these bytes are
# queued for these endpoints" (Endpoint.out, already WebSocket-framed), plus
# "close this session" requests and timer deadlines.  It never touches a socket
# or an event loop: the I/O edge (connection.pyx) drains the buffers once per
# loop tick and arms the timers.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from clasp_fast._native.bytesmap cimport BytesMap
from clasp_fast._native.patterns cimport Trie, MatchList, Seg, MAX_SEGMENTS
from clasp_fast._native.params cimport ParamStore, Param, ID_MAX
from clasp_fast._native.wire cimport SetView, PublishView


cdef class Router


cdef class Endpoint:
    """Something the router sends to: a client session (or a peer worker link).

    ``out`` holds complete WebSocket frames waiting for the next flush."""
    cdef uint8_t* out
    cdef Py_ssize_t out_size
    cdef Py_ssize_t out_cap
    cdef Py_ssize_t out_count           # routed messages queued since the last flush
    cdef bint dirty                     # queued in Router.dirty
    cdef public bint paused             # the transport asked us to stop writing
    cdef public bint closed
    cdef Router router
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
    cdef readonly bint welcomed
    cdef readonly str peer
    cdef public object close_request    # (code, reason) once the core wants it closed
    cdef dict subs                      # id -> Subscription
    cdef set locks                      # addresses this session holds the lock of
    cdef double rate_window
    cdef uint32_t rate_count
    cdef double last_limit_notice       # last ERROR 429
    cdef readonly uint64_t received


cdef class Router:
    cdef readonly object config
    cdef readonly ParamStore params
    cdef readonly Trie trie
    cdef BytesMap pub_cache             # address -> CacheEntry* (PUBLISH receivers)
    cdef Py_ssize_t pub_cache_limit
    cdef list dirty                     # endpoints with queued output
    cdef public object on_dirty         # called when `dirty` becomes non-empty
    cdef public object on_pressure      # called with an endpoint whose buffer is full
    cdef public object on_timer         # called with a new earliest deadline
    cdef readonly dict sessions         # id -> Session (welcomed)
    cdef readonly object clock
    cdef object gestures
    cdef dict signals                   # announced signals: address -> SignalDef
    cdef list timers
    cdef uint64_t timer_seq
    cdef double next_sweep
    cdef uint8_t* scratch               # one outgoing frame under construction
    cdef Py_ssize_t scratch_cap
    cdef Py_ssize_t limit_buffer
    cdef Py_ssize_t max_payload
    cdef uint32_t max_rate_in
    cdef Py_ssize_t max_subs
    cdef readonly uint64_t routed       # deliveries queued
    cdef readonly uint64_t frames_in

    cdef int feed(self, Session s, const uint8_t* data, Py_ssize_t n) except -1
    cdef int on_set(self, Session s, const uint8_t* p, Py_ssize_t n, uint8_t qos) except -1
    cdef int on_publish(self, Session s, const uint8_t* p, Py_ssize_t n, uint8_t qos, bint throttled) except -1
    cdef int apply_set(self, Session s, const uint8_t* p, SetView* v, Seg* segs, int nseg, uint8_t qos) except -1
    cdef int route_publish(self, Session s, const uint8_t* p, PublishView* v, Seg* segs, int nseg) except -1
    cdef MatchList* param_receivers(self, Param* prm, Seg* segs, int nseg) except NULL
    cdef MatchList* publish_receivers(self, const char* addr, Py_ssize_t n, Seg* segs, int nseg) except NULL
    cdef int deliver(self, MatchList* ml, uint8_t bit, Endpoint exclude, const uint8_t* frame,
                     Py_ssize_t n, const char* addr, Py_ssize_t alen, Param* prm) except -1
    cdef uint8_t* reserve_scratch(self, Py_ssize_t n) except NULL
    cdef int send_ack(self, Session s, const char* addr, Py_ssize_t n, uint64_t revision) except -1
    cdef int error(self, Session s, int code, str message, str address=*) except -1
    cdef int reject_frame(self, Session s, str message) except -1
    cdef int send_snapshot(self, Session s, object pattern, bint always) except -1
    cdef int slow_path(self, Session s, const uint8_t* data, Py_ssize_t n, uint8_t qos, Py_ssize_t hs) except -1
    cdef _deliver_gated(self, Endpoint target, list gated, uint8_t bit, bytes frame, bytes address,
                        Param* prm)
    cdef void _clear_pub_cache(self) noexcept


cdef class SnapshotWriter:
    cdef Router router
    cdef Session session
    cdef uint8_t* buf           # payload under construction, after room for the headers
    cdef Py_ssize_t size
    cdef uint16_t count
    cdef bint sent_any
    cdef void _start(self) noexcept
    cdef Py_ssize_t entry_size(self, Param* prm) noexcept
    cdef int add(self, Param* prm) except -1
    cdef int _emit(self) except -1
    cdef int finish(self, bint always) except -1
    cdef object to_value(self, Param* prm)
