"""Param state in C structs, keyed by address bytes.

Expiry (docs/protocol.md "Limits": param TTL 3600 s after the last write, 0 = never,
a SET's TTL overrides):

* no TTL ever given: the store default after every write;
* ``sliding n``: n seconds after the last write;
* ``absolute n``: n seconds after the write that carried it; later writes
  without a TTL keep that deadline (``absolute 0`` means never);
* ``never``: never.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy

from clasp_fast._native.bytesmap cimport bm_init, bm_free, bm_put, bm_del
from clasp_fast._native.patterns cimport matchlist_free


cdef void param_free(Param* p) noexcept:
    if p == NULL:
        return
    matchlist_free(p.match)
    free(p.value)
    free(p.address)
    free(p)


cdef class ParamStore:
    """All params of the router (or of this worker's replica of it)."""

    def __cinit__(self, double default_ttl_s=3600.0):
        bm_init(&self.map, 1024)
        self.default_ttl_us = <uint64_t>(default_ttl_s * 1e6) if default_ttl_s > 0 else 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.map.mask + 1):
            if self.map.slots[i].key != NULL:
                param_free(<Param*>self.map.slots[i].value)
        bm_free(&self.map)

    def __len__(self):
        return self.map.count

    cdef Param* create(self, const char* addr, Py_ssize_t n, uint64_t h) except NULL:
        cdef Param* p = <Param*>calloc(1, sizeof(Param))
        if p == NULL:
            raise MemoryError()
        p.address = <char*>malloc(n + 1)
        if p.address == NULL:
            free(p)
            raise MemoryError()
        memcpy(p.address, addr, n)
        p.address[n] = 0
        p.addr_len = n
        p.hash = h
        bm_put(&self.map, p.address, n, h, p)
        return p

    cdef void remove(self, Param* p) noexcept:
        bm_del(&self.map, p.address, p.addr_len, p.hash)
        param_free(p)

    cdef Py_ssize_t sweep(self, uint64_t now_us) noexcept:
        """Removes every expired param; returns how many."""
        cdef Py_ssize_t i, removed = 0
        cdef Param* p
        for i in range(self.map.mask + 1):
            if self.map.slots[i].key != NULL:
                p = <Param*>self.map.slots[i].value
                if param_expired(p, now_us):
                    self.remove(p)
                    removed += 1
        return removed

    cdef Param* slot(self, Py_ssize_t i) noexcept:
        if self.map.slots[i].key == NULL:
            return NULL
        return <Param*>self.map.slots[i].value

    cdef Py_ssize_t capacity(self) noexcept:
        return self.map.mask + 1
