"""Open-addressing (linear probing) hash map from byte strings to pointers."""
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy


cdef int bm_init(BytesMap* m, Py_ssize_t capacity) except -1:
    cdef Py_ssize_t cap = 16
    while cap < capacity:
        cap <<= 1
    m.slots = <BMSlot*>calloc(cap, sizeof(BMSlot))
    if m.slots == NULL:
        raise MemoryError()
    m.mask = cap - 1
    m.count = 0
    m.used = 0
    return 0


cdef void bm_free(BytesMap* m) noexcept nogil:
    free(m.slots)
    m.slots = NULL
    m.count = 0
    m.used = 0


cdef void bm_clear(BytesMap* m) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(m.mask + 1):
        m.slots[i].hash = 0
        m.slots[i].key = NULL
        m.slots[i].value = NULL
    m.count = 0
    m.used = 0


cdef int _grow(BytesMap* m) except -1:
    cdef BMSlot* old = m.slots
    cdef Py_ssize_t oldcap = m.mask + 1
    cdef Py_ssize_t newcap = oldcap * 2 if m.count * 2 >= oldcap else oldcap
    cdef Py_ssize_t i, j
    m.slots = <BMSlot*>calloc(newcap, sizeof(BMSlot))
    if m.slots == NULL:
        m.slots = old
        raise MemoryError()
    m.mask = newcap - 1
    m.used = m.count
    for i in range(oldcap):
        if old[i].key != NULL:
            j = old[i].hash & m.mask
            while m.slots[j].hash != 0:
                j = (j + 1) & m.mask
            m.slots[j] = old[i]
    free(old)
    return 0


cdef void* bm_put(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h, void* value) except? NULL:
    cdef Py_ssize_t i = bm_find(m, k, n, h)
    cdef void* prev
    if i >= 0:
        prev = m.slots[i].value
        m.slots[i].key = k
        m.slots[i].value = value
        return prev
    if (m.used + 1) * 4 > (m.mask + 1) * 3:
        _grow(m)
    i = h & m.mask
    while m.slots[i].key != NULL:
        i = (i + 1) & m.mask
    if m.slots[i].hash == 0:
        m.used += 1
    m.slots[i].hash = h
    m.slots[i].key = k
    m.slots[i].klen = n
    m.slots[i].value = value
    m.count += 1
    return NULL


cdef void* bm_del(BytesMap* m, const char* k, Py_ssize_t n, uint64_t h) noexcept nogil:
    cdef Py_ssize_t i = bm_find(m, k, n, h)
    cdef void* prev
    if i < 0:
        return NULL
    prev = m.slots[i].value
    m.slots[i].key = NULL       # tombstone (hash stays non-zero)
    m.slots[i].value = NULL
    m.count -= 1
    return prev
