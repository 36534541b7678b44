# The param state: address -> value, revision, writer, time, TTL, lock holder.
# Plain C structs in a BytesMap: a SET updates one in place with no Python object.

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from clasp_fast._native.bytesmap cimport BytesMap
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
    MatchList* match        # cached receivers of this address (see Trie.gen)
    uint64_t order          # when it was last written, as a count of writes (snapshot order)

cdef class ParamStore:
    cdef BytesMap map
    cdef uint64_t writes                     # writes so far: each write's `order`
    cdef readonly uint64_t default_ttl_us    # 0 = params never expire by default
    cdef Param* get(self, const char* addr, Py_ssize_t n, uint64_t h) noexcept
    cdef Param* create(self, const char* addr, Py_ssize_t n, uint64_t h) except NULL
    cdef void remove(self, Param* p) noexcept
    cdef int store_value(self, Param* p, uint8_t vtype, const uint8_t* data, Py_ssize_t n) except -1
    cdef void set_expiry(self, Param* p, bint has_ttl, uint32_t ttl_raw, uint64_t now_us) noexcept
    cdef Py_ssize_t sweep(self, uint64_t now_us) noexcept
    cdef Param* slot(self, Py_ssize_t i) noexcept
    cdef Py_ssize_t capacity(self) noexcept

cdef void param_free(Param* p) noexcept
cdef inline bint param_expired(Param* p, uint64_t now_us) noexcept nogil:
    return p.expires_us != 0 and p.expires_us <= now_us
