# The sans-I/O router core: sessions, state, routing.
#
# The core takes "session S sent these bytes" (feed) and "worker W sent these
# bus records" (feed_link) and produces output queued on endpoints (Session /
# PeerLink buffers, see outbox.pxd), close requests and timer deadlines.  It
# never touches a socket or an event loop.
#
# Several workers: one of them, the state owner, decides every SET (checks,
# locks, revisions) and replicates the result to all the others; every worker
# keeps a full replica, so GET, snapshots and QUERY are answered locally.
# PUBLISH goes straight from the sender's worker to the workers with a
# matching subscription.

cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from clasp_fast._native.bytesmap cimport BytesMap
from clasp_fast._native.patterns cimport Trie, MatchList, Seg, MAX_SEGMENTS
from clasp_fast._native.params cimport ParamStore, Param, ID_MAX
from clasp_fast._native.wire cimport SetView, PublishView, FrameHeader
from clasp_fast._native.outbox cimport Hub, Endpoint, Session, PeerLink
from clasp_fast._native.pending cimport PendingQueue, Pending
from clasp_fast._native.timers cimport TimerQueue

cdef enum:
    MAX_WORKERS = 64


@cython.final
cdef class Router(Hub):
    cdef readonly object config
    cdef readonly ParamStore params
    cdef readonly Trie trie
    cdef BytesMap pub_cache             # address -> CacheEntry* (PUBLISH receivers)
    cdef Py_ssize_t pub_cache_limit
    cdef readonly dict sessions         # id -> Session (welcomed)
    cdef public object guard            # token mode: clasp_fast.auth.guard.Guard; None: open mode
    cdef object gestures
    cdef readonly dict signals          # announced signals: address -> SignalDef
    cdef TimerQueue timers
    cdef uint8_t* scratch               # one outgoing frame under construction
    cdef Py_ssize_t scratch_cap
    cdef Py_ssize_t max_payload
    cdef uint32_t max_rate_in
    cdef Py_ssize_t max_subs
    cdef dict interest                  # (pattern, mask) -> local subscription count
    cdef dict holders                   # owner: session id -> set of addresses it locks
    cdef dict holder_origin             # owner: session id -> worker of that session
    cdef uint64_t clock_us              # wall clock of the current read batch (see now_us)
    cdef public bint clock_fresh
    cdef readonly uint64_t routed       # deliveries queued for clients (not bus forwards)
    cdef readonly uint64_t frames_in
    cdef uint64_t in_by_type[256]       # frames received, by CLASP type (payload byte 0)
    cdef readonly uint64_t dropped_writes   # writes refused (503) while the owner was down

    # cluster
    cdef readonly int worker_index
    cdef readonly bint is_owner         # decides SETs (worker 0, or the only worker)
    cdef public PeerLink owner_link     # to the owner; None when we are it, or it is down
    cdef list links                     # worker index -> PeerLink (None: not connected)
    cdef readonly object cluster        # the Python-level node (clasp_fast.cluster.node)
    cdef readonly bint holding          # owner syncing after a restart: queue requests
    cdef public bint cross_node_full    # owner: the NATS bridge's queue is full: SETs get 503
    cdef public object cross_node       # owner in cluster mode: the NATS bridge (interest, held SUBSCRIBEs)
    cdef public object commit           # owner of a NATS node: SETs commit through the bucket first
                                        # (clasp_fast/cluster/nats/commit.py); None otherwise
    cdef public bint fast_sets          # owner of a NATS node with NATS up: plain QoS-fire SETs of
                                        # params marked fast go out before the bucket takes them
    cdef uint32_t answers_held[MAX_WORKERS]  # owner of a NATS node: answers to each worker waiting
                                        # in commit.py's queue (a fast SET may not pass them)
    cdef list staged                    # deciding for `commit`: the outcomes (None otherwise)
    cdef bint in_order                  # running a request that `commit` held back in order
    cdef public bint ping_barrier       # worker of a NATS node: PING is a read through the owner
    cdef list held_requests             # (link, kind, body) queued while holding
    cdef dict peer_subs                 # worker -> {(pattern, mask): Subscription} it routes to
    cdef uint32_t peer_sub_ids
    cdef uint64_t next_seq
    cdef readonly PendingQueue pending
    cdef uint64_t applied[MAX_WORKERS]  # highest request seq decided, per origin worker

    # durability (clasp_fast.state): the owner journals every decided SET; QoS-commit ACKs
    # wait until the journal is on disk up to the SET's position
    cdef readonly PeerLink journal_link # owner with persistence: R_SYNC_PARAM per decided SET
    cdef readonly uint64_t journal_seq  # owner: records queued on journal_link
    cdef uint64_t journal_seen          # replica: highest journal position seen in R_REPLICATE
    cdef readonly uint64_t durable_at   # journal position known to be on disk
    cdef PendingQueue durable_acks      # ACK frames waiting for durable_at (seq = position)
    cdef uint64_t commit_wanted         # owner: journal position a QoS-commit ACK waits for
    cdef bint journal_hurried           # owner: the writer was told (hurry) since the last commit
    cdef uint64_t replay_horizon        # wall µs before which "changed since" is unknown (start, removals)

    cdef int feed(self, Session s, const uint8_t* data, Py_ssize_t n) except -1
    cdef int feed_link(self, PeerLink link, const uint8_t* data, Py_ssize_t n) except -1
    cdef int on_set(self, Session s, const uint8_t* p, Py_ssize_t n, uint8_t qos) except -1
    cdef int on_publish(self, Session s, const uint8_t* p, Py_ssize_t n, uint8_t qos, bint throttled) except -1
    cdef int apply_set(self, const char* wid, uint8_t wlen, Session local, int origin, uint64_t seq,
                       const uint8_t* p, SetView* v, Seg* segs, int nseg, uint8_t qos) except -1
    cdef uint64_t now_us(self) noexcept
    cdef int forward_request(self, Session s, uint8_t kind, uint8_t record, const uint8_t* p,
                             Py_ssize_t n, uint8_t qos) except -1
    cdef bint owner_queue_full(self, Session s, Py_ssize_t n) except -1
    cdef int forward_publish_copy(self, Session s, const uint8_t* p, Py_ssize_t n) except -1
    cdef int gated(self, Session s, const uint8_t* data, Py_ssize_t n, FrameHeader* h) except -1
    cdef int complete(self, Pending* f) except -1
    cdef int on_publish_request(self, PeerLink link, const uint8_t* b, Py_ssize_t n) except -1
    cdef int on_done(self, const uint8_t* b, Py_ssize_t n) except -1
    cdef int answer_barrier(self, PeerLink link, const uint8_t* b) except -1
    cdef int on_replicate(self, const uint8_t* b, Py_ssize_t n) except -1
    cdef int on_set_request(self, PeerLink link, const uint8_t* b, Py_ssize_t n) except -1
    cdef int on_forwarded_publish(self, const uint8_t* b, Py_ssize_t n) except -1
    cdef int route_publish(self, Endpoint exclude, bint to_peers, const uint8_t* p, PublishView* v,
                           Seg* segs, int nseg) except -1
    cdef MatchList* param_receivers(self, Param* prm, Seg* segs, int nseg) except NULL
    cdef MatchList* publish_receivers(self, const char* addr, Py_ssize_t n, Seg* segs, int nseg) except NULL
    cdef int deliver(self, MatchList* ml, uint8_t bit, Endpoint exclude, bint to_peers,
                     const uint8_t* frame, Py_ssize_t n, const char* addr, Py_ssize_t alen,
                     Param* prm) except -1
    cdef uint8_t* reserve_scratch(self, Py_ssize_t n) except NULL
    cdef int send_ack(self, Session s, const char* addr, Py_ssize_t n, uint64_t revision) except -1
    cdef int ack_when_durable(self, Session s, const char* addr, Py_ssize_t n, uint64_t revision,
                              uint64_t position) except -1
    cdef int push_param(self, PeerLink link, Param* prm) except -1
    cdef int want_commit(self, uint64_t position) except -1
    cdef Param* merge_record(self, bytes body) except? NULL
    cdef int send_publish_ack(self, Session s, const char* addr, Py_ssize_t n) except -1
    cdef int error(self, Session s, int code, str message, str address=*) except -1
    cdef int forbidden(self, Session s, str action, const char* addr, Py_ssize_t n) except -1
    cdef int reject_frame(self, Session s, str message) except -1
    cdef int send_snapshot(self, Session s, object pattern, bint always, uint64_t since=*) except -1
    cdef int slow_path(self, Session s, const uint8_t* data, Py_ssize_t n, uint8_t qos, Py_ssize_t hs) except -1
    cdef _deliver_gated(self, Endpoint target, list gated, uint8_t bit, bytes frame, bytes address,
                        Param* prm)
    cdef void _clear_pub_cache(self) noexcept
    cdef Param* _store_replica(self, const char* addr, Py_ssize_t alen, uint8_t vtype, const uint8_t* data,
                               Py_ssize_t dlen, uint64_t revision, const uint8_t* st,
                               bint only_if_newer) except? NULL
    cdef Pending* _pending_for(self, uint64_t seq)
    cdef bint held_in_order(self, PeerLink link, uint8_t kind, const uint8_t* b, Py_ssize_t n) except -1
    cdef int _stage(self, int origin, uint64_t seq, Param* prm, const uint8_t* frame, Py_ssize_t n) except -1
    cdef Param* _store_replicate(self, const uint8_t* b, Py_ssize_t n, const uint8_t** frame,
                                 Py_ssize_t* fn, bint only_if_newer=*) except? NULL
    cdef int resolve_pending(self, uint64_t seq, uint64_t revision, const char* addr, Py_ssize_t alen,
                             uint64_t position) except -1
