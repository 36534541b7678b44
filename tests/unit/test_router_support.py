"""Shared helpers for the router-core unit tests (no tests of its own).

``Net`` wraps one sans-I/O ``Router`` with a ManualClock (time moves only by
``advance``), opens and
welcomes sessions, sends messages (as real CLASP frames, through
``Router.receive``) and collects what each session was sent, decoded.
Hand-built frames (narrow value codes, samples, truncated payloads) come from
the small byte builders at the bottom.
"""
from __future__ import annotations

import struct
import uuid

from clasp_fast.router import ManualClock, Router, RouterConfig
from clasp_fast.protocol import decode_frame, encode_frame
from clasp_fast.protocol import messages as M

T0 = 1000.0                 # monotonic seconds at the start
WALL0 = 1_800_000_000.0     # wall seconds at the start (2027: after the vectors' timestamps)


class Net:
    """One router, a manual clock and helpers."""

    def __init__(self, **cfg):
        self.clock = ManualClock(T0, WALL0)
        self.config = RouterConfig(**cfg)
        self.router = Router(self.config, clock=self.clock)

    # --- sessions -------------------------------------------------------------
    def open(self, peer: str = "127.0.0.1"):
        return self.router.open_session(peer)

    def connect(self, name: str = "client", peer: str = "127.0.0.1"):
        """A welcomed session whose handshake output has been consumed."""
        s = self.open(peer)
        self.send(s, M.Hello(name=name))
        frames = frames_of(s)
        assert [type(f.message) for f in frames[:1]] == [M.Welcome], frames
        assert all(type(f.message) is M.Snapshot for f in frames[1:]), frames
        return s

    # --- input ----------------------------------------------------------------
    def send(self, s, msg, qos: int = 0, **kw):
        self.router.receive(s, encode_frame(msg, qos=qos, **kw))

    def raw(self, s, frame: bytes):
        self.router.receive(s, frame)

    def subscribe(self, s, pattern: str, id: int = 1, types: int = 0xFF, options=None,
                  qos: int = 0, drain: bool = True):
        self.send(s, M.Subscribe(id=id, pattern=pattern, types=types, options=options), qos=qos)
        if drain:
            s.take_output()

    def set(self, s, address: str, value, qos: int = 0, **kw):
        self.send(s, M.Set(address, value, **kw), qos=qos)

    # --- time -----------------------------------------------------------------
    @property
    def now(self) -> float:
        """The clock's monotonic time, seconds."""
        return self.clock.monotonic()

    def wall_us(self) -> int:
        """The clock's wall time, µs (what the router writes into params and WELCOME)."""
        return self.clock.wall_time_us()

    def advance(self, seconds: float):
        """Moves time forward and runs the timers that came due."""
        self.clock.advance(seconds)
        self.router.run_timers()


def frames_of(s) -> list:
    """Decoded frames queued for ``s`` (clears its buffer)."""
    return [decode_frame(f) for f in s.take_output()]


def take_all(s) -> list:
    """Every frame ``s`` gets as its transport drains (the edge's write + refill until
    nothing is left: snapshots and waiting SETs are written as a connection drains)."""
    out = s.take_output()
    while True:
        s.refill()
        got = s.take_output()
        if not got:
            return out
        out += got


def msgs(s) -> list:
    """Messages queued for ``s`` (clears its buffer)."""
    return [f.message for f in frames_of(s)]


def only(s, kind=None):
    """The single message queued for ``s`` (optionally checking its type)."""
    got = msgs(s)
    assert len(got) == 1, got
    if kind is not None:
        assert type(got[0]) is kind, got
    return got[0]


def errors(messages) -> list:
    return [m for m in messages if type(m) is M.Error]


def is_uuid4(text: str) -> bool:
    try:
        u = uuid.UUID(text)
    except (ValueError, TypeError):
        return False
    return u.version == 4 and str(u) == text


# --- hand-built frames ----------------------------------------------------------

def frame(payload: bytes, qos: int = 0, flags_version: int = 1) -> bytes:
    """A CLASP frame header (no timestamp) around ``payload``."""
    return bytes([0x53, (qos << 6) | flags_version]) + len(payload).to_bytes(2, "big") + payload


def s16(text: str) -> bytes:
    b = text.encode()
    return len(b).to_bytes(2, "big") + b


NARROW = {
    "i8": (0x02, lambda v: struct.pack(">b", v)),
    "i16": (0x03, lambda v: struct.pack(">h", v)),
    "i32": (0x04, lambda v: struct.pack(">i", v)),
    "i64": (0x05, lambda v: struct.pack(">q", v)),
    "f32": (0x06, lambda v: struct.pack(">f", v)),
    "f64": (0x07, lambda v: struct.pack(">d", v)),
}


def set_payload(address: str, code: int, data: bytes, revision: int | None = None,
                ttl_raw: int | None = None, lock: bool = False, unlock: bool = False) -> bytes:
    """A binary SET payload: flags low nibble = value type code."""
    flags = code & 0x0F
    if revision is not None:
        flags |= 0x80
    if lock:
        flags |= 0x40
    if unlock:
        flags |= 0x20
    if ttl_raw is not None:
        flags |= 0x10
    out = bytes([0x21, flags]) + s16(address) + data
    if revision is not None:
        out += struct.pack(">Q", revision)
    if ttl_raw is not None:
        out += struct.pack(">I", ttl_raw)
    return out


def narrow_set(address: str, kind: str, value, **kw) -> bytes:
    code, pack = NARROW[kind]
    return set_payload(address, code, pack(value), **kw)


def publish_payload(address: str, signal: int, indicator: int, body: bytes = b"",
                    phase: int = 0, gesture_id: int | None = None) -> bytes:
    flags = (signal << 5) | (phase & 0x07)
    tail = b""
    if gesture_id is not None:
        flags |= 0x08
        tail = struct.pack(">I", gesture_id)
    return bytes([0x20, flags]) + s16(address) + bytes([indicator]) + body + tail


def samples_publish(address: str, samples, signal: int = 2) -> bytes:
    body = struct.pack(">H", len(samples)) + b"".join(struct.pack(">d", x) for x in samples)
    return publish_payload(address, signal, 2, body)


def narrow_publish(address: str, kind: str, value, signal: int = 1) -> bytes:
    code, pack = NARROW[kind]
    return publish_payload(address, signal, 1, bytes([code]) + pack(value))
