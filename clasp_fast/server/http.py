"""The little HTTP the edge speaks: reading a request head, writing a short response.

Used by the handshake gate (``gate.py``: probes and the upgrade request) and by the
metrics server (``metrics.py``).  Only what those two need: a request line and
headers (names lower-cased, repeated headers joined with ", "), no bodies.
"""
from __future__ import annotations

from typing import Optional


class BadRequest(ValueError):
    """The bytes are not an HTTP/1.x request head; the message says why."""


class RequestHead:
    __slots__ = ("method", "target", "version", "headers")

    def __init__(self, method: str, target: str, version: str, headers: dict):
        self.method, self.target, self.version, self.headers = method, target, version, headers

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


def read_head(buf: bytes, max_size: int) -> tuple[Optional[RequestHead], int]:
    """(the request head, bytes it took) once ``buf`` holds all of it; (None, 0) before.

    Raises BadRequest for a malformed head or one longer than ``max_size``."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > max_size:
            raise BadRequest("request head too large")
        return None, 0
    if end > max_size:
        raise BadRequest("request head too large")
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("malformed header line")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return RequestHead(parts[0], parts[1], parts[2], headers), end + 4


def response(status: str, body: bytes, *, head_only: bool = False, extra: str = "",
             content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A complete ``Connection: close`` response; ``extra`` holds more header lines (CRLF-ended)."""
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n").encode() + \
        (b"" if head_only else body)
