"""TLS for ``wss://``: a lean TLS layer between uvloop's TCP transport and the protocol above.

uvloop's own TLS (``loop.create_server(ssl=...)``, its ``SSLProtocol``) gives every
connection a 256 KiB read buffer, two memory BIOs that keep their largest size, and a
chain of Python calls and copies per write.  ``TLSStream`` is both the protocol of
uvloop's plain TCP transport and the transport of the protocol above it (the handshake
gate, then picows):

* one OpenSSL ``SSL`` per connection, made from the server's ``ssl.SSLContext`` (its
  ``SSL_CTX``: certificate, SIGHUP reloads, client certificates, ALPN, minimum version all
  stay the ``ssl`` module's), with one small BIO whose callbacks read from the current
  input and write to one output buffer shared by the whole process;
* reads: uvloop reads into one buffer shared by every connection of the process, and the
  records are decrypted straight into the buffer of the protocol above (picows');
* writes: one ``SSL_write`` per call (the edge's flush: one per connection per tick); the
  BIO sends each record OpenSSL makes (up to 16 KiB) from OpenSSL's own buffer with one
  ``send(2)`` when uvloop holds no output for the socket (as picows does for plain
  connections), else hands it to uvloop's transport;
* a PROXY protocol header before the TLS handshake is handed to the gate
  (``read_preamble``).

Nothing here is per message: the router's frames reach it already batched per tick.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.ref cimport PyObject
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

import ipaddress
import logging
import ssl as _ssl

log = logging.getLogger("clasp_fast.server")

cdef extern from "sys/types.h":
    ctypedef long ssize_t

cdef extern from "sys/socket.h" nogil:
    ssize_t send(int fd, const void* buf, size_t n, int flags)
    int MSG_NOSIGNAL

cdef extern from "openssl/ssl.h" nogil:
    ctypedef struct SSL_CTX
    ctypedef struct SSL_CIPHER
    ctypedef struct BIO
    ctypedef struct BIO_METHOD
    ctypedef struct X509
    SSL* SSL_new(SSL_CTX* ctx)
    void SSL_free(SSL* s)
    void SSL_set_bio(SSL* s, BIO* rbio, BIO* wbio)
    void SSL_set_accept_state(SSL* s)
    void SSL_set_connect_state(SSL* s)
    long SSL_set_tlsext_host_name(SSL* s, const char* name)
    int SSL_set1_host(SSL* s, const char* hostname)
    int SSL_do_handshake(SSL* s)
    int SSL_read_ex(SSL* s, void* buf, size_t num, size_t* readbytes)
    int SSL_write_ex(SSL* s, const void* buf, size_t num, size_t* written)
    int SSL_shutdown(SSL* s)
    int SSL_get_error(const SSL* s, int ret)
    const char* SSL_get_version(const SSL* s)
    const SSL_CIPHER* SSL_get_current_cipher(const SSL* s)
    const char* SSL_CIPHER_get_name(const SSL_CIPHER* c)
    const char* SSL_CIPHER_get_version(const SSL_CIPHER* c)
    int SSL_CIPHER_get_bits(const SSL_CIPHER* c, int* alg_bits)
    void SSL_get0_alpn_selected(const SSL* s, const unsigned char** data, unsigned int* length)
    X509* SSL_get1_peer_certificate(const SSL* s)
    int SSL_CTX_get_verify_mode(const SSL_CTX* ctx)
    unsigned long SSL_CTX_get_options(const SSL_CTX* ctx)
    int SSL_CTX_set_ciphersuites(SSL_CTX* ctx, const char* s)
    unsigned long OpenSSL_version_num()
    int SSL_ERROR_WANT_READ
    int SSL_ERROR_WANT_WRITE
    int SSL_ERROR_ZERO_RETURN

cdef extern from "openssl/x509.h" nogil:
    int i2d_X509(X509* x, unsigned char** out)
    void X509_free(X509* x)

cdef extern from "openssl/bio.h" nogil:
    BIO_METHOD* BIO_meth_new(int type, const char* name)
    int BIO_meth_set_write_ex(BIO_METHOD* m, int (*f)(BIO*, const char*, size_t, size_t*) noexcept nogil)
    int BIO_meth_set_read_ex(BIO_METHOD* m, int (*f)(BIO*, char*, size_t, size_t*) noexcept nogil)
    int BIO_meth_set_ctrl(BIO_METHOD* m, long (*f)(BIO*, int, long, void*) noexcept nogil)
    int BIO_meth_set_create(BIO_METHOD* m, int (*f)(BIO*) noexcept nogil)
    int BIO_get_new_index()
    BIO* BIO_new(const BIO_METHOD* m)
    void BIO_set_data(BIO* b, void* p)
    void* BIO_get_data(BIO* b)
    void BIO_set_init(BIO* b, int init)
    void BIO_set_retry_read(BIO* b)
    void BIO_clear_retry_flags(BIO* b)
    int BIO_TYPE_SOURCE_SINK
    int BIO_CTRL_FLUSH

cdef extern from "openssl/err.h" nogil:
    void ERR_clear_error()
    unsigned long ERR_get_error()
    void ERR_error_string_n(unsigned long e, char* buf, size_t n)
    void OPENSSL_free(void* p)

cdef extern from *:
    """
    /* CPython's _ssl._SSLContext: the SSL_CTX pointer is its first field (Modules/_ssl.c) */
    typedef struct { PyObject_HEAD SSL_CTX *ctx; } clasp_PySSLContext;
    """
    ctypedef struct clasp_PySSLContext:
        SSL_CTX* ctx


# --- the BIO: input from the current read, output to the process's one buffer --------------

cdef enum:
    KEEP_OUT = 1 << 20              # the shared output buffer is kept up to this size
cdef char* g_out = NULL            # ciphertext of the current OpenSSL call, not yet sent
cdef size_t g_out_n = 0
cdef size_t g_out_cap = 0
cdef BIO_METHOD* g_method = NULL

READ_BUFFER_SIZE = 256 * 1024
cdef bytearray g_in = bytearray(READ_BUFFER_SIZE)      # uvloop reads every connection here
cdef object g_in_view = memoryview(g_in)
cdef const char* g_in_ptr = PyByteArray_AS_STRING(g_in)
MAX_PREAMBLE = 65536 + 16       # the longest PROXY v2 header
PLAIN_SIZE = 64 * 1024
cdef bytearray g_plain = bytearray(PLAIN_SIZE)        # decrypted bytes for a non-buffered protocol
cdef char* g_plain_ptr = PyByteArray_AS_STRING(g_plain)


cdef int bio_read(BIO* b, char* out, size_t size, size_t* got) noexcept nogil:
    cdef Feed* f = <Feed*>BIO_get_data(b)
    cdef size_t n
    BIO_clear_retry_flags(b)
    if f == NULL or f.n == 0:
        BIO_set_retry_read(b)
        got[0] = 0
        return 0
    n = size if size < f.n else f.n
    memcpy(out, f.p, n)
    f.p += n
    f.n -= n
    got[0] = n
    return 1


cdef int bio_write(BIO* b, const char* data, size_t n, size_t* written) noexcept nogil:
    """A record OpenSSL made: sent at once when the socket is free (no copy), else (and
    whatever the socket did not take) kept in the shared buffer for uvloop's transport."""
    global g_out, g_out_n, g_out_cap
    cdef Feed* f = <Feed*>BIO_get_data(b)
    cdef size_t cap
    cdef ssize_t k
    cdef char* nb
    BIO_clear_retry_flags(b)
    written[0] = n
    if f.direct:
        k = send(f.fd, data, n, MSG_NOSIGNAL)
        if k == <ssize_t>n:
            return 1
        f.direct = False        # EAGAIN or short: the rest, and what follows, go through uvloop
        if k > 0:
            data += k
            n -= k
    if g_out_n + n > g_out_cap:
        cap = g_out_cap if g_out_cap else 65536
        while cap < g_out_n + n:
            cap *= 2
        nb = <char*>realloc(g_out, cap)
        if nb == NULL:
            written[0] = 0
            return 0
        g_out = nb
        g_out_cap = cap
    memcpy(g_out + g_out_n, data, n)
    g_out_n += n
    return 1


cdef long bio_ctrl(BIO* b, int cmd, long num, void* ptr) noexcept nogil:
    return 1 if cmd == BIO_CTRL_FLUSH else 0


cdef int bio_create(BIO* b) noexcept nogil:
    BIO_set_init(b, 1)
    return 1


cdef BIO_METHOD* bio_method() except NULL:
    global g_method
    if g_method == NULL:
        g_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, b"clasp-fast tls")
        if g_method == NULL:
            raise MemoryError()
        BIO_meth_set_read_ex(g_method, bio_read)
        BIO_meth_set_write_ex(g_method, bio_write)
        BIO_meth_set_ctrl(g_method, bio_ctrl)
        BIO_meth_set_create(g_method, bio_create)
    return g_method


cdef str ssl_reason():
    cdef char buf[256]
    cdef unsigned long e = ERR_get_error()
    if e == 0:
        return "connection closed during the TLS exchange"
    ERR_error_string_n(e, buf, sizeof(buf))
    ERR_clear_error()
    return buf.decode("utf-8", "replace")


def _is_ip(str host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


cdef SSL_CTX* ctx_of(context) except NULL:
    if not isinstance(context, _ssl._ssl._SSLContext):
        raise TypeError("an ssl.SSLContext is needed")
    return (<clasp_PySSLContext*><PyObject*>context).ctx


def unusable(context):
    """None when ``TLSStream`` can serve with ``context``; else why not (the server then
    uses uvloop's TLS).  Checks that this module and the ``ssl`` module share one OpenSSL
    and that the context's SSL_CTX is where it is expected."""
    cdef SSL_CTX* ctx = ctx_of(context)
    if OpenSSL_version_num() != _ssl.OPENSSL_VERSION_NUMBER:
        return (f"the ssl module runs {_ssl.OPENSSL_VERSION}, clasp-fast was built against "
                f"OpenSSL {OpenSSL_version_num():#x}")
    if SSL_CTX_get_verify_mode(ctx) != int(context.verify_mode) or \
            SSL_CTX_get_options(ctx) != int(context.options):
        return "the ssl module's SSLContext layout is not the expected one"
    if context.sni_callback is not None or getattr(context, "keylog_filename", None):
        return "the context has an SNI callback or a key log file"
    return None


def prefer_aes128(context):
    """TLS 1.3 cipher suites in the order AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305
    (OpenSSL's default puts AES-256-GCM first, and servers choose by their own order):
    AES-128 is every TLS 1.3 client's mandatory suite and costs fewer rounds per byte."""
    if SSL_CTX_set_ciphersuites(ctx_of(context), b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                                 b"TLS_CHACHA20_POLY1305_SHA256") != 1:
        raise _ssl.SSLError(ssl_reason())


cdef class TLSStream:
    """One ``wss://`` connection: uvloop's TCP transport below (this is its protocol), the
    handshake gate and then picows above (this is their transport).  With
    ``server_hostname`` it is the client end (the benchmark's load generator)."""

    def __cinit__(self, context, protocol, server_hostname=None):
        self.context = context
        self.fd = -1
        self.server_hostname = server_hostname
        self.set_protocol(protocol)

    def __dealloc__(self):
        if self.ssl != NULL:
            SSL_free(self.ssl)
            self.ssl = NULL

    # --- as uvloop's protocol ---------------------------------------------------------

    def connection_made(self, tcp):
        cdef BIO* bio
        self.tcp = tcp
        self.fd = tcp.get_extra_info("socket").fileno()
        self.ssl = SSL_new(ctx_of(self.context))
        bio = BIO_new(bio_method())
        if self.ssl == NULL or bio == NULL:
            raise MemoryError()
        self.feed.fd = self.fd
        BIO_set_data(bio, &self.feed)
        SSL_set_bio(self.ssl, bio, bio)         # one BIO both ways (the SSL owns it)
        if self.server_hostname is None:
            SSL_set_accept_state(self.ssl)
        else:
            self._client_setup()
        self.protocol.connection_made(self)     # the gate's timer covers the TLS handshake too
        if self.server_hostname is not None:
            self._handshake()                   # the ClientHello

    cdef int _client_setup(self) except -1:
        cdef bytes name = self.server_hostname.encode("idna")
        SSL_set_connect_state(self.ssl)
        if not _is_ip(self.server_hostname):
            SSL_set_tlsext_host_name(self.ssl, name)
        if self.context.check_hostname:
            SSL_set1_host(self.ssl, name)
        return 0

    cdef bint _handshake(self) except -1:
        """One step of the handshake; True once it is complete (and early writes are out)."""
        cdef int r, err
        ERR_clear_error()
        self._direct()
        r = SSL_do_handshake(self.ssl)
        self._flush()
        if r != 1:
            err = SSL_get_error(self.ssl, r)
            if err != SSL_ERROR_WANT_READ:
                self._fail("TLS handshake failed", err)
            return False
        self.handshaken = True
        if self.early is not None:
            early, self.early = self.early, None
            for data in early:
                self.write(data)
        return True

    def get_buffer(self, Py_ssize_t hint):
        return g_in_view

    def buffer_updated(self, Py_ssize_t n):
        if self.ssl == NULL or self.closing:
            return
        rest = None
        if self.preamble is not None:          # bytes before TLS: a PROXY protocol header
            rest = self._preamble(n)
            if rest is None:
                return
            self.feed.p = PyBytes_AS_STRING(rest)
            self.feed.n = len(rest)
        else:
            self.feed.p = g_in_ptr
            self.feed.n = n
        if self.handshaken or self._handshake():
            self._read_records()
        self.feed.n = 0

    def read_preamble(self, reader):
        """Before TLS starts, the bytes received go to ``reader(data)`` (all of them so far)
        until it returns how many it took (None: it needs more); the rest starts TLS.  An
        exception from it drops the connection.  (The handshake gate reads a PROXY protocol
        header this way: proxies send it before the TLS handshake.)"""
        self.preamble = reader
        self.pre_buf = b""

    cdef object _preamble(self, Py_ssize_t n):
        """The bytes left for TLS once the preamble is read, or None."""
        data = self.pre_buf + PyBytes_FromStringAndSize(g_in_ptr, n)
        try:
            used = self.preamble(data)
        except Exception as exc:
            log.debug("connection from %s dropped before TLS: %s", self._peer(), exc)
            self.abort()
            return None
        if used is None:
            if len(data) > MAX_PREAMBLE:
                self.abort()
            else:
                self.pre_buf = data
            return None
        self.preamble = self.pre_buf = None
        return data[used:]

    cdef int _read_records(self) except -1:
        """Decrypts what was fed into the protocol above, record after record."""
        cdef Py_buffer view
        cdef size_t got
        cdef int ok, err
        while self.ssl != NULL and not self.closing:
            ERR_clear_error()
            self._direct()
            if self.up_get_buffer is not None:
                buf = self.up_get_buffer(-1)
                PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
                try:
                    if view.len <= 0:
                        raise RuntimeError("the protocol gave an empty read buffer")
                    ok = SSL_read_ex(self.ssl, view.buf, <size_t>view.len, &got)
                finally:
                    PyBuffer_Release(&view)
            else:
                ok = SSL_read_ex(self.ssl, g_plain_ptr, PLAIN_SIZE, &got)
            if g_out_n:
                self._flush()       # a TLS 1.3 key update answered while reading
            if not ok:
                err = SSL_get_error(self.ssl, 0)
                if err == SSL_ERROR_WANT_READ:
                    return 0
                if err == SSL_ERROR_ZERO_RETURN:        # close_notify: the peer is done
                    self.close()
                    return 0
                self._fail("TLS error", err)
                return 0
            if self.up_get_buffer is not None:
                self.up_buffer_updated(got)
            else:
                self.up_data_received(PyBytes_FromStringAndSize(g_plain_ptr, got))
        return 0

    def eof_received(self):
        return False                # TCP closed by the peer: close (TLS has no half-close)

    def connection_lost(self, exc):
        self.closing = True
        if self.ssl != NULL:
            SSL_free(self.ssl)
            self.ssl = NULL
        protocol, self.protocol = self.protocol, None
        self.up_get_buffer = self.up_buffer_updated = self.up_data_received = None
        if protocol is not None:
            protocol.connection_lost(exc)

    def pause_writing(self):
        if self.protocol is not None:
            self.protocol.pause_writing()

    def resume_writing(self):
        if self.protocol is not None:
            self.protocol.resume_writing()

    # --- output ---------------------------------------------------------------------

    cdef int _direct(self) except -1:
        """Before an OpenSSL call that may write: records go straight to the socket unless
        uvloop holds output for it (or it is closing: its descriptor may be gone)."""
        self.feed.direct = False
        if self.tcp is None or self.tcp.is_closing():
            return 0
        if self.tcp_backlog:
            if self.tcp.get_write_buffer_size():
                return 0
            self.tcp_backlog = False
        self.feed.direct = True
        return 0

    cdef int _flush(self) except -1:
        """After an OpenSSL call: what the socket did not take goes through uvloop."""
        global g_out, g_out_n, g_out_cap
        cdef size_t n = g_out_n
        if n == 0:
            return 0
        g_out_n = 0
        if self.tcp is not None and not self.tcp.is_closing():
            self.tcp.write(PyBytes_FromStringAndSize(g_out, n))
            self.tcp_backlog = True
        if g_out_cap > KEEP_OUT:        # a big write that waited (a snapshot): do not keep its size
            free(g_out)
            g_out = NULL
            g_out_cap = 0
        return 0

    cdef int send(self, const char* p, Py_ssize_t n) except -1:
        """Encrypts ``n`` bytes as TLS records and sends them (the edge's flush calls this
        directly: no Python object on the way)."""
        cdef size_t done
        if self.ssl == NULL or self.closing or n <= 0:
            return 0
        if not self.handshaken:
            if self.early is None:
                self.early = []
            self.early.append(PyBytes_FromStringAndSize(p, n))
            return 0
        ERR_clear_error()
        self._direct()
        if not SSL_write_ex(self.ssl, p, <size_t>n, &done):
            self._flush()
            self._fail("TLS write failed", SSL_get_error(self.ssl, 0))
            return 0
        self._flush()
        return 0

    cdef _fail(self, str what, int err):
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s with %s (SSL error %d): %s", what, self._peer(), err, ssl_reason())
        else:
            ERR_clear_error()
        self.abort()

    def _peer(self):
        try:
            return self.tcp.get_extra_info("peername")
        except Exception:
            return None

    # --- as the transport of the protocol above --------------------------------------

    def write(self, data):
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self.send(<const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))      # one SSL_write: fewer records

    def can_write_eof(self):
        return False

    def write_eof(self):
        raise NotImplementedError("TLS connections cannot be half-closed")

    def close(self):
        """Sends close_notify after what is queued, then closes the socket."""
        if self.closing:
            return
        self.closing = True
        if self.ssl != NULL and self.handshaken:
            ERR_clear_error()
            self._direct()
            SSL_shutdown(self.ssl)
            ERR_clear_error()
            self._flush()
        if self.tcp is not None:
            self.tcp.close()

    def abort(self):
        self.closing = True
        if self.tcp is not None:
            self.tcp.abort()

    def is_closing(self):
        return self.closing or self.tcp is None or self.tcp.is_closing()

    def set_protocol(self, protocol):
        self.protocol = protocol
        if hasattr(protocol, "get_buffer"):
            self.up_get_buffer = protocol.get_buffer
            self.up_buffer_updated = protocol.buffer_updated
            self.up_data_received = None
        else:
            self.up_get_buffer = self.up_buffer_updated = None
            self.up_data_received = protocol.data_received

    def get_protocol(self):
        return self.protocol

    def get_write_buffer_size(self):
        return self.tcp.get_write_buffer_size() if self.tcp is not None else 0

    def get_write_buffer_limits(self):
        return self.tcp.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        self.tcp.set_write_buffer_limits(high, low)

    def pause_reading(self):
        self.tcp.pause_reading()

    def resume_reading(self):
        self.tcp.resume_reading()

    def is_reading(self):
        return self.tcp.is_reading()

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self if self.ssl != NULL else default
        if name == "sslcontext":
            return self.context
        if name == "peercert":
            return self.getpeercert(True)
        if name == "cipher":
            return self.cipher()
        if self.tcp is None:
            return default
        return self.tcp.get_extra_info(name, default)

    # --- what ssl.SSLObject tells (get_extra_info("ssl_object")) -------------------------

    def version(self):
        """The protocol version agreed ("TLSv1.3"), None before the handshake."""
        if self.ssl == NULL or not self.handshaken:
            return None
        return SSL_get_version(self.ssl).decode()

    def cipher(self):
        """(name, protocol version, secret bits) of the cipher agreed, None before."""
        cdef const SSL_CIPHER* c
        if self.ssl == NULL or not self.handshaken:
            return None
        c = SSL_get_current_cipher(self.ssl)
        if c == NULL:
            return None
        return (SSL_CIPHER_get_name(c).decode(), SSL_CIPHER_get_version(c).decode(),
                SSL_CIPHER_get_bits(c, NULL))

    def selected_alpn_protocol(self):
        cdef const unsigned char* p = NULL
        cdef unsigned int n = 0
        if self.ssl == NULL:
            return None
        SSL_get0_alpn_selected(self.ssl, &p, &n)
        return (<const char*>p)[:n].decode("ascii", "replace") if n else None

    def getpeercert(self, binary_form=False):
        """The client's certificate: DER bytes with ``binary_form``, else None (only the
        binary form is offered)."""
        cdef X509* x
        cdef unsigned char* der = NULL
        cdef int n
        if self.ssl == NULL or not binary_form:
            return None
        x = SSL_get1_peer_certificate(self.ssl)
        if x == NULL:
            return None
        try:
            n = i2d_X509(x, &der)
            if n <= 0:
                return None
            try:
                return PyBytes_FromStringAndSize(<const char*>der, n)
            finally:
                OPENSSL_free(der)
        finally:
            X509_free(x)
