# permessage-deflate (RFC 7692) frames: compress outgoing frames, inflate incoming messages.
#
# Outgoing: every message is compressed on its own (the server always answers
# server_no_context_takeover), so one broadcast's compressed frame is the same for every
# receiver that negotiated the same window: `deflated_frame` keeps the last compressed frame
# per window size and hands it out again for the same input (compress once per fan-out).
#
# Incoming: an `Inflater` per connection, created on its first compressed message.

from libc.stdint cimport uint8_t, uint64_t

cdef enum:
    DEFLATE_MIN_FRAME = 128     # frames shorter than this (header included) go out uncompressed


cdef extern from "zlib.h":
    ctypedef struct z_stream:
        const uint8_t* next_in
        unsigned int avail_in
        uint8_t* next_out
        unsigned int avail_out
        char* msg
        void* zalloc
        void* zfree
        void* opaque


cdef Py_ssize_t deflated_frame(uint8_t bits, const uint8_t* frame, Py_ssize_t n,
                               const uint8_t** out) except -1


cdef class Inflater:
    cdef z_stream zs
    cdef bint ready
    cdef bint reset_each                # client_no_context_takeover agreed
    cdef uint8_t* out
    cdef Py_ssize_t out_size
    cdef Py_ssize_t out_cap
    cdef Py_ssize_t limit               # output past this: the message is too big

    cdef int _run(self, const uint8_t* data, Py_ssize_t n) except -1
    cdef int feed(self, const uint8_t* data, Py_ssize_t n, bint fin) except -1
    cdef void done(self) noexcept
