# C-level interface of the CLASP wire layer.
#
# Everything here works on raw bytes and builds no Python objects, so the
# router's hot path can parse a frame with no allocation.  wire.pyx builds the
# Python-level codec (decode_frame / encode_frame) on top of these same
# functions, so there is one parser per message layout, not two.
#
# Layouts: docs/protocol.md "Frame layout".  All integers big-endian.
#
# The parsers and writers are defined here, inline, not in wire.pyx: Cython
# inlines across modules only what a .pxd defines, and the router runs them once
# per SET / PUBLISH.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy

cdef enum:
    MAGIC = 0x53
    MAX_PAYLOAD = 65535
    MAX_HEADER = 12
    MAX_WS_HEADER = 10
    MAX_VALUE_DEPTH = 128

# message type codes (payload byte 0)
cdef enum:
    T_HELLO = 0x01
    T_WELCOME = 0x02
    T_ANNOUNCE = 0x03
    T_FEDERATION_SYNC = 0x04
    T_SUBSCRIBE = 0x10
    T_UNSUBSCRIBE = 0x11
    T_PUBLISH = 0x20
    T_SET = 0x21
    T_GET = 0x22
    T_SNAPSHOT = 0x23
    T_REPLAY = 0x24
    T_BUNDLE = 0x30
    T_SYNC = 0x40
    T_PING = 0x41
    T_PONG = 0x42
    T_ACK = 0x50
    T_ERROR = 0x51
    T_QUERY = 0x60
    T_RESULT = 0x61
    T_MSGPACK = 0x100   # not a wire code: "payload is a legacy MessagePack map"

# value type codes
cdef enum:
    V_NULL = 0x00
    V_BOOL = 0x01
    V_I8 = 0x02
    V_I16 = 0x03
    V_I32 = 0x04
    V_I64 = 0x05
    V_F32 = 0x06
    V_F64 = 0x07
    V_STRING = 0x08
    V_BYTES = 0x09
    V_ARRAY = 0x0A
    V_MAP = 0x0B

# bit set of value codes that are accepted on input but never sent:
# i8/i16/i32 widen to i64, f32 widens to f64 (docs/protocol.md "Frames out").
cdef enum:
    NARROW_CODES = (1 << V_I8) | (1 << V_I16) | (1 << V_I32) | (1 << V_F32)

# SET flags byte
cdef enum:
    SET_HAS_REVISION = 0x80
    SET_LOCK = 0x40
    SET_UNLOCK = 0x20
    SET_HAS_TTL = 0x10
    SET_TYPE_MASK = 0x0F

# PUBLISH flags byte
cdef enum:
    PUB_HAS_TIMESTAMP = 0x10
    PUB_HAS_ID = 0x08

cdef enum:
    SIG_PARAM = 0
    SIG_EVENT = 1
    SIG_STREAM = 2
    SIG_GESTURE = 3
    SIG_TIMELINE = 4

cdef enum:
    PHASE_START = 0
    PHASE_MOVE = 1
    PHASE_END = 2
    PHASE_CANCEL = 3

# decode error kinds (Reader.err)
cdef enum:
    E_OK = 0
    E_TRUNCATED = 1
    E_UTF8 = 2
    E_VALUE_TYPE = 3
    E_DEPTH = 4
    E_MAGIC = 5
    E_LENGTH = 6
    E_EMPTY = 7
    E_UNKNOWN_TYPE = 8
    E_BAD_FIELD = 9


cdef struct FrameHeader:
    uint8_t flags
    uint8_t qos
    bint has_timestamp
    uint64_t timestamp
    Py_ssize_t header_size
    Py_ssize_t payload_size


cdef struct Reader:
    const uint8_t* buf
    Py_ssize_t pos
    Py_ssize_t end
    int err
    const char* what        # the field being read when err was set (static text)
    Py_ssize_t err_pos
    Py_ssize_t err_need
    uint32_t codes_seen     # bit (1 << code) for every value code met


# A SET payload, parsed in place.  Offsets are relative to the payload start.
cdef struct SetView:
    uint8_t flags
    uint8_t vtype
    Py_ssize_t addr_pos
    Py_ssize_t addr_len
    Py_ssize_t value_pos        # value data (SET has no separate type byte)
    Py_ssize_t value_end
    uint64_t revision
    uint32_t ttl
    Py_ssize_t end              # end of the last field parsed
    uint32_t codes_seen


# A PUBLISH payload, parsed in place.
cdef struct PublishView:
    uint8_t flags
    uint8_t signal
    uint8_t phase
    Py_ssize_t addr_pos
    Py_ssize_t addr_len
    uint8_t indicator           # 0 none, 1 value, 2 samples (anything else reads as none)
    Py_ssize_t value_pos        # type byte + data (indicator 1) or count + samples (2)
    Py_ssize_t value_end
    uint64_t timestamp
    uint32_t gesture_id
    bint has_rate
    uint32_t rate
    Py_ssize_t end
    uint32_t codes_seen


cdef inline void reader_init(Reader* r, const uint8_t* buf, Py_ssize_t n) noexcept nogil:
    r.buf = buf
    r.pos = 0
    r.end = n
    r.err = E_OK
    r.what = b""
    r.err_pos = 0
    r.err_need = 0
    r.codes_seen = 0


cdef inline bint need(Reader* r, Py_ssize_t n, const char* what) noexcept nogil:
    if r.err:
        return False
    if r.end - r.pos < n:
        r.err = E_TRUNCATED
        r.what = what
        r.err_pos = r.pos
        r.err_need = n
        return False
    return True


cdef inline void fail(Reader* r, int err, const char* what) noexcept nogil:
    if not r.err:
        r.err = err
        r.what = what
        r.err_pos = r.pos


cdef inline uint8_t rd_u8(Reader* r, const char* what) noexcept nogil:
    if not need(r, 1, what):
        return 0
    r.pos += 1
    return r.buf[r.pos - 1]


cdef inline uint16_t load_u16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t load_u32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t load_u64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>load_u32(p) << 32) | load_u32(p + 4)


cdef inline void store_u16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = v >> 8
    p[1] = v & 0xFF


cdef inline void store_u32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline void store_u64(uint8_t* p, uint64_t v) noexcept nogil:
    store_u32(p, <uint32_t>(v >> 32))
    store_u32(p + 4, <uint32_t>v)


cdef inline uint16_t rd_u16(Reader* r, const char* what) noexcept nogil:
    if not need(r, 2, what):
        return 0
    r.pos += 2
    return load_u16(r.buf + r.pos - 2)


cdef inline uint32_t rd_u32(Reader* r, const char* what) noexcept nogil:
    if not need(r, 4, what):
        return 0
    r.pos += 4
    return load_u32(r.buf + r.pos - 4)


cdef inline uint64_t rd_u64(Reader* r, const char* what) noexcept nogil:
    if not need(r, 8, what):
        return 0
    r.pos += 8
    return load_u64(r.buf + r.pos - 8)


# --- implemented in wire.pyx -------------------------------------------------



# Skips (and validates) the data of a value whose type code is `code`.
cdef void skip_value(Reader* r, uint8_t code, int depth) noexcept nogil



# True for a first payload byte that starts a MessagePack map (0x80-0x8F, 0xDE, 0xDF).
cdef bint is_msgpack_start(uint8_t b) noexcept nogil


# Writes a 4-byte CLASP frame header (version 1, no timestamp).
cdef inline void clasp_header(uint8_t* out, uint8_t qos, Py_ssize_t payload_size) noexcept nogil:
    out[0] = MAGIC
    out[1] = (qos << 6) | 0x01
    store_u16(out + 2, <uint16_t>payload_size)

# Default outgoing QoS of a PUBLISH by signal (the Rust router's choice).
cdef inline uint8_t publish_qos(uint8_t signal) noexcept nogil:
    if signal == SIG_STREAM or signal == SIG_GESTURE:
        return 0
    if signal == SIG_TIMELINE:
        return 2
    return 1

# Python-level error text for a failed Reader (used by DecodeError).
cdef str reader_error(Reader* r, str context)

# The Python object of the value at r.pos (type `code`), which skip_value (or
# parse_set / parse_publish) has already validated: None, bool, int, float, str,
# bytes, list, dict, with the exact type the code says.  Advances r.pos.
# decode_frame and the client's receive path (client_inbox.pyx) both use it.
cdef object rd_value(Reader* r, uint8_t code, int depth)


# --- the in-place parsers: on every message's path, so inline (compiled into each
# --- user); skip_value, the one recursive piece, stays in wire.pyx


# Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
cdef inline bint utf8_valid(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef uint8_t c, c1
    cdef uint64_t w
    while i < n:
        # ASCII fast path, 8 bytes at a time
        while i + 8 <= n:
            memcpy(&w, p + i, 8)
            if w & 0x8080808080808080ULL:
                break
            i += 8
        if i >= n:
            return True
        c = p[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:
            return False
        elif c < 0xE0:
            if i + 1 >= n or (p[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return False
            c1 = p[i + 1]
            if (c1 & 0xC0) != 0x80 or (p[i + 2] & 0xC0) != 0x80:
                return False
            if c == 0xE0 and c1 < 0xA0:
                return False
            if c == 0xED and c1 >= 0xA0:
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return False
            c1 = p[i + 1]
            if (c1 & 0xC0) != 0x80 or (p[i + 2] & 0xC0) != 0x80 or (p[i + 3] & 0xC0) != 0x80:
                return False
            if c == 0xF0 and c1 < 0x90:
                return False
            if c == 0xF4 and c1 >= 0x90:
                return False
            i += 4
        else:
            return False
    return True


# Reads a u16-length string, checks UTF-8; returns its start offset (length in *n).
cdef inline Py_ssize_t rd_str(Reader* r, Py_ssize_t* n, const char* what) noexcept nogil:
    cdef Py_ssize_t length = rd_u16(r, what)
    cdef Py_ssize_t start = r.pos
    n[0] = 0
    if not need(r, length, what):
        return 0
    if not utf8_valid(r.buf + start, length):
        r.err = E_UTF8
        r.what = what
        r.err_pos = start
        return 0
    r.pos += length
    n[0] = length
    return start


# skip_value for scalars, strings and bytes; arrays and maps go to skip_value.
cdef inline void skip_value_fast(Reader* r, uint8_t code) noexcept nogil:
    cdef Py_ssize_t size = -1
    if r.err:
        return
    if code == V_NULL:
        size = 0
    elif code == V_BOOL or code == V_I8:
        size = 1
    elif code == V_I16:
        size = 2
    elif code == V_I32 or code == V_F32:
        size = 4
    elif code == V_I64 or code == V_F64:
        size = 8
    elif code == V_BYTES:
        r.codes_seen |= (1u << code)
        size = rd_u16(r, b"bytes length")
        if need(r, size, b"bytes value"):
            r.pos += size
        return
    elif code == V_STRING:
        r.codes_seen |= (1u << code)
        rd_str(r, &size, b"string value")
        return
    if size < 0:
        skip_value(r, code, 0)
        return
    r.codes_seen |= (1u << code)
    if need(r, size, b"value"):
        r.pos += size


# Parses the 4- or 12-byte frame header and checks the length against `n`.
# Returns an E_* code.
cdef inline int parse_header(const uint8_t* p, Py_ssize_t n, FrameHeader* h) noexcept nogil:
    if n < 4:
        return E_TRUNCATED
    if p[0] != MAGIC:
        return E_MAGIC
    h.flags = p[1]
    h.qos = p[1] >> 6
    if h.qos == 3:
        h.qos = 0           # reserved: read as fire, like the Rust decoder
    h.has_timestamp = (p[1] & 0x20) != 0
    h.payload_size = load_u16(p + 2)
    if h.has_timestamp:
        if n < 12:
            return E_TRUNCATED
        h.timestamp = load_u64(p + 4)
        h.header_size = 12
    else:
        h.timestamp = 0
        h.header_size = 4
    if h.payload_size == 0:
        return E_EMPTY
    if h.header_size + h.payload_size != n:
        return E_LENGTH
    return E_OK


# Parse SET / PUBLISH payloads in place (payload byte 0 is the type).
# The flags and address of a SET payload, without reading (or validating) its value: what a
# stalled receiver's conflation needs from a frame the router built (parse_set reads the rest).
cdef inline int parse_set_address(const uint8_t* p, Py_ssize_t n, SetView* v, Reader* r) noexcept nogil:
    reader_init(r, p, n)
    r.pos = 1
    v.flags = rd_u8(r, b"flags")
    v.vtype = v.flags & SET_TYPE_MASK
    v.addr_pos = rd_str(r, &v.addr_len, b"address")
    return r.err


cdef inline int parse_set(const uint8_t* p, Py_ssize_t n, SetView* v, Reader* r) noexcept nogil:
    parse_set_address(p, n, v, r)
    v.value_pos = r.pos
    skip_value_fast(r, v.vtype)
    v.value_end = r.pos
    v.revision = rd_u64(r, b"revision") if v.flags & SET_HAS_REVISION else 0
    v.ttl = rd_u32(r, b"ttl") if v.flags & SET_HAS_TTL else 0
    v.end = r.pos
    v.codes_seen = r.codes_seen
    return r.err


cdef inline int parse_publish(const uint8_t* p, Py_ssize_t n, PublishView* v, Reader* r) noexcept nogil:
    cdef Py_ssize_t count
    reader_init(r, p, n)
    r.pos = 1
    v.flags = rd_u8(r, b"flags")
    v.signal = v.flags >> 5
    if v.signal > SIG_TIMELINE:
        v.signal = SIG_EVENT
    v.phase = v.flags & 0x07
    if v.phase > PHASE_CANCEL:
        v.phase = PHASE_START
    v.addr_pos = rd_str(r, &v.addr_len, b"address")
    v.indicator = rd_u8(r, b"value indicator")
    v.value_pos = r.pos
    if v.indicator == 1:
        skip_value_fast(r, rd_u8(r, b"value type"))
    elif v.indicator == 2:
        count = rd_u16(r, b"sample count")
        if need(r, count * 8, b"samples"):
            r.pos += count * 8
    v.value_end = r.pos
    v.timestamp = rd_u64(r, b"timestamp") if v.flags & PUB_HAS_TIMESTAMP else 0
    v.gesture_id = rd_u32(r, b"gesture id") if v.flags & PUB_HAS_ID else 0
    v.has_rate = not r.err and r.end - r.pos >= 4
    v.rate = rd_u32(r, b"rate") if v.has_rate else 0
    v.end = r.pos
    v.codes_seen = r.codes_seen
    return r.err


# Length of the unmasked (server) WebSocket header in front of a frame of `n` bytes
# (2, 4 or 10); -1 if `n` is too short to say.
cdef inline Py_ssize_t ws_header_len(const uint8_t* f, Py_ssize_t n) noexcept nogil:
    cdef uint8_t b
    if n < 2:
        return -1
    b = f[1] & 0x7F
    if b < 126:
        return 2
    return 4 if b == 126 else 10


# Writes a server-to-client WebSocket frame header (FIN + binary, unmasked)
# for a message of `size` bytes; returns the header length (2, 4 or 10).
cdef inline Py_ssize_t ws_binary_header(uint8_t* out, Py_ssize_t size) noexcept nogil:
    out[0] = 0x82
    if size < 126:
        out[1] = <uint8_t>size
        return 2
    if size < 65536:
        out[1] = 126
        store_u16(out + 2, <uint16_t>size)
        return 4
    out[1] = 127
    store_u64(out + 2, <uint64_t>size)
    return 10


# A SET payload (no header): flags (the value type; SET_HAS_TTL: `ttl` follows the
# revision) with has-revision set, the address, the value bytes, `revision`.
cdef inline Py_ssize_t set_payload_size(Py_ssize_t alen, Py_ssize_t vlen, uint8_t flags) noexcept nogil:
    return 2 + 2 + alen + vlen + 8 + (4 if flags & SET_HAS_TTL else 0)


cdef inline Py_ssize_t write_set_payload(uint8_t* o, uint8_t flags, const void* addr, Py_ssize_t alen,
                                         const uint8_t* value, Py_ssize_t vlen, uint64_t revision,
                                         uint32_t ttl) noexcept nogil:
    cdef Py_ssize_t n
    o[0] = T_SET
    o[1] = flags | SET_HAS_REVISION
    store_u16(o + 2, <uint16_t>alen)
    memcpy(o + 4, addr, alen)
    n = 4 + alen
    memcpy(o + n, value, vlen)
    n += vlen
    store_u64(o + n, revision)
    n += 8
    if flags & SET_HAS_TTL:
        store_u32(o + n, ttl)
        n += 4
    return n


# The SET the router broadcasts: same address, flags and value bytes, has-revision
# set, `revision` written after the value, ttl kept.  Payload only (no header).
cdef inline Py_ssize_t set_broadcast_size(SetView* v) noexcept nogil:
    return set_payload_size(v.addr_len, v.value_end - v.value_pos, v.flags)


cdef inline Py_ssize_t write_set_broadcast(uint8_t* o, const uint8_t* p, SetView* v, uint64_t revision) noexcept nogil:
    return write_set_payload(o, v.flags, p + v.addr_pos, v.addr_len, p + v.value_pos,
                             v.value_end - v.value_pos, revision, v.ttl)
