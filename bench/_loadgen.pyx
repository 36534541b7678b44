"""Native pieces of the load generator (``clasp_fast_bench._loadgen``, built from
``bench/_loadgen.pyx`` by setup.py), so the generator is never the bottleneck.

* ``Receiver``: a picows listener that counts binary frames without building
  Python objects, optionally reading a send timestamp embedded in each frame to
  record publish→delivery latency into a histogram, and checking per-publisher
  sequence order.
* ``masked_frames`` (from ``clasp_fast._native.wsclient``, shared with the client):
  pre-builds a block of masked client WebSocket frames so a publisher writes
  thousands of messages with one ``transport.write``.
* ``stamp_frames``: a copy of such a block with fresh stamps / sequences.
* ``Board``: counters in shared memory (an mmap) that the generator processes and
  the bench controller share: messages sent per publisher process, deliveries per
  subscriber connection, a stop flag, and the wake-up handshake that lets a
  publisher keep at most ``window`` messages in flight across processes.
* ``Pump``: the publisher's send loop (gated by a Board, or on a fixed-rate
  schedule for latency runs) writing pre-masked frames with ``_fast_write``.
* ``CeilingHub`` / ``CeilingConn``: the bench's ceiling server, a bare picows
  server forwarding every frame of a publisher connection to every subscriber
  connection, either with one ``send`` per delivery or with one write per
  connection per loop tick.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.bytearray cimport PyByteArray_AS_STRING
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memmove
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_WRITE
from libc.stdlib cimport calloc, malloc, realloc, free
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.unistd cimport write as c_write
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType

from clasp_fast._native.wire cimport load_u64, store_u64
from clasp_fast._native.wsclient cimport split_mask_key as _key
from clasp_fast._native.wsclient import masked_frames   # re-exported for bench/gen.py


cdef extern from *:
    """
    static inline uint64_t lg_load(uint64_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void lg_store(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline uint64_t lg_xchg(uint64_t* p, uint64_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
    static inline void lg_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    #define LG_SEQ_BITS 40
    #define LG_SEQ_MASK ((((uint64_t)1) << 40) - 1)
    #define LG_BOARD_MAGIC 0x434C415350424E43ULL
    """
    const int SEQ_BITS "LG_SEQ_BITS"
    const uint64_t SEQ_MASK "LG_SEQ_MASK"
    const uint64_t BOARD_MAGIC "LG_BOARD_MAGIC"
    uint64_t lg_load(uint64_t* p) noexcept nogil
    void lg_store(uint64_t* p, uint64_t v) noexcept nogil
    uint64_t lg_xchg(uint64_t* p, uint64_t v) noexcept nogil
    void lg_fence() noexcept nogil


cdef extern from *:
    const char* BUILT_WITH_CYTHON "CLASP_FAST_BENCH_CYTHON"   # a macro setup.py defines


def cython_version() -> str:
    """The version of the Cython that compiled this module (for the report header)."""
    return BUILT_WITH_CYTHON.decode()


cdef inline uint64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


def monotonic_ns():
    return now_ns()


cdef enum:
    HIST_BUCKETS = 4096
    # CLASP message types the Receiver tells apart
    T_WELCOME = 0x02
    T_PUBLISH = 0x20
    T_SET = 0x21
    T_SNAPSHOT = 0x23
    T_PONG = 0x42
    T_ERROR = 0x51

# --- the shared board -------------------------------------------------------------------
# uint64 words.  Publisher processes 0..MAXP-1, subscriber slots 0..n_subs-1.
# A sequence word: publisher id in the top 24 bits, the sequence in the low 40.
cdef enum:
    B_MAGIC = 0
    B_STOP = 1
    B_NPUB = 2
    B_NSUB = 3
    B_WINDOW = 4
    B_SENT_BASE = 5
    B_WAKE = 8          # + p: publisher p waits for deliveries
    B_EFD = 24          # + p: publisher p's eventfd (same number in every process)
    B_SENT = 40         # + p: messages publisher process p has written
    B_SUBS = 64         # + 2*i: deliveries counted by subscriber i; + 2*i + 1: its base
    MAXP = 16


def board_size(int n_subs):
    """Bytes a Board for ``n_subs`` subscriber slots needs."""
    return (B_SUBS + 2 * n_subs) * 8


cdef class Board:
    """Counters shared by the bench controller and the generator processes (an mmap).

    The in-flight count is ``Σ sent − sent_base − min_i(recv_i − base_i)``: every
    subscriber receives every message in the bench scenarios, so this is what the
    slowest subscriber's router buffer may hold."""

    cdef object mv
    cdef uint64_t* w
    cdef public int n_subs
    cdef uint64_t cached_min

    def __cinit__(self, buf, int n_subs, bint init=False):
        cdef unsigned char[::1] view = buf
        if view.shape[0] < board_size(n_subs):
            raise ValueError(f"board buffer too small for {n_subs} subscribers")
        self.mv = view
        self.w = <uint64_t*>&view[0]
        self.n_subs = n_subs
        if init:
            for i in range(board_size(n_subs) // 8):
                self.w[i] = 0
            self.w[B_MAGIC] = BOARD_MAGIC
            self.w[B_NSUB] = n_subs
            self.w[B_WINDOW] = 1000
        elif self.w[B_MAGIC] != BOARD_MAGIC:
            raise ValueError("not a bench board")

    # --- configuration (controller) ---
    property window:
        def __get__(self):
            return self.w[B_WINDOW]
        def __set__(self, uint64_t v):
            self.w[B_WINDOW] = v

    property n_pubs:
        def __get__(self):
            return self.w[B_NPUB]
        def __set__(self, uint64_t v):
            if v > MAXP:
                raise ValueError(f"at most {MAXP} publisher processes")
            self.w[B_NPUB] = v

    property stop:
        def __get__(self):
            return lg_load(&self.w[B_STOP]) != 0
        def __set__(self, bint v):
            lg_store(&self.w[B_STOP], 1 if v else 0)

    def set_eventfd(self, int p, int fd):
        self.w[B_EFD + p] = <uint64_t>fd

    # --- counts ---
    cdef inline uint64_t sent_total(self) noexcept:
        cdef uint64_t s = 0
        cdef int p
        for p in range(<int>self.w[B_NPUB]):
            s += lg_load(&self.w[B_SENT + p])
        return s - self.w[B_SENT_BASE]

    cdef uint64_t min_recv(self) noexcept:
        cdef uint64_t m = <uint64_t>-1, v
        cdef int i
        for i in range(self.n_subs):
            v = lg_load(&self.w[B_SUBS + 2 * i]) - self.w[B_SUBS + 2 * i + 1]
            if v < m:
                m = v
        if self.n_subs == 0:
            m = 0
        self.cached_min = m
        return m

    cdef inline int64_t in_flight_c(self, bint fresh) noexcept:
        cdef uint64_t s = self.sent_total()
        if fresh or <int64_t>(s - self.cached_min) > <int64_t>self.w[B_WINDOW]:
            self.min_recv()
        return <int64_t>(s - self.cached_min)

    def in_flight(self):
        return self.in_flight_c(True)

    def sent(self):
        """Messages written by all publisher processes since the last ``set_bases``."""
        return self.sent_total()

    def sent_of(self, int p):
        return self.w[B_SENT + p]

    def recv(self):
        """Deliveries per subscriber slot since the last ``set_bases``."""
        return [self.w[B_SUBS + 2 * i] - self.w[B_SUBS + 2 * i + 1] for i in range(self.n_subs)]

    def recv_total(self):
        cdef uint64_t s = 0
        cdef int i
        for i in range(self.n_subs):
            s += lg_load(&self.w[B_SUBS + 2 * i]) - self.w[B_SUBS + 2 * i + 1]
        return s

    def recv_min(self):
        return self.min_recv()

    def set_bases(self):
        """Zero point for the in-flight gate and the counts (taken when nothing is in flight)."""
        cdef int i, p
        cdef uint64_t s = 0
        for i in range(self.n_subs):
            self.w[B_SUBS + 2 * i + 1] = lg_load(&self.w[B_SUBS + 2 * i])
        for p in range(<int>self.w[B_NPUB]):
            s += lg_load(&self.w[B_SENT + p])
        self.w[B_SENT_BASE] = s
        self.cached_min = 0
        lg_fence()

    # --- the wake-up handshake ---
    cdef inline uint64_t* slot(self, int i):
        return &self.w[B_SUBS + 2 * i]

    cdef inline void add_sent(self, int p, uint64_t n) noexcept:
        lg_store(&self.w[B_SENT + p], self.w[B_SENT + p] + n)

    cdef int64_t arm(self, int p) noexcept:
        """Publisher p will wait: raise its flag, then re-read (no lost wake-ups)."""
        lg_xchg(&self.w[B_WAKE + p], 1)
        return self.in_flight_c(True)

    cdef void disarm(self, int p) noexcept:
        lg_store(&self.w[B_WAKE + p], 0)

    cdef inline void poke(self) noexcept:
        """A subscriber made progress: wake every publisher that waits."""
        cdef int p
        cdef uint64_t one = 1
        lg_fence()
        for p in range(<int>self.w[B_NPUB]):
            if lg_load(&self.w[B_WAKE + p]) and lg_xchg(&self.w[B_WAKE + p], 0):
                c_write(<int>self.w[B_EFD + p], &one, 8)

    def poke_all(self):
        self.poke()


# --- the receiving client ---------------------------------------------------------------

cdef class Receiver(WSListener):
    """Counts binary frames; optional latency stamps and order checks.

    ``stamp_offset`` >= 0: each frame carries a u64 CLOCK_MONOTONIC ns send time at that
    offset from the end of the frame; latency = receive - send goes into a log-linear
    histogram (HdrHistogram-style, 1/64 relative precision).
    ``seq_offset`` >= 0: each frame carries a u64 sequence word at that offset from the
    end (publisher id in the top 24 bits, sequence in the low 40); ``out_of_order``
    counts frames whose sequence is not greater than the previous one of the same
    publisher, ``gaps`` the sequences skipped (lost messages).
    ``deliveries_only``: ``count`` counts only SET and PUBLISH frames; the others
    (WELCOME, SNAPSHOT, PONG, ERROR...) are counted in ``control`` and wake
    ``ctl_waiter``.
    """

    cdef public uint64_t count
    cdef public uint64_t bytes_in
    cdef public uint64_t first_ns
    cdef public uint64_t last_ns
    cdef public long stamp_offset
    cdef public long seq_offset
    cdef public uint64_t last_seq
    cdef public uint64_t out_of_order
    cdef public uint64_t gaps
    cdef uint64_t* hist
    cdef uint64_t* pub_last        # per publisher: last sequence + 1 (0 = none yet)
    cdef int max_pubs
    cdef public object transport
    cdef public object waiter
    cdef public uint64_t wait_for
    cdef public list texts
    # deliveries_only mode
    cdef public bint deliveries_only
    cdef public uint64_t control
    cdef public uint64_t errors
    cdef public uint64_t pongs
    cdef public bint welcomed
    cdef public uint64_t welcome_ns
    cdef public object ctl_waiter
    cdef public bint capture
    cdef public bytes last_payload
    cdef public list error_frames
    cdef public bint lost
    # shared board
    cdef Board board
    cdef uint64_t* slot
    cdef uint64_t total

    def __cinit__(self, long stamp_offset=-1, long seq_offset=-1, *, bint deliveries_only=False,
                  int max_pubs=1, bint capture=False):
        self.stamp_offset = stamp_offset
        self.seq_offset = seq_offset
        self.hist = <uint64_t*>calloc(HIST_BUCKETS, sizeof(uint64_t))
        self.max_pubs = max_pubs if max_pubs > 0 else 1
        self.pub_last = <uint64_t*>calloc(self.max_pubs, sizeof(uint64_t))
        if self.hist == NULL or self.pub_last == NULL:
            raise MemoryError()
        self.texts = []
        self.deliveries_only = deliveries_only
        self.capture = capture
        self.error_frames = []

    def __dealloc__(self):
        free(self.hist)
        free(self.pub_last)

    def attach(self, Board board, int slot):
        """Publish this receiver's delivery count in ``board`` slot ``slot``."""
        if not 0 <= slot < board.n_subs:
            raise ValueError("slot out of range")
        self.board = board
        self.slot = board.slot(slot)
        lg_store(self.slot, self.total)

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        if frame.msg_type != WSMsgType.BINARY:
            return
        self._payload(<const uint8_t*>frame.payload_ptr, frame.payload_size, frame.last_in_buffer,
                      frame.rsv1)

    cdef int _payload(self, const uint8_t* p, Py_ssize_t n, bint last_in_buffer,
                      bint compressed=False) except -1:
        """One binary message (the picows listener and the RawReader both end here).
        ``compressed`` (RSV1, permessage-deflate): counted as a delivery without being
        inflated (no sequence or stamp check; only deliveries are compressed in the bench)."""
        cdef uint64_t t = 0, sent, seq, s, last
        cdef int off, mt, pub
        if self.deliveries_only and not compressed:
            off = 12 if (n > 1 and (p[1] & 0x20)) else 4
            mt = p[off] if n > off else 0
            if mt != T_SET and mt != T_PUBLISH:
                self._control(mt, p, n)
                if last_in_buffer and self.board is not None:
                    self.board.poke()
                return 0
        # the clock is read only when it is needed (latency stamps, first/last frame of a read)
        if self.stamp_offset >= 0 or self.count == 0 or last_in_buffer:
            t = now_ns()
            if self.count == 0:
                self.first_ns = t
            self.last_ns = t
        self.count += 1
        self.total += 1
        self.bytes_in += n
        if self.stamp_offset >= 0 and n >= self.stamp_offset + 8 and not compressed:
            sent = load_u64(p + n - self.stamp_offset - 8)
            if t > sent:
                self.hist[_bucket(t - sent)] += 1
            else:
                self.hist[0] += 1
        if self.seq_offset >= 0 and n >= self.seq_offset + 8 and not compressed:
            seq = load_u64(p + n - self.seq_offset - 8)
            pub = <int>(seq >> SEQ_BITS)
            if pub >= self.max_pubs:
                pub = 0
            s = (seq & SEQ_MASK) + 1
            last = self.pub_last[pub]
            if last:
                if s <= last:
                    self.out_of_order += 1
                elif s > last + 1:
                    self.gaps += s - last - 1
            if s > last:
                self.pub_last[pub] = s
            self.last_seq = seq
        if self.capture:
            self.last_payload = PyBytes_FromStringAndSize(<const char*>p, n)
        if self.slot != NULL:
            lg_store(self.slot, self.total)
            if last_in_buffer:
                self.board.poke()
        if self.waiter is not None and self.count >= self.wait_for:
            w, self.waiter = self.waiter, None
            if not w.done():
                w.set_result(self.count)
        return 0

    cdef _control(self, int mt, const uint8_t* p, Py_ssize_t n):
        self.control += 1
        if mt == T_WELCOME:
            if not self.welcomed:
                self.welcome_ns = now_ns()
            self.welcomed = True
        elif mt == T_PONG:
            self.pongs += 1
        elif mt == T_ERROR:
            self.errors += 1
            if len(self.error_frames) < 5:
                self.error_frames.append(PyBytes_FromStringAndSize(<const char*>p, n))
        if self.ctl_waiter is not None:
            w, self.ctl_waiter = self.ctl_waiter, None
            if not w.done():
                w.set_result(mt)

    def take_over(self):
        """Replaces picows on this (idle, handshaken) connection with a ``RawReader``: the
        same counting with the WebSocket parsing done here, without a frame object per
        message.  Needs uvloop's TCP transport (``use_aiofastnet=False``)."""
        tr = self.transport.underlying_transport
        reader = RawReader(self, tr)
        tr.set_protocol(reader)
        return reader

    def reset(self):
        cdef int i
        self.count = 0
        self.bytes_in = 0
        self.first_ns = 0
        self.last_ns = 0
        self.out_of_order = 0
        self.gaps = 0
        self.last_seq = 0
        for i in range(HIST_BUCKETS):
            self.hist[i] = 0

    def reset_histogram(self):
        cdef int i
        for i in range(HIST_BUCKETS):
            self.hist[i] = 0

    def reset_sequences(self):
        """Forget the last sequence of every publisher (the next frame of each starts over)."""
        cdef int i
        for i in range(self.max_pubs):
            self.pub_last[i] = 0

    def histogram(self):
        """[(upper bound ns, count)] of the non-empty latency buckets."""
        cdef int i
        return [(_bucket_upper(i), self.hist[i]) for i in range(HIST_BUCKETS) if self.hist[i]]

    def histogram_raw(self):
        """{bucket index: count} of the non-empty buckets (mergeable across receivers)."""
        cdef int i
        return {i: self.hist[i] for i in range(HIST_BUCKETS) if self.hist[i]}


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


def bucket_upper(int b):
    """Upper bound (ns) of histogram bucket ``b``."""
    return _bucket_upper(b)


def bucket_of(uint64_t v):
    return _bucket(v)


cdef class RawReader:
    """An asyncio BufferedProtocol that reads the server → client side of a WebSocket
    connection (unmasked frames) and hands every binary message to its ``Receiver``.

    Installed by ``Receiver.take_over()`` once the upgrade, HELLO and SUBSCRIBE are done:
    picows' per-frame object and call go away, which is most of the receiving cost.
    Answers WebSocket pings (masked pong); a close frame or EOF ends the connection."""

    cdef Receiver rx
    cdef object transport
    cdef char* buf
    cdef Py_ssize_t cap
    cdef Py_ssize_t filled
    cdef public uint64_t reads

    def __cinit__(self, Receiver rx, transport, Py_ssize_t size=262144):
        self.rx = rx
        self.transport = transport
        self.cap = size
        self.buf = <char*>malloc(size)
        if self.buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.buf)

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, Py_ssize_t sizehint):
        cdef Py_ssize_t ncap
        cdef char* nb
        if self.cap - self.filled < 4096:
            ncap = self.cap * 2
            nb = <char*>realloc(self.buf, ncap)
            if nb == NULL:
                raise MemoryError()
            self.buf = nb
            self.cap = ncap
        return PyMemoryView_FromMemory(self.buf + self.filled, self.cap - self.filled, PyBUF_WRITE)

    def buffer_updated(self, Py_ssize_t nbytes):
        cdef Py_ssize_t pos = 0, end, hl, n, op
        cdef const uint8_t* b = <const uint8_t*>self.buf
        self.filled += nbytes
        self.reads += 1
        end = self.filled
        while end - pos >= 2:
            op = b[pos] & 0x0F
            n = b[pos + 1] & 0x7F
            hl = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (<Py_ssize_t>b[pos + 2] << 8) | b[pos + 3]
                hl = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = <Py_ssize_t>load_u64(b + pos + 2)
                hl = 10
            if b[pos + 1] & 0x80:          # a masked server frame: not expected
                hl += 4
            if end - pos < hl + n:
                break
            if op == 0x2:
                self.rx._payload(b + pos + hl, n, pos + hl + n == end, (b[pos] & 0x40) != 0)
            elif op == 0x9:
                self._pong(b + pos + hl, n)
            elif op == 0x8:
                self.transport.close()
                self.filled = 0
                return
            pos += hl + n
        if pos:
            if pos < end:
                memmove(self.buf, self.buf + pos, end - pos)
            self.filled = end - pos

    cdef _pong(self, const uint8_t* p, Py_ssize_t n):
        cdef bytes out
        cdef uint8_t* o
        cdef Py_ssize_t i
        if n > 125:
            return
        out = PyBytes_FromStringAndSize(NULL, 6 + n)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        o[0] = 0x8A
        o[1] = 0x80 | n
        o[2] = o[3] = o[4] = o[5] = 0          # zero mask key: payload unchanged
        for i in range(n):
            o[6 + i] = p[i]
        self.transport.write(out)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.rx.lost = True

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass


# --- pre-built frames -------------------------------------------------------------------

cdef inline void _put_masked(uint8_t* frame, Py_ssize_t hdr, Py_ssize_t off, uint64_t v,
                             const uint8_t* key) noexcept nogil:
    """Writes u64 ``v`` (big-endian) at payload offset ``off`` of a masked frame."""
    cdef uint8_t tmp[8]
    cdef int i
    store_u64(tmp, v)
    for i in range(8):
        frame[hdr + off + i] = tmp[i] ^ key[(off + i) & 3]


def stamp_frames(bytes block, Py_ssize_t frame_size, Py_ssize_t stamp_from_end, uint64_t first_seq,
                 Py_ssize_t seq_from_end=-1, uint32_t mask_key=0x5A3C9E17):
    """A copy of ``block`` (equal-size masked frames, as made by masked_frames) with a
    fresh CLOCK_MONOTONIC ns stamp (and optionally a sequence) written, masked, at the
    given offsets from the end of each frame.  Returns (block, next sequence)."""
    cdef Py_ssize_t n = len(block), pos
    cdef bytes out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(block), n)
    cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
    cdef uint8_t key[4]
    cdef uint64_t t = now_ns()
    cdef uint64_t seq = first_seq
    cdef Py_ssize_t payload_len = frame_size - (6 if frame_size - 6 < 126 else 8)
    cdef Py_ssize_t hdr = frame_size - payload_len
    _key(key, mask_key)
    pos = 0
    while pos + frame_size <= n:
        if stamp_from_end >= 0:
            _put_masked(o + pos, hdr, payload_len - stamp_from_end - 8, t, key)
        if seq_from_end >= 0:
            _put_masked(o + pos, hdr, payload_len - seq_from_end - 8, seq, key)
        seq += 1
        pos += frame_size
    return out, seq


# --- the publisher's pump ---------------------------------------------------------------

cdef class Pump:
    """Writes pre-masked frames to one or more publisher connections.

    Every connection has a template block of equal-size masked frames (``frames``:
    one list of CLASP frames per connection, all of one size); each write sends
    ``block`` consecutive frames of a connection's template (cycling), with the
    send time and a sequence word (connection's publisher id << 40 | sequence)
    written into each frame at ``stamp_from_end`` / ``seq_from_end`` bytes from
    the end of its CLASP frame (-1: not written).

    ``run(max_msgs)``: gated by the Board (at most ``window`` in flight), round-robin
    over the connections; returns (messages sent, state) with state 0 = budget used,
    1 = blocked by the window (call ``arm`` and wait for the eventfd), 2 = stopped.
    ``send_due(now)``: fixed-rate schedule (latency runs): sends the messages whose
    scheduled time has come, each stamped with its *scheduled* time.
    """

    cdef list transports
    cdef list templates
    cdef Py_ssize_t nconn
    cdef Py_ssize_t frame_size, hdr, payload_len, nframes
    cdef Py_ssize_t stamp_from_end, seq_from_end
    cdef public Py_ssize_t block
    cdef uint64_t* seqs
    cdef Py_ssize_t* positions
    cdef uint32_t* pub_ids
    cdef Py_ssize_t rr
    cdef Board board
    cdef int pub_index
    cdef uint8_t key[4]
    cdef public uint64_t sent
    cdef public uint64_t writes
    # schedule
    cdef uint64_t sched_start
    cdef uint64_t sched_rate
    cdef uint64_t sched_sent

    def __cinit__(self, list transports, list frames, Py_ssize_t block, *, Py_ssize_t stamp_from_end=-1,
                  Py_ssize_t seq_from_end=-1, list pub_ids=None, Board board=None, int pub_index=0,
                  uint32_t mask_key=0x5A3C9E17):
        cdef Py_ssize_t i, sz = -1
        if len(transports) != len(frames) or not transports:
            raise ValueError("one list of frames per transport")
        for fl in frames:
            if not fl:
                raise ValueError("empty frame list")
            for f in fl:
                if sz < 0:
                    sz = len(f)
                elif len(f) != sz:
                    raise ValueError("every frame of a pump must have the same size")
            if len(fl) != len(frames[0]):
                raise ValueError("every connection needs the same number of frames")
        if sz >= 65536:
            raise ValueError("frames must be shorter than 65536 bytes (2- or 4-byte WebSocket header)")
        self.transports = list(transports)
        self.nconn = len(transports)
        self.templates = [bytearray(masked_frames(fl, mask_key)) for fl in frames]
        self.nframes = len(frames[0])
        self.payload_len = sz
        self.hdr = 6 if sz < 126 else 8         # header + mask key
        self.frame_size = sz + self.hdr
        self.block = min(block, self.nframes) if block > 0 else 1
        self.stamp_from_end = stamp_from_end
        self.seq_from_end = seq_from_end
        self.seqs = <uint64_t*>calloc(self.nconn, sizeof(uint64_t))
        self.positions = <Py_ssize_t*>calloc(self.nconn, sizeof(Py_ssize_t))
        self.pub_ids = <uint32_t*>calloc(self.nconn, sizeof(uint32_t))
        if self.seqs == NULL or self.positions == NULL or self.pub_ids == NULL:
            raise MemoryError()
        for i in range(self.nconn):
            self.pub_ids[i] = pub_ids[i] if pub_ids is not None else i
        self.board = board
        self.pub_index = pub_index
        _key(self.key, mask_key)

    def __dealloc__(self):
        free(self.seqs)
        free(self.positions)
        free(self.pub_ids)

    cdef Py_ssize_t _write(self, Py_ssize_t c, Py_ssize_t count, uint64_t t, uint64_t interval_num,
                           uint64_t interval_den) except -1:
        """Stamps and writes ``count`` frames of connection ``c``, from its position."""
        cdef WSTransport tr = <WSTransport>self.transports[c]
        cdef bytearray tmpl = <bytearray>self.templates[c]
        cdef uint8_t* base = <uint8_t*>PyByteArray_AS_STRING(tmpl)
        cdef Py_ssize_t pos = self.positions[c], k, chunk, done = 0
        cdef uint8_t* f
        cdef uint64_t seqw
        if tr.is_disconnected or tr.is_close_frame_sent:
            raise ConnectionError("publisher connection closed")
        while done < count:
            chunk = count - done
            if chunk > self.nframes - pos:
                chunk = self.nframes - pos
            for k in range(chunk):
                f = base + (pos + k) * self.frame_size
                if self.stamp_from_end >= 0:
                    _put_masked(f, self.hdr, self.payload_len - self.stamp_from_end - 8,
                                t + ((done + k) * interval_num) // interval_den if interval_den else t,
                                self.key)
                if self.seq_from_end >= 0:
                    seqw = (<uint64_t>self.pub_ids[c] << SEQ_BITS) | (self.seqs[c] & SEQ_MASK)
                    _put_masked(f, self.hdr, self.payload_len - self.seq_from_end - 8, seqw, self.key)
                self.seqs[c] += 1
            tr._fast_write(<char*>(base + pos * self.frame_size), chunk * self.frame_size)
            self.writes += 1
            done += chunk
            pos += chunk
            if pos >= self.nframes:
                pos = 0
        self.positions[c] = pos
        self.sent += count
        return count

    def run(self, uint64_t max_msgs):
        cdef uint64_t n = 0
        cdef int64_t room
        cdef Board b = self.board
        if b is None:
            raise ValueError("run() needs a Board")
        while n < max_msgs:
            if lg_load(&b.w[B_STOP]):
                return n, 2
            room = <int64_t>b.w[B_WINDOW] - b.in_flight_c(False)
            if room < self.block:
                return n, 1
            self._write(self.rr, self.block, now_ns(), 0, 0)
            b.add_sent(self.pub_index, self.block)
            self.rr += 1
            if self.rr >= self.nconn:
                self.rr = 0
            n += self.block
        return n, 0

    def arm(self):
        """About to wait for the eventfd: returns the in-flight count read after arming
        (if there is room by now, call ``disarm`` and carry on)."""
        return self.board.arm(self.pub_index)

    def disarm(self):
        self.board.disarm(self.pub_index)

    def send_one(self, Py_ssize_t c=0):
        """One frame on connection ``c`` (stamped now); counted on the board if any."""
        self._write(c, 1, now_ns(), 0, 0)
        if self.board is not None:
            self.board.add_sent(self.pub_index, 1)

    def start_schedule(self, uint64_t rate, uint64_t start_ns=0):
        """Fixed-rate schedule: message k is due at start + k/rate (s)."""
        self.sched_start = start_ns if start_ns else now_ns()
        self.sched_rate = rate
        self.sched_sent = 0

    def send_due(self, uint64_t now=0):
        """Sends every message due by ``now`` (connection 0), stamped with its scheduled
        time; returns how many were sent."""
        cdef uint64_t due, n, first_t
        if now == 0:
            now = now_ns()
        if now < self.sched_start:
            return 0
        due = ((now - self.sched_start) * self.sched_rate) // 1000000000 + 1
        if due <= self.sched_sent:
            return 0
        n = due - self.sched_sent
        first_t = self.sched_start + (self.sched_sent * 1000000000) // self.sched_rate
        # stamp k: start + (sched_sent + k) * 1e9 / rate, written as first_t + k*1e9/rate
        self._write(0, n, first_t, 1000000000, self.sched_rate)
        self.sched_sent = due
        return n

    @property
    def scheduled(self):
        return self.sched_sent

    def next_due_ns(self):
        return self.sched_start + (self.sched_sent * 1000000000) // self.sched_rate


# --- the ceiling server -----------------------------------------------------------------

cdef class CeilingHub:
    """The ceiling server's shared state: subscriber connections and the flusher.

    ``tick_mode`` False: one ``send`` per delivery (a syscall each);
    True: frames are appended to a buffer per connection, flushed with one write
    per connection per loop tick (``loop.call_soon``)."""

    cdef public bint tick_mode
    cdef public list subs
    cdef list dirty
    cdef bint flush_scheduled
    cdef object loop
    cdef object _flush_cb
    cdef public bytes welcome
    cdef public bytes snapshot
    cdef public bytes pong
    cdef char* scratch
    cdef Py_ssize_t scratch_cap
    cdef public uint64_t frames_in
    cdef public uint64_t deliveries
    cdef public uint64_t flushes
    cdef public int connections

    def __cinit__(self, loop, bint tick_mode, bytes welcome, bytes snapshot, bytes pong):
        self.loop = loop
        self.tick_mode = tick_mode
        self.subs = []
        self.dirty = []
        self._flush_cb = self.flush
        self.welcome = welcome
        self.snapshot = snapshot
        self.pong = pong
        self.scratch_cap = 65536 + 64
        self.scratch = <char*>malloc(self.scratch_cap)
        if self.scratch == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.scratch)

    def flush(self):
        cdef CeilingConn c
        self.flush_scheduled = False
        dirty, self.dirty = self.dirty, []
        self.flushes += 1
        for c in dirty:
            c.dirty = False
            if c.out_size and c.transport is not None and not c.transport.is_disconnected:
                c.transport._fast_write(c.out, c.out_size)
            c.out_size = 0

    cdef void forward(self, CeilingConn src, const char* p, Py_ssize_t n) except *:
        cdef CeilingConn c
        cdef Py_ssize_t hl
        cdef uint8_t hdr[4]
        self.frames_in += 1
        if not self.tick_mode:
            if n + 14 > self.scratch_cap:
                self.scratch_cap = n + 64
                self.scratch = <char*>realloc(self.scratch, self.scratch_cap)
                if self.scratch == NULL:
                    raise MemoryError()
            memcpy(self.scratch + 14, p, n)
            for c in self.subs:
                if c is not src and c.transport is not None and not c.transport.is_disconnected:
                    c.transport.send_reuse_external_buffer(WSMsgType.BINARY, self.scratch + 14, n)
                    self.deliveries += 1
            return
        hdr[0] = 0x82
        if n < 126:
            hdr[1] = <uint8_t>n
            hl = 2
        else:
            hdr[1] = 126
            hdr[2] = (n >> 8) & 0xFF
            hdr[3] = n & 0xFF
            hl = 4
        for c in self.subs:
            if c is not src:
                c.append(hdr, hl, <const uint8_t*>p, n)
                self.deliveries += 1
                if not c.dirty:
                    c.dirty = True
                    self.dirty.append(c)
        if not self.flush_scheduled and self.dirty:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush_cb)


cdef class CeilingConn(WSListener):
    """One connection of the ceiling server: HELLO gets a canned WELCOME + SNAPSHOT,
    SUBSCRIBE makes it a subscriber, PING gets PONG, any other binary frame is
    forwarded unchanged to every subscriber connection."""

    cdef CeilingHub hub
    cdef public WSTransport transport
    cdef public bint is_sub
    cdef bint dirty
    cdef char* out
    cdef Py_ssize_t out_size
    cdef Py_ssize_t out_cap

    def __cinit__(self, CeilingHub hub):
        self.hub = hub

    def __dealloc__(self):
        free(self.out)

    cdef void append(self, const uint8_t* h, Py_ssize_t hl, const uint8_t* p, Py_ssize_t n) except *:
        cdef Py_ssize_t need = self.out_size + hl + n, cap
        cdef char* nb
        if need > self.out_cap:
            cap = self.out_cap if self.out_cap else 1024
            while cap < need:
                cap *= 2
            nb = <char*>realloc(self.out, cap)
            if nb == NULL:
                raise MemoryError()
            self.out = nb
            self.out_cap = cap
        memcpy(self.out + self.out_size, h, hl)
        memcpy(self.out + self.out_size + hl, p, n)
        self.out_size = need

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        self.hub.connections += 1

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef const uint8_t* p = <const uint8_t*>frame.payload_ptr
        cdef Py_ssize_t n = frame.payload_size
        cdef int off, mt
        if frame.msg_type != WSMsgType.BINARY or n < 5:
            return
        off = 12 if (p[1] & 0x20) else 4
        mt = p[off] if n > off else 0
        if mt == 0x01:          # HELLO
            transport.send(WSMsgType.BINARY, self.hub.welcome)
            transport.send(WSMsgType.BINARY, self.hub.snapshot)
        elif mt == 0x10:        # SUBSCRIBE
            if not self.is_sub:
                self.is_sub = True
                self.hub.subs.append(self)
        elif mt == 0x41:        # PING
            transport.send(WSMsgType.BINARY, self.hub.pong)
        else:
            self.hub.forward(self, <const char*>p, n)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.hub.connections -= 1
        if self.is_sub:
            self.is_sub = False
            try:
                self.hub.subs.remove(self)
            except ValueError:
                pass
