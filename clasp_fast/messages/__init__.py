"""CLASP messages as Python objects (the bottom layer: imports nothing of ours).

One dataclass per message type of the binary v3 wire format
(docs/protocol.md "Frame layout").  The codec in
``clasp_fast._native.wire`` turns bytes into these objects and back; the router
only builds them for rare messages (HELLO, SUBSCRIBE, BUNDLE, QUERY, ...), never
for SET or PUBLISH on the hot path.

Values are plain Python objects: ``None``, ``bool``, ``int`` (sent as i64),
``float`` (sent as f64), ``str``, ``bytes``, ``list`` and ``dict`` with ``str``
keys.  Keeping ``int`` and ``float`` apart is what lets a value that came in as
an integer go out as an integer.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Optional


class _NoValue:
    """The absence of a value (PUBLISH with value indicator 0, or no ANNOUNCE default).

    Different from ``None``, which is the CLASP null value.
    """

    _instance: Optional["_NoValue"] = None

    def __new__(cls) -> "_NoValue":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self):
        return (_NoValue, ())


NO_VALUE: Any = _NoValue()


class MessageType(enum.IntEnum):
    HELLO = 0x01
    WELCOME = 0x02
    ANNOUNCE = 0x03
    FEDERATION_SYNC = 0x04
    SUBSCRIBE = 0x10
    UNSUBSCRIBE = 0x11
    PUBLISH = 0x20
    SET = 0x21
    GET = 0x22
    SNAPSHOT = 0x23
    REPLAY = 0x24
    BUNDLE = 0x30
    SYNC = 0x40
    PING = 0x41
    PONG = 0x42
    ACK = 0x50
    ERROR = 0x51
    QUERY = 0x60
    RESULT = 0x61


class SignalType(enum.IntEnum):
    """Signal type of a PUBLISH or an announced signal. Unknown codes read as EVENT."""

    PARAM = 0
    EVENT = 1
    STREAM = 2
    GESTURE = 3
    TIMELINE = 4


class Phase(enum.IntEnum):
    """Gesture phase. Unknown codes read as START."""

    START = 0
    MOVE = 1
    END = 2
    CANCEL = 3


class Feature(enum.IntFlag):
    """HELLO / WELCOME feature bits."""

    PARAM = 0x80
    EVENT = 0x40
    STREAM = 0x20
    GESTURE = 0x10
    TIMELINE = 0x08
    FEDERATION = 0x04


class TypeMask(enum.IntFlag):
    """SUBSCRIBE type filter bits; ``ALL`` (0xFF) and 0 both mean every type."""

    PARAM = 0x01
    EVENT = 0x02
    STREAM = 0x04
    GESTURE = 0x08
    TIMELINE = 0x10
    ALL = 0xFF


class QoS(enum.IntEnum):
    FIRE = 0
    CONFIRM = 1
    COMMIT = 2


class TtlMode(str, enum.Enum):
    NEVER = "never"
    SLIDING = "sliding"
    ABSOLUTE = "absolute"


@dataclass(frozen=True, slots=True)
class Ttl:
    """SET time-to-live: never, or ``seconds`` after the last write.

    On the wire a u32: 0 = never, bit 31 = absolute, bits 0-30 = seconds.
    """

    mode: TtlMode
    seconds: int = 0

    @classmethod
    def from_raw(cls, raw: int) -> "Ttl":
        if raw == 0:
            return cls(TtlMode.NEVER, 0)
        if raw & 0x80000000:
            return cls(TtlMode.ABSOLUTE, raw & 0x7FFFFFFF)
        return cls(TtlMode.SLIDING, raw)

    @property
    def raw(self) -> int:
        if self.mode is TtlMode.NEVER:
            return 0
        if self.mode is TtlMode.ABSOLUTE:
            return 0x80000000 | (self.seconds & 0x7FFFFFFF)
        return self.seconds & 0x7FFFFFFF


@dataclass(slots=True)
class Hello:
    name: str
    version: int = 1
    features: int = Feature.PARAM | Feature.EVENT | Feature.STREAM
    token: Optional[str] = None
    TYPE = MessageType.HELLO


@dataclass(slots=True)
class Welcome:
    session: str
    name: str
    time: int
    version: int = 1
    features: int = 0xF8
    token: Optional[str] = None
    TYPE = MessageType.WELCOME


@dataclass(slots=True)
class SignalMeta:
    unit: Optional[str] = None
    range: Optional[tuple[float, float]] = None
    default: Any = NO_VALUE
    description: Optional[str] = None


@dataclass(slots=True)
class SignalDef:
    """One announced signal (ANNOUNCE) or one query answer (RESULT, which has no meta)."""

    address: str
    signal: SignalType = SignalType.PARAM
    datatype: Optional[str] = None
    access: Optional[str] = None
    meta: Optional[SignalMeta] = None


@dataclass(slots=True)
class Announce:
    namespace: str
    signals: list[SignalDef] = field(default_factory=list)
    TYPE = MessageType.ANNOUNCE


@dataclass(slots=True)
class FederationSync:
    op: int
    patterns: list[str] = field(default_factory=list)
    revisions: dict[str, int] = field(default_factory=dict)
    since_revision: Optional[int] = None
    origin: Optional[str] = None
    TYPE = MessageType.FEDERATION_SYNC


@dataclass(slots=True)
class SubscribeOptions:
    max_rate: Optional[int] = None
    epsilon: Optional[float] = None
    history: Optional[int] = None
    window: Optional[int] = None
    #: clasp-fast's replay (docs/protocol.md): only params written after this router wall
    #: time (µs) in the SNAPSHOT, when the router can tell what changed since
    since: Optional[int] = None


@dataclass(slots=True)
class Subscribe:
    id: int
    pattern: str
    types: int = TypeMask.ALL
    options: Optional[SubscribeOptions] = None
    TYPE = MessageType.SUBSCRIBE


@dataclass(slots=True)
class Unsubscribe:
    id: int
    TYPE = MessageType.UNSUBSCRIBE


@dataclass(slots=True)
class Publish:
    """A stateless signal.  ``value`` is ``NO_VALUE`` when the frame carries none."""

    address: str
    signal: SignalType = SignalType.EVENT
    value: Any = NO_VALUE
    phase: Phase = Phase.START
    timestamp: Optional[int] = None
    id: Optional[int] = None
    samples: Optional[list[float]] = None
    rate: Optional[int] = None
    TYPE = MessageType.PUBLISH


@dataclass(slots=True)
class Set:
    """Write a param.  Client to server, ``revision`` is the expected revision;
    server to client, it is the new revision."""

    address: str
    value: Any
    revision: Optional[int] = None
    lock: bool = False
    unlock: bool = False
    ttl: Optional[Ttl] = None
    TYPE = MessageType.SET


@dataclass(slots=True)
class Get:
    address: str
    TYPE = MessageType.GET


@dataclass(slots=True)
class ParamValue:
    address: str
    value: Any
    revision: int
    writer: Optional[str] = None
    timestamp: Optional[int] = None


@dataclass(slots=True)
class Snapshot:
    params: list[ParamValue] = field(default_factory=list)
    TYPE = MessageType.SNAPSHOT


@dataclass(slots=True)
class Replay:
    pattern: str
    from_us: Optional[int] = None
    to_us: Optional[int] = None
    limit: Optional[int] = None
    types: int = TypeMask.ALL
    TYPE = MessageType.REPLAY


@dataclass(slots=True)
class Bundle:
    messages: list[Any] = field(default_factory=list)
    timestamp: Optional[int] = None
    TYPE = MessageType.BUNDLE


@dataclass(slots=True)
class Sync:
    t1: int
    t2: Optional[int] = None
    t3: Optional[int] = None
    TYPE = MessageType.SYNC


@dataclass(slots=True)
class Ping:
    TYPE = MessageType.PING


@dataclass(slots=True)
class Pong:
    TYPE = MessageType.PONG


@dataclass(slots=True)
class Ack:
    address: Optional[str] = None
    revision: Optional[int] = None
    locked: Optional[bool] = None
    holder: Optional[str] = None
    correlation_id: Optional[int] = None
    TYPE = MessageType.ACK


@dataclass(slots=True)
class Error:
    code: int
    message: str
    address: Optional[str] = None
    correlation_id: Optional[int] = None
    TYPE = MessageType.ERROR


@dataclass(slots=True)
class Query:
    pattern: str
    TYPE = MessageType.QUERY


@dataclass(slots=True)
class Result:
    signals: list[SignalDef] = field(default_factory=list)
    TYPE = MessageType.RESULT


@dataclass(slots=True)
class Frame:
    """A decoded frame: the message plus what the header said about it."""

    message: Any
    qos: int = 0
    timestamp: Optional[int] = None
    flags: int = 0x01
    legacy: bool = False  # payload was a MessagePack map


Message = Any  # any of the dataclasses above
