# An open-addressing hash map from byte strings to pointers, in C.
#
# The router looks addresses up once per message; a Python dict would need a
# bytes/str object per lookup.  This map hashes the address bytes in place.
# Keys are NOT copied: the value that a key maps to must own the key's bytes
# and keep them alive (and unchanged) while the entry is in the map.

from libc.stdint cimport uint64_t

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

cdef uint64_t bm_hash(const char* k, Py_ssize_t n) noexcept nogil
cdef int bm_init(BytesMap* m, Py_ssize_t capacity) except -1
cdef void bm_free(BytesMap* m) noexcept nogil
cdef void bm_clear(BytesMap* m) noexcept nogil
cdef void* bm_get(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h) noexcept nogil
# Inserts or replaces; returns the previous value (or NULL).
cdef void* bm_put(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h, void* value) except? NULL
# Removes; returns the removed value (or NULL).
cdef void* bm_del(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h) noexcept nogil
