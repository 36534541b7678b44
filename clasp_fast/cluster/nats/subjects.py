"""CLASP addresses ⇄ NATS subjects and JetStream key-value keys.

A NATS subject is tokens joined by ``.``; a token may not be empty nor hold ``.``,
whitespace, or ``*``/``>`` (those are wildcards as whole tokens).  A CLASP address is
``/`` + segments joined by ``/``.  The subject of an address is ``clasp`` followed by one
token per segment, each segment escaped: every byte outside printable ASCII, and ``.``,
``*``, ``>``, ``%``, becomes ``%XX`` (upper-case hex of the UTF-8 byte).  So the mapping is
a function of the segments, which is all routing looks at (``/a/`` and ``/a`` are the same
route), and ``address(subject(a))`` gives ``a`` back in its canonical spelling.

A subscription pattern becomes the NATS subjects that carry every address it matches:
a ``*`` segment becomes ``*``; a trailing ``**`` becomes the prefix itself (``**``
matches zero segments) plus ``prefix.>``; any other wildcard (a ``**`` followed by more
segments, an in-segment glob such as ``fader*``) subscribes to ``prefix.>`` from the
last literal-or-``*`` segment before it, wider than needed: the node's trie filters
what arrives, as it does for every frame.

Key-value keys (JetStream allows ``[-/_=.a-zA-Z0-9]``) are the whole address with every
other byte, and ``=`` and ``.``, written ``=XX``: reversible, trailing slash included.
"""
from __future__ import annotations

import functools

ROOT = "clasp"

_SUBJECT_SAFE = frozenset(range(0x21, 0x7F)) - set(b".*>%")
_KEY_SAFE = frozenset(b"-/_" b"abcdefghijklmnopqrstuvwxyz" b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" b"0123456789")


def _escape(data: bytes, safe: frozenset, mark: str) -> str:
    return "".join(chr(b) if b in safe else f"{mark}{b:02X}" for b in data)


def _unescape(text: str, mark: str) -> bytes:
    out = bytearray()
    i = 0
    raw = text.encode("ascii")
    while i < len(raw):
        c = raw[i]
        if c == ord(mark):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return bytes(out)


def segments(address: str) -> list[str]:
    """The segments of an address or pattern (empty ones, as a trailing ``/`` makes, dropped)."""
    return [s for s in address.split("/")[1:] if s]


def token(segment: str) -> str:
    """One address segment as a NATS subject token."""
    return _escape(segment.encode(), _SUBJECT_SAFE, "%")


@functools.lru_cache(maxsize=65536)
def subject(address: str) -> str:
    """The NATS subject that carries the frames of ``address`` (cached: asked per routed record)."""
    return ".".join([ROOT, *map(token, segments(address))])


@functools.lru_cache(maxsize=65536)
def address(subject_: str) -> str:
    """The address a subject carries (the inverse of ``subject``; cached: asked per routed
    message)."""
    tokens = subject_.split(".")
    if tokens[0] != ROOT:
        raise ValueError(f"{subject_!r} is not a CLASP subject (it does not start with {ROOT!r})")
    return "/" + "/".join(_unescape(t, "%").decode() for t in tokens[1:])


@functools.lru_cache(maxsize=65536)
def pattern_subjects(pattern: str) -> list[str]:
    """The NATS subjects a node subscribes to so that it receives every address ``pattern``
    matches (possibly more: the local trie filters).  Cached: callers must not change the
    list."""
    tokens = [ROOT]
    segs = segments(pattern)
    for i, seg in enumerate(segs):
        if seg == "*":
            tokens.append("*")
        elif seg == "**" and i == len(segs) - 1:
            return [".".join(tokens), ".".join(tokens + [">"])]
        elif "*" in seg:
            # a glob in the segment, or ``**`` with segments after it: wider, filtered locally
            return [".".join(tokens), ".".join(tokens + [">"])] if seg == "**" else [".".join(tokens + [">"])]
        else:
            tokens.append(token(seg))
    return [".".join(tokens)]


@functools.lru_cache(maxsize=65536)
def key(address_: str) -> str:
    """The JetStream key-value key of a param's address (cached: asked per routed message)."""
    return _escape(address_.encode(), _KEY_SAFE, "=")


def key_address(key_: str) -> str:
    """The address of a key-value key (the inverse of ``key``)."""
    return _unescape(key_, "=").decode()
