# TLS for wss://, between uvloop's TCP transport and the protocol above it (see tlsstream.pyx).

cdef extern from "openssl/ssl.h":
    ctypedef struct SSL


cdef struct Feed:
    # the ciphertext of the current read, handed to OpenSSL by the BIO's read callback
    const char* p
    size_t n


cdef class TLSStream:
    cdef SSL* ssl
    cdef Feed feed
    cdef readonly object context        # the ssl.SSLContext it was made from
    cdef object tcp                     # uvloop's TCP transport
    cdef object protocol                # the protocol above (the handshake gate, then picows)
    cdef object up_get_buffer           # the protocol's get_buffer/buffer_updated (buffered), or
    cdef object up_buffer_updated
    cdef object up_data_received        # ... its data_received
    cdef int fd
    cdef bint handshaken
    cdef bint closing
    cdef bint tcp_backlog               # uvloop's transport holds output: write through it
    cdef list early                     # plaintext written before the handshake completed
    cdef int send(self, const char* p, Py_ssize_t n) except -1
    cdef int _read_records(self) except -1
    cdef int _flush(self) except -1
    cdef _fail(self, str what, int err)
