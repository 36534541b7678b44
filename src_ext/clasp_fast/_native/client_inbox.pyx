# cython: freethreading_compatible=False
"""The client's receive path: picows listener, SET/PUBLISH in place, callbacks.

``clasp_fast.client`` receives through ``Listener``, a ``cdef class`` overriding
picows' ``WSListener`` callbacks (called from C).  A binary message that is a SET
or a PUBLISH is parsed in place by the router's own parsers (``parse_header``,
``parse_set``, ``parse_publish`` and ``rd_value`` of ``wire.pxd``); only the value
object is built.  The address string and the callbacks it reaches are kept per
address in a ``Route`` (found through a C hash map of the address bytes, so a
known address costs no allocation); a route is worked out again with the
client's pattern trie when the trie has changed (``Trie.gen``).

Every other message, a frame that does not parse, and everything when the client
records messages (``Clasp(record=True)``) go to the client's Python path
(``Clasp._on_frame``), which decodes with ``decode_frame``; that path applies
SET and PUBLISH through ``Inbox.apply_set`` / ``apply_publish``, the same code.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode

from clasp_fast._native.wire cimport (
    FrameHeader, Reader, SetView, PublishView, parse_header, parse_set, parse_publish,
    rd_value, E_OK, T_SET, T_PUBLISH, SET_HAS_REVISION, SIG_PARAM, SIG_TIMELINE)
from clasp_fast._native.bytesmap cimport BytesMap, bm_init, bm_free, bm_clear, bm_hash, bm_get, bm_put
from clasp_fast._native.patterns cimport Trie

import logging
from asyncio import ensure_future
from inspect import isawaitable

log = logging.getLogger("clasp_fast.client")

cdef enum:
    MAX_ROUTES = 65536          # addresses remembered; past that the cache starts again


cdef int deliver_one(object callback, object value, str address, object client) except -1:
    """Calls ``callback(value, address)``; a coroutine it returns becomes a task, an
    exception it raises goes to the client's ``on_error`` callbacks."""
    try:
        res = callback(value, address)
        if res is not None and isawaitable(res):
            ensure_future(res).add_done_callback(client._task_done)
    except Exception as exc:      # a user's callback must not break the client
        client._report(exc)
    return 0


def deliver(callback, value, str address, client):
    """``deliver_one`` for Python (``Subscription.deliver``: snapshot values)."""
    deliver_one(callback, value, address, client)


cdef class Route:
    """One address this client received: its string and, for trie generation
    ``gen``, the callbacks it reaches per signal type (index 0: SET)."""
    cdef readonly bytes key
    cdef readonly str address
    cdef uint64_t gen
    cdef tuple by_signal


cdef class Inbox:
    """Applies received SETs (cache, revision, callbacks) and PUBLISHes (callbacks)."""
    cdef readonly dict values           # address -> last value
    cdef readonly dict revisions        # address -> its revision
    cdef readonly Trie trie
    cdef object client
    cdef public bint native             # False: every frame takes the Python path
    cdef BytesMap map                   # address bytes -> Route (borrowed; owned by routes)
    cdef dict routes                    # address bytes -> Route

    def __cinit__(self, client, Trie trie, bint native=True):
        bm_init(&self.map, 64)
        self.values = {}
        self.revisions = {}
        self.routes = {}
        self.trie = trie
        self.client = client
        self.native = native

    def __dealloc__(self):
        bm_free(&self.map)

    cdef Route route_at(self, const char* p, Py_ssize_t n):
        """The route of an address given as (validated UTF-8) bytes, up to date."""
        cdef uint64_t h = bm_hash(p, n)
        cdef void* found = bm_get(&self.map, p, n, h)
        cdef Route r
        if found != NULL:
            r = <Route>found
        else:
            if self.map.count >= MAX_ROUTES:
                bm_clear(&self.map)
                self.routes.clear()
            r = Route.__new__(Route)
            r.key = PyBytes_FromStringAndSize(p, n)
            r.address = r.key.decode()
            self.routes[r.key] = r
            bm_put(&self.map, <const char*>r.key, n, h, <void*>r)
        if r.by_signal is None or r.gen != self.trie.gen:
            self._build(r)
        return r

    cdef _build(self, Route r):
        cdef int i, mask
        by = ([], [], [], [], [])
        try:
            entries = self.trie.lookup(r.address)
        except ValueError:              # not a valid address: no pattern matches it
            entries = ()
        for e in entries:
            sub = e[0]
            callback = sub.callback
            if callback is None:
                continue
            mask = sub.mask or 0xFF     # 0 and 0xFF both mean every type (TypeMask)
            for i in range(SIG_TIMELINE + 1):
                if mask & (1 << i):
                    (<list>by[i]).append(callback)
        r.by_signal = by
        r.gen = self.trie.gen

    def route(self, str address):
        """The route of ``address`` (tests)."""
        cdef bytes b = address.encode()
        return self.route_at(b, len(b))

    cdef int _set(self, Route r, value, revision) except -1:
        cdef str address = r.address
        self.values[address] = value
        if revision is not None:
            self.revisions[address] = revision
        for callback in <list>r.by_signal[SIG_PARAM]:
            deliver_one(callback, value, address, self.client)
        return 0

    cdef int _publish(self, Route r, value, uint8_t signal) except -1:
        cdef str address = r.address
        for callback in <list>r.by_signal[signal]:
            deliver_one(callback, value, address, self.client)
        return 0

    def apply_set(self, str address, value, revision):
        """A decoded SET: cache it, call the matching callbacks."""
        cdef bytes b = address.encode()
        self._set(self.route_at(b, len(b)), value, revision)

    def apply_publish(self, str address, value, int signal):
        """A decoded PUBLISH: call the callbacks of its signal type."""
        cdef bytes b = address.encode()
        self._publish(self.route_at(b, len(b)), value, signal if 0 <= signal <= SIG_TIMELINE else 1)

    def receive(self, frame):
        """``feed`` for Python (tests): True if the frame was a SET or PUBLISH it applied."""
        cdef const uint8_t[::1] view = frame
        if view.shape[0] == 0:
            return False
        return self.feed(&view[0], view.shape[0])

    cdef bint feed(self, const uint8_t* p, Py_ssize_t n) except -1:
        """Applies the CLASP frame ``p[:n]`` if it is a valid SET or PUBLISH; False
        otherwise (the Python path takes it)."""
        cdef FrameHeader h
        cdef SetView sv
        cdef PublishView pv
        cdef Reader r
        cdef Route route
        if not self.native or parse_header(p, n, &h) != E_OK:
            return False
        p += h.header_size
        n = h.payload_size
        if p[0] == T_SET:
            if parse_set(p, n, &sv, &r) != E_OK:
                return False
            route = self.route_at(<const char*>p + sv.addr_pos, sv.addr_len)
            r.pos = sv.value_pos
            value = rd_value(&r, sv.vtype, 0)
            self._set(route, value, sv.revision if sv.flags & SET_HAS_REVISION else None)
            return True
        if p[0] == T_PUBLISH:
            if parse_publish(p, n, &pv, &r) != E_OK:
                return False
            route = self.route_at(<const char*>p + pv.addr_pos, pv.addr_len)
            value = None                # no value, or samples: callbacks get None
            if pv.indicator == 1:
                r.pos = pv.value_pos + 1
                value = rd_value(&r, p[pv.value_pos], 0)
            self._publish(route, value, pv.signal)
            return True
        return False


cdef class Listener(WSListener):
    """The client's picows listener: SET/PUBLISH to the ``Inbox``, the rest to Python."""
    cdef object client
    cdef Inbox inbox

    def __init__(self, client, Inbox inbox):
        self.client = client
        self.inbox = inbox

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType t = frame.msg_type
        if t == WSMsgType.BINARY:
            if not self.inbox.feed(<const uint8_t*>frame.payload_ptr, frame.payload_size):
                self.client._on_frame(frame.get_payload_as_bytes())
        elif t == WSMsgType.CLOSE:
            self.client.close_code = frame.get_close_code()
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif t == WSMsgType.TEXT:
            log.warning("clasp: ignoring a text WebSocket message (CLASP frames are binary)")

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.client._on_disconnected(self)

    cpdef pause_writing(self):
        self.client._writable.clear()

    cpdef resume_writing(self):
        self.client._writable.set()
