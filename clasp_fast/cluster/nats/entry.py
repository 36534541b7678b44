"""One param as it is stored in the JetStream key-value bucket.

The bucket's own revision (the stream sequence) is not contiguous per key, so the CLASP
revision travels in the value.  Layout (big-endian)::

    u64 CLASP revision | u64 server time µs | f64 TTL seconds (0 = none)
    u16 writer length, writer | u16 lock holder length, holder (empty = unlocked)
    u8 value type | value bytes (the SET frame's value, as the wire encodes it)

No re-encoding of values: the bytes are the ones the owner put in its replica.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

_HEAD = struct.Struct(">QQd")


@dataclass(frozen=True)
class Entry:
    revision: int
    time_us: int
    ttl: float
    writer: bytes
    holder: bytes
    vtype: int
    value: bytes

    def encode(self) -> bytes:
        return b"".join((_HEAD.pack(self.revision, self.time_us, self.ttl),
                         struct.pack(">H", len(self.writer)), self.writer,
                         struct.pack(">H", len(self.holder)), self.holder,
                         bytes((self.vtype,)), self.value))

    @classmethod
    def decode(cls, data: bytes) -> "Entry":
        revision, time_us, ttl = _HEAD.unpack_from(data)
        pos = _HEAD.size
        (n,) = struct.unpack_from(">H", data, pos)
        writer = data[pos + 2:pos + 2 + n]
        pos += 2 + n
        (n,) = struct.unpack_from(">H", data, pos)
        holder = data[pos + 2:pos + 2 + n]
        pos += 2 + n
        return cls(revision, time_us, ttl, bytes(writer), bytes(holder), data[pos], bytes(data[pos + 1:]))
