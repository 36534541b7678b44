"""Bus records between workers (kinds and layouts: see bus.pxd).

The Python-level encoders and parsers of the rare records, shared by the
router core's slow paths and by ``clasp_fast.cluster.node`` (the socket I/O).
The hot records are built and read in C by the router with bus.pxd's inline
functions.
"""
import struct

from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport uint8_t
from libc.string cimport memcmp
from clasp_fast._native.wire cimport (load_u16, load_u32, load_u64, store_u64, ws_header_len,
                                      SET_HAS_REVISION, SET_HAS_TTL)

from clasp_fast._native.bus cimport (
    R_HELLO, R_INTEREST, R_PUBLISH, R_SET_REQ, R_REPLICATE, R_REJECT, R_BUNDLE_REQ, R_DONE, R_RELEASE,
    R_HOLDER, R_ANNOUNCE, R_SYNC_REQ, R_SYNC_PARAM, R_SYNC_DONE, R_DUP, R_PUB_REQ, R_BARRIER, R_DURABLE, R_CLUSTER,
    RECORD_HEAD, REQUEST_HEAD, REPLICATE_HEAD, state_size)

HELLO = R_HELLO
INTEREST = R_INTEREST
PUBLISH = R_PUBLISH
SET_REQ = R_SET_REQ
REPLICATE = R_REPLICATE
REJECT = R_REJECT
BUNDLE_REQ = R_BUNDLE_REQ
DONE = R_DONE
RELEASE = R_RELEASE
HOLDER = R_HOLDER
ANNOUNCE = R_ANNOUNCE
SYNC_REQ = R_SYNC_REQ
SYNC_PARAM = R_SYNC_PARAM
SYNC_DONE = R_SYNC_DONE
DUP = R_DUP
PUB_REQ = R_PUB_REQ
BARRIER = R_BARRIER
DURABLE = R_DURABLE
CLUSTER = R_CLUSTER
#: bytes of an R_REPLICATE body before its state block (origin, seq, journal position)
REPLICATE_HEAD_SIZE = REPLICATE_HEAD

#: requests a worker sends its owner (held while a restarted owner syncs)
REQUESTS = (R_SET_REQ, R_PUB_REQ, R_BUNDLE_REQ, R_RELEASE, R_BARRIER)

_HEAD = struct.Struct(">IB")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_DONE = struct.Struct(">QQ")
_REQ = struct.Struct(">QBB")


def record(int kind, bytes body=b"") -> bytes:
    """A whole record: u32 length, u8 kind, body."""
    return _HEAD.pack(1 + len(body), kind) + body


def str16(str s) -> bytes:
    b = s.encode()
    return _U16.pack(len(b)) + b


cdef tuple _read_str16(bytes body, Py_ssize_t pos):
    n = _U16.unpack_from(body, pos)[0]
    return body[pos + 2:pos + 2 + n].decode(), pos + 2 + n


# --- R_HELLO ---------------------------------------------------------------------

HELLO_SIZE = RECORD_HEAD + 2


def hello(int index, bint restarted) -> bytes:
    return record(R_HELLO, bytes((index, int(restarted))))


def parse_hello(bytes data):
    """(peer index, restarted) from the first HELLO_SIZE bytes, or None if they are not an R_HELLO."""
    size, kind = _HEAD.unpack_from(data)
    if kind != R_HELLO or size != 3:
        return None
    return data[5], bool(data[6])


# --- R_INTEREST ------------------------------------------------------------------

def interest(bint add, str pattern, int mask) -> bytes:
    return bytes((int(add), mask)) + str16(pattern)


def parse_interest(bytes body):
    """(add, pattern, mask)."""
    pattern, _ = _read_str16(body, 2)
    return bool(body[0]), pattern, body[1]


def replicate_holder(bytes body) -> bytes:
    """The lock holder (session id; empty: unlocked) in an R_REPLICATE body's state."""
    cdef Py_ssize_t st = REPLICATE_HEAD
    cdef Py_ssize_t h = st + 22 + body[st + 21]
    return body[h + 1:h + 1 + body[h]]


def replicate_unlocked(bytes body) -> bytes:
    """An R_REPLICATE body with the lock holder in its state cleared."""
    cdef Py_ssize_t st = REPLICATE_HEAD
    cdef Py_ssize_t h = st + 22 + body[st + 21]
    return body[:h] + b"\x00" + body[h + 1 + body[h]:]


def replicate_frame(bytes body) -> bytes:
    """The ready broadcast frame inside an R_REPLICATE body (after its head and state)."""
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(body)
    return body[REPLICATE_HEAD + state_size(b + REPLICATE_HEAD):]


cdef Py_ssize_t _revision_at(bytes body) except -1:
    """Where the CLASP revision of an R_REPLICATE body's broadcast SET frame is (after the
    value, before a TTL)."""
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = len(body)
    cdef Py_ssize_t f = REPLICATE_HEAD + state_size(b + REPLICATE_HEAD)
    cdef Py_ssize_t hl = ws_header_len(b + f, n - f)
    if hl < 0:
        raise ValueError("not an R_REPLICATE body")
    f += hl + 4                                 # the CLASP header; the SET payload follows
    if f + 2 > n or not b[f + 1] & SET_HAS_REVISION:
        raise ValueError("not an R_REPLICATE body")
    return n - 8 - (4 if b[f + 1] & SET_HAS_TTL else 0)


def replicate_revision(bytes body) -> int:
    """The CLASP revision of the state in an R_REPLICATE body."""
    return load_u64(<const uint8_t*>PyBytes_AS_STRING(body) + _revision_at(body))


def replicate_with_revision(bytes body, unsigned long long revision) -> bytes:
    """An R_REPLICATE body with its state's CLASP revision replaced."""
    cdef Py_ssize_t at = _revision_at(body)
    cdef uint8_t rev[8]
    store_u64(rev, revision)
    return body[:at] + (<char*>rev)[:8] + body[at + 8:]


cdef Py_ssize_t _frame_address(const uint8_t* f, Py_ssize_t n, Py_ssize_t* alen) noexcept:
    """Where the address of the CLASP SET or PUBLISH in a server WebSocket frame is (its
    length in ``alen``); -1: no address there."""
    cdef Py_ssize_t at = ws_header_len(f, n)
    if at < 0:
        return -1
    at += 4 + 2                                 # the CLASP header, type and flags
    if at + 2 > n:
        return -1
    alen[0] = load_u16(f + at)
    if at + 2 + alen[0] > n:
        return -1
    return at + 2


def route_runs(bytes data):
    """The NATS bridge's view of one tick of the owner's bus records: the runs of consecutive
    records that cross nodes (R_PUBLISH, R_REPLICATE, R_HOLDER), one address each, as
    ``[(address, start, end, fast, holders)]``: ``data[start:end]`` is the run, ``fast``
    the body of its last R_REPLICATE whose bucket revision is 0 (a fast SET; else None),
    ``holders`` its number of R_HOLDER records.  Other records end a run and are left out."""
    cdef const uint8_t* b = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = len(data), pos = 0, start, size, at, alen, body, sh
    cdef const uint8_t* addr
    cdef const uint8_t* last_addr = NULL
    cdef Py_ssize_t last_len = 0, last_end = -1
    cdef uint8_t kind
    cdef list runs = []
    cdef list run = None
    while pos + 5 <= n:
        size = load_u32(b + pos)
        if pos + 4 + size > n or size < 1:
            break
        kind = b[pos + 4]
        start, body, pos = pos, pos + 5, pos + 4 + size
        if kind == R_PUBLISH:
            at = _frame_address(b + body, pos - body, &alen)
            if at < 0:
                continue
            addr = b + body + at
        elif kind == R_REPLICATE:
            if pos - body < REPLICATE_HEAD + 1:
                continue
            sh = REPLICATE_HEAD + state_size(b + body + REPLICATE_HEAD)
            at = _frame_address(b + body + sh, pos - body - sh, &alen)
            if at < 0:
                continue
            addr = b + body + sh + at
        elif kind == R_HOLDER:
            if pos - body < 2:
                continue
            alen = load_u16(b + body)
            addr = b + body + 2
        else:
            continue
        if run is not None and last_end == start and alen == last_len and memcmp(addr, last_addr, alen) == 0:
            run[2] = pos
        else:
            run = [(<const char*>addr)[:alen], start, pos, None, 0]
            runs.append(run)
        last_addr, last_len, last_end = addr, alen, pos
        if kind == R_REPLICATE and load_u64(b + body + 1) == 0:
            run[3] = data[body:pos]
        elif kind == R_HOLDER:
            run[4] += 1
    return runs


# --- requests and answers ------------------------------------------------------------

def request_head(unsigned long long seq, int qos, str session_id) -> bytes:
    sid = session_id.encode()
    return _REQ.pack(seq, qos, len(sid)) + sid


def parse_request(bytes body):
    """(seq, qos, session id, payload) of a request record."""
    seq, qos, idlen = _REQ.unpack_from(body)
    return seq, qos, body[REQUEST_HEAD:REQUEST_HEAD + idlen].decode(), body[REQUEST_HEAD + idlen:]


def done(unsigned long long seq, unsigned long long revision=0) -> bytes:
    """Body of R_DONE and R_DUP."""
    return _DONE.pack(seq, revision)


def parse_done(bytes body):
    """(seq, revision) of R_DONE and R_DUP."""
    return _DONE.unpack_from(body)


def reject(unsigned long long seq, int code, str message, address) -> bytes:
    return _U64.pack(seq) + _U16.pack(code) + str16(message) + str16(address or "")


def parse_reject(bytes body):
    """(seq, code, message, address or None)."""
    seq = _U64.unpack_from(body)[0]
    code = _U16.unpack_from(body, 8)[0]
    message, pos = _read_str16(body, 10)
    address, _ = _read_str16(body, pos)
    return seq, code, message, address or None


# --- locks and state sync -----------------------------------------------------------

def holder(str address, str holder_id, int origin) -> bytes:
    hb = holder_id.encode()
    return str16(address) + bytes((len(hb),)) + hb + bytes((origin,))


def parse_holder(bytes body):
    """(address bytes, holder id bytes, holder origin)."""
    alen = _U16.unpack_from(body)[0]
    hlen = body[2 + alen]
    return body[2:2 + alen], body[3 + alen:3 + alen + hlen], body[3 + alen + hlen]


def sync_done(dict applied) -> bytes:
    """Body of R_SYNC_DONE: the highest request seq decided, per origin worker."""
    return bytes((len(applied),)) + b"".join(bytes((i,)) + _U64.pack(seq) for i, seq in applied.items())


def parse_sync_done(bytes body) -> dict:
    return {body[1 + 9 * i]: _U64.unpack_from(body, 2 + 9 * i)[0] for i in range(body[0])}


# --- durability ------------------------------------------------------------------------

def durable(unsigned long long position) -> bytes:
    """Body of R_DURABLE."""
    return _U64.pack(position)


def parse_durable(bytes body) -> int:
    return _U64.unpack_from(body)[0]


# --- R_SYNC_PARAM: a whole param (also the state journal's record) --------------------

_SYNC_HEAD = struct.Struct(">QQQBIB")     # revision, timestamp, expires, has_ttl, ttl, writer length


def sync_param(unsigned long long revision, str address, bytes value, *,
               unsigned long long timestamp_us=0, unsigned long long expires_us=0, unsigned int ttl=0,
               bint has_ttl=False, str writer="", str holder="", int holder_origin=0) -> bytes:
    """Body of R_SYNC_PARAM from its fields (``value``: type byte + data, as on the wire)."""
    w, h, a = writer.encode(), holder.encode(), address.encode()
    return (_SYNC_HEAD.pack(revision, timestamp_us, expires_us, int(has_ttl), ttl, len(w)) + w
            + bytes((len(h),)) + h + bytes((holder_origin,)) + _U16.pack(len(a)) + a + value)


def sync_param_rows(bytes batch, dict rows):
    """Adds a batch of R_SYNC_PARAM records (whole records: u32 length, u8 kind, body) to
    the state journal's ``rows``, {address: (address, revision, expires µs, body)}, which
    keep the newest record of each address; returns the number of records."""
    cdef const uint8_t* b = <const uint8_t*>batch
    cdef Py_ssize_t pos = 0, end = len(batch), size, count = 0, start, sp, alen
    while pos + RECORD_HEAD <= end:
        size = load_u32(b + pos)
        start = pos + RECORD_HEAD
        pos += 4 + size
        count += 1
        sp = start + 8 + state_size(b + start + 8)
        alen = load_u16(b + sp)
        address = batch[sp + 2:sp + 2 + alen]
        revision = load_u64(b + start)
        old = rows.get(address)
        if old is None or (<tuple>old)[1] <= revision:
            rows[address] = (address, revision, load_u64(b + start + 16), batch[start:pos])
    return count
