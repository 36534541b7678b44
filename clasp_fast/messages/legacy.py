"""The legacy (v2) MessagePack payload form.

The Python client ``clasp-to`` 4.2.0 sends BUNDLE and QUERY as a MessagePack map
inside a frame whose version bits still say "binary"; the first payload byte
(a map marker) is what tells the two forms apart.  This module turns such a map
into the same message dataclasses the binary decoder produces, so the router
handles both the same way.  It is never on the hot path.

Key conventions (Rust serde and the Python client): ``"type"`` holds the
upper-case message name, other keys are snake_case field names (camelCase
``maxRate`` is accepted too), signal and phase are lower-case names, and a
PUBLISH may carry its value under ``"payload"``.
"""
from __future__ import annotations

from typing import Any

import msgpack

import clasp_fast.messages as M

from .errors import DecodeError, EncodeError

_SIGNALS = {s.name.lower(): s for s in M.SignalType}
_PHASES = {p.name.lower(): p for p in M.Phase}
_FEATURES = {f.name.lower(): int(f) for f in M.Feature}
_TYPE_BITS = {"param": 0x01, "event": 0x02, "stream": 0x04, "gesture": 0x08, "timeline": 0x10}

# Field widths of the binary layout: a decoded message must fit them, or the
# router could not re-encode it (binary v3 is all it sends).
U8, U16, U32, U64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
MAX_VALUE_DEPTH = 128  # same limit as the binary decoder


def decode_map(payload: bytes) -> Any:
    """Decodes a MessagePack payload into a message dataclass (DecodeError if it is not one)."""
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types: ExtraData, ValueError, UnicodeDecodeError...
        raise DecodeError(f"invalid MessagePack payload: {exc}") from None
    return from_map(obj)


def from_map(obj: Any, depth: int = 0) -> Any:
    if not isinstance(obj, dict):
        raise DecodeError(f"legacy MessagePack payload is a {type(obj).__name__}, expected a map")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise DecodeError("legacy MessagePack map has no string 'type' key")
    kind = kind.upper()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise DecodeError(f"legacy MessagePack message type {kind!r} is not supported")
    try:
        return decoder(_Fields(obj, kind), depth)
    except DecodeError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise DecodeError(f"legacy MessagePack {kind}: {exc}") from None


class _Fields:
    """Typed access to the keys of one legacy map, with errors that name the key."""

    def __init__(self, obj: dict, kind: str):
        self.obj = obj
        self.kind = kind

    def _bad(self, key: str, expected: str) -> DecodeError:
        return DecodeError(f"legacy MessagePack {self.kind}: '{key}' must be {expected}, "
                           f"got {self.obj.get(key)!r}")

    def has(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def str(self, key: str, required: bool = True):
        v = self.obj.get(key)
        if v is None and not required:
            return None
        if not isinstance(v, str):
            raise self._bad(key, "a string")
        return v

    def int(self, key: str, required: bool = True, alt: str | None = None, maximum: int = U64):
        v = self.obj.get(key)
        if v is None and alt is not None:
            v = self.obj.get(alt)
        if v is None and not required:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= maximum:
            raise self._bad(key, f"an integer in 0..{maximum}")
        return v

    def bool(self, key: str) -> bool:
        return bool(self.obj.get(key, False))

    def raw(self, key: str, default: Any = None) -> Any:
        return self.obj.get(key, default)


def _value(v: Any, depth: int = 0) -> Any:
    """MessagePack gives the same Python types the binary decoder does; check the rest."""
    if isinstance(v, int) and not isinstance(v, bool):
        if not -(1 << 63) <= v < (1 << 63):
            raise DecodeError(f"legacy MessagePack integer value {v} is outside the i64 range")
        return v
    if v is None or isinstance(v, (bool, float, str, bytes)):
        return v
    if isinstance(v, (list, dict)) and depth >= MAX_VALUE_DEPTH:
        raise DecodeError(f"legacy MessagePack value nested deeper than {MAX_VALUE_DEPTH} levels")
    if isinstance(v, list):
        return [_value(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {str(k): _value(x, depth + 1) for k, x in v.items()}
    raise DecodeError(f"legacy MessagePack value of type {type(v).__name__} is not a CLASP value")


def _opt_u32(opts: dict, *keys: str) -> int | None:
    """A SUBSCRIBE option (u32 on the wire), under its snake_case or camelCase key."""
    for key in keys:
        v = opts.get(key)
        if v is not None:
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= U32:
                raise DecodeError(f"legacy MessagePack SUBSCRIBE: option '{keys[0]}' must be an "
                                  f"integer in 0..{U32}, got {v!r}")
            return v
    return None


def _opt_str(d: dict, key: str, kind: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise DecodeError(f"legacy MessagePack {kind}: '{key}' must be a string, got {v!r}")
    return v


def _secs(v: Any, maximum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= maximum


def _ttl(v: Any) -> M.Ttl | None:
    if v is None:
        return None
    if v == "Never":
        return M.Ttl(M.TtlMode.NEVER)
    if isinstance(v, dict) and len(v) == 1:
        (mode, secs), = v.items()
        if mode in ("Sliding", "Absolute") and _secs(secs, 0x7FFFFFFF):
            return M.Ttl(M.TtlMode(mode.lower()), secs)
    if _secs(v, U32):
        return M.Ttl.from_raw(v)
    raise DecodeError(f"legacy MessagePack SET: 'ttl' must be \"Never\", {{\"Sliding\": n}} or "
                      f"{{\"Absolute\": n}}, got {v!r}")


def _signal(v: Any) -> M.SignalType:
    if v is None:
        return M.SignalType.EVENT
    if isinstance(v, int):
        return M.SignalType(v) if 0 <= v <= 4 else M.SignalType.EVENT
    return _SIGNALS.get(str(v).lower(), M.SignalType.EVENT)


def _phase(v: Any) -> M.Phase:
    if v is None:
        return M.Phase.START
    if isinstance(v, int):
        return M.Phase(v) if 0 <= v <= 3 else M.Phase.START
    return _PHASES.get(str(v).lower(), M.Phase.START)


def _features(v: Any) -> int:
    if isinstance(v, int):
        return v & 0xFF
    bits = 0
    for name in v or ():
        bits |= _FEATURES.get(str(name).lower(), 0)
    return bits


def _types(v: Any) -> int:
    if v is None:
        return 0xFF
    if isinstance(v, int):
        return v & 0xFF
    bits = 0
    for name in v:
        bits |= _TYPE_BITS.get(str(name).lower(), 0)
    return bits or 0xFF


def _set(f: _Fields, depth: int) -> M.Set:
    ttl = _ttl(f.raw("ttl"))
    if ttl is not None and f.bool("absolute") and ttl.mode is M.TtlMode.SLIDING:
        ttl = M.Ttl(M.TtlMode.ABSOLUTE, ttl.seconds)
    return M.Set(address=f.str("address"), value=_value(f.raw("value")),
                 revision=f.int("revision", required=False),
                 lock=f.bool("lock"), unlock=f.bool("unlock"), ttl=ttl)


def _publish(f: _Fields, depth: int) -> M.Publish:
    if "value" in f.obj and f.obj["value"] is not None:
        value = _value(f.obj["value"])
    elif "payload" in f.obj:
        value = _value(f.obj["payload"])
    elif "value" in f.obj:
        value = None
    else:
        value = M.NO_VALUE
    samples = f.raw("samples")
    if samples is not None:
        if not isinstance(samples, list) or not all(isinstance(s, (int, float)) for s in samples):
            raise DecodeError("legacy MessagePack PUBLISH: 'samples' must be a list of numbers")
        samples = [float(s) for s in samples]
    return M.Publish(address=f.str("address"), signal=_signal(f.raw("signal")), value=value,
                     phase=_phase(f.raw("phase")), timestamp=f.int("timestamp", required=False),
                     id=f.int("id", required=False, maximum=U32), samples=samples,
                     rate=f.int("rate", required=False, maximum=U32))


def _bundle(f: _Fields, depth: int) -> M.Bundle:
    if depth >= 8:
        raise DecodeError("legacy MessagePack BUNDLE nested deeper than 8 levels")
    inner = f.raw("messages", [])
    if not isinstance(inner, list):
        raise DecodeError("legacy MessagePack BUNDLE: 'messages' must be a list")
    msgs = []
    for i, m in enumerate(inner):
        try:
            msgs.append(from_map(m, depth + 1))
        except DecodeError as exc:
            raise DecodeError(f"BUNDLE entry {i}: {exc}") from None
    return M.Bundle(messages=msgs, timestamp=f.int("timestamp", required=False))


def _subscribe(f: _Fields, depth: int) -> M.Subscribe:
    opts = f.raw("options")
    options = None
    if isinstance(opts, dict) and opts:
        eps = opts.get("epsilon")
        if eps is not None and (not isinstance(eps, (int, float)) or isinstance(eps, bool)):
            raise DecodeError(f"legacy MessagePack SUBSCRIBE: option 'epsilon' must be a number, "
                              f"got {eps!r}")
        options = M.SubscribeOptions(
            max_rate=_opt_u32(opts, "max_rate", "maxRate"),
            epsilon=float(eps) if eps is not None else None,
            history=_opt_u32(opts, "history"), window=_opt_u32(opts, "window"))
    return M.Subscribe(id=f.int("id", maximum=U32), pattern=f.str("pattern"),
                       types=_types(f.raw("types")), options=options)


def _hello(f: _Fields, depth: int) -> M.Hello:
    return M.Hello(name=f.str("name", required=False) or "",
                   version=f.int("version", required=False, maximum=U8) or 1,
                   features=_features(f.raw("features")), token=f.str("token", required=False) or None)


def _sync(f: _Fields, depth: int) -> M.Sync:
    return M.Sync(t1=f.int("t1"), t2=f.int("t2", required=False), t3=f.int("t3", required=False))


def _ack(f: _Fields, depth: int) -> M.Ack:
    locked = f.raw("locked")
    return M.Ack(address=f.str("address", required=False), revision=f.int("revision", required=False),
                 locked=None if locked is None else bool(locked), holder=f.str("holder", required=False),
                 correlation_id=f.int("correlation_id", required=False, alt="correlationId",
                                      maximum=U32))


def _error(f: _Fields, depth: int) -> M.Error:
    return M.Error(code=f.int("code", maximum=U16), message=f.str("message", required=False) or "",
                   address=f.str("address", required=False),
                   correlation_id=f.int("correlation_id", required=False, alt="correlationId",
                                        maximum=U32))


def _announce(f: _Fields, depth: int) -> M.Announce:
    signals = []
    for s in f.raw("signals", []) or []:
        if not isinstance(s, dict) or not isinstance(s.get("address"), str):
            raise DecodeError("legacy MessagePack ANNOUNCE: each signal needs a string 'address'")
        signals.append(M.SignalDef(address=s["address"],
                                   signal=_signal(s.get("type", s.get("signal_type", "param"))),
                                   datatype=_opt_str(s, "datatype", "ANNOUNCE"),
                                   access=_opt_str(s, "access", "ANNOUNCE")))
    return M.Announce(namespace=f.str("namespace", required=False) or "", signals=signals)


_DECODERS = {
    "SET": _set,
    "PUBLISH": _publish,
    "BUNDLE": _bundle,
    "QUERY": lambda f, d: M.Query(pattern=f.str("pattern")),
    "GET": lambda f, d: M.Get(address=f.str("address")),
    "SUBSCRIBE": _subscribe,
    "UNSUBSCRIBE": lambda f, d: M.Unsubscribe(id=f.int("id", maximum=U32)),
    "HELLO": _hello,
    "PING": lambda f, d: M.Ping(),
    "PONG": lambda f, d: M.Pong(),
    "SYNC": _sync,
    "ACK": _ack,
    "ERROR": _error,
    "ANNOUNCE": _announce,
}


# --- encoding (what the Python client sends) -----------------------------------

def to_map(msg: Any) -> dict:
    """The map the Python client ``clasp-to`` would build for ``msg``."""
    t = type(msg)
    if t is M.Bundle:
        return {"type": "BUNDLE", "timestamp": msg.timestamp,
                "messages": [to_map(m) for m in msg.messages]}
    if t is M.Query:
        return {"type": "QUERY", "pattern": msg.pattern}
    if t is M.Set:
        d: dict = {"type": "SET", "address": msg.address, "value": msg.value}
        if msg.revision is not None:
            d["revision"] = msg.revision
        if msg.lock:
            d["lock"] = True
        if msg.unlock:
            d["unlock"] = True
        if msg.ttl is not None:
            d["ttl"] = ("Never" if msg.ttl.mode is M.TtlMode.NEVER
                        else {msg.ttl.mode.value.capitalize(): msg.ttl.seconds})
        return d
    if t is M.Publish:
        d = {"type": "PUBLISH", "address": msg.address, "signal": msg.signal.name.lower()}
        if msg.signal is M.SignalType.EVENT:
            d["payload"] = None if msg.value is M.NO_VALUE else msg.value
        elif msg.value is not M.NO_VALUE:
            d["value"] = msg.value
        if msg.phase is not M.Phase.START:
            d["phase"] = msg.phase.name.lower()
        if msg.id is not None:
            d["id"] = msg.id
        if msg.timestamp is not None:
            d["timestamp"] = msg.timestamp
        return d
    if t is M.Get:
        return {"type": "GET", "address": msg.address}
    if t is M.Unsubscribe:
        return {"type": "UNSUBSCRIBE", "id": msg.id}
    if t in (M.Ping, M.Pong):
        return {"type": t.__name__.upper()}
    raise EncodeError(f"{t.__name__} has no legacy MessagePack form here")


def encode_map(msg: Any) -> bytes:
    return msgpack.packb(to_map(msg), use_bin_type=True)
