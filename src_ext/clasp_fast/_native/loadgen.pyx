"""Native pieces of the load generator (bench/), so the generator is never the bottleneck.

* ``Receiver``: a picows listener that counts binary frames without building
  Python objects, optionally reading a send timestamp embedded in each frame to
  record publish→delivery latency into a histogram, and checking per-publisher
  sequence order.
* ``masked_frames``: pre-builds a block of masked client WebSocket frames so a
  publisher writes thousands of messages with one ``transport.write``.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from libc.stdlib cimport calloc, free
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType

from clasp_fast._native.wire cimport load_u64, store_u64


cdef inline uint64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


def monotonic_ns():
    return now_ns()


cdef enum:
    HIST_BUCKETS = 4096


cdef class Receiver(WSListener):
    """Counts binary frames; optional latency stamps and order checks.

    ``stamp_offset`` >= 0: each frame carries a u64 CLOCK_MONOTONIC ns send time at that
    offset from the end of the frame; latency = receive - send goes into a log-linear
    histogram (HdrHistogram-style, 1/64 relative precision).
    ``seq_offset`` >= 0: each frame carries a u64 sequence at that offset from the end;
    ``out_of_order`` counts frames whose sequence is not greater than the previous one.
    """

    cdef public uint64_t count
    cdef public uint64_t bytes_in
    cdef public uint64_t first_ns
    cdef public uint64_t last_ns
    cdef public long stamp_offset
    cdef public long seq_offset
    cdef public uint64_t last_seq
    cdef public uint64_t out_of_order
    cdef uint64_t* hist
    cdef public object transport
    cdef public object waiter
    cdef public uint64_t wait_for
    cdef public list texts

    def __cinit__(self, long stamp_offset=-1, long seq_offset=-1):
        self.stamp_offset = stamp_offset
        self.seq_offset = seq_offset
        self.hist = <uint64_t*>calloc(HIST_BUCKETS, sizeof(uint64_t))
        self.texts = []

    def __dealloc__(self):
        free(self.hist)

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef uint64_t t, sent, seq
        cdef const uint8_t* p
        if frame.msg_type != WSMsgType.BINARY:
            return
        t = now_ns()
        if self.count == 0:
            self.first_ns = t
        self.last_ns = t
        self.count += 1
        self.bytes_in += frame.payload_size
        p = <const uint8_t*>frame.payload_ptr
        if self.stamp_offset >= 0 and frame.payload_size >= self.stamp_offset + 8:
            sent = load_u64(p + frame.payload_size - self.stamp_offset - 8)
            if t > sent:
                self.hist[_bucket(t - sent)] += 1
        if self.seq_offset >= 0 and frame.payload_size >= self.seq_offset + 8:
            seq = load_u64(p + frame.payload_size - self.seq_offset - 8)
            if seq <= self.last_seq and self.count > 1:
                self.out_of_order += 1
            self.last_seq = seq
        if self.waiter is not None and self.count >= self.wait_for:
            w, self.waiter = self.waiter, None
            if not w.done():
                w.set_result(self.count)

    def reset(self):
        cdef int i
        self.count = 0
        self.bytes_in = 0
        self.first_ns = 0
        self.last_ns = 0
        self.out_of_order = 0
        self.last_seq = 0
        for i in range(HIST_BUCKETS):
            self.hist[i] = 0

    def histogram(self):
        """[(upper bound ns, count)] of the non-empty latency buckets."""
        cdef int i
        return [(_bucket_upper(i), self.hist[i]) for i in range(HIST_BUCKETS) if self.hist[i]]


cdef inline int _bucket(uint64_t v) noexcept nogil:
    # 64 linear sub-buckets per power of two: relative error <= 1/64
    cdef int e = 0
    cdef uint64_t x = v
    if v < 64:
        return <int>v
    while x >= 128:
        x >>= 1
        e += 1
    cdef int b = 64 + e * 64 + <int>(x - 64)
    return b if b < HIST_BUCKETS else HIST_BUCKETS - 1


cdef uint64_t _bucket_upper(int b):
    cdef int e
    if b < 64:
        return b
    e = (b - 64) // 64
    return <uint64_t>(64 + (b - 64) % 64 + 1) << e


def masked_frames(list frames, uint32_t mask_key=0x5A3C9E17):
    """One bytes object holding every CLASP frame of ``frames`` as a masked client
    WebSocket binary frame (RFC 6455 §5.3), ready for one ``transport.write``."""
    cdef Py_ssize_t total = 0, n, i, pos = 0, hl
    cdef bytes f, out
    cdef uint8_t* o
    cdef const uint8_t* src
    cdef uint8_t key[4]
    key[0] = mask_key >> 24
    key[1] = (mask_key >> 16) & 0xFF
    key[2] = (mask_key >> 8) & 0xFF
    key[3] = mask_key & 0xFF
    for f in frames:
        n = len(f)
        total += n + (6 if n < 126 else (8 if n < 65536 else 14))
    out = PyBytes_FromStringAndSize(NULL, total)
    o = <uint8_t*>PyBytes_AS_STRING(out)
    for f in frames:
        n = len(f)
        src = <const uint8_t*>PyBytes_AS_STRING(f)
        o[pos] = 0x82
        if n < 126:
            o[pos + 1] = 0x80 | n
            hl = 2
        elif n < 65536:
            o[pos + 1] = 0x80 | 126
            o[pos + 2] = n >> 8
            o[pos + 3] = n & 0xFF
            hl = 4
        else:
            o[pos + 1] = 0x80 | 127
            store_u64(o + pos + 2, n)
            hl = 10
        memcpy(o + pos + hl, key, 4)
        hl += 4
        for i in range(n):
            o[pos + hl + i] = src[i] ^ key[i & 3]
        pos += hl + n
    return out


def stamp_frames(bytes block, Py_ssize_t frame_size, Py_ssize_t stamp_from_end, uint64_t first_seq,
                 Py_ssize_t seq_from_end=-1, uint32_t mask_key=0x5A3C9E17):
    """A copy of ``block`` (equal-size masked frames, as made by masked_frames) with a
    fresh CLOCK_MONOTONIC ns stamp (and optionally a sequence) written, masked, at the
    given offsets from the end of each frame.  Returns (block, next sequence)."""
    cdef Py_ssize_t n = len(block), pos
    cdef bytes out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(block), n)
    cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
    cdef uint8_t key[4]
    cdef uint8_t tmp[8]
    cdef uint64_t t = now_ns()
    cdef uint64_t seq = first_seq
    cdef Py_ssize_t payload_len, off, i, k
    key[0] = mask_key >> 24
    key[1] = (mask_key >> 16) & 0xFF
    key[2] = (mask_key >> 8) & 0xFF
    key[3] = mask_key & 0xFF
    pos = 0
    while pos + frame_size <= n:
        payload_len = frame_size - (6 if frame_size - 6 < 126 else 8)
        for k in range(2):
            if k == 0:
                if stamp_from_end < 0:
                    continue
                store_u64(tmp, t)
                off = payload_len - stamp_from_end - 8
            else:
                if seq_from_end < 0:
                    continue
                store_u64(tmp, seq)
                off = payload_len - seq_from_end - 8
            for i in range(8):
                o[pos + frame_size - payload_len + off + i] = tmp[i] ^ key[(off + i) & 3]
        seq += 1
        pos += frame_size
    return out, seq
