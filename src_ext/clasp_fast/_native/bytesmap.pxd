# An open-addressing hash map from byte strings to pointers, in C.
#
# The router looks addresses up once per message; a Python dict would need a
# bytes/str object per lookup.  This map hashes the address bytes in place.
# Keys are NOT copied: the value that a key maps to must own the key's bytes
# and keep them alive (and unchanged) while the entry is in the map.
#
# The lookup functions are defined here, inline, not in bytesmap.pyx: Cython
# inlines across modules only what a .pxd defines, and params, patterns and the
# router call them once per message.

from libc.stdint cimport uint64_t
from libc.string cimport memcmp, memcpy

cdef struct BMSlot:
    uint64_t hash           # 0 = never used
    const char* key         # NULL with hash != 0 = deleted (tombstone)
    Py_ssize_t klen
    void* value

cdef struct BytesMap:
    BMSlot* slots
    Py_ssize_t mask         # capacity - 1 (capacity is a power of two)
    Py_ssize_t count        # live entries
    Py_ssize_t used         # live entries + tombstones

cdef int bm_init(BytesMap* m, Py_ssize_t capacity) except -1
cdef void bm_free(BytesMap* m) noexcept nogil
cdef void bm_clear(BytesMap* m) noexcept nogil


# hash and lookup are on every message's path: inline, compiled into each user
cdef inline uint64_t bm_hash(const char* k, Py_ssize_t n) noexcept nogil:
    # 8 bytes at a time, multiply-xorshift mixing (wyhash-style constants)
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ <uint64_t>n
    cdef uint64_t w
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&w, k + i, 8)
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL
        h ^= h >> 31
        i += 8
    w = 0
    if i < n:
        memcpy(&w, k + i, n - i)
        h = (h ^ w) * 0x94D049BB133111EBULL
        h ^= h >> 29
    h *= 0xBF58476D1CE4E5B9ULL
    h ^= h >> 32
    return h | 1            # never 0: 0 marks an unused slot


cdef inline Py_ssize_t bm_find(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h) noexcept nogil:
    cdef Py_ssize_t i = h & m.mask
    cdef BMSlot* s
    while True:
        s = &m.slots[i]
        if s.hash == 0:
            return -1
        if s.hash == h and s.key != NULL and s.klen == n and memcmp(s.key, k, n) == 0:
            return i
        i = (i + 1) & m.mask


cdef inline void* bm_get(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h) noexcept nogil:
    cdef Py_ssize_t i = bm_find(m, k, n, h)
    return NULL if i < 0 else m.slots[i].value
# Inserts or replaces; returns the previous value (or NULL).
cdef void* bm_put(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h, void* value) except? NULL
# Removes; returns the removed value (or NULL).
cdef void* bm_del(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h) noexcept nogil
