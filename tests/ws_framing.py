"""Client-side WebSocket framing for the tests' hand-made clients (one implementation).

The integration tests need clients that do what a well-behaved library will not (never
answer pings, send odd upgrade headers, bind a source address, read 100,000s of frames per
second in one process), so they speak WebSocket over a bare socket.  What they share is here:

* ``upgrade_request(...)``: the HTTP upgrade request and the ``Sec-WebSocket-Accept`` it must
  be answered with; ``parse_response_head(head)``: (status, lower-cased headers).
* ``client_frame(opcode, payload)``: one masked client frame, built by ``websockets.frames``.
* ``split_frames(buf)``: the complete server frames at the front of a bytearray (removed
  from it), as (opcode, fin, payload); fast enough for the load tests.
* ``UpgradeRefused``: the router answered the upgrade with something other than 101.
"""
from __future__ import annotations

import base64
import os
from typing import Optional

from websockets.frames import Frame, Opcode
from websockets.utils import accept_key


class UpgradeRefused(Exception):
    def __init__(self, status: int, head: str, body: bytes):
        super().__init__(f"HTTP {status}: {body!r}")
        self.status, self.head, self.body = status, head, body


def upgrade_request(host: str, port: int, path: str = "/", *, protocol: Optional[str] = "clasp",
                    connection: str = "Upgrade", extra: tuple = ()) -> tuple[bytes, str]:
    """(the request bytes, the Sec-WebSocket-Accept value the answer must carry)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             f"Connection: {connection}", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept_key(key)


def parse_response_head(head: str) -> tuple[int, dict]:
    """(status, {lower-cased header name: value}) of an HTTP response head."""
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked client frame (websockets refuses control frames RFC 6455 forbids)."""
    return Frame(Opcode(opcode), bytes(payload), fin).serialize(mask=True)


def split_frames(buf: bytearray) -> list[tuple[int, bool, bytes]]:
    """Removes the complete frames from the front of ``buf``; returns (opcode, fin, payload)
    of each.  Server frames are never masked (AssertionError if one is)."""
    out = []
    n = len(buf)
    pos = 0
    while n - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        assert not b1 & 0x80, "server frames must not be masked"
        ln = b1 & 0x7F
        hl = 2
        if ln == 126:
            if n - pos < 4:
                break
            ln = (buf[pos + 2] << 8) | buf[pos + 3]
            hl = 4
        elif ln == 127:
            if n - pos < 10:
                break
            ln = int.from_bytes(buf[pos + 2:pos + 10], "big")
            hl = 10
        if n - pos < hl + ln:
            break
        out.append((b0 & 0x0F, bool(b0 & 0x80), bytes(buf[pos + hl:pos + hl + ln])))
        pos += hl + ln
    if pos:
        del buf[:pos]
    return out


def close_code_of(payload: bytes) -> Optional[int]:
    """The status code of a close frame's payload (None when it has none)."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
