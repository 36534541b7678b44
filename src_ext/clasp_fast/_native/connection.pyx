"""The I/O edge's hot half: a picows listener per connection, and the flusher.

``Connection`` receives WebSocket frames from picows (a C-level call: it is a
``cdef class`` overriding the ``cpdef`` callbacks of picows' ``WSListener``)
and hands each binary message's bytes to the router core without copying.

``Edge`` drains what the core queued: once per event-loop tick it writes each
connection's pending output, already WebSocket-framed, with one call (one
``send(2)`` when the socket has room).  That batching is where throughput
comes from: one syscall per connection per tick, not one per message.

It also keeps connections alive: a once-a-second sweep closes connections that
sent no HELLO in time, pings idle ones and closes those that do not answer.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode
from clasp_fast._native.router cimport Router
from clasp_fast._native.outbox cimport Session, Endpoint
from clasp_fast._native.deflate cimport Inflater
from clasp_fast._native.tlsstream cimport TLSStream

import logging

log = logging.getLogger("clasp_fast.server")

# seconds a connection being closed has to complete the close before its socket is aborted
CLOSE_GRACE = 3.0


cdef inline bint valid_close_code(int code) noexcept:
    """Codes a close frame may carry (RFC 6455 7.4.1, the IANA registry, 3000-4999 for
    libraries and applications); picows lets 1005, 1006, 1015 and >= 5000 through."""
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


cdef class Connection(WSListener):
    """One WebSocket connection: picows callbacks in, router core calls out."""

    cdef readonly Session session
    cdef Router router
    cdef Edge edge
    cdef readonly WSTransport transport
    cdef TLSStream tls              # wss:// through tlsstream: the flush encrypts through it directly
    cdef bytearray fragments        # a fragmented message being put together
    cdef int kind                   # TEXT/BINARY of the fragmented message, 0 = none
    cdef bint compressed            # ... and it is compressed (RSV1 on its first frame)
    cdef bint deflate               # permessage-deflate agreed: RSV1 messages are inflated
    cdef bint inflate_reset         # client_no_context_takeover agreed
    cdef Inflater inflater          # created on the first compressed message
    cdef bint plain                 # on_ws_message not overridden: messages go to the router
    cdef Py_ssize_t max_message
    cdef long last_rx_tick
    cdef double opened_at            # loop time of the upgrade
    cdef long ping_tick             # tick of the unanswered ping, 0 = none
    cdef readonly bint closing
    cdef public int peer_port       # for the debug log only

    def __cinit__(self, Edge edge, Session session):
        self.edge = edge
        self.router = edge.router
        self.session = session
        self.max_message = edge.max_message
        session.io = self
        self.plain = type(self).on_ws_message is Connection.on_ws_message

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        # picows keeps the upgrade request and response (header multidicts, ~2 KB) for the
        # connection's lifetime; nothing needs them after the upgrade
        transport.request = None
        transport.response = None
        if type(transport.underlying_transport) is TLSStream:
            self.tls = <TLSStream>transport.underlying_transport
        self.opened_at = self.edge.loop.time()
        self.last_rx_tick = self.edge.tick
        self.edge.connections.add(self)

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType mt = frame.msg_type
        cdef Edge edge
        self.last_rx_tick = self.edge.tick
        self.ping_tick = 0                  # any traffic proves the peer is alive
        if frame.rsv2 | frame.rsv3 or (frame.rsv1 and not (
                self.deflate and (mt == WSMsgType.BINARY or mt == WSMsgType.TEXT))):
            # RSV1 marks a compressed message, on its first frame only, and only once
            # permessage-deflate was agreed (RFC 7692 6); nothing else may set one (RFC 6455 5.2)
            if self.deflate and frame.rsv1 and not (frame.rsv2 | frame.rsv3):
                self._protocol_error("RSV1 set on a continuation or control frame (RFC 7692 6)")
            else:
                self._protocol_error("reserved bits (RSV1-3) set without a negotiated extension")
            return
        if mt == WSMsgType.BINARY or mt == WSMsgType.TEXT:
            if self.kind:
                self._protocol_error("a new message started before the fragmented one finished")
            elif frame.rsv1:
                self.compressed = True
                self._inflate(mt, frame)
            elif frame.fin:
                if mt == WSMsgType.BINARY and self.plain:       # the hot path
                    edge = self.edge
                    edge.frame_count += 1
                    if edge.sample_mask == 0 or edge.frame_count & edge.sample_mask or edge.sample_at:
                        self.router.feed(self.session, <const uint8_t*>frame.payload_ptr, frame.payload_size)
                    else:   # one frame in sample_mask + 1 is timed to its write (metrics)
                        edge.sample(self.session, <const uint8_t*>frame.payload_ptr, frame.payload_size)
                else:
                    self._deliver(mt, <const uint8_t*>frame.payload_ptr, frame.payload_size)
            else:
                self.kind = <int>mt
                self.fragments = bytearray(frame.get_payload_as_memoryview())
                self._check_fragments()
        elif mt == WSMsgType.CONTINUATION:
            if not self.kind:
                self._protocol_error("continuation frame without a message to continue")
            elif self.compressed:
                self._inflate(<WSMsgType>self.kind, frame)
            else:
                self.fragments += frame.get_payload_as_memoryview()
                if self._check_fragments() and frame.fin:
                    data = self.fragments
                    mt = <WSMsgType>self.kind
                    self.fragments = None
                    self.kind = 0
                    self._deliver(mt, <const uint8_t*><char*>data, len(data))
        elif mt == WSMsgType.CLOSE:
            if frame.payload_size >= 2 and not valid_close_code(frame.get_close_code()):
                self._protocol_error(f"close code {<int>frame.get_close_code()} may not be sent "
                                     f"(RFC 6455 7.4)")
                return
            self.closing = True
            self.edge.write(self.session)
            if self.router.close_and_release(self.session, self._finish_close):
                # its locks are freed on the owner first; never wait more than a second
                self.edge.loop.call_later(1.0, self._finish_close)
            else:
                self._finish_close()
            return
        if frame.last_in_buffer:
            self.router.clock_fresh = False     # the next read batch reads the clock again
        if self.session.close_request is not None:
            code, reason = self.session.close_request
            self.close(code, reason)

    cdef int _inflate(self, WSMsgType mt, WSFrame frame) except -1:
        """One frame of a compressed message: inflated onto the message so far, delivered
        at its last frame; past max_frame_size + 12 bytes of output: close 1009."""
        cdef int over
        if self.inflater is None:           # created on the first compressed message only
            self.inflater = Inflater(15, self.inflate_reset, self.max_message)
        try:
            over = self.inflater.feed(<const uint8_t*>frame.payload_ptr, frame.payload_size, frame.fin)
        except ValueError as exc:
            self._end_message()
            self.close(WSCloseCode.INVALID_TEXT, str(exc))     # 1007: invalid payload data
            return 0
        if over:
            self._end_message()
            self.close(WSCloseCode.MESSAGE_TOO_BIG, f"message inflates to more than max_frame_size "
                                                    f"+ 12 ({self.max_message} bytes)")
        elif frame.fin:
            self.kind = 0
            self.compressed = False
            try:
                self._deliver(mt, self.inflater.out, self.inflater.out_size)
            finally:
                if self.inflater is not None:
                    self.inflater.done()
        else:
            self.kind = <int>mt
        return 0

    cdef void _end_message(self) noexcept:
        self.kind = 0
        self.compressed = False
        self.fragments = None
        if self.inflater is not None:
            self.inflater.done()

    cdef int _deliver(self, WSMsgType mt, const uint8_t* p, Py_ssize_t n) except -1:
        """A complete message, after every frame check (and inflated)."""
        if not self.plain:
            self.on_ws_message(mt, PyBytes_FromStringAndSize(<const char*>p, n))
        elif mt == WSMsgType.BINARY:
            self.router.feed(self.session, p, n)
        else:
            self.router.reject(self.session, "text WebSocket message: CLASP frames travel in "
                                             "binary messages")
        return 0

    def on_ws_message(self, WSMsgType msg_type, bytes payload):
        """Each complete data message, after every frame check (reserved bits, fragmentation,
        size cap) and inflated when it was compressed.  The server never calls this (it
        hands binary messages to the router without a Python object); a subclass that
        overrides it receives every message here instead (the Autobahn echo fixture)."""
        raise NotImplementedError

    def send_frame(self, bytes frame):
        """Queues one complete server frame (header and payload) as a direct reply:
        compressed when permessage-deflate was agreed (the Autobahn echo fixture)."""
        self.session.push_direct(<const uint8_t*><const char*>frame, len(frame))

    def accept_deflate(self, int server_bits, bint client_no_context_takeover):
        """permessage-deflate was agreed in the upgrade: compress output at ``server_bits``
        and accept compressed (RSV1) messages."""
        self.session.deflate_bits = server_bits
        self.deflate = True
        self.inflate_reset = client_no_context_takeover

    def _finish_close(self):
        """Answers the client's close frame and closes the socket (once)."""
        if self.transport is not None and not self.transport.is_close_frame_sent:
            self.transport.send_close(WSCloseCode.OK, b"")
            self.transport.disconnect()

    cdef bint _check_fragments(self) except -1:
        if len(self.fragments) > self.max_message:
            self._end_message()
            self.close(WSCloseCode.MESSAGE_TOO_BIG,
                       f"message larger than max_frame_size + 12 ({self.max_message} bytes)")
            return False
        return True

    cdef _protocol_error(self, str reason):
        self._end_message()
        self.close(WSCloseCode.PROTOCOL_ERROR, reason)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.closing = True
        self.edge.connections.discard(self)
        self.inflater = None
        self.router.close_session(self.session)
        self.session.io = None
        if log.isEnabledFor(10):
            log.debug("connection from %s:%d closed (session %s)", self.session.peer, self.peer_port,
                      self.session.id)

    cpdef pause_writing(self):
        self.session.paused = True

    cpdef resume_writing(self):
        self.session.paused = False
        self.session.refill()           # waiting SETs and unfinished snapshots go out now
        if self.session.out_size:
            self.session.mark_dirty()

    def close(self, int code, str reason=""):
        """Sends what is queued, then a close frame, then closes the socket."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self.session.close_request = None
        self.session.paused = False
        self.edge.write(self.session)
        cdef bytes r = reason.encode()[:120]
        self.transport.send_close(<WSCloseCode>code, r)
        self.transport.disconnect(True)
        # a peer that does not read never completes the close: free its socket and buffers
        self.edge.loop.call_later(CLOSE_GRACE, self._abort)

    def _abort(self):
        """The close did not complete within CLOSE_GRACE seconds: drop the socket."""
        if self.transport is not None and not self.transport.is_disconnected:
            log.info("connection from %s:%d did not complete the close within %g s; aborted",
                     self.session.peer, self.peer_port, CLOSE_GRACE)
            self.transport.underlying_transport.abort()

    @property
    def peer(self):
        return self.session.peer


cdef class Edge:
    """Per-process I/O state: the router's flusher, timers and keepalive sweep."""

    cdef readonly Router router
    cdef object loop
    cdef bint flush_scheduled
    cdef readonly long tick
    cdef readonly set connections
    cdef readonly Py_ssize_t max_message
    cdef double hello_timeout
    cdef double ping_interval
    cdef double pong_timeout
    cdef object timer
    cdef double timer_at
    cdef object sweeper
    cdef object _flush_cb
    # sampled latency (metrics): 1 frame in sample_mask + 1 that queued a delivery is timed
    # from its arrival to the flush that writes it; on_sample(seconds) gets the figure
    cdef public unsigned long sample_mask       # 2**k - 1; 0 = no sampling
    cdef unsigned long frame_count
    cdef double sample_at                       # loop time of the sampled frame, 0 = none
    cdef public object on_sample

    def __cinit__(self, Router router, loop, *, Py_ssize_t max_frame_size=65536,
                  double hello_timeout=10.0, double ping_interval=30.0, double pong_timeout=10.0):
        self.router = router
        self.loop = loop
        self.tick = 1
        self.connections = set()
        self.max_message = max_frame_size + 12
        self.hello_timeout = hello_timeout
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self._flush_cb = self.flush
        router.on_dirty = self.schedule_flush
        router.on_pressure = self.write
        router.on_timer = self.arm_timer
        deadline = router.next_deadline()
        if deadline is not None:
            self.arm_timer(deadline)
        self.sweeper = loop.call_later(1.0, self.sweep)

    def schedule_flush(self):
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush_cb)

    cdef int sample(self, Session s, const uint8_t* data, Py_ssize_t n) except -1:
        """Feeds one frame, and times it to its write if it queued a delivery."""
        cdef double t0 = self.loop.time()
        cdef unsigned long long routed = self.router.routed
        self.router.feed(s, data, n)
        if self.router.routed != routed:
            self.sample_at = t0
        return 0

    def flush(self):
        """Writes every connection's queued output: one call per connection."""
        cdef Endpoint ep
        self.flush_scheduled = False
        for ep in self.router.take_dirty():
            try:
                self.write(ep)
            except Exception:           # one broken socket must not hold the others' output
                log.exception("writing to %r failed; its output is dropped", ep)
                ep.reset_output()
        if self.sample_at:
            if self.on_sample is not None:
                self.on_sample(self.loop.time() - self.sample_at)
            self.sample_at = 0

    cpdef write(self, Endpoint ep):
        cdef Connection conn
        cdef WSTransport t
        if ep.shut:
            # the core asked for it to be closed (slow consumer, output caps)
            conn = <Connection>ep.io if ep.io is not None else None
            if conn is not None and (<Session>ep).close_request is not None:
                code, reason = (<Session>ep).close_request
                conn.close(code, reason)
            return
        if ep.out_size == 0 or ep.paused:
            return
        if ep.is_peer:
            # a bus link to another worker: an asyncio transport
            if ep.io is not None and not ep.io.is_closing():
                ep.io.write(PyBytes_FromStringAndSize(<const char*>ep.out, ep.out_size))
            ep.reset_output()
            return
        conn = <Connection>ep.io if ep.io is not None else None
        if conn is None or conn.transport is None:
            ep.reset_output()
            return
        t = conn.transport
        if t.is_disconnected or t.is_close_frame_sent:
            ep.reset_output()
            return
        if conn.tls is not None:
            conn.tls.send(<const char*>ep.out, ep.out_size)    # one SSL_write, one send(2)
        else:
            t._fast_write(<char*>ep.out, ep.out_size)
        ep.reset_output()
        if conn.session.close_request is not None and not conn.closing and \
                (not conn.session.welcomed or conn.session.access is not None):
            # token mode: the core refused a HELLO answered after a barrier, or revoked a
            # token, outside a read: close once its ERROR 401 is out
            conn.close(*conn.session.close_request)
            return
        if not ep.paused:
            ep.refill()                 # drained: waiting SETs, the rest of a snapshot

    # --- timers -------------------------------------------------------------------

    def arm_timer(self, double deadline):
        if self.timer is not None:
            if deadline >= self.timer_at:
                return
            self.timer.cancel()
        self.timer_at = deadline
        self.timer = self.loop.call_later(max(0.0, deadline - self.router.clock()), self._on_timer)

    def _on_timer(self):
        self.timer = None
        self.router.run_timers()
        deadline = self.router.next_deadline()
        if deadline is not None:
            self.arm_timer(deadline)

    # --- keepalive ------------------------------------------------------------------

    def sweep(self):
        """Once a second: HELLO timeout, keepalive pings, pong timeout.

        Frames only record the current tick (no clock read per frame), so a
        connection is pinged after ``ping_interval`` + up to 1 s of silence:
        late by at most a second, never early."""
        cdef Connection c
        cdef double now = self.loop.time()
        self.tick += 1
        self.sweeper = self.loop.call_later(1.0, self.sweep)
        for c in list(self.connections):
            if c.closing:
                continue
            if c.session.stalled and c.session.stalled_too_long():
                continue                # closed at the flush its close request scheduled
            if not c.session.welcomed and now - c.opened_at >= self.hello_timeout:
                c.close(WSCloseCode.POLICY_VIOLATION, f"no HELLO within hello_timeout "
                                                      f"({self.hello_timeout:g} s)")
            elif c.ping_tick and self.tick - c.ping_tick >= self.pong_timeout:
                c.close(WSCloseCode.GOING_AWAY, f"no pong within pong_timeout ({self.pong_timeout:g} s)")
            elif not c.ping_tick and self.ping_interval > 0 \
                    and self.tick - c.last_rx_tick > self.ping_interval:
                c.ping_tick = self.tick
                c.transport.send_ping(b"")

    def close_all(self, int code, str reason):
        cdef Connection c
        for c in list(self.connections):
            c.close(code, reason)

    def stop(self):
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
