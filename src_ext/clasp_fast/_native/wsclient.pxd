# The client side of WebSocket framing (RFC 6455 §5.3: client frames are masked).

from libc.stdint cimport uint8_t, uint32_t


cdef inline void split_mask_key(uint8_t* key, uint32_t mask_key) noexcept nogil:
    """The 4 masking-key bytes of ``mask_key``, most significant first."""
    key[0] = mask_key >> 24
    key[1] = (mask_key >> 16) & 0xFF
    key[2] = (mask_key >> 8) & 0xFF
    key[3] = mask_key & 0xFF
