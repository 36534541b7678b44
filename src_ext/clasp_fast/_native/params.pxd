# The param state: address -> value, revision, writer, time, TTL, lock holder.
# Plain C structs in a BytesMap: a SET updates one in place with no Python object.
#
# `param_get`, `param_store`, `param_expired`, `param_expiry` are defined here,
# inline, not in params.pyx: Cython inlines across modules only what a .pxd
# defines, and the router calls them once per SET.

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport realloc
from libc.string cimport memcpy
from clasp_fast._native.bytesmap cimport BytesMap, bm_get
from clasp_fast._native.patterns cimport MatchList

cdef enum:
    ID_MAX = 63             # longest session id / writer id kept (bytes)

cdef struct Param:
    char* address           # owned; also the map key
    Py_ssize_t addr_len
    uint64_t hash
    uint8_t* value          # type byte + value data (owned)
    Py_ssize_t value_len
    Py_ssize_t value_cap
    uint64_t revision
    uint64_t timestamp_us   # server time of the last accepted write
    uint64_t expires_us     # 0 = never
    uint32_t ttl_raw        # the TTL a SET set on this param (see has_ttl)
    bint has_ttl            # a SET carried a TTL: it overrides the default
    uint8_t writer_len
    char writer[ID_MAX + 1]
    uint8_t holder_len      # 0 = not locked
    char holder[ID_MAX + 1]
    uint8_t holder_origin   # the worker where the lock holder's session lives
    uint8_t fast            # NATS node: this node wrote the bucket's state of it last and
                            # nothing waits for the bucket there (Router.set_fast)
    MatchList* match        # cached receivers of this address (see Trie.gen)
    uint64_t order          # when it was last written, as a count of writes (snapshot order)

cdef class ParamStore:
    cdef BytesMap map
    cdef uint64_t writes                     # writes so far: each write's `order`
    cdef readonly uint64_t default_ttl_us    # 0 = params never expire by default
    cdef Param* create(self, const char* addr, Py_ssize_t n, uint64_t h) except NULL
    cdef void remove(self, Param* p) noexcept
    cdef Py_ssize_t sweep(self, uint64_t now_us) noexcept
    cdef Param* slot(self, Py_ssize_t i) noexcept
    cdef Py_ssize_t capacity(self) noexcept

cdef void param_free(Param* p) noexcept
cdef inline bint param_expired(Param* p, uint64_t now_us) noexcept nogil:
    return p.expires_us != 0 and p.expires_us <= now_us


# --- on every SET's path: inline, compiled into the router -------------------------

cdef inline Param* param_get(ParamStore st, const char* addr, Py_ssize_t n, uint64_t h) noexcept:
    return <Param*>bm_get(&st.map, addr, n, h)


cdef inline int param_store(ParamStore st, Param* p, uint8_t vtype, const uint8_t* data,
                            Py_ssize_t n) except -1:
    """Stores a value (type code + data) and stamps the write's order."""
    cdef uint8_t* nv
    cdef Py_ssize_t cap
    if n + 1 > p.value_cap:
        cap = n + 1 if n + 1 > 16 else 16
        nv = <uint8_t*>realloc(p.value, cap)
        if nv == NULL:
            raise MemoryError()
        p.value = nv
        p.value_cap = cap
    elif p.value_cap > 256 and n + 1 < p.value_cap // 4:
        nv = <uint8_t*>realloc(p.value, n + 1)
        if nv != NULL:
            p.value = nv
            p.value_cap = n + 1
    p.value[0] = vtype
    memcpy(p.value + 1, data, n)
    p.value_len = n + 1
    st.writes += 1
    p.order = st.writes
    return 0


cdef inline void param_expiry(ParamStore st, Param* p, bint has_ttl, uint32_t ttl_raw,
                              uint64_t now_us) noexcept:
    """When ``p`` expires after a write at ``now_us`` (see params.pyx for the rules)."""
    cdef uint64_t secs
    if has_ttl:
        p.has_ttl = True
        p.ttl_raw = ttl_raw
        secs = ttl_raw & 0x7FFFFFFF
        p.expires_us = 0 if secs == 0 else now_us + secs * 1000000
    elif p.has_ttl:
        if not (p.ttl_raw & 0x80000000):       # absolute: the deadline stays
            secs = p.ttl_raw
            p.expires_us = 0 if secs == 0 else now_us + secs * 1000000
    else:
        p.expires_us = 0 if st.default_ttl_us == 0 else now_us + st.default_ttl_us
