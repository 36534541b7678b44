"""Shared helpers for the wire-layer unit tests (not a test module itself).

* ``VECTORS`` / ``vector(name)``: the reference frames of ``tests/data/vectors.json``
  (described in tests/data/README.md).
* ``strict(x)``: a comparison key that keeps apart what ``==`` mixes up
  (``1 == 1.0 == True``), keeps map key order, and makes NaN equal to NaN.
* hypothesis strategies for CLASP values and for every message dataclass.
"""
from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path

from hypothesis import strategies as st

from clasp_fast.protocol import NO_VALUE
from clasp_fast.protocol import messages as M

# ---------------------------------------------------------------------------
# reference vectors
# ---------------------------------------------------------------------------


VECTORS_PATH = Path(__file__).resolve().parent.parent / "data" / "vectors.json"
VECTORS: list[dict] = json.loads(VECTORS_PATH.read_text())
BY_NAME: dict[str, dict] = {v["name"]: v for v in VECTORS}
assert len(BY_NAME) == len(VECTORS) == 106, "vectors.json changed: expected 106 uniquely named frames"


def vector(name: str) -> dict:
    return BY_NAME[name]


def frame_bytes(name: str) -> bytes:
    return bytes.fromhex(BY_NAME[name]["hex"])


def reframe(payload: bytes, flags: int = 0x01, timestamp: int | None = None) -> bytes:
    """A frame header with the right length around ``payload`` (any length up to 65535)."""
    if timestamp is not None:
        flags |= 0x20
    head = bytes([0x53, flags]) + len(payload).to_bytes(2, "big")
    if flags & 0x20:
        head += (timestamp or 0).to_bytes(8, "big")
    return head + payload


def header_size(frame: bytes) -> int:
    return 12 if frame[1] & 0x20 else 4


# ---------------------------------------------------------------------------
# strict comparison key
# ---------------------------------------------------------------------------


def strict(x, ordered: bool = True):
    """A hashable-ish tree that compares equal only for identically typed data.

    bool / int / float are tagged, floats compare by their exact hex form (so
    -0.0 != 0.0 and NaN == NaN), enums keep their class, dataclasses their class
    and every field, and (with ``ordered``) dicts their key order.
    """
    if x is NO_VALUE:
        return ("NO_VALUE",)
    if x is None:
        return ("None",)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__name__,
                tuple((f.name, strict(getattr(x, f.name), ordered)) for f in dataclasses.fields(x)))
    if isinstance(x, enum.Enum):
        return (type(x).__name__, x.value)
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, int):
        return ("int", int(x))
    if isinstance(x, float):
        return ("float", x.hex())
    if isinstance(x, str):
        return ("str", x)
    if isinstance(x, bytes):
        return ("bytes", x)
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(strict(i, ordered) for i in x))
    if isinstance(x, dict):
        if ordered:
            return ("dict", tuple((k, strict(v, ordered)) for k, v in x.items()))
        return ("dict", {k: strict(v, ordered) for k, v in x.items()})
    raise TypeError(f"strict(): unexpected {type(x).__name__}")


# ---------------------------------------------------------------------------
# hypothesis strategies
# ---------------------------------------------------------------------------

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
I64 = st.integers(-(1 << 63), (1 << 63) - 1)

# text: full Unicode (no surrogates: they are not encodable as UTF-8)
short_text = st.text(max_size=12)
address = st.one_of(
    st.builds(lambda segs: "/" + "/".join(segs), st.lists(st.text(min_size=1, max_size=6), max_size=4)),
    short_text,
)

scalar_values = st.one_of(
    st.none(),
    st.booleans(),
    I64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False),  # also +-inf
    st.text(max_size=16),
    st.binary(max_size=16),
)

values = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=12,
)

signals = st.sampled_from(list(M.SignalType))
phases = st.sampled_from(list(M.Phase))
opt_token = st.one_of(st.none(), st.text(min_size=1, max_size=12))  # "" reads back as None
finite_floats = st.floats(allow_nan=False)


@st.composite
def ttls(draw):
    mode = draw(st.sampled_from(list(M.TtlMode)))
    if mode is M.TtlMode.NEVER:
        return M.Ttl(M.TtlMode.NEVER, 0)
    if mode is M.TtlMode.SLIDING:
        return M.Ttl(M.TtlMode.SLIDING, draw(st.integers(1, 0x7FFFFFFF)))
    return M.Ttl(M.TtlMode.ABSOLUTE, draw(st.integers(0, 0x7FFFFFFF)))


hellos = st.builds(M.Hello, name=short_text, version=U8, features=U8, token=opt_token)
welcomes = st.builds(M.Welcome, session=short_text, name=short_text, time=U64, version=U8,
                     features=U8, token=opt_token)

signal_metas = st.builds(
    M.SignalMeta,
    unit=st.none() | short_text,
    range=st.none() | st.tuples(finite_floats, finite_floats),
    default=st.just(NO_VALUE) | values,
    description=st.none() | short_text,
)
signal_defs_with_meta = st.builds(M.SignalDef, address=address, signal=signals,
                                  datatype=st.none() | short_text, access=st.none() | short_text,
                                  meta=st.none() | signal_metas)
signal_defs_no_meta = st.builds(M.SignalDef, address=address, signal=signals,
                                datatype=st.none() | short_text, access=st.none() | short_text,
                                meta=st.none())
announces = st.builds(M.Announce, namespace=short_text,
                      signals=st.lists(signal_defs_with_meta, max_size=3))
federation_syncs = st.builds(
    M.FederationSync, op=st.integers(1, 4), patterns=st.lists(short_text, max_size=3),
    revisions=st.dictionaries(short_text, U64, max_size=3),
    since_revision=st.none() | U64, origin=st.none() | short_text)

# options with at least one field: an all-None SubscribeOptions is sent as
# option flags 0x00, which (like the Rust decoder) reads back as options=None.
subscribe_options = st.builds(
    M.SubscribeOptions, max_rate=st.none() | U32, epsilon=st.none() | finite_floats,
    history=st.none() | U32, window=st.none() | U32,
).filter(lambda o: any(v is not None for v in (o.max_rate, o.epsilon, o.history, o.window)))
subscribes = st.builds(M.Subscribe, id=U32, pattern=address, types=U8,
                       options=st.none() | subscribe_options)
unsubscribes = st.builds(M.Unsubscribe, id=U32)


@st.composite
def publishes(draw):
    kind = draw(st.sampled_from(["none", "value", "samples"]))
    value = NO_VALUE
    samples = None
    if kind == "value":
        value = draw(values)
    elif kind == "samples":
        samples = draw(st.lists(finite_floats, max_size=6))
    return M.Publish(
        address=draw(address), signal=draw(signals), value=value, phase=draw(phases),
        timestamp=draw(st.none() | U64), id=draw(st.none() | U32), samples=samples,
        rate=draw(st.none() | U32),
    )


sets = st.builds(M.Set, address=address, value=values, revision=st.none() | U64,
                 lock=st.booleans(), unlock=st.booleans(), ttl=st.none() | ttls())
gets = st.builds(M.Get, address=address)
param_values = st.builds(M.ParamValue, address=address, value=values, revision=U64,
                         writer=st.none() | short_text, timestamp=st.none() | U64)
snapshots = st.builds(M.Snapshot, params=st.lists(param_values, max_size=3))
replays = st.builds(M.Replay, pattern=address, from_us=st.none() | U64, to_us=st.none() | U64,
                    limit=st.none() | U32, types=U8)
syncs = st.builds(M.Sync, t1=U64, t2=st.none() | U64, t3=st.none() | U64)
pings = st.builds(M.Ping)
pongs = st.builds(M.Pong)
acks = st.builds(M.Ack, address=st.none() | address, revision=st.none() | U64,
                 locked=st.none() | st.booleans(), holder=st.none() | short_text,
                 correlation_id=st.none() | U32)
errors = st.builds(M.Error, code=U16, message=short_text, address=st.none() | address,
                   correlation_id=st.none() | U32)
queries = st.builds(M.Query, pattern=address)
results = st.builds(M.Result, signals=st.lists(signal_defs_no_meta, max_size=3))

NON_BUNDLE = {
    "Hello": hellos, "Welcome": welcomes, "Announce": announces,
    "FederationSync": federation_syncs, "Subscribe": subscribes, "Unsubscribe": unsubscribes,
    "Publish": publishes(), "Set": sets, "Get": gets, "Snapshot": snapshots, "Replay": replays,
    "Sync": syncs, "Ping": pings, "Pong": pongs, "Ack": acks, "Error": errors,
    "Query": queries, "Result": results,
}
non_bundle_messages = st.one_of(*NON_BUNDLE.values())

bundles = st.recursive(
    st.builds(M.Bundle, messages=st.lists(non_bundle_messages, max_size=3),
              timestamp=st.none() | U64),
    lambda inner: st.builds(M.Bundle, messages=st.lists(non_bundle_messages | inner, max_size=3),
                            timestamp=st.none() | U64),
    max_leaves=4,
)

MESSAGES = dict(NON_BUNDLE, Bundle=bundles)
any_message = st.one_of(*MESSAGES.values())

# the types the legacy MessagePack encoder (``legacy.to_map``) can write
legacy_messages = st.one_of(
    sets,
    publishes().filter(lambda p: p.samples is None and p.rate is None
                       and not (p.signal is M.SignalType.EVENT and p.value is NO_VALUE)),
    gets, queries, unsubscribes, pings, pongs,
)


# ---------------------------------------------------------------------------
# what the real Python client (clasp-to 4.2.0) `_decode` returns for a message
# ---------------------------------------------------------------------------

_CLIENT_FEATURES = [(0x80, "param"), (0x40, "event"), (0x20, "stream"), (0x10, "gesture"),
                    (0x08, "timeline")]  # the client knows no federation bit


def client_view(msg) -> dict:
    """The dict ``clasp.Clasp._decode`` produces for ``msg`` (types it can decode only)."""
    t = type(msg)
    if t is M.Set:
        ttl, absolute = None, False
        if msg.ttl is not None:
            raw = msg.ttl.raw
            ttl = 0 if raw == 0 else raw & 0x7FFFFFFF
            absolute = raw != 0 and bool(raw & 0x80000000)
        return {"type": "SET", "address": msg.address, "value": msg.value, "revision": msg.revision,
                "lock": msg.lock, "unlock": msg.unlock, "ttl": ttl, "absolute": absolute}
    if t is M.Publish:
        assert msg.samples is None, "the Python client cannot decode samples"
        return {"type": "PUBLISH", "address": msg.address, "signal": msg.signal.name.lower(),
                "value": None if msg.value is NO_VALUE else msg.value, "timestamp": msg.timestamp,
                "id": msg.id, "phase": msg.phase.name.lower()}
    if t is M.Welcome:
        return {"type": "WELCOME", "version": msg.version, "session": msg.session, "name": msg.name,
                "features": [n for bit, n in _CLIENT_FEATURES if msg.features & bit],
                "time": msg.time, "token": msg.token or None}
    if t is M.Snapshot:
        return {"type": "SNAPSHOT", "params": [
            {"address": p.address, "value": p.value, "revision": p.revision, "writer": p.writer,
             "timestamp": p.timestamp} for p in msg.params]}
    if t is M.Error:
        return {"type": "ERROR", "code": msg.code, "message": msg.message, "address": msg.address}
    if t is M.Result:
        return {"type": "RESULT", "signals": [
            {"address": s.address, "type": s.signal.name.lower(), "datatype": s.datatype,
             "access": s.access} for s in msg.signals]}
    if t is M.Query:
        return {"type": "QUERY", "pattern": msg.pattern}
    if t in (M.Ping, M.Pong):
        return {"type": t.__name__.upper()}
    raise TypeError(f"the Python client cannot decode {t.__name__}")
