# cython: freethreading_compatible=False
"""The CLASP wire format: frame header, every message layout, every value code.

Two levels share one parser per layout:

* C level (see wire.pxd): ``parse_header``, ``parse_set``, ``parse_publish``,
  ``skip_value`` read a frame in place and build no Python objects.  The router's
  hot path uses them directly.
* Python level: ``decode_frame`` / ``decode_payload`` turn bytes into the message
  dataclasses of ``clasp_fast.messages``; ``encode_frame`` /
  ``encode_payload`` turn messages into bytes, always in the binary v3 layout the
  Rust router uses.  SET and PUBLISH decoding reuse the C-level parsers.

Anything a frame can get wrong raises ``DecodeError`` with a sentence naming the
field, the offset and what was expected.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, int8_t, int16_t, int32_t
from libc.string cimport memcpy
from libc.stdlib cimport malloc, realloc, free

import struct as _struct

_F64 = _struct.Struct(">d")
_F32 = _struct.Struct(">f")

import clasp_fast.messages as _messages
from clasp_fast.messages import legacy as legacy_codec
from clasp_fast.messages.errors import DecodeError, EncodeError

cdef object M = _messages
cdef object NO_VALUE = _messages.NO_VALUE


TYPE_NAMES = {
    0x01: "HELLO", 0x02: "WELCOME", 0x03: "ANNOUNCE", 0x04: "FEDERATION_SYNC",
    0x10: "SUBSCRIBE", 0x11: "UNSUBSCRIBE", 0x20: "PUBLISH", 0x21: "SET", 0x22: "GET",
    0x23: "SNAPSHOT", 0x24: "REPLAY", 0x30: "BUNDLE", 0x40: "SYNC", 0x41: "PING",
    0x42: "PONG", 0x50: "ACK", 0x51: "ERROR", 0x60: "QUERY", 0x61: "RESULT",
}


# ---------------------------------------------------------------------------
# C-level primitives
# ---------------------------------------------------------------------------

cdef bint is_msgpack_start(uint8_t b) noexcept nogil:
    return (b & 0xF0) == 0x80 or b == 0xDE or b == 0xDF


cdef void skip_value(Reader* r, uint8_t code, int depth) noexcept nogil:
    cdef Py_ssize_t count, i, dummy
    if r.err:
        return
    if code > V_MAP:
        r.err = E_VALUE_TYPE
        r.what = b"value"
        r.err_pos = r.pos
        r.err_need = code
        return
    r.codes_seen |= (1u << code)
    if code == V_NULL:
        return
    elif code == V_BOOL or code == V_I8:
        _skip(r, 1, b"value")
    elif code == V_I16:
        _skip(r, 2, b"value")
    elif code == V_I32 or code == V_F32:
        _skip(r, 4, b"value")
    elif code == V_I64 or code == V_F64:
        _skip(r, 8, b"value")
    elif code == V_STRING:
        rd_str(r, &dummy, b"string value")
    elif code == V_BYTES:
        count = rd_u16(r, b"bytes length")
        _skip(r, count, b"bytes value")
    else:
        if depth >= MAX_VALUE_DEPTH:
            fail(r, E_DEPTH, b"value")
            return
        count = rd_u16(r, b"array/map count")
        for i in range(count):
            if r.err:
                return
            if code == V_MAP:
                rd_str(r, &dummy, b"map key")
            skip_value(r, rd_u8(r, b"item type"), depth + 1)


cdef inline void _skip(Reader* r, Py_ssize_t n, const char* what) noexcept nogil:
    if need(r, n, what):
        r.pos += n


cdef str reader_error(Reader* r, str context):
    what = (<bytes>r.what).decode()
    if r.err == E_TRUNCATED:
        return (f"truncated {context}: {what} needs {r.err_need} byte(s) at offset "
                f"{r.err_pos}, only {r.end - r.err_pos} left")
    if r.err == E_UTF8:
        return f"invalid UTF-8 in {context} {what} at offset {r.err_pos}"
    if r.err == E_VALUE_TYPE:
        return (f"unknown value type 0x{r.err_need:02x} in {context} at offset {r.err_pos} "
                f"(value codes are 0x00-0x0b)")
    if r.err == E_DEPTH:
        return f"{context} value nested deeper than {MAX_VALUE_DEPTH} levels"
    if r.err == E_BAD_FIELD:
        return f"invalid {what} in {context} at offset {r.err_pos}"
    return f"malformed {context}"


def header_error(int err, head, Py_ssize_t n) -> str:
    """Text for a parse_header failure of an ``n``-byte frame that starts with ``head``."""
    if err == E_TRUNCATED:
        return (f"frame too short: {n} byte(s); a CLASP header is 4 bytes "
                f"(12 with the timestamp flag 0x20)")
    if err == E_MAGIC:
        return f"bad magic byte 0x{head[0]:02x}: a CLASP frame starts with 0x53"
    if err == E_EMPTY:
        return "empty payload: a CLASP frame carries at least the message type byte"
    if err == E_LENGTH:
        hs = 12 if head[1] & 0x20 else 4
        declared = (head[2] << 8) | head[3]
        return (f"frame length mismatch: the header declares {declared} payload byte(s) "
                f"but the message carries {n - hs}")
    return "malformed frame header"


# ---------------------------------------------------------------------------
# Python level: decoding
# ---------------------------------------------------------------------------

cdef inline str _str_at(const uint8_t* buf, Py_ssize_t pos, Py_ssize_t n):
    return PyUnicode_DecodeUTF8(<const char*>buf + pos, n, NULL)


cdef str _rd_pystr(Reader* r, const char* what):
    cdef Py_ssize_t n
    cdef Py_ssize_t pos = rd_str(r, &n, what)
    if r.err:
        return None
    return _str_at(r.buf, pos, n)


cdef object rd_value(Reader* r, uint8_t code, int depth):
    """Builds the Python object for a value already validated by skip_value."""
    cdef Py_ssize_t count, i, n, pos
    cdef const uint8_t* p
    cdef uint64_t u
    cdef double f
    if code == V_NULL:
        return None
    p = r.buf + r.pos
    if code == V_BOOL:
        r.pos += 1
        return p[0] != 0
    if code == V_I8:
        r.pos += 1
        return <int8_t>p[0]
    if code == V_I16:
        r.pos += 2
        return <int16_t>load_u16(p)
    if code == V_I32:
        r.pos += 4
        return <int32_t>load_u32(p)
    if code == V_I64:
        r.pos += 8
        return <int64_t>load_u64(p)
    if code == V_F32:
        r.pos += 4
        return _F32.unpack_from(PyBytes_FromStringAndSize(<const char*>p, 4))[0]
    if code == V_F64:
        r.pos += 8
        u = load_u64(p)
        memcpy(&f, &u, 8)          # IEEE 754 binary64, bit for bit
        return f
    if code == V_STRING:
        n = load_u16(p)
        r.pos += 2 + n
        return _str_at(p, 2, n)
    if code == V_BYTES:
        n = load_u16(p)
        r.pos += 2 + n
        return PyBytes_FromStringAndSize(<const char*>p + 2, n)
    count = load_u16(p)
    r.pos += 2
    if code == V_ARRAY:
        out = []
        for i in range(count):
            code = r.buf[r.pos]
            r.pos += 1
            out.append(rd_value(r, code, depth + 1))
        return out
    d = {}
    for i in range(count):
        n = load_u16(r.buf + r.pos)
        key = _str_at(r.buf, r.pos + 2, n)
        r.pos += 2 + n
        code = r.buf[r.pos]
        r.pos += 1
        d[key] = rd_value(r, code, depth + 1)
    return d


cdef object _rd_typed_value(Reader* r, const char* what):
    """type byte + value data, validated then built."""
    cdef uint8_t code = rd_u8(r, what)
    cdef Py_ssize_t start = r.pos
    skip_value(r, code, 0)
    if r.err:
        return None
    r.pos = start
    return rd_value(r, code, 0)


cdef _check(Reader* r, str context):
    if r.err:
        raise DecodeError(reader_error(r, context))


cdef object _signal(uint8_t code):
    return M.SignalType(code if code <= SIG_TIMELINE else SIG_EVENT)


cdef object _decode_set(const uint8_t* p, Py_ssize_t n):
    cdef SetView v
    cdef Reader r
    if parse_set(p, n, &v, &r):
        raise DecodeError(reader_error(&r, "SET"))
    r.pos = v.value_pos
    value = rd_value(&r, v.vtype, 0)
    return M.Set(
        address=_str_at(p, v.addr_pos, v.addr_len),
        value=value,
        revision=v.revision if v.flags & SET_HAS_REVISION else None,
        lock=bool(v.flags & SET_LOCK),
        unlock=bool(v.flags & SET_UNLOCK),
        ttl=M.Ttl.from_raw(v.ttl) if v.flags & SET_HAS_TTL else None,
    )


cdef object _decode_publish(const uint8_t* p, Py_ssize_t n):
    cdef PublishView v
    cdef Reader r
    cdef Py_ssize_t count, i
    if parse_publish(p, n, &v, &r):
        raise DecodeError(reader_error(&r, "PUBLISH"))
    value = NO_VALUE
    samples = None
    r.pos = v.value_pos
    if v.indicator == 1:
        code = r.buf[r.pos]
        r.pos += 1
        value = rd_value(&r, code, 0)
    elif v.indicator == 2:
        count = load_u16(p + v.value_pos)
        samples = [_F64.unpack_from(PyBytes_FromStringAndSize(<const char*>p + v.value_pos + 2 + 8 * i, 8))[0]
                   for i in range(count)]
    return M.Publish(
        address=_str_at(p, v.addr_pos, v.addr_len),
        signal=M.SignalType(v.signal),
        value=value,
        phase=M.Phase(v.phase),
        timestamp=v.timestamp if v.flags & PUB_HAS_TIMESTAMP else None,
        id=v.gesture_id if v.flags & PUB_HAS_ID else None,
        samples=samples,
        rate=v.rate if v.has_rate else None,
    )


cdef object _decode_signal_defs(Reader* r, bint with_meta):
    cdef Py_ssize_t count = rd_u16(r, b"signal count")
    cdef uint8_t opt, mflags
    signals = []
    for _ in range(count):
        if r.err:
            break
        address = _rd_pystr(r, b"signal address")
        sig = _signal(rd_u8(r, b"signal type"))
        opt = rd_u8(r, b"signal option flags")
        datatype = _rd_pystr(r, b"datatype") if opt & 0x01 else None
        access = _rd_pystr(r, b"access") if opt & 0x02 else None
        meta = None
        if with_meta and opt & 0x04:
            mflags = rd_u8(r, b"meta flags")
            meta = M.SignalMeta()
            if mflags & 0x01:
                meta.unit = _rd_pystr(r, b"unit")
            if mflags & 0x02:
                lo = _rd_f64(r, b"range min")
                hi = _rd_f64(r, b"range max")
                meta.range = (lo, hi)
            if mflags & 0x04:
                meta.default = _rd_typed_value(r, b"default type")
            if mflags & 0x08:
                meta.description = _rd_pystr(r, b"description")
        signals.append(M.SignalDef(address=address, signal=sig, datatype=datatype,
                                   access=access, meta=meta))
    return signals


cdef object _rd_f64(Reader* r, const char* what):
    if not need(r, 8, what):
        return None
    r.pos += 8
    return _F64.unpack_from(PyBytes_FromStringAndSize(<const char*>r.buf + r.pos - 8, 8))[0]


cdef object _decode_binary(const uint8_t* p, Py_ssize_t n, int depth):
    cdef Reader r
    cdef uint8_t t = p[0]
    cdef uint8_t flags
    cdef Py_ssize_t count, i, length
    if t == T_SET:
        return _decode_set(p, n)
    if t == T_PUBLISH:
        return _decode_publish(p, n)
    reader_init(&r, p, n)
    r.pos = 1
    name = TYPE_NAMES.get(t)
    if name is None:
        raise DecodeError(f"unknown message type 0x{t:02x}")
    if t == T_HELLO:
        version = rd_u8(&r, b"version")
        features = rd_u8(&r, b"features")
        hname = _rd_pystr(&r, b"name")
        token = _rd_pystr(&r, b"token")
        msg = M.Hello(name=hname, version=version, features=features, token=token or None)
    elif t == T_WELCOME:
        version = rd_u8(&r, b"version")
        features = rd_u8(&r, b"features")
        time = rd_u64(&r, b"time")
        session = _rd_pystr(&r, b"session")
        wname = _rd_pystr(&r, b"name")
        token = _rd_pystr(&r, b"token")
        msg = M.Welcome(session=session, name=wname, time=time, version=version,
                        features=features, token=token or None)
    elif t == T_ANNOUNCE:
        namespace = _rd_pystr(&r, b"namespace")
        msg = M.Announce(namespace=namespace, signals=_decode_signal_defs(&r, True))
    elif t == T_FEDERATION_SYNC:
        op = rd_u8(&r, b"op")
        if not r.err and not 1 <= op <= 4:
            r.pos -= 1
            fail(&r, E_BAD_FIELD, b"federation op (1-4)")
        count = rd_u16(&r, b"pattern count")
        patterns = []
        for i in range(count):
            if r.err:
                break
            patterns.append(_rd_pystr(&r, b"pattern"))
        count = rd_u16(&r, b"revision count")
        revisions = {}
        for i in range(count):
            if r.err:
                break
            key = _rd_pystr(&r, b"revision key")
            revisions[key] = rd_u64(&r, b"revision")
        flags = rd_u8(&r, b"flags")
        since = rd_u64(&r, b"since_revision") if flags & 0x80 else None
        origin = _rd_pystr(&r, b"origin") if flags & 0x40 else None
        msg = M.FederationSync(op=op, patterns=patterns, revisions=revisions,
                               since_revision=since, origin=origin)
    elif t == T_SUBSCRIBE:
        sid = rd_u32(&r, b"subscription id")
        pattern = _rd_pystr(&r, b"pattern")
        mask = rd_u8(&r, b"type mask")
        flags = rd_u8(&r, b"option flags")
        options = None
        if flags & 0x1F:
            options = M.SubscribeOptions()
            if flags & 0x01:
                options.max_rate = rd_u32(&r, b"max_rate")
            if flags & 0x02:
                options.epsilon = _rd_f64(&r, b"epsilon")
            if flags & 0x04:
                options.history = rd_u32(&r, b"history")
            if flags & 0x08:
                options.window = rd_u32(&r, b"window")
            if flags & 0x10:
                options.since = rd_u64(&r, b"since")
        msg = M.Subscribe(id=sid, pattern=pattern, types=mask, options=options)
    elif t == T_UNSUBSCRIBE:
        msg = M.Unsubscribe(id=rd_u32(&r, b"subscription id"))
    elif t == T_GET:
        msg = M.Get(address=_rd_pystr(&r, b"address"))
    elif t == T_SNAPSHOT:
        count = rd_u16(&r, b"param count")
        params = []
        for i in range(count):
            if r.err:
                break
            address = _rd_pystr(&r, b"param address")
            value = _rd_typed_value(&r, b"param value type")
            revision = rd_u64(&r, b"param revision")
            flags = rd_u8(&r, b"param option flags")
            writer = _rd_pystr(&r, b"writer") if flags & 0x01 else None
            ts = rd_u64(&r, b"param timestamp") if flags & 0x02 else None
            params.append(M.ParamValue(address=address, value=value, revision=revision,
                                       writer=writer, timestamp=ts))
        msg = M.Snapshot(params=params)
    elif t == T_REPLAY:
        flags = rd_u8(&r, b"flags")
        pattern = _rd_pystr(&r, b"pattern")
        from_us = rd_u64(&r, b"from") if flags & 0x80 else None
        to_us = rd_u64(&r, b"to") if flags & 0x40 else None
        limit = rd_u32(&r, b"limit") if flags & 0x20 else None
        mask = rd_u8(&r, b"type mask")
        msg = M.Replay(pattern=pattern, from_us=from_us, to_us=to_us, limit=limit, types=mask)
    elif t == T_BUNDLE:
        if depth >= 8:
            raise DecodeError("BUNDLE nested deeper than 8 levels")
        flags = rd_u8(&r, b"flags")
        count = rd_u16(&r, b"entry count")
        ts = rd_u64(&r, b"timestamp") if flags & 0x80 else None
        inner = []
        for i in range(count):
            if r.err:
                break
            length = rd_u16(&r, b"entry length")
            if not need(&r, length, b"entry"):
                break
            if length == 0:
                fail(&r, E_BAD_FIELD, b"empty bundle entry")
                break
            try:
                inner.append(_decode_binary(r.buf + r.pos, length, depth + 1))
            except DecodeError as exc:
                raise DecodeError(f"BUNDLE entry {i}: {exc}") from None
            r.pos += length
        msg = M.Bundle(messages=inner, timestamp=ts)
    elif t == T_SYNC:
        flags = rd_u8(&r, b"flags")
        t1 = rd_u64(&r, b"t1")
        t2 = rd_u64(&r, b"t2") if flags & 0x01 else None
        t3 = rd_u64(&r, b"t3") if flags & 0x02 else None
        msg = M.Sync(t1=t1, t2=t2, t3=t3)
    elif t == T_PING:
        msg = M.Ping()
    elif t == T_PONG:
        msg = M.Pong()
    elif t == T_ACK:
        flags = rd_u8(&r, b"flags")
        msg = M.Ack(
            address=_rd_pystr(&r, b"address") if flags & 0x01 else None,
            revision=rd_u64(&r, b"revision") if flags & 0x02 else None,
            locked=bool(rd_u8(&r, b"locked")) if flags & 0x04 else None,
            holder=_rd_pystr(&r, b"holder") if flags & 0x08 else None,
            correlation_id=rd_u32(&r, b"correlation id") if flags & 0x10 else None,
        )
    elif t == T_ERROR:
        code = rd_u16(&r, b"code")
        text = _rd_pystr(&r, b"message")
        flags = rd_u8(&r, b"flags")
        msg = M.Error(
            code=code, message=text,
            address=_rd_pystr(&r, b"address") if flags & 0x01 else None,
            correlation_id=rd_u32(&r, b"correlation id") if flags & 0x02 else None,
        )
    elif t == T_QUERY:
        msg = M.Query(pattern=_rd_pystr(&r, b"pattern"))
    else:  # T_RESULT
        msg = M.Result(signals=_decode_signal_defs(&r, False))
    _check(&r, name)
    return msg


def decode_payload(data):
    """Decodes one CLASP payload (the bytes after the frame header).

    The first byte decides the encoding: a MessagePack map (0x80-0x8F, 0xDE, 0xDF)
    is the legacy v2 form the Python client still uses for BUNDLE and QUERY;
    anything else is the binary v3 form.  Returns a message dataclass.
    """
    cdef const uint8_t[::1] view = _as_view(data)
    cdef Py_ssize_t n = view.shape[0]
    if n == 0:
        raise DecodeError("empty payload: a CLASP frame carries at least the message type byte")
    if is_msgpack_start(view[0]):
        return legacy_codec.decode_map(bytes(data))
    return _decode_binary(&view[0], n, 0)


def decode_frame(data):
    """Decodes a whole CLASP frame (one WebSocket message) into a ``Frame``."""
    cdef const uint8_t[::1] view = _as_view(data)
    cdef FrameHeader h
    cdef int err = parse_header(&view[0] if view.shape[0] else NULL, view.shape[0], &h)
    if err:
        raise DecodeError(header_error(err, bytes(data[:16]), len(data)))
    payload = data[h.header_size:]
    return M.Frame(
        message=decode_payload(payload),
        qos=h.qos,
        timestamp=h.timestamp if h.has_timestamp else None,
        flags=h.flags,
        legacy=is_msgpack_start(view[h.header_size]),
    )


cdef const uint8_t[::1] _as_view(data):
    if isinstance(data, memoryview):
        data = bytes(data)
    if len(data) == 0:
        return b"\x00"[:0]
    return data


def peek(frame):
    """Cheap look at a frame: ``(message type, address or None)`` without decoding the value.

    The address is read for SET, PUBLISH, GET and QUERY (the pattern).  Raises
    DecodeError if the header or the address field is malformed.
    """
    cdef const uint8_t[::1] view = _as_view(frame)
    cdef FrameHeader h
    cdef Reader r
    cdef Py_ssize_t n
    cdef int err = parse_header(&view[0] if view.shape[0] else NULL, view.shape[0], &h)
    if err:
        raise DecodeError(header_error(err, bytes(frame[:16]), len(frame)))
    cdef const uint8_t* p = &view[h.header_size]
    cdef uint8_t t = p[0]
    if is_msgpack_start(t):
        return (T_MSGPACK, None)
    reader_init(&r, p, h.payload_size)
    if t == T_SET or t == T_PUBLISH:
        r.pos = 2
    elif t == T_GET or t == T_QUERY:
        r.pos = 1
    else:
        return (t, None)
    pos = rd_str(&r, &n, b"address")
    _check(&r, TYPE_NAMES.get(t, "frame"))
    return (t, _str_at(p, pos, n))


# ---------------------------------------------------------------------------
# Python level: encoding
# ---------------------------------------------------------------------------

cdef class Writer:
    """A growable byte buffer with big-endian writers, used by the encoders."""

    cdef uint8_t* buf
    cdef Py_ssize_t size
    cdef Py_ssize_t cap

    def __cinit__(self, Py_ssize_t capacity=256):
        self.cap = capacity if capacity > 16 else 16
        self.buf = <uint8_t*>malloc(self.cap)
        self.size = 0
        if self.buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.buf)

    cdef int reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t want = self.size + extra
        cdef uint8_t* nb
        if want <= self.cap:
            return 0
        while self.cap < want:
            self.cap *= 2
        nb = <uint8_t*>realloc(self.buf, self.cap)
        if nb == NULL:
            raise MemoryError()
        self.buf = nb
        return 0

    cdef inline void u8(self, uint8_t v) except *:
        self.reserve(1)
        self.buf[self.size] = v
        self.size += 1

    cdef inline void u16(self, uint16_t v) except *:
        self.reserve(2)
        store_u16(self.buf + self.size, v)
        self.size += 2

    cdef inline void u32(self, uint32_t v) except *:
        self.reserve(4)
        store_u32(self.buf + self.size, v)
        self.size += 4

    cdef inline void u64(self, uint64_t v) except *:
        self.reserve(8)
        store_u64(self.buf + self.size, v)
        self.size += 8

    cdef void raw(self, const uint8_t* p, Py_ssize_t n) except *:
        self.reserve(n)
        memcpy(self.buf + self.size, p, n)
        self.size += n

    cdef void f64(self, double v) except *:
        cdef bytes b = _F64.pack(v)
        self.raw(<const uint8_t*>PyBytes_AS_STRING(b), 8)

    cdef void string(self, str s, str what) except *:
        cdef bytes b = s.encode("utf-8")
        if len(b) > 65535:
            raise EncodeError(f"{what} is {len(b)} bytes; a CLASP string holds at most 65535")
        self.u16(<uint16_t>len(b))
        self.raw(<const uint8_t*>PyBytes_AS_STRING(b), len(b))

    cdef void opt_string(self, s, str what) except *:
        self.string(s if s is not None else "", what)

    cdef void value_data(self, object v, int depth) except *:
        """Writes the data of `v` (without its type byte)."""
        cdef bytes b
        if v is None:
            return
        if v is True or v is False:
            self.u8(1 if v else 0)
        elif isinstance(v, int):
            if not -(1 << 63) <= v < (1 << 63):
                raise EncodeError(f"integer {v} is outside the i64 range")
            self.u64(<uint64_t><int64_t>v)
        elif isinstance(v, float):
            self.f64(v)
        elif isinstance(v, str):
            self.string(v, "string value")
        elif isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
            if len(b) > 65535:
                raise EncodeError(f"bytes value is {len(b)} bytes; at most 65535")
            self.u16(<uint16_t>len(b))
            self.raw(<const uint8_t*>PyBytes_AS_STRING(b), len(b))
        elif isinstance(v, (list, tuple)):
            if depth >= MAX_VALUE_DEPTH:
                raise EncodeError(f"value nested deeper than {MAX_VALUE_DEPTH} levels")
            if len(v) > 65535:
                raise EncodeError(f"array has {len(v)} items; at most 65535")
            self.u16(<uint16_t>len(v))
            for item in v:
                self.u8(value_code(item))
                self.value_data(item, depth + 1)
        elif isinstance(v, dict):
            if depth >= MAX_VALUE_DEPTH:
                raise EncodeError(f"value nested deeper than {MAX_VALUE_DEPTH} levels")
            if len(v) > 65535:
                raise EncodeError(f"map has {len(v)} entries; at most 65535")
            self.u16(<uint16_t>len(v))
            for key, item in v.items():
                if not isinstance(key, str):
                    raise EncodeError(f"map key {key!r} is not a string")
                self.string(key, "map key")
                self.u8(value_code(item))
                self.value_data(item, depth + 1)
        else:
            raise EncodeError(f"cannot encode a {type(v).__name__} as a CLASP value")

    cdef void typed_value(self, object v) except *:
        self.u8(value_code(v))
        self.value_data(v, 0)

    cdef bytes getvalue(self):
        return PyBytes_FromStringAndSize(<const char*>self.buf, self.size)


cpdef int value_code(object v) except -1:
    """The value type code a Python value is sent with."""
    if v is None:
        return V_NULL
    if v is True or v is False:
        return V_BOOL
    if isinstance(v, int):
        return V_I64
    if isinstance(v, float):
        return V_F64
    if isinstance(v, str):
        return V_STRING
    if isinstance(v, (bytes, bytearray, memoryview)):
        return V_BYTES
    if isinstance(v, (list, tuple)):
        return V_ARRAY
    if isinstance(v, dict):
        return V_MAP
    raise EncodeError(f"cannot encode a {type(v).__name__} as a CLASP value")


cdef void _signal_defs(Writer w, list signals, bint with_meta) except *:
    cdef uint8_t opt, mflags
    w.u16(<uint16_t>len(signals))
    for s in signals:
        w.string(s.address, "signal address")
        w.u8(int(s.signal))
        meta = s.meta if with_meta else None
        opt = (0x01 if s.datatype is not None else 0) | (0x02 if s.access is not None else 0) \
            | (0x04 if meta is not None else 0)
        w.u8(opt)
        if s.datatype is not None:
            w.string(s.datatype, "datatype")
        if s.access is not None:
            w.string(s.access, "access")
        if meta is not None:
            mflags = (0x01 if meta.unit is not None else 0) | (0x02 if meta.range is not None else 0) \
                | (0x04 if meta.default is not NO_VALUE else 0) | (0x08 if meta.description is not None else 0)
            w.u8(mflags)
            if meta.unit is not None:
                w.string(meta.unit, "unit")
            if meta.range is not None:
                w.f64(meta.range[0])
                w.f64(meta.range[1])
            if meta.default is not NO_VALUE:
                w.typed_value(meta.default)
            if meta.description is not None:
                w.string(meta.description, "description")


cdef void _encode_set(Writer w, str address, value, revision, bint lock, bint unlock,
                      ttl_raw) except *:
    """A SET payload: the one writer behind encode_frame(Set(...)) and encode_set_frame."""
    cdef uint8_t flags = value_code(value) | (SET_HAS_REVISION if revision is not None else 0) \
        | (SET_LOCK if lock else 0) | (SET_UNLOCK if unlock else 0) \
        | (SET_HAS_TTL if ttl_raw is not None else 0)
    w.u8(T_SET)
    w.u8(flags)
    w.string(address, "address")
    w.value_data(value, 0)
    if revision is not None:
        w.u64(revision)
    if ttl_raw is not None:
        w.u32(ttl_raw)


cdef void _encode_into(Writer w, object msg, int depth) except *:
    cdef uint8_t flags
    t = type(msg)
    if t is M.Set:
        _encode_set(w, msg.address, msg.value, msg.revision, msg.lock, msg.unlock,
                    msg.ttl.raw if msg.ttl is not None else None)
    elif t is M.Publish:
        flags = (int(msg.signal) << 5) | (PUB_HAS_TIMESTAMP if msg.timestamp is not None else 0) \
            | (PUB_HAS_ID if msg.id is not None else 0) | (int(msg.phase) & 0x07)
        w.u8(T_PUBLISH)
        w.u8(flags)
        w.string(msg.address, "address")
        if msg.samples is not None:
            w.u8(2)
            w.u16(<uint16_t>len(msg.samples))
            for s in msg.samples:
                w.f64(s)
        elif msg.value is NO_VALUE:
            w.u8(0)
        else:
            w.u8(1)
            w.typed_value(msg.value)
        if msg.timestamp is not None:
            w.u64(msg.timestamp)
        if msg.id is not None:
            w.u32(msg.id)
        if msg.rate is not None:
            w.u32(msg.rate)
    elif t is M.Hello:
        w.u8(T_HELLO)
        w.u8(msg.version)
        w.u8(int(msg.features))
        w.string(msg.name, "name")
        w.opt_string(msg.token, "token")
    elif t is M.Welcome:
        w.u8(T_WELCOME)
        w.u8(msg.version)
        w.u8(int(msg.features))
        w.u64(msg.time)
        w.string(msg.session, "session")
        w.string(msg.name, "name")
        w.opt_string(msg.token, "token")
    elif t is M.Announce:
        w.u8(T_ANNOUNCE)
        w.string(msg.namespace, "namespace")
        _signal_defs(w, msg.signals, True)
    elif t is M.FederationSync:
        w.u8(T_FEDERATION_SYNC)
        w.u8(msg.op)
        w.u16(<uint16_t>len(msg.patterns))
        for p in msg.patterns:
            w.string(p, "pattern")
        w.u16(<uint16_t>len(msg.revisions))
        for key, rev in msg.revisions.items():
            w.string(key, "revision key")
            w.u64(rev)
        flags = (0x80 if msg.since_revision is not None else 0) | (0x40 if msg.origin is not None else 0)
        w.u8(flags)
        if msg.since_revision is not None:
            w.u64(msg.since_revision)
        if msg.origin is not None:
            w.string(msg.origin, "origin")
    elif t is M.Subscribe:
        w.u8(T_SUBSCRIBE)
        w.u32(msg.id)
        w.string(msg.pattern, "pattern")
        w.u8(int(msg.types) & 0xFF)
        o = msg.options
        if o is None:
            w.u8(0)
        else:
            flags = (0x01 if o.max_rate is not None else 0) | (0x02 if o.epsilon is not None else 0) \
                | (0x04 if o.history is not None else 0) | (0x08 if o.window is not None else 0) \
                | (0x10 if o.since is not None else 0)
            w.u8(flags)
            if o.max_rate is not None:
                w.u32(o.max_rate)
            if o.epsilon is not None:
                w.f64(o.epsilon)
            if o.history is not None:
                w.u32(o.history)
            if o.window is not None:
                w.u32(o.window)
            if o.since is not None:
                w.u64(o.since)
    elif t is M.Unsubscribe:
        w.u8(T_UNSUBSCRIBE)
        w.u32(msg.id)
    elif t is M.Get:
        w.u8(T_GET)
        w.string(msg.address, "address")
    elif t is M.Snapshot:
        w.u8(T_SNAPSHOT)
        w.u16(<uint16_t>len(msg.params))
        for p in msg.params:
            w.string(p.address, "param address")
            w.typed_value(p.value)
            w.u64(p.revision)
            flags = (0x01 if p.writer is not None else 0) | (0x02 if p.timestamp is not None else 0)
            w.u8(flags)
            if p.writer is not None:
                w.string(p.writer, "writer")
            if p.timestamp is not None:
                w.u64(p.timestamp)
    elif t is M.Replay:
        w.u8(T_REPLAY)
        flags = (0x80 if msg.from_us is not None else 0) | (0x40 if msg.to_us is not None else 0) \
            | (0x20 if msg.limit is not None else 0)
        w.u8(flags)
        w.string(msg.pattern, "pattern")
        if msg.from_us is not None:
            w.u64(msg.from_us)
        if msg.to_us is not None:
            w.u64(msg.to_us)
        if msg.limit is not None:
            w.u32(msg.limit)
        w.u8(int(msg.types) & 0xFF)
    elif t is M.Bundle:
        if depth >= 8:
            raise EncodeError("bundles nested deeper than 8 levels")
        w.u8(T_BUNDLE)
        w.u8(0x80 if msg.timestamp is not None else 0)
        w.u16(<uint16_t>len(msg.messages))
        if msg.timestamp is not None:
            w.u64(msg.timestamp)
        for inner in msg.messages:
            iw = Writer()
            _encode_into(iw, inner, depth + 1)
            if iw.size > 65535:
                raise EncodeError("bundle entry larger than 65535 bytes")
            w.u16(<uint16_t>iw.size)
            w.raw(iw.buf, iw.size)
    elif t is M.Sync:
        w.u8(T_SYNC)
        w.u8((0x01 if msg.t2 is not None else 0) | (0x02 if msg.t3 is not None else 0))
        w.u64(msg.t1)
        if msg.t2 is not None:
            w.u64(msg.t2)
        if msg.t3 is not None:
            w.u64(msg.t3)
    elif t is M.Ping:
        w.u8(T_PING)
    elif t is M.Pong:
        w.u8(T_PONG)
    elif t is M.Ack:
        flags = (0x01 if msg.address is not None else 0) | (0x02 if msg.revision is not None else 0) \
            | (0x04 if msg.locked is not None else 0) | (0x08 if msg.holder is not None else 0) \
            | (0x10 if msg.correlation_id is not None else 0)
        w.u8(T_ACK)
        w.u8(flags)
        if msg.address is not None:
            w.string(msg.address, "address")
        if msg.revision is not None:
            w.u64(msg.revision)
        if msg.locked is not None:
            w.u8(1 if msg.locked else 0)
        if msg.holder is not None:
            w.string(msg.holder, "holder")
        if msg.correlation_id is not None:
            w.u32(msg.correlation_id)
    elif t is M.Error:
        w.u8(T_ERROR)
        w.u16(msg.code)
        w.string(msg.message, "message")
        w.u8((0x01 if msg.address is not None else 0) | (0x02 if msg.correlation_id is not None else 0))
        if msg.address is not None:
            w.string(msg.address, "address")
        if msg.correlation_id is not None:
            w.u32(msg.correlation_id)
    elif t is M.Query:
        w.u8(T_QUERY)
        w.string(msg.pattern, "pattern")
    elif t is M.Result:
        w.u8(T_RESULT)
        _signal_defs(w, msg.signals, False)
    else:
        raise EncodeError(f"{t.__name__} is not a CLASP message")


def encode_payload(msg) -> bytes:
    """Encodes a message into its binary v3 payload (no frame header)."""
    cdef Writer w = Writer()
    try:
        _encode_into(w, msg, 0)
    except OverflowError as exc:
        raise EncodeError(f"{type(msg).__name__}: integer field out of range ({exc})") from None
    return w.getvalue()


def encode_frame(msg, int qos=0, timestamp=None, bint legacy=False) -> bytes:
    """Encodes a message into a complete CLASP frame.

    ``qos`` goes into the flags' top bits, ``timestamp`` (µs) sets flag 0x20.
    ``legacy=True`` writes a MessagePack map payload instead, the way the Python
    client sends BUNDLE and QUERY (version bits still 1).
    """
    cdef Writer w = Writer()
    cdef Py_ssize_t hs = 12 if timestamp is not None else 4
    cdef bytes payload
    if timestamp is not None and not 0 <= timestamp <= 0xFFFFFFFFFFFFFFFF:
        raise EncodeError(f"frame timestamp {timestamp} is outside the u64 range")
    w.size = hs
    if legacy:
        payload = legacy_codec.encode_map(msg)
        w.raw(<const uint8_t*>PyBytes_AS_STRING(payload), len(payload))
    else:
        try:
            _encode_into(w, msg, 0)
        except OverflowError as exc:
            raise EncodeError(f"{type(msg).__name__}: integer field out of range ({exc})") from None
    return _finish_frame(w, hs, qos, timestamp)


cdef bytes _finish_frame(Writer w, Py_ssize_t hs, int qos, timestamp):
    """Writes the frame header in front of the payload ``w`` holds after ``hs`` bytes."""
    cdef Py_ssize_t n = w.size - hs
    if n > MAX_PAYLOAD:
        raise EncodeError(f"payload is {n} bytes; a CLASP frame carries at most 65535")
    w.buf[0] = MAGIC
    w.buf[1] = ((qos & 3) << 6) | (0x20 if timestamp is not None else 0) | 0x01
    store_u16(w.buf + 2, <uint16_t>n)
    if timestamp is not None:
        store_u64(w.buf + 4, timestamp)
    return w.getvalue()


def encode_set_frame(str address, value, revision=None, int qos=0, ttl_raw=None) -> bytes:
    """``encode_frame(Set(address, value, revision, ttl=Ttl.from_raw(ttl_raw)), qos)``
    without building the message object: the client's fire-and-forget ``set`` path."""
    cdef Writer w = Writer()
    w.size = 4
    try:
        _encode_set(w, address, value, revision, False, False, ttl_raw)
    except OverflowError as exc:
        raise EncodeError(f"Set: integer field out of range ({exc})") from None
    return _finish_frame(w, 4, qos, None)


def splice_revision(frame, unsigned long long revision, int qos=1) -> bytes:
    """The router's SET broadcast: the same SET with has-revision set and ``revision`` put in.

    The value bytes are copied, not re-encoded; an expected revision in the
    incoming frame is replaced; the ttl stays.  The header is rewritten as
    version 1 with ``qos`` and no timestamp.
    """
    cdef const uint8_t[::1] view = _as_view(frame)
    cdef FrameHeader h
    cdef SetView v
    cdef Reader r
    cdef int err = parse_header(&view[0] if view.shape[0] else NULL, view.shape[0], &h)
    if err:
        raise DecodeError(header_error(err, bytes(frame[:16]), len(frame)))
    cdef const uint8_t* p = &view[h.header_size]
    if p[0] != T_SET:
        raise DecodeError(f"splice_revision needs a SET frame, got type 0x{p[0]:02x}")
    if parse_set(p, h.payload_size, &v, &r):
        raise DecodeError(reader_error(&r, "SET"))
    cdef Py_ssize_t size = set_broadcast_size(&v)
    if size > MAX_PAYLOAD:
        raise EncodeError(f"SET broadcast would be {size} payload bytes; a CLASP frame carries at most 65535")
    out = PyBytes_FromStringAndSize(NULL, 4 + size)
    cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
    clasp_header(o, qos, size)
    write_set_broadcast(o + 4, p, &v, revision)
    return out


def ws_frame(data) -> bytes:
    """Wraps one CLASP frame in a server-side (unmasked) binary WebSocket frame."""
    cdef uint8_t hdr[MAX_WS_HEADER]
    cdef Py_ssize_t hl = ws_binary_header(hdr, len(data))
    return PyBytes_FromStringAndSize(<const char*>hdr, hl) + bytes(data)


def ws_payload_start(bytes frame) -> int:
    """Where the payload of one unmasked (server) WebSocket frame starts."""
    cdef Py_ssize_t hl = ws_header_len(<const uint8_t*>PyBytes_AS_STRING(frame), len(frame))
    if hl < 0:
        raise DecodeError("truncated WebSocket frame header")
    return hl


def ws_unframe(data) -> list:
    """Splits a buffer of unmasked binary WebSocket frames into their payloads.

    The inverse of what a connection's output buffer holds; used by tests."""
    cdef bytes b = bytes(data)
    cdef Py_ssize_t pos = 0, n, hl
    cdef uint64_t n64
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(b)
    out = []
    while pos < len(b):
        if len(b) - pos < 2:
            raise DecodeError("truncated WebSocket frame header")
        n = p[pos + 1] & 0x7F
        hl = ws_header_len(p + pos, len(b) - pos)
        if len(b) - pos < hl:
            raise DecodeError("truncated WebSocket frame header")
        if n == 126:
            n = load_u16(p + pos + 2)
        elif n == 127:
            n64 = load_u64(p + pos + 2)
            if n64 > <uint64_t>(len(b) - pos - hl):
                raise DecodeError("truncated WebSocket frame")
            n = <Py_ssize_t>n64
        if pos + hl + n > len(b):
            raise DecodeError("truncated WebSocket frame")
        out.append(b[pos + hl:pos + hl + n])
        pos += hl + n
    return out
