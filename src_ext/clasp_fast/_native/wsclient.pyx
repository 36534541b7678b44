"""Client-side WebSocket frames: many CLASP frames masked into one buffer.

``clasp_fast.client`` writes everything one event-loop iteration sent with one
``transport.write(masked_frames(frames, key))``; the bench load generator
(``bench/_loadgen.pyx``) pre-builds its blocks of frames with it too.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcpy

from clasp_fast._native.wire cimport store_u64
from clasp_fast._native.wsclient cimport split_mask_key


def masked_frames(list frames, uint32_t mask_key=0x5A3C9E17):
    """One bytes object holding every CLASP frame of ``frames`` as a masked client
    WebSocket binary frame (RFC 6455 §5.3), ready for one ``transport.write``."""
    cdef Py_ssize_t total = 0, n, i, pos = 0, hl
    cdef bytes f, out
    cdef uint8_t* o
    cdef const uint8_t* src
    cdef uint8_t key[4]
    split_mask_key(key, mask_key)
    for f in frames:
        n = len(f)
        total += n + (6 if n < 126 else (8 if n < 65536 else 14))
    out = PyBytes_FromStringAndSize(NULL, total)
    o = <uint8_t*>PyBytes_AS_STRING(out)
    for f in frames:
        n = len(f)
        src = <const uint8_t*>PyBytes_AS_STRING(f)
        o[pos] = 0x82
        if n < 126:
            o[pos + 1] = 0x80 | n
            hl = 2
        elif n < 65536:
            o[pos + 1] = 0x80 | 126
            o[pos + 2] = n >> 8
            o[pos + 3] = n & 0xFF
            hl = 4
        else:
            o[pos + 1] = 0x80 | 127
            store_u64(o + pos + 2, n)
            hl = 10
        memcpy(o + pos + hl, key, 4)
        hl += 4
        for i in range(n):
            o[pos + hl + i] = src[i] ^ key[i & 3]
        pos += hl + n
    return out
