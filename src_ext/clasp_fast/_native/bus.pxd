# The bus between workers: record kinds and record layouts, defined once.
#
# Inline bodies live here (not in bus.pyx) so the router's hot bus paths
# (R_SET_REQ, R_PUB_REQ, R_REPLICATE, R_DONE) are compiled into router.pyx:
# Cython inlines across modules only what a .pxd defines.  bus.pyx has the
# Python-level encoders/parsers of the rare records (used by the router's
# slow paths and by clasp_fast.cluster.node).
#
# A record: u32 length of the rest, u8 kind, body.  Integers are big-endian.

from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy
from clasp_fast._native.params cimport Param, ID_MAX
from clasp_fast._native.wire cimport store_u32, store_u64, load_u32, load_u64

cdef enum:
    R_HELLO = 1             # u8 worker, u8 restarted
    R_INTEREST = 2          # u8 op (1 add, 0 remove), u8 mask, str16 pattern
    R_PUBLISH = 3           # a ready WebSocket frame of a PUBLISH, for local fan-out
    R_SET_REQ = 4           # request head, SET payload (to the owner)
    R_REPLICATE = 5         # u8 origin, u64 seq, u64 journal position (0: not journaled), state,
                            # the ready broadcast frame of a decided SET
    R_REJECT = 6            # u64 seq, u16 code, str16 message, str16 address (owner -> origin)
    R_BUNDLE_REQ = 7        # request head, BUNDLE payload
    R_DONE = 8              # u64 seq, u64 revision of the last SET (0: none): request applied
    R_RELEASE = 9           # request head (qos 0), no payload: that session is gone, free its locks
    R_HOLDER = 10           # str16 address, u8 holder length, holder, u8 holder origin
    R_ANNOUNCE = 11         # an ANNOUNCE payload
    R_SYNC_REQ = 12         # send me your state
    R_SYNC_PARAM = 13       # u64 revision, state, str16 address, value (type byte + data)
    R_SYNC_DONE = 14        # u8 count, count x (u8 origin, u64 applied seq)
    R_DUP = 15              # u64 seq, u64 revision: that request was applied already
    R_PUB_REQ = 16          # request head, PUBLISH payload (seq 0: a copy, no answer)
    R_BARRIER = 17          # request head, the read it holds back: R_DONE once earlier decisions are sent
    R_DURABLE = 18          # u64 journal position: the owner's journal is on disk up to there
    R_CLUSTER = 19          # u8 up: the node's NATS link is up (1) or down (0), [u8 reset: the bucket was
                            # lost (1): move the replay horizon] (owner -> workers)

    RECORD_HEAD = 5         # u32 length + u8 kind
    # request head: u64 seq, u8 qos, u8 id length, id (the session that sent it)
    REQUEST_HEAD = 10
    REQUEST_HEAD_MAX = REQUEST_HEAD + ID_MAX
    DONE_SIZE = 16
    REPLICATE_HEAD = 17     # u8 origin, u64 seq, u64 journal position (then the state)
    # state: u64 timestamp, u64 expires, u8 has_ttl, u32 ttl, u8 writer length, writer,
    #        u8 holder length, holder, u8 holder origin
    STATE_MAX = 8 + 8 + 1 + 4 + 1 + ID_MAX + 1 + ID_MAX + 1


cdef inline Py_ssize_t write_request_head(uint8_t* o, uint64_t seq, uint8_t qos, const char* sid,
                                          uint8_t idlen) noexcept nogil:
    store_u64(o, seq)
    o[8] = qos
    o[9] = idlen
    memcpy(o + 10, sid, idlen)
    return REQUEST_HEAD + idlen


cdef inline Py_ssize_t request_head_size(const uint8_t* b) noexcept nogil:
    return REQUEST_HEAD + b[9]


cdef inline void write_done(uint8_t* o, uint64_t seq, uint64_t revision) noexcept nogil:
    store_u64(o, seq)
    store_u64(o + 8, revision)


cdef inline Py_ssize_t write_state(Param* prm, uint8_t* o) noexcept nogil:
    """What a replica needs of a param beyond its value and revision; returns its size."""
    cdef Py_ssize_t n
    store_u64(o, prm.timestamp_us)
    store_u64(o + 8, prm.expires_us)
    o[16] = prm.has_ttl
    store_u32(o + 17, prm.ttl_raw)
    o[21] = prm.writer_len
    memcpy(o + 22, prm.writer, prm.writer_len)
    n = 22 + prm.writer_len
    o[n] = prm.holder_len
    memcpy(o + n + 1, prm.holder, prm.holder_len)
    n += 1 + prm.holder_len
    o[n] = prm.holder_origin
    return n + 1


cdef inline Py_ssize_t state_size(const uint8_t* st) noexcept nogil:
    cdef uint8_t wlen = st[21]
    return 22 + wlen + 1 + st[22 + wlen] + 1


cdef inline void apply_state(Param* prm, const uint8_t* st) noexcept nogil:
    """Sets ``prm``'s timestamp, expiry, TTL, writer and lock holder from a state block."""
    cdef uint8_t wlen = st[21]
    cdef uint8_t hlen = st[22 + wlen]
    prm.timestamp_us = load_u64(st)
    prm.expires_us = load_u64(st + 8)
    prm.has_ttl = st[16]
    prm.ttl_raw = load_u32(st + 17)
    memcpy(prm.writer, st + 22, wlen)
    prm.writer_len = wlen
    memcpy(prm.holder, st + 23 + wlen, hlen)
    prm.holder_len = hlen
    prm.holder_origin = st[23 + wlen + hlen]
