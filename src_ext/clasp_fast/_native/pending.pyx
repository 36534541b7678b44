"""FIFO of requests forwarded to the state owner (see pending.pxd)."""
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memmove


cdef class PendingQueue:
    def __cinit__(self):
        self.cap = 64
        self.items = <Pending*>malloc(self.cap * sizeof(Pending))
        self.log_cap = 4096
        self.log = <uint8_t*>malloc(self.log_cap)
        if self.items == NULL or self.log == NULL:
            raise MemoryError()

    def __dealloc__(self):
        while self.count:
            self.pop()
        free(self.items)
        free(self.log)

    def __len__(self):
        return self.count

    cdef int push(self, uint64_t seq, object session, uint8_t qos, uint8_t kind,
                  const uint8_t* payload, Py_ssize_t n) except -1:
        cdef Pending* items
        cdef Py_ssize_t i
        cdef uint8_t* nl
        if self.count == self.cap:
            items = <Pending*>malloc(self.cap * 2 * sizeof(Pending))
            if items == NULL:
                raise MemoryError()
            for i in range(self.count):
                items[i] = self.items[(self.head + i) % self.cap]
            free(self.items)
            self.items = items
            self.head = 0
            self.cap *= 2
        if self.log_head > 0 and self.log_head * 2 >= self.log_size:
            # compact: drop the bytes of popped entries
            memmove(self.log, self.log + self.log_head, self.log_size - self.log_head)
            for i in range(self.count):
                self.items[(self.head + i) % self.cap].off -= self.log_head
            self.log_size -= self.log_head
            self.log_head = 0
        if self.log_size + n > self.log_cap:
            while self.log_size + n > self.log_cap:
                self.log_cap *= 2
            nl = <uint8_t*>realloc(self.log, self.log_cap)
            if nl == NULL:
                raise MemoryError()
            self.log = nl
        memcpy(self.log + self.log_size, payload, n)
        cdef Pending* p = &self.items[(self.head + self.count) % self.cap]
        p.seq = seq
        p.session = <PyObject*>session if session is not None else NULL
        if session is not None:
            Py_INCREF(session)
        p.qos = qos
        p.kind = kind
        p.off = self.log_size
        p.len = n
        self.log_size += n
        self.count += 1
        return 0

    cdef Pending* front(self) noexcept:
        return &self.items[self.head] if self.count else NULL

    cdef Pending* at(self, Py_ssize_t i) noexcept:
        return &self.items[(self.head + i) % self.cap]

    cdef const uint8_t* payload(self, Pending* p) noexcept:
        return self.log + p.off

    cdef void pop(self) noexcept:
        cdef Pending* p
        if not self.count:
            return
        p = &self.items[self.head]
        Py_XDECREF(p.session)
        p.session = NULL
        self.log_head = p.off + p.len
        self.head = (self.head + 1) % self.cap
        self.count -= 1
        if self.count == 0:
            self.log_head = 0
            self.log_size = 0
