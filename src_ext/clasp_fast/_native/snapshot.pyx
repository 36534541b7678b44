"""SNAPSHOT writing (see snapshot.pxd): params selected by pattern, oldest write
first, packed into frames below 65535 bytes and queued on a session."""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint64_t
from libc.stdlib cimport malloc, free, qsort
from libc.string cimport memcpy

from clasp_fast._native.bytesmap cimport bm_hash
from clasp_fast._native.patterns cimport Seg, MAX_SEGMENTS, Pattern, split_address
from clasp_fast._native.params cimport ParamStore, Param, param_expired, param_get
from clasp_fast._native.wire cimport (ws_binary_header, clasp_header, store_u16, store_u64, MAX_PAYLOAD,
                                     MAX_WS_HEADER, T_SNAPSHOT)
from clasp_fast._native.outbox cimport Session

from clasp_fast._native.wire import decode_payload


cdef int _by_write_order(const void* a, const void* b) noexcept nogil:
    cdef Param* x = (<Param**>a)[0]
    cdef Param* y = (<Param**>b)[0]
    return -1 if x.order < y.order else (1 if x.order > y.order else 0)


cdef int write_snapshot(ParamStore params, Session s, object pattern, bint always, uint64_t now,
                        uint64_t since=0) except -1:
    """SNAPSHOT(s) of the params matching ``pattern`` (None: all), oldest write first (a
    client replays the state in the order it was written), split to fit 65535 bytes.
    ``since`` (wall µs, 0: none): only the params written after it, unless a matching param
    expired after it (the client's copy of that one is stale: then all of them).
    Written as the connection drains: the first SNAPSHOT_STEP bytes now, the rest by a
    cursor that the session resumes each time its output was written (Endpoint.refill), so
    a client that does not read holds one step of it, not the whole state."""
    cdef Pattern pat = Pattern(pattern) if pattern is not None else None
    cdef SnapshotCursor c = SnapshotCursor(params, pat, always, now)
    if since and not _expired_since(params, pat, since, now):
        c.since = since
    if s.cursors:
        s.cursors.append(c)             # after the snapshots already being written
    elif not c.resume(s, SNAPSHOT_STEP):
        if s.cursors is None:
            s.cursors = []
        s.cursors.append(c)
    return 0


cdef bint _expired_since(ParamStore params, Pattern pat, uint64_t since, uint64_t now) except -1:
    """A param matching ``pat`` expired after ``since``: the client's copy of it is stale, so
    a replay from ``since`` is not enough (the whole snapshot goes)."""
    cdef Seg asegs[MAX_SEGMENTS]
    cdef int na
    cdef Py_ssize_t i
    cdef Param* prm
    for i in range(params.capacity()):
        prm = params.slot(i)
        if prm == NULL or not param_expired(prm, now) or prm.expires_us <= since:
            continue
        if pat is not None:
            na = split_address(prm.address, prm.addr_len, asegs)
            if na < 0 or not pat.matches(prm.address, asegs, na):
                continue
        return True
    return False
    return 0


cdef class SnapshotCursor:
    """Where a snapshot being written stands: every param with a write order above ``last``
    (and matching) is still to go.  A param written again meanwhile moves past ``last`` and
    goes out with its new value, so the client never ends on an older one."""

    def __cinit__(self, ParamStore params, Pattern pattern, bint always, uint64_t now):
        self.params = params
        self.pattern = pattern
        self.always = always
        self.now = now

    def resume(self, Session s, Py_ssize_t budget) -> bool:
        """Queues about ``budget`` bytes more (0: SNAPSHOT_STEP; at least one param); True
        when finished."""
        cdef SnapshotWriter w
        cdef ParamStore params = self.params
        cdef Seg asegs[MAX_SEGMENTS]
        cdef int na
        cdef Py_ssize_t i, count = 0, step = 0
        cdef Param* prm
        cdef bint done = True
        if s.closed or s.shut:
            return True
        if budget <= 0:
            budget = SNAPSHOT_STEP
        cdef Param** found = <Param**>malloc(max(len(params), 1) * sizeof(Param*))
        # token mode: the WELCOME snapshot holds only what the session may read (a SUBSCRIBE
        # pattern was checked whole, so its snapshot needs no filter)
        readable = s.access.may_read if self.pattern is None and s.access is not None \
            and not s.access.read_all else None
        if found == NULL:
            raise MemoryError()
        try:
            for i in range(params.capacity()):
                prm = params.slot(i)
                if prm == NULL or prm.order <= self.last or param_expired(prm, self.now):
                    continue
                if self.since and prm.timestamp_us <= self.since:
                    continue
                if self.pattern is not None:
                    na = split_address(prm.address, prm.addr_len, asegs)
                    if na < 0 or not self.pattern.matches(prm.address, asegs, na):
                        continue
                if readable is not None and not readable(prm.address[:prm.addr_len].decode()):
                    continue
                found[count] = prm
                count += 1
            if count > 1:
                qsort(found, count, sizeof(Param*), _by_write_order)
            w = SnapshotWriter(s)
            w.sent_any = self.sent_any
            for i in range(count):
                if step >= budget:
                    done = False
                    break
                w.add(found[i])
                step += w.entry_size(found[i])
                self.last = found[i].order
            w.finish(self.always)
            self.sent_any = w.sent_any
        finally:
            free(found)
        return done


cdef list params_where(ParamStore params, str text, bint exact, uint64_t now):
    """The params at ``text`` (``exact``) or matching the pattern ``text``, as ParamValues."""
    cdef SnapshotWriter w = SnapshotWriter(None)
    cdef bytes b = text.encode()
    cdef Param* prm
    cdef Seg asegs[MAX_SEGMENTS]
    cdef int na
    cdef Pattern pat
    cdef Py_ssize_t i
    out = []
    if exact:
        prm = param_get(params, b, len(b), bm_hash(b, len(b)))
        if prm != NULL and not param_expired(prm, now):
            out.append(w.to_value(prm))
        return out
    pat = Pattern(text)         # ValueError for an invalid pattern
    for i in range(params.capacity()):
        prm = params.slot(i)
        if prm == NULL or param_expired(prm, now):
            continue
        na = split_address(prm.address, prm.addr_len, asegs)
        if na >= 0 and pat.matches(prm.address, asegs, na):
            out.append(w.to_value(prm))
    return out


cdef class SnapshotWriter:
    """Builds SNAPSHOT frames param by param, starting a new frame before 65535 bytes."""

    def __cinit__(self, Session session):
        self.session = session
        self.buf = <uint8_t*>malloc(MAX_WS_HEADER + 4 + MAX_PAYLOAD)
        if self.buf == NULL:
            raise MemoryError()
        self._start()

    def __dealloc__(self):
        free(self.buf)

    cdef void _start(self) noexcept:
        self.buf[MAX_WS_HEADER + 4] = T_SNAPSHOT
        self.size = SNAPSHOT_HEAD
        self.count = 0

    cdef Py_ssize_t entry_size(self, Param* prm) noexcept:
        return 2 + prm.addr_len + prm.value_len + 8 + 1 + (2 + prm.writer_len if prm.writer_len else 0) + 8

    cdef int add(self, Param* prm) except -1:
        cdef Py_ssize_t need = self.entry_size(prm)
        cdef uint8_t* o
        if self.size + need > MAX_PAYLOAD or self.count == 65535:
            self._emit()
            self._start()
        o = self.buf + MAX_WS_HEADER + 4 + self.size
        store_u16(o, <uint16_t>prm.addr_len)
        memcpy(o + 2, prm.address, prm.addr_len)
        o += 2 + prm.addr_len
        memcpy(o, prm.value, prm.value_len)
        o += prm.value_len
        store_u64(o, prm.revision)
        o += 8
        if prm.writer_len:
            o[0] = 0x03
            store_u16(o + 1, prm.writer_len)
            memcpy(o + 3, prm.writer, prm.writer_len)
            o += 3 + prm.writer_len
        else:
            o[0] = 0x02
            o += 1
        store_u64(o, prm.timestamp_us)
        self.size += need
        self.count += 1
        return 0

    cdef int _emit(self) except -1:
        cdef uint8_t* payload = self.buf + MAX_WS_HEADER + 4
        cdef uint8_t hdr[MAX_WS_HEADER]
        cdef Py_ssize_t hl = ws_binary_header(hdr, 4 + self.size)
        cdef uint8_t* start = payload - 4 - hl
        store_u16(payload + 1, self.count)
        memcpy(start, hdr, hl)
        clasp_header(payload - 4, 0, self.size)
        self.sent_any = True
        if self.session is not None:
            self.session.push_direct(start, hl + 4 + self.size)
        return 0

    cdef int finish(self, bint always) except -1:
        """Sends the last frame if it holds params (or, with ``always``, if none was sent)."""
        if self.count or (always and not self.sent_any):
            self._emit()
        return 0

    cdef object to_value(self, Param* prm):
        """A ParamValue of ``prm`` (through the codec, so it decodes like a client would)."""
        self._start()
        self.add(prm)
        cdef uint8_t* payload = self.buf + MAX_WS_HEADER + 4
        store_u16(payload + 1, 1)
        return decode_payload(PyBytes_FromStringAndSize(<const char*>payload, self.size)).params[0]
