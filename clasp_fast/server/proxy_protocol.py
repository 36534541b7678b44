"""The PROXY protocol (HAProxy's, versions 1 and 2): a trusted proxy states the client address.

With ``proxy_protocol`` on, the gate reads this header before the HTTP request (see
``gate.py``).  ``parse(buf)`` is pure: it returns (None, 0) until ``buf`` holds the
whole header, then (source address or None, header length).  The source is None for
a ``LOCAL`` command (v2) or ``UNKNOWN`` family (v1): the proxy's own health check,
which keeps the peer address.  Raises ``ProxyHeaderError`` for anything else.

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""
from __future__ import annotations

import ipaddress
import struct
from typing import Optional

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107


class ProxyHeaderError(ValueError):
    pass


def has_header(buf: bytes) -> Optional[bool]:
    """Whether ``buf`` starts with a PROXY header; None while too few bytes tell."""
    for sig in (V2_SIGNATURE, V1_PREFIX):
        if buf.startswith(sig):
            return True
        if sig.startswith(buf):
            return None
    return False


def parse(buf: bytes) -> tuple[Optional[str], int]:
    present = has_header(buf)
    if present is None or (buf.startswith(V2_SIGNATURE) and len(buf) < 16):
        return None, 0
    if not present:
        raise ProxyHeaderError("no PROXY protocol header")
    return _parse_v2(buf) if buf.startswith(V2_SIGNATURE) else _parse_v1(buf)


def _parse_v1(buf: bytes) -> tuple[Optional[str], int]:
    end = buf.find(b"\r\n")
    if end < 0:
        if len(buf) >= V1_MAX:
            raise ProxyHeaderError("PROXY v1 header longer than 107 bytes")
        return None, 0
    parts = buf[:end].decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return None, end + 2
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"malformed PROXY v1 header {buf[:end]!r}")
    try:
        src = ipaddress.ip_address(parts[2])
    except ValueError:
        raise ProxyHeaderError(f"bad source address in PROXY v1 header: {parts[2]!r}") from None
    return str(src), end + 2


def _parse_v2(buf: bytes) -> tuple[Optional[str], int]:
    ver_cmd, fam, length = struct.unpack_from(">BBH", buf, 12)
    if ver_cmd >> 4 != 2:
        raise ProxyHeaderError(f"PROXY v2 header with version {ver_cmd >> 4}")
    total = 16 + length
    if len(buf) < total:
        return None, 0
    cmd = ver_cmd & 0x0F
    if cmd == 0:                                    # LOCAL
        return None, total
    if cmd != 1:
        raise ProxyHeaderError(f"PROXY v2 header with unknown command {cmd}")
    family = fam >> 4
    if family == 1 and length >= 12:               # AF_INET: src, dst, ports
        return str(ipaddress.IPv4Address(buf[16:20])), total
    if family == 2 and length >= 36:               # AF_INET6
        return str(ipaddress.IPv6Address(buf[16:32])), total
    if family == 0:                                 # AF_UNSPEC
        return None, total
    raise ProxyHeaderError(f"PROXY v2 header with unsupported address family {family}")


def v1_header(src: str, dst: str, sport: int, dport: int) -> bytes:
    """A v1 header (for tests and tools)."""
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2_header(src: str, dst: str, sport: int, dport: int) -> bytes:
    """A v2 PROXY/STREAM header (for tests and tools)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack(">HH", sport, dport)
    return V2_SIGNATURE + struct.pack(">BBH", 0x21, fam, len(body)) + body
