"""permessage-deflate (RFC 7692) on the hot path: zlib raw deflate, no Python per message.

Outgoing frames (see deflate.pxd): ``deflated_frame`` turns a ready server frame (WebSocket
header + payload) into its compressed form: RSV1 set, the payload compressed on its own
(``server_no_context_takeover`` is always agreed), the trailing ``00 00 ff ff`` of the sync
flush stripped (RFC 7692 7.2.1).  One compressor per window size (9-15 bits) per process;
each remembers its last input and output, so the receivers of one broadcast after the first
get the same compressed bytes without compressing again.  A message that does not shrink
goes out as it was.

Incoming messages: ``Inflater`` inflates one connection's compressed messages into its own
buffer, in bounded steps: output past ``limit`` stops it (the caller closes 1009), so a
small "decompression bomb" never allocates more than ``limit`` + one step.
"""
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memcmp, memset

from clasp_fast._native.wire cimport ws_binary_header, MAX_WS_HEADER

cdef extern from "zlib.h":
    int Z_OK, Z_STREAM_END, Z_BUF_ERROR, Z_SYNC_FLUSH, Z_NO_FLUSH, Z_DEFLATED, Z_DEFAULT_STRATEGY
    int deflateInit2(z_stream* strm, int level, int method, int windowBits, int memLevel,
                     int strategy) nogil
    int deflate(z_stream* strm, int flush) nogil
    int deflateReset(z_stream* strm) nogil
    int deflateEnd(z_stream* strm) nogil
    unsigned long deflateBound(z_stream* strm, unsigned long sourceLen) nogil
    int inflateInit2(z_stream* strm, int windowBits) nogil
    int inflate(z_stream* strm, int flush) nogil
    int inflateReset(z_stream* strm) nogil
    int inflateEnd(z_stream* strm) nogil

cdef enum:
    LEVEL = 1                   # zlib's fastest: short messages gain little from more effort
    MEM_LEVEL = 8
    STEP = 16384                # inflate output grows by at most this much per step

cdef const uint8_t* SYNC_TAIL = b"\x00\x00\xff\xff"

cdef uint64_t compressions = 0  # messages compressed (outgoing)
cdef uint64_t reuses = 0        # compressed frames handed out again (fan-out)


def stats() -> dict:
    """Counters of this process: ``compressions`` (messages compressed) and ``reuses``
    (receivers of a broadcast served an already compressed frame)."""
    return {"compressions": compressions, "reuses": reuses}


cdef inline Py_ssize_t header_len(const uint8_t* f) noexcept nogil:
    cdef uint8_t b = f[1] & 0x7F
    return 2 if b < 126 else (4 if b == 126 else 10)


cdef class Compressor:
    """Raw deflate at one window size, plus the last frame it compressed."""
    cdef z_stream zs
    cdef uint8_t* src               # the last input frame (to recognise a repeat)
    cdef Py_ssize_t src_n
    cdef Py_ssize_t src_cap
    cdef uint8_t* dst               # its output frame starts at dst + dst_off
    cdef Py_ssize_t dst_off
    cdef Py_ssize_t dst_n           # 0: the last input went out uncompressed
    cdef Py_ssize_t dst_cap

    def __cinit__(self, int bits):
        memset(&self.zs, 0, sizeof(z_stream))
        if deflateInit2(&self.zs, LEVEL, Z_DEFLATED, -bits, MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK:
            raise MemoryError("zlib deflateInit2 failed")

    cdef Py_ssize_t compress(self, const uint8_t* frame, Py_ssize_t n, const uint8_t** out) except -1:
        global compressions, reuses
        cdef Py_ssize_t hl, pn, bound, cn, need
        cdef uint8_t* nb
        cdef uint8_t hdr[MAX_WS_HEADER]
        if n == self.src_n and memcmp(frame, self.src, n) == 0:
            reuses += 1
            if self.dst_n:
                out[0] = self.dst + self.dst_off
                return self.dst_n
            out[0] = frame
            return n
        hl = header_len(frame)
        pn = n - hl
        bound = deflateBound(&self.zs, pn) + 16 + MAX_WS_HEADER
        if bound > self.dst_cap:
            nb = <uint8_t*>realloc(self.dst, bound)
            if nb == NULL:
                raise MemoryError()
            self.dst, self.dst_cap = nb, bound
        if n > self.src_cap:
            nb = <uint8_t*>realloc(self.src, n)
            if nb == NULL:
                raise MemoryError()
            self.src, self.src_cap = nb, n
        memcpy(self.src, frame, n)
        self.src_n = n
        # compress behind room for the longest header, then put the header in front
        self.zs.next_in = frame + hl
        self.zs.avail_in = <unsigned int>pn
        self.zs.next_out = self.dst + MAX_WS_HEADER
        self.zs.avail_out = <unsigned int>(self.dst_cap - MAX_WS_HEADER)
        deflate(&self.zs, Z_SYNC_FLUSH)
        cn = (self.dst_cap - MAX_WS_HEADER) - self.zs.avail_out
        deflateReset(&self.zs)
        compressions += 1
        if cn >= 4 and memcmp(self.dst + MAX_WS_HEADER + cn - 4, SYNC_TAIL, 4) == 0:
            cn -= 4
        if cn >= pn:                    # did not shrink: send it as it is
            self.dst_n = 0
            out[0] = frame
            return n
        hl = ws_binary_header(hdr, cn)
        hdr[0] = frame[0] | 0x40        # keep the opcode, set RSV1
        memcpy(self.dst + MAX_WS_HEADER - hl, hdr, hl)
        self.dst_off = MAX_WS_HEADER - hl
        self.dst_n = hl + cn
        out[0] = self.dst + self.dst_off
        return self.dst_n

    def __dealloc__(self):
        deflateEnd(&self.zs)
        free(self.src)
        free(self.dst)


cdef list _compressors = [None] * 16


cdef Py_ssize_t deflated_frame(uint8_t bits, const uint8_t* frame, Py_ssize_t n,
                               const uint8_t** out) except -1:
    """The frame to send for ``frame`` (``n`` bytes) to a receiver whose window is ``bits``:
    its compressed form, or ``frame`` itself when short or incompressible."""
    cdef Compressor c
    if n < DEFLATE_MIN_FRAME:
        out[0] = frame
        return n
    c = <Compressor>_compressors[bits]
    if c is None:
        c = Compressor(bits)
        _compressors[bits] = c
    return c.compress(frame, n, out)


def deflate_frame(int bits, bytes frame) -> bytes:
    """``deflated_frame`` from Python (tests)."""
    cdef const uint8_t* out
    cdef Py_ssize_t n = deflated_frame(<uint8_t>bits, <const uint8_t*><const char*>frame, len(frame), &out)
    return (<const char*>out)[:n]


cdef class Inflater:
    """One connection's decompressor (client to server), created on its first compressed message."""

    def __cinit__(self, int bits, bint reset_each, Py_ssize_t limit):
        memset(&self.zs, 0, sizeof(z_stream))
        if inflateInit2(&self.zs, -bits) != Z_OK:
            raise MemoryError("zlib inflateInit2 failed")
        self.ready = True
        self.reset_each = reset_each
        self.limit = limit

    def __dealloc__(self):
        if self.ready:
            inflateEnd(&self.zs)
        free(self.out)

    cdef int _run(self, const uint8_t* data, Py_ssize_t n) except -1:
        """Inflates ``data`` onto ``out``; 1 once the output passed ``limit``."""
        cdef int rc
        cdef Py_ssize_t room, cap
        cdef uint8_t* nb
        self.zs.next_in = data
        self.zs.avail_in = <unsigned int>n
        while True:
            if self.out_size == self.out_cap:
                if self.out_size > self.limit:
                    return 1
                cap = min(self.out_cap + STEP, self.limit + 1)
                nb = <uint8_t*>realloc(self.out, cap)
                if nb == NULL:
                    raise MemoryError()
                self.out, self.out_cap = nb, cap
            room = self.out_cap - self.out_size
            self.zs.next_out = self.out + self.out_size
            self.zs.avail_out = <unsigned int>room
            rc = inflate(&self.zs, Z_SYNC_FLUSH)
            self.out_size += room - self.zs.avail_out
            if self.out_size > self.limit:
                return 1
            if rc == Z_STREAM_END:
                # a final block (BFINAL) ended the stream: what follows starts a new one
                inflateReset(&self.zs)
                if self.zs.avail_in == 0:
                    return 0
                continue
            if rc == Z_OK or rc == Z_BUF_ERROR:
                if self.zs.avail_out == 0:
                    continue            # output full: grow and go on
                return 0                # all input consumed
            else:
                raise ValueError("invalid compressed data (permessage-deflate): "
                                 + (self.zs.msg.decode() if self.zs.msg != NULL else f"zlib error {rc}"))

    cdef int feed(self, const uint8_t* data, Py_ssize_t n, bint fin) except -1:
        """Inflates one frame's payload of the current message (``fin``: its last frame).
        Returns 1 when the message grew past ``limit``; the message is then ``out``."""
        if n and self._run(data, n):
            return 1
        if fin:
            return self._run(SYNC_TAIL, 4)
        return 0

    cdef void done(self) noexcept:
        """The message in ``out`` was consumed: start the next one."""
        self.out_size = 0
        if self.out_cap > STEP:         # a big message's buffer is not kept
            free(self.out)
            self.out = NULL
            self.out_cap = 0
        if self.reset_each:
            inflateReset(&self.zs)

    def inflate_message(self, bytes data) -> bytes:
        """One complete message from Python (tests); raises OverflowError past ``limit``."""
        if self.feed(<const uint8_t*><const char*>data, len(data), True):
            self.done()
            raise OverflowError("message larger than the limit")
        try:
            return (<const char*>self.out)[:self.out_size]
        finally:
            self.done()
