/* What one server-side OpenSSL connection keeps after its handshake, allocation by allocation
 * (docs/benchmarks.md, "wss://").  A measuring tool, not part of clasp-fast or of the bench run:
 *
 *   openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
 *       -keyout /tmp/key.pem -out /tmp/cert.pem
 *   cc -O1 -o /tmp/openssl_conn_memory bench/openssl_conn_memory.c -lssl -lcrypto
 *   /tmp/openssl_conn_memory /tmp/cert.pem /tmp/key.pem
 *
 * OpenSSL's allocations pass their source file and line to the allocator; this program
 * installs its own (CRYPTO_set_mem_functions, before OpenSSL allocates anything), runs a
 * TLS handshake and one message each way between a server and a client over memory BIOs
 * (the server as clasp-fast sets it up: SSL_MODE_RELEASE_BUFFERS, AES-128-GCM first), swaps
 * the server's BIOs for empty ones (clasp-fast's BIO keeps nothing), then frees the server
 * SSL and lists every allocation that frees.  The second of two rounds is measured, so
 * one-time caches of the first do not count. */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_ALLOCS 200000

typedef struct { void *p; size_t n; const char *file; int line; int live; int freed_by_ssl_free; } Alloc;

static Alloc allocs[MAX_ALLOCS];
static int nallocs = 0;
static int in_ssl_free = 0;

static void note(void *p, size_t n, const char *file, int line) {
    if (p != NULL && nallocs < MAX_ALLOCS)
        allocs[nallocs++] = (Alloc){p, n, file, line, 1, 0};
}

static void forget(void *p) {
    for (int i = nallocs - 1; i >= 0; i--)
        if (allocs[i].live && allocs[i].p == p) {
            allocs[i].live = 0;
            allocs[i].freed_by_ssl_free = in_ssl_free;
            return;
        }
}

static void *my_malloc(size_t n, const char *file, int line) {
    void *p = malloc(n);
    note(p, n, file, line);
    return p;
}

static void *my_realloc(void *old, size_t n, const char *file, int line) {
    if (old != NULL)
        forget(old);
    void *p = realloc(old, n);
    note(p, n, file, line);
    return p;
}

static void my_free(void *p, const char *file, int line) {
    (void)file, (void)line;
    if (p != NULL)
        forget(p);
    free(p);
}

static void pump(BIO *from, BIO *to) {
    char buf[65536];
    int k;
    while ((k = BIO_read(from, buf, sizeof buf)) > 0)
        BIO_write(to, buf, k);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CERT.pem KEY.pem\n", argv[0]);
        return 2;
    }
    if (!CRYPTO_set_mem_functions(my_malloc, my_realloc, my_free)) {
        fprintf(stderr, "OpenSSL allocated before CRYPTO_set_mem_functions\n");
        return 1;
    }
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS);               /* as Python's ssl module */
    SSL_CTX_set_options(sctx, SSL_OP_CIPHER_SERVER_PREFERENCE);     /* likewise */
    SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    for (int round = 0; round < 2; round++) {
        SSL *server = SSL_new(sctx), *client = SSL_new(cctx);
        BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
        BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
        char buf[100];
        SSL_set_bio(server, s_in, s_out);
        SSL_set_bio(client, c_in, c_out);
        SSL_set_accept_state(server);
        SSL_set_connect_state(client);
        for (int i = 0; i < 6; i++) {
            SSL_do_handshake(client);
            pump(c_out, s_in);
            SSL_do_handshake(server);
            pump(s_out, c_in);
        }
        SSL_read(client, buf, 1);                       /* the session tickets */
        SSL_write(client, "hello", 5);
        pump(c_out, s_in);
        SSL_read(server, buf, sizeof buf);
        SSL_write(server, "world", 5);
        pump(s_out, c_in);
        SSL_read(client, buf, sizeof buf);
        SSL_set_bio(server, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
        const SSL_CIPHER *cipher = SSL_get_current_cipher(server);
        in_ssl_free = round == 1;
        SSL_free(server);
        in_ssl_free = 0;
        if (round == 1) {
            size_t total = 0, small = 0;
            int count = 0, nsmall = 0;
            printf("%s, %s\n", SSL_get_version(client), SSL_CIPHER_get_name(cipher));
            for (int i = 0; i < nallocs; i++) {
                if (!allocs[i].freed_by_ssl_free)
                    continue;
                total += allocs[i].n;
                count++;
                if (allocs[i].n >= 64)
                    printf("%6zu bytes  %s:%d\n", allocs[i].n, allocs[i].file, allocs[i].line);
                else
                    small += allocs[i].n, nsmall++;
            }
            printf("%6zu bytes  in %d allocations under 64 bytes\n", small, nsmall);
            printf("%6zu bytes  in all (%d allocations; glibc adds about 16 bytes to each)\n", total, count);
        }
        SSL_free(client);
    }
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}
