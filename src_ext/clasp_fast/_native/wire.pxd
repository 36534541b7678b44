# C-level interface of the CLASP wire layer.
#
# Everything here works on raw bytes and builds no Python objects, so the
# router's hot path can parse a frame with no allocation.  wire.pyx builds the
# Python-level codec (decode_frame / encode_frame) on top of these same
# functions, so there is one parser per message layout, not two.
#
# Layouts: ../shared/reference/wire-format.md §1-§3.  All integers big-endian.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

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
# i8/i16/i32 widen to i64, f32 widens to f64 (PROTOCOL.md "Frames out").
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

cdef bint utf8_valid(const uint8_t* p, Py_ssize_t n) noexcept nogil

# Reads a u16-length string, checks UTF-8; returns its start offset (length in *n).
cdef Py_ssize_t rd_str(Reader* r, Py_ssize_t* n, const char* what) noexcept nogil

# Skips (and validates) the data of a value whose type code is `code`.
cdef void skip_value(Reader* r, uint8_t code, int depth) noexcept nogil

# Parses the 4- or 12-byte frame header and checks the length against `n`.
# Returns an E_* code.
cdef int parse_header(const uint8_t* p, Py_ssize_t n, FrameHeader* h) noexcept nogil

# Parse SET / PUBLISH payloads in place (payload byte 0 is the type).
cdef int parse_set(const uint8_t* p, Py_ssize_t n, SetView* v, Reader* r) noexcept nogil
cdef int parse_publish(const uint8_t* p, Py_ssize_t n, PublishView* v, Reader* r) noexcept nogil

# True for a first payload byte that starts a MessagePack map (0x80-0x8F, 0xDE, 0xDF).
cdef bint is_msgpack_start(uint8_t b) noexcept nogil

# Writes a server-to-client WebSocket frame header (FIN + binary, unmasked)
# for a message of `size` bytes; returns the header length (2, 4 or 10).
cdef Py_ssize_t ws_binary_header(uint8_t* out, Py_ssize_t size) noexcept nogil

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

# The SET the router broadcasts: same address, flags and value bytes, has-revision
# set, `revision` written after the value, ttl kept.  Payload only (no header).
cdef Py_ssize_t set_broadcast_size(SetView* v) noexcept nogil
cdef Py_ssize_t write_set_broadcast(uint8_t* o, const uint8_t* p, SetView* v, uint64_t revision) noexcept nogil
