# TLS for wss://, between uvloop's TCP transport and the protocol above it (see tlsstream.pyx).

cdef extern from "openssl/ssl.h":
    ctypedef struct SSL


cdef struct Feed:
    # what the BIO's callbacks work with during one OpenSSL call on the connection
    const char* p           # read: the ciphertext not yet handed to OpenSSL
    size_t n
    int fd                  # write: the socket ...
    bint direct             # ... and whether records may be sent on it straight away


cdef class TLSStream:
    cdef SSL* ssl
    cdef Feed feed
    cdef readonly object context        # the ssl.SSLContext it was made from
    cdef object server_hostname         # client end: the server's name (None: server end)
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
    cdef object preamble                # reads the bytes before TLS (a PROXY header), or None
    cdef bytes pre_buf                  # ... those received so far
    cdef object _preamble(self, Py_ssize_t n)
    cdef int send(self, const char* p, Py_ssize_t n) except -1
    cdef int _read_records(self) except -1
    cdef int _client_setup(self) except -1
    cdef bint _handshake(self) except -1
    cdef int _flush(self) except -1
    cdef int _direct(self) except -1
    cdef _fail(self, str what, int err)
