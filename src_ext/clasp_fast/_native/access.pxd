# What one session may do in token mode (see access.pyx).  A session's `access` is None in
# open mode: the router then checks nothing (one pointer comparison per SET/PUBLISH).

from clasp_fast._native.bytesmap cimport BytesMap

cdef class Access:
    cdef readonly object entry          # the TokenEntry the session was admitted with
    cdef readonly object scopes         # its clasp_fast.auth.scopes.Scopes
    cdef readonly bint write_all        # a write scope covers every address: no check at all
    cdef readonly bint read_all
    cdef BytesMap decisions             # address -> Decision* (write), keys owned by the Decision
    cdef Py_ssize_t ndecisions
    cdef int may_write(self, const char* addr, Py_ssize_t n) except -1
    cdef void _forget(self) noexcept
