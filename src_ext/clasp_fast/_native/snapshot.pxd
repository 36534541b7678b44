# SNAPSHOT writing: the state a client gets on HELLO, SUBSCRIBE and GET.

from libc.stdint cimport uint8_t, uint16_t, uint64_t
from clasp_fast._native.params cimport ParamStore, Param, ID_MAX
from clasp_fast._native.outbox cimport Session
from clasp_fast._native.patterns cimport Pattern

cdef enum:
    SNAPSHOT_HEAD = 3           # type + u16 count
    # the largest SNAPSHOT entry for a param, beyond address and value:
    # address len 2 + revision 8 + flags 1 + writer 2+ID + ts 8 (the type byte is in value_len)
    ENTRY_OVERHEAD = 2 + 8 + 1 + 2 + ID_MAX + 8
    # bytes of a snapshot written at once; the rest follows as the connection drains
    SNAPSHOT_STEP = 262144


cdef class SnapshotWriter:
    cdef Session session
    cdef uint8_t* buf           # payload under construction, after room for the headers
    cdef Py_ssize_t size
    cdef uint16_t count
    cdef bint sent_any
    cdef void _start(self) noexcept
    cdef Py_ssize_t entry_size(self, Param* prm) noexcept
    cdef int add(self, Param* prm) except -1
    cdef int _emit(self) except -1
    cdef int finish(self, bint always) except -1
    cdef object to_value(self, Param* prm)


cdef class SnapshotCursor:
    cdef ParamStore params
    cdef Pattern pattern        # None: every param
    cdef bint always            # send one (empty) SNAPSHOT even if nothing matches
    cdef bint sent_any
    cdef uint64_t last          # write order of the last param sent
    cdef uint64_t now
    cdef uint64_t since         # replay: only params written after it (wall µs; 0: all)


cdef int write_snapshot(ParamStore params, Session s, object pattern, bint always, uint64_t now,
                        uint64_t since=*) except -1
cdef list params_where(ParamStore params, str text, bint exact, uint64_t now)
