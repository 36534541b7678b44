"""Param records as the journal stores them: the body of the bus's R_SYNC_PARAM.

Layout (big-endian): u64 revision; state: u64 timestamp µs, u64 expires µs (wall clock,
0 = never), u8 has_ttl, u32 ttl, u8 writer length, writer, u8 holder length, holder,
u8 holder origin; u16 address length, address; value (type byte + data, as on the wire).
"""
from __future__ import annotations

import struct

_HEAD = struct.Struct(">QQQBIB")      # revision, timestamp, expires, has_ttl, ttl, writer length
_U16 = struct.Struct(">H")


def describe_record(body: bytes) -> tuple:
    """(address, revision, expires_us, body) of a record: the journal's row."""
    revision, _, expires, _, _, wlen = _HEAD.unpack_from(body)
    pos = _HEAD.size + wlen
    pos += 1 + body[pos] + 1
    (alen,) = _U16.unpack_from(body, pos)
    return body[pos + 2:pos + 2 + alen], revision, expires, body


def param_record(address: str, revision: int, value: bytes, *, timestamp_us: int = 0,
                 expires_us: int = 0, ttl: int = 0, has_ttl: bool = False, writer: str = "",
                 holder: str = "", holder_origin: int = 0) -> bytes:
    """A record built from its fields (``value``: type byte + data)."""
    w, h, a = writer.encode(), holder.encode(), address.encode()
    return (_HEAD.pack(revision, timestamp_us, expires_us, int(has_ttl), ttl, len(w)) + w
            + bytes((len(h),)) + h + bytes((holder_origin,)) + _U16.pack(len(a)) + a + value)
