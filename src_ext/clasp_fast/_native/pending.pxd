# Requests a worker has sent to the state owner and not yet seen decided.
# FIFO: the owner decides one worker's requests in the order they were sent,
# so results always match the oldest entry.  Payloads are kept so the whole
# queue can be sent again to a restarted owner.

from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t

cdef enum:
    PK_SET = 1
    PK_BUNDLE = 2
    PK_RELEASE = 3
    PK_PUBLISH = 4
    PK_READ = 5             # a read of shared state waiting for a barrier

cdef struct Pending:
    uint64_t seq
    PyObject* session       # owned reference (the Session that asked), or NULL
    uint8_t qos
    uint8_t kind
    Py_ssize_t off          # payload in the log
    Py_ssize_t len

cdef class PendingQueue:
    cdef Pending* items
    cdef Py_ssize_t head
    cdef Py_ssize_t count
    cdef Py_ssize_t cap
    cdef uint8_t* log
    cdef Py_ssize_t log_head
    cdef Py_ssize_t log_size
    cdef Py_ssize_t log_cap
    cdef int push(self, uint64_t seq, object session, uint8_t qos, uint8_t kind,
                  const uint8_t* payload, Py_ssize_t n) except -1
    cdef Pending* front(self) noexcept
    cdef Pending* at(self, Py_ssize_t i) noexcept
    cdef const uint8_t* payload(self, Pending* p) noexcept
    cdef void pop(self) noexcept
