"""The codec against the 106 reference frames of tests/data/vectors.json.

Every frame is decoded and converted into the vectors' own notation (see
tests/data/README.md) by a small adapter, then compared as a whole dict with
int / float / bool kept apart.  Client-to-server frames must also re-encode
byte for byte; peek() and splice_revision() are checked on the same frames.
"""
from __future__ import annotations

import dataclasses

import msgpack
import pytest

from clasp_fast.protocol import (
    NO_VALUE,
    DecodeError,
    EncodeError,
    decode_frame,
    decode_payload,
    encode_frame,
    peek,
    splice_revision,
)
from clasp_fast.protocol import messages as M

from .wire_support import VECTORS, client_view, frame_bytes, header_size, reframe, strict, vector

# ---------------------------------------------------------------------------
# adapter: our dataclasses -> the vectors' notation
# ---------------------------------------------------------------------------

FEATURE_BITS = [(0x80, "param"), (0x40, "event"), (0x20, "stream"), (0x10, "gesture"),
                (0x08, "timeline"), (0x04, "federation")]
TYPE_BITS = [(0x01, "param"), (0x02, "event"), (0x04, "stream"), (0x08, "gesture"),
             (0x10, "timeline")]
TYPE_NAMES = {c.value: c.name for c in M.MessageType}

# The value code a decoded Python value stands for.  The decoder widens the
# narrow codes (i8/i16/i32 -> int, f32 -> float), so the reference's 2/3/4 are
# compared as 5 (int) and 6 as 7 (float); the strict comparison then checks
# that the value really is an int / a float.
WIDENED = {2: 5, 3: 5, 4: 5, 6: 7}


def value_code_of(v) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return 1
    if isinstance(v, int):
        return 5
    if isinstance(v, float):
        return 7
    if isinstance(v, str):
        return 8
    if isinstance(v, bytes):
        return 9
    if isinstance(v, list):
        return 10
    if isinstance(v, dict):
        return 11
    raise AssertionError(f"decoder produced a {type(v).__name__} value: {v!r}")


def value_notation(v):
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, list):
        return [value_notation(x) for x in v]
    if isinstance(v, dict):
        return {k: value_notation(x) for k, x in v.items()}
    return v


def typed(v) -> dict:
    return {"value_type": value_code_of(v), "value": value_notation(v)}


def features(bits: int) -> list[str]:
    return [name for bit, name in FEATURE_BITS if bits & bit]


def type_mask(mask: int):
    if mask == 0xFF:
        return None
    names = [name for bit, name in TYPE_BITS if mask & bit]
    assert mask & ~0x1F == 0, f"mask 0x{mask:02x} has bits the notation cannot show"
    return names


def ttl_notation(ttl):
    if ttl is None:
        return None
    return {"raw": ttl.raw, "mode": ttl.mode.value, "seconds": ttl.seconds}


def signal_notation(s: M.SignalDef, with_meta: bool) -> dict:
    d = {"address": s.address, "type": s.signal.name.lower(), "datatype": s.datatype,
         "access": s.access}
    if with_meta and s.meta is not None:
        meta = {}
        if s.meta.unit is not None:
            meta["unit"] = s.meta.unit
        if s.meta.range is not None:
            assert isinstance(s.meta.range, tuple) and len(s.meta.range) == 2
            meta["range"] = list(s.meta.range)
        if s.meta.default is not NO_VALUE:
            meta["default"] = value_notation(s.meta.default)
        if s.meta.description is not None:
            meta["description"] = s.meta.description
        d["meta"] = meta
    return d


def notation(msg) -> dict:
    """Our decoded message in the vectors' {type, ...} notation."""
    t = type(msg)
    name = TYPE_NAMES[t.TYPE]
    d: dict = {"type": name}
    if t is M.Hello:
        d.update(version=msg.version, features=features(msg.features), name=msg.name,
                 token=msg.token)
    elif t is M.Welcome:
        d.update(version=msg.version, features=features(msg.features), time=msg.time,
                 session=msg.session, name=msg.name, token=msg.token)
    elif t is M.Set:
        d.update(address=msg.address, **typed(msg.value), revision=msg.revision, lock=msg.lock,
                 unlock=msg.unlock, ttl=ttl_notation(msg.ttl))
    elif t is M.Publish:
        d.update(address=msg.address, signal=msg.signal.name.lower(), phase=msg.phase.name.lower())
        if msg.samples is not None:
            assert msg.value is NO_VALUE
            d.update(value_indicator=2, samples=list(msg.samples))
        elif msg.value is NO_VALUE:
            d.update(value_indicator=0)
        else:
            d.update(value_indicator=1, **typed(msg.value))
        d.update(timestamp=msg.timestamp, id=msg.id, rate=msg.rate)
    elif t is M.Subscribe:
        opts = None
        if msg.options is not None:
            opts = {k: v for k, v in dataclasses.asdict(msg.options).items() if v is not None}
        d.update(id=msg.id, pattern=msg.pattern, types=type_mask(msg.types), options=opts)
    elif t is M.Unsubscribe:
        d.update(id=msg.id)
    elif t is M.Get:
        d.update(address=msg.address)
    elif t is M.Query:
        d.update(pattern=msg.pattern)
    elif t is M.Snapshot:
        d.update(params=[{"address": p.address, **typed(p.value), "revision": p.revision,
                          "writer": p.writer, "timestamp": p.timestamp} for p in msg.params])
    elif t is M.Replay:
        d.update(pattern=msg.pattern, **{"from": msg.from_us, "to": msg.to_us}, limit=msg.limit,
                 types=type_mask(msg.types))
    elif t is M.Bundle:
        d.update(timestamp=msg.timestamp, messages=[notation(m) for m in msg.messages])
    elif t is M.Sync:
        d.update(t1=msg.t1, t2=msg.t2, t3=msg.t3)
    elif t is M.Ack:
        d.update(address=msg.address, revision=msg.revision, locked=msg.locked,
                 holder=msg.holder, correlation_id=msg.correlation_id)
    elif t is M.Error:
        d.update(code=msg.code, message=msg.message, address=msg.address,
                 correlation_id=msg.correlation_id)
    elif t is M.Announce:
        d.update(namespace=msg.namespace, signals=[signal_notation(s, True) for s in msg.signals])
    elif t is M.Result:
        d.update(signals=[signal_notation(s, False) for s in msg.signals])
    elif t is M.FederationSync:
        d.update(op=msg.op, patterns=list(msg.patterns), revisions=dict(msg.revisions),
                 since_revision=msg.since_revision, origin=msg.origin)
    # Ping / Pong: type only
    return d


def frame_notation(frame: M.Frame, raw: bytes) -> dict:
    has_ts = frame.timestamp is not None
    return {
        "flags": f"0x{frame.flags:02x}", "qos": frame.qos, "has_timestamp": has_ts,
        "encrypted": bool(frame.flags & 0x10), "compressed": bool(frame.flags & 0x08),
        "version": frame.flags & 0x07, "timestamp": frame.timestamp,
        "payload_len": len(raw) - (12 if has_ts else 4),
        "payload_encoding": "msgpack" if frame.legacy else "binary",
    }


# ---------------------------------------------------------------------------
# the expected side
# ---------------------------------------------------------------------------


def widen(obj):
    """The reference notation with narrow value codes mapped to what the decoder returns."""
    if isinstance(obj, list):
        return [widen(x) for x in obj]
    if isinstance(obj, dict):
        out = {k: widen(v) for k, v in obj.items()}
        if "value_type" in out:
            out["value_type"] = WIDENED.get(out["value_type"], out["value_type"])
        return out
    return obj


def legacy_notation(m: dict) -> dict:
    """A legacy MessagePack map (as unpacked) normalised as docs/protocol.md "Frame layout" says:
    ``payload`` -> value, missing phase -> start, missing signal -> event, absent
    optional fields -> null."""
    t = m["type"]
    if t == "SET":
        return {"type": "SET", "address": m["address"], **typed(m.get("value")),
                "revision": m.get("revision"), "lock": bool(m.get("lock", False)),
                "unlock": bool(m.get("unlock", False)), "ttl": None}
    if t == "PUBLISH":
        d = {"type": "PUBLISH", "address": m["address"], "signal": m.get("signal", "event"),
             "phase": m.get("phase", "start")}
        if m.get("value") is not None:
            d.update(value_indicator=1, **typed(m["value"]))
        elif "payload" in m:
            d.update(value_indicator=1, **typed(m["payload"]))
        else:
            d.update(value_indicator=0)
        d.update(timestamp=m.get("timestamp"), id=m.get("id"), rate=m.get("rate"))
        return d
    if t == "BUNDLE":
        return {"type": "BUNDLE", "timestamp": m.get("timestamp"),
                "messages": [legacy_notation(x) for x in m["messages"]]}
    if t == "QUERY":
        return {"type": "QUERY", "pattern": m["pattern"]}
    if t == "ACK":
        return {"type": "ACK", "address": m.get("address"), "revision": m.get("revision"),
                "locked": m.get("locked"), "holder": m.get("holder"),
                "correlation_id": m.get("correlation_id")}
    raise AssertionError(f"no legacy normalisation for {t}")


def expected_of(v: dict) -> dict:
    """c2s: ``decoded``; s2c: ``reference`` (same notation), else ``decoded``."""
    if v["direction"] == "c2s":
        return v["decoded"]
    return v.get("reference", v["decoded"])


# Vectors whose expected decoding is an error, and the words our DecodeError must use.
EXPECTED_ERRORS = {
    # WELCOME without the mandatory u16 token length: the reference decoders
    # (and both clients) fail; so do we, naming the missing field.
    "s2c_welcome_without_token_field": ("truncated", "WELCOME", "token"),
}

ALL_NAMES = [v["name"] for v in VECTORS]
C2S_NAMES = [v["name"] for v in VECTORS if v["direction"] == "c2s"]
S2C_NAMES = [v["name"] for v in VECTORS if v["direction"] == "s2c"]


def test_vector_inventory():
    """The file holds what tests/data/README.md says: 76 c2s and 30 s2c frames; every
    error expectation is accounted for."""
    assert len(C2S_NAMES) == 76 and len(S2C_NAMES) == 30
    error_names = {v["name"] for v in VECTORS if "error" in expected_of(v)}
    assert error_names == set(EXPECTED_ERRORS)


# ---------------------------------------------------------------------------
# decode: field by field, whole dicts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_vector_decodes_to_reference(name):
    v = vector(name)
    raw = frame_bytes(name)
    expected = expected_of(v)

    if "error" in expected:
        with pytest.raises(DecodeError) as info:
            decode_frame(raw)
        for word in EXPECTED_ERRORS[name]:
            assert word in str(info.value)
        return

    frame = decode_frame(raw)
    assert strict(frame_notation(frame, raw), ordered=False) == strict(expected["frame"], ordered=False)

    if expected["frame"]["payload_encoding"] == "msgpack":
        # the vector's message is the map exactly as unpacked
        unpacked = msgpack.unpackb(raw[header_size(raw):], raw=False)
        assert strict(unpacked, ordered=False) == strict(expected["message"], ordered=False)
        want = legacy_notation(expected["message"])
        assert frame.legacy is True
    else:
        want = widen(expected["message"])
        assert frame.legacy is False
    got = notation(frame.message)
    assert strict(got, ordered=False) == strict(want, ordered=False), (got, want)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_decode_payload_agrees_with_decode_frame(name):
    raw = frame_bytes(name)
    if name in EXPECTED_ERRORS:
        with pytest.raises(DecodeError):
            decode_payload(raw[header_size(raw):])
        return
    assert strict(decode_payload(raw[header_size(raw):])) == strict(decode_frame(raw).message)
    # bytearray and memoryview inputs give the same result
    assert strict(decode_frame(bytearray(raw)).message) == strict(decode_frame(raw).message)
    assert strict(decode_frame(memoryview(raw)).message) == strict(decode_frame(raw).message)


def test_value_types_are_python_int_and_float():
    """The points the whole-dict comparison rests on, spelled out: code 5 (and the
    narrow 2-4) -> int, 7 (and 6) -> float, never the other way round."""
    assert type(decode_frame(frame_bytes("py_set_int")).message.value) is int
    assert type(decode_frame(frame_bytes("js_set_int_is_f64")).message.value) is float
    assert decode_frame(frame_bytes("js_set_int_is_f64")).message.value == 42.0
    assert type(decode_frame(frame_bytes("s2c_set_broadcast_i32_type")).message.value) is int
    assert type(decode_frame(frame_bytes("s2c_set_broadcast_f32_type")).message.value) is float
    arr = decode_frame(frame_bytes("py_set_array_mixed")).message.value
    assert [type(x) for x in arr] == [int, float, str, bool, type(None)]
    m = decode_frame(frame_bytes("py_set_map")).message.value
    assert list(m) == ["x", "y", "name"] and type(m["x"]) is float and type(m["y"]) is int
    assert decode_frame(frame_bytes("py_set_bytes")).message.value == bytes.fromhex("deadbeef")


def test_publish_value_indicator_mapping():
    """indicator 0 -> NO_VALUE, 1 -> the value (null included), 2 -> samples."""
    assert decode_frame(frame_bytes("py_publish_event_no_payload")).message.value is NO_VALUE
    js_null = decode_frame(frame_bytes("js_publish_event_no_payload")).message
    assert js_null.value is None and js_null.samples is None
    samples = decode_frame(frame_bytes("js_enc_publish_samples_rate")).message
    assert samples.value is NO_VALUE and samples.samples == [0.25, -0.5] and samples.rate == 48000
    rate_only = decode_frame(frame_bytes("rust_publish_rate_only")).message
    assert rate_only.rate == 60 and rate_only.value == 0.5 and rate_only.timestamp is None


# ---------------------------------------------------------------------------
# the real Python client's view of the server frames
# ---------------------------------------------------------------------------

CLIENT_COMPARABLE = [
    v["name"] for v in VECTORS
    if v["direction"] == "s2c" and v.get("python_client_accepts") and not v.get("python_client_misparses")
    and not decode_frame(frame_bytes(v["name"])).legacy
]


@pytest.mark.parametrize("name", CLIENT_COMPARABLE)
def test_s2c_decode_matches_python_client_view(name):
    """Where the Python client decodes a server frame correctly, our decoding, seen
    through the client's eyes, is what the client got (`decoded`)."""
    msg = decode_frame(frame_bytes(name)).message
    assert strict(client_view(msg), ordered=False) == strict(vector(name)["decoded"], ordered=False)


# ---------------------------------------------------------------------------
# encode: byte for byte
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", C2S_NAMES)
def test_c2s_reencodes_byte_for_byte(name):
    raw = frame_bytes(name)
    f = decode_frame(raw)
    again = encode_frame(f.message, qos=f.qos, timestamp=f.timestamp, legacy=f.legacy)
    assert again.hex() == raw.hex()


# s2c frames that are deliberately not what our encoder writes
S2C_NOT_CANONICAL = {
    "s2c_welcome_without_token_field": "does not decode",
    "s2c_welcome_flags_version0": "flags byte 0x00: we always write version bits 1",
    "s2c_ack_as_msgpack_workaround": "flags 0x00, and ACK has no legacy encoder",
    "s2c_set_broadcast_i32_type": "i32 value code: we widen to i64",
    "s2c_set_broadcast_f32_type": "f32 value code: we widen to f64",
}


@pytest.mark.parametrize("name", [n for n in S2C_NAMES if n not in S2C_NOT_CANONICAL])
def test_s2c_reencodes_byte_for_byte(name):
    """The Rust router's own frames (and the hand-built canonical ones) come out of
    our encoder identical, map key order included."""
    raw = frame_bytes(name)
    f = decode_frame(raw)
    assert encode_frame(f.message, qos=f.qos, timestamp=f.timestamp, legacy=f.legacy).hex() == raw.hex()


def test_non_canonical_s2c_reencode_to_equal_messages():
    for name in S2C_NOT_CANONICAL:
        raw = frame_bytes(name)
        if name in EXPECTED_ERRORS:
            continue
        f = decode_frame(raw)
        if f.legacy:
            continue  # ACK: no legacy encoder; checked binary below
        again = decode_frame(encode_frame(f.message, qos=f.qos))
        assert strict(again.message) == strict(f.message)
        assert again.flags & 0x07 == 1
    ack = decode_frame(frame_bytes("s2c_ack_as_msgpack_workaround")).message
    assert ack == M.Ack(address="/lumen/layer/0/opacity", revision=42)
    assert decode_frame(encode_frame(ack)).message == ack


# ---------------------------------------------------------------------------
# peek
# ---------------------------------------------------------------------------

ADDRESSED = {"SET": "address", "PUBLISH": "address", "GET": "address", "QUERY": "pattern"}


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if n not in EXPECTED_ERRORS])
def test_peek(name):
    raw = frame_bytes(name)
    f = decode_frame(raw)
    t, addr = peek(raw)
    if f.legacy:
        assert (t, addr) == (0x100, None)  # T_MSGPACK (wire.pxd): "a legacy map"
        return
    assert t == raw[header_size(raw)] == f.message.TYPE
    kind = TYPE_NAMES[t]
    if kind in ADDRESSED:
        assert addr == getattr(f.message, ADDRESSED[kind])
        assert isinstance(addr, str)
    else:
        assert addr is None


def test_peek_addresses_spelled_out():
    assert peek(frame_bytes("py_set_f64")) == (0x21, "/lumen/layer/0/opacity")
    assert peek(frame_bytes("py_publish_gesture_move")) == (0x20, "/input/touch/0")
    assert peek(frame_bytes("py_get")) == (0x22, "/lumen/layer/0/opacity")
    assert peek(frame_bytes("js_enc_query")) == (0x60, "/lumen/**")
    assert peek(frame_bytes("py_set_utf8")) == (0x21, "/test/\u00fcn\u00ef")
    assert peek(frame_bytes("s2c_pong_with_header_timestamp")) == (0x42, None)


# ---------------------------------------------------------------------------
# splice_revision
# ---------------------------------------------------------------------------

SET_VECTORS = [n for n in C2S_NAMES if vector(n)["decoded"]["message"]["type"] == "SET"]


def test_set_vector_list():
    assert len(SET_VECTORS) == 29  # 19 Python, 8 JS API, 2 JS encoder


@pytest.mark.parametrize("name", SET_VECTORS)
@pytest.mark.parametrize("revision", [0, 1, 42, 2**53 - 1, 2**64 - 1])
def test_splice_revision_on_set_vectors(name, revision):
    raw = frame_bytes(name)
    orig = decode_frame(raw).message
    out = splice_revision(raw, revision)
    assert out[0] == 0x53 and out[1] == 0x41
    assert int.from_bytes(out[2:4], "big") == len(out) - 4
    f = decode_frame(out)
    assert f.qos == 1 and f.timestamp is None and f.flags == 0x41
    want = dataclasses.replace(orig, revision=revision)
    assert strict(f.message) == strict(want)
    # identical to encoding the SET with the new revision (value bytes copied verbatim)
    assert out == encode_frame(want, qos=1)


@pytest.mark.parametrize("qos,flags", [(0, 0x01), (1, 0x41), (2, 0x81)])
def test_splice_revision_qos(qos, flags):
    out = splice_revision(frame_bytes("py_set_revision_lock"), 7, qos=qos)
    assert out[1] == flags
    m = decode_frame(out).message
    assert m.revision == 7 and m.lock is True and m.value == 0.5


@pytest.mark.parametrize("source,revision,target", [
    ("py_set_f64", 42, "s2c_set_broadcast_f64_rev"),
    ("js_set_f64", 42, "s2c_set_broadcast_f64_rev"),
    ("py_set_int", 3, "s2c_set_broadcast_int_rev"),
])
def test_splice_revision_matches_rust_broadcast(source, revision, target):
    assert splice_revision(frame_bytes(source), revision).hex() == vector(target)["hex"]


def test_splice_revision_matches_rust_broadcast_ttl_and_lock():
    ttl_set = encode_frame(M.Set("/test/str", "hello", ttl=M.Ttl(M.TtlMode.SLIDING, 30)))
    assert splice_revision(ttl_set, 5).hex() == vector("s2c_set_broadcast_string_ttl")["hex"]
    lock_set = encode_frame(M.Set("/x", 1.0, lock=True))
    assert splice_revision(lock_set, 9).hex() == vector("s2c_set_broadcast_lock")["hex"]
    # an expected revision in the incoming SET is replaced, not kept
    with_rev = encode_frame(M.Set("/x", 1.0, revision=123456, lock=True))
    assert splice_revision(with_rev, 9).hex() == vector("s2c_set_broadcast_lock")["hex"]


def test_splice_revision_drops_header_timestamp_and_keeps_narrow_value_bytes():
    payload = frame_bytes("s2c_set_broadcast_i32_type")[4:]
    raw = reframe(payload, flags=0x01, timestamp=1700000000000000)
    out = splice_revision(raw, 11)
    assert out[1] == 0x41
    # i32 value bytes are copied as they are (value code 4 kept), revision appended
    assert out[4:] == bytes([0x21, 0x84]) + payload[2:] + (11).to_bytes(8, "big")
    assert decode_frame(out).message == M.Set("/n", -5, revision=11)


@pytest.mark.parametrize("name", ["py_get", "py_publish_stream", "py_query_msgpack", "s2c_pong"])
def test_splice_revision_rejects_non_set(name):
    with pytest.raises(DecodeError, match="SET"):
        splice_revision(frame_bytes(name), 1)


def test_splice_revision_refuses_a_broadcast_too_large_for_a_frame():
    """The broadcast adds 8 revision bytes: a SET that fills a frame cannot get them
    (the u16 length would wrap and the frame would be corrupt)."""
    head = len(encode_frame(M.Set("/b", b""))) - 4
    fits = encode_frame(M.Set("/b", b"x" * (65535 - 8 - head)))
    out = splice_revision(fits, 1)
    assert len(out) == 4 + 65535 and decode_frame(out).message.revision == 1
    too_big = encode_frame(M.Set("/b", b"x" * (65535 - 7 - head)))
    with pytest.raises(EncodeError, match="65535"):
        splice_revision(too_big, 1)
