"""What one session may do in token mode, with its write decisions cached in C.

A session admitted with a token gets an ``Access``; in open mode a session has none and
the router checks nothing.  Decisions come from the token's scopes
(``clasp_fast.auth.scopes``, which matches with the router's one matcher):

- writes (SET, PUBLISH, lock/unlock, each part of a BUNDLE): ``may_write(addr)``, decided
  once per (session, address) and then looked up in a C hash map on the address bytes, so
  a session writing the same params again pays one hash lookup and creates no object.
  ``write_all`` (a write scope covering ``/**``) skips even that.  The map holds at most
  ``MAX_DECISIONS`` addresses; beyond it, it starts over.
- reads: SUBSCRIBE and GET/QUERY of a pattern need ``covers_read(pattern)`` (checked once,
  at SUBSCRIBE: every address such a subscription can match is readable, so its deliveries
  need no check); one address (GET, snapshot entries, QUERY results): ``may_read(address)``.
"""
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from clasp_fast._native.bytesmap cimport bm_init, bm_free, bm_clear, bm_get, bm_put, bm_hash

from clasp_fast.auth.scopes import READ, WRITE

cdef enum:
    MAX_DECISIONS = 4096

cdef struct Decision:
    bint allowed
    Py_ssize_t len
    char key[1]             # the address bytes (allocated with the struct)


cdef class Access:
    """The scopes of a session's token, and the decisions made from them."""

    def __cinit__(self, entry):
        bm_init(&self.decisions, 16)

    def __init__(self, entry):
        self.entry = entry
        self.scopes = entry.scopes
        self.write_all = self.scopes.everything(WRITE)
        self.read_all = self.scopes.everything(READ)

    def __dealloc__(self):
        self._forget()
        bm_free(&self.decisions)

    cdef void _forget(self) noexcept:
        cdef Py_ssize_t i
        if self.decisions.slots == NULL:
            return
        for i in range(self.decisions.mask + 1):
            if self.decisions.slots[i].key != NULL:
                free(self.decisions.slots[i].value)
        bm_clear(&self.decisions)
        self.ndecisions = 0

    cdef int may_write(self, const char* addr, Py_ssize_t n) except -1:
        """1 if the session may write ``addr`` (SET, PUBLISH, lock/unlock), else 0."""
        cdef uint64_t h
        cdef Decision* d
        if self.write_all:
            return 1
        h = bm_hash(addr, n)
        d = <Decision*>bm_get(&self.decisions, addr, n, h)
        if d != NULL:
            return d.allowed
        allowed = self.scopes.may(WRITE, addr[:n].decode())     # valid UTF-8: the parser checked
        if self.ndecisions >= MAX_DECISIONS:
            self._forget()
        d = <Decision*>malloc(sizeof(Decision) + n)
        if d == NULL:
            raise MemoryError()
        d.allowed = allowed
        d.len = n
        memcpy(d.key, addr, n)
        bm_put(&self.decisions, d.key, n, h, d)
        self.ndecisions += 1
        return d.allowed

    def may_write_address(self, str address):
        """Python surface of ``may_write`` (BUNDLE parts, tests)."""
        cdef bytes b = address.encode()
        return bool(self.may_write(b, len(b)))

    def may_read(self, str address):
        """May the session read ``address`` (GET, a snapshot entry, a QUERY result)?  An
        announced signal may be named by a pattern (``/cue/*``): readable when all of it is."""
        if self.read_all:
            return True
        return self.scopes.covers(READ, address) if "*" in address else self.scopes.may(READ, address)

    def covers_read(self, str pattern):
        """May the session read every address ``pattern`` matches (SUBSCRIBE, GET of a pattern)?"""
        return self.read_all or self.scopes.covers(READ, pattern)

    @property
    def name(self):
        return self.entry.name
