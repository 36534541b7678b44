"""Malformed input: the decoder's only failure is DecodeError, with a useful message.

* random bytes, random payloads behind a valid header, and systematic mutations
  (bit flips, byte replacements, insertions, deletions, truncations) of every
  reference vector and of hypothesis-generated frames go through decode_frame,
  decode_payload, peek and splice_revision: anything but DecodeError (or a
  crash, or a hang) is a bug;
* whatever does decode re-encodes: the router re-broadcasts what it decodes;
* the malformed frames docs/protocol.md lists each raise a DecodeError naming the problem.
"""
from __future__ import annotations

import faulthandler

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clasp_fast.protocol import (
    DecodeError,
    EncodeError,
    decode_frame,
    decode_payload,
    encode_frame,
    peek,
    splice_revision,
)
from clasp_fast.protocol import messages as M

from .wire_support import VECTORS, any_message, frame_bytes, header_size, reframe, strict

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TYPE_CODES = [c.value for c in M.MessageType]


@pytest.fixture(autouse=True)
def hang_guard():
    """A hang is a bug too: if one test runs for minutes, dump every thread's stack
    and exit (a C-level loop would not notice a Python signal handler)."""
    faulthandler.dump_traceback_later(180, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ---------------------------------------------------------------------------
# the property every input must satisfy
# ---------------------------------------------------------------------------


def assert_reencodes(msg, from_legacy: bool):
    """A decoded message can be put back on the wire, and reads back the same."""
    frame = encode_frame(msg)  # anything raised here fails the test
    again = decode_frame(frame).message
    assert encode_frame(again) == frame
    if not from_legacy:
        # binary input is already in canonical form: nothing changes at all
        assert strict(again) == strict(msg)


def check_input(data: bytes) -> bool:
    """Feeds ``data`` to every entry point; returns whether it decoded as a frame."""
    ok = False
    try:
        f = decode_frame(data)
    except DecodeError as exc:
        assert str(exc)
    else:
        ok = True
        assert isinstance(f, M.Frame)
        assert 0 <= f.qos <= 2 and f.flags == data[1]
        assert_reencodes(f.message, f.legacy)
    try:
        t, addr = peek(data)
    except DecodeError as exc:
        assert str(exc)
        # peek reads less than decode_frame: whatever it refuses, decode refuses too
        assert not ok
    else:
        assert isinstance(t, int) and (addr is None or isinstance(addr, str))
        if ok:
            assert t == (0x100 if f.legacy else f.message.TYPE)
    try:
        out = splice_revision(data, 99)
    except DecodeError as exc:
        assert str(exc)
    except EncodeError as exc:
        # a valid SET whose broadcast (8 more bytes for the revision) would not fit a frame
        assert ok and isinstance(f.message, M.Set) and len(data) > 65535 - 12, exc
    else:
        m = decode_frame(out).message
        assert isinstance(m, M.Set) and m.revision == 99 and out[1] == 0x41
        if ok:
            assert strict(m) == strict(_with_revision(f.message, 99))
    if len(data) >= 4:
        payload = data[4:]
        try:
            msg = decode_payload(payload)
        except DecodeError as exc:
            assert str(exc)
        else:
            assert_reencodes(msg, 0x80 <= payload[0] <= 0x8F or payload[0] in (0xDE, 0xDF))
    return ok


def _with_revision(m, rev):
    return M.Set(m.address, m.value, rev, m.lock, m.unlock, m.ttl)


# ---------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------


def payload_mutations(payload: bytes):
    """Systematic single-step mutations of a payload (each then gets a correct header)."""
    n = len(payload)
    for i in range(n):
        for bit in range(8):
            yield payload[:i] + bytes([payload[i] ^ (1 << bit)]) + payload[i + 1:]
        for b in (0x00, 0xFF):
            if payload[i] != b:
                yield payload[:i] + bytes([b]) + payload[i + 1:]
        yield payload[:i] + payload[i + 1:]  # delete
    for i in range(n + 1):
        for b in (0x00, 0x7F, 0x80, 0xFF):
            yield payload[:i] + bytes([b]) + payload[i:]  # insert
    for i in range(1, n):
        yield payload[:i]  # truncate


def frame_mutations(raw: bytes):
    """Header-level damage: truncation, extension and flips of the raw frame."""
    for i in range(len(raw)):
        yield raw[:i]
    yield raw + b"\x00"
    for i in range(min(len(raw), 12)):
        for bit in range(8):
            yield raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1:]


@pytest.mark.parametrize("name", [v["name"] for v in VECTORS])
def test_every_single_mutation_of_every_vector(name):
    raw = frame_bytes(name)
    hs = header_size(raw)
    flags, payload = raw[1], raw[hs:]
    decoded = 0
    for mutated in payload_mutations(payload):
        if mutated:
            decoded += check_input(reframe(mutated, flags & ~0x20))
    for mutated in frame_mutations(raw):
        check_input(mutated)
    # the mutations are not all rejected out of hand: the payload parsers are exercised
    assert decoded > 0


@st.composite
def mutated(draw, base: bytes):
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[i:i + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[i:]
        elif op == "splice":
            # a chunk of another vector: type bytes, value codes, lengths that make sense
            other = bytes.fromhex(draw(st.sampled_from(VECTORS))["hex"])[4:]
            j = draw(st.integers(0, len(other)))
            data[i:i] = other[j:j + draw(st.integers(1, 16))]
    return bytes(data)


@SETTINGS
@given(data=st.data(), vec=st.sampled_from(VECTORS), fix_header=st.booleans())
def test_random_multi_step_mutations_of_vectors(data, vec, fix_header):
    raw = bytes.fromhex(vec["hex"])
    if fix_header:
        payload = data.draw(mutated(raw[header_size(raw):]))
        if payload:
            check_input(reframe(payload, raw[1] & ~0x20))
    else:
        check_input(data.draw(mutated(raw)))


@SETTINGS
@given(data=st.data(), msg=any_message, qos=st.integers(0, 2), fix_header=st.booleans())
def test_random_mutations_of_generated_frames(data, msg, qos, fix_header):
    raw = encode_frame(msg, qos=qos)
    assert check_input(raw)
    if fix_header:
        payload = data.draw(mutated(raw[4:]))
        if payload:
            check_input(reframe(payload, raw[1]))
    else:
        check_input(data.draw(mutated(raw)))


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(data):
    check_input(data)
    check_input(b"\x53" + data)


@SETTINGS
@given(t=st.sampled_from(TYPE_CODES) | st.integers(0, 255), rest=st.binary(max_size=200),
       flags=st.integers(0, 255), ts=st.none() | st.integers(0, 2**64 - 1))
def test_random_payloads_behind_a_valid_header(t, rest, flags, ts):
    check_input(reframe(bytes([t]) + rest, flags & ~0x20, ts))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=8), ch, max_size=3),
    max_leaves=8,
)
LEGACY_KEYS = ["address", "value", "payload", "revision", "lock", "unlock", "ttl", "absolute",
               "signal", "phase", "timestamp", "id", "samples", "rate", "messages", "pattern",
               "types", "options", "name", "version", "features", "token", "t1", "t2", "t3",
               "locked", "holder", "correlation_id", "correlationId", "code", "message",
               "namespace", "signals"]
LEGACY_TYPES = ["SET", "PUBLISH", "BUNDLE", "QUERY", "GET", "SUBSCRIBE", "UNSUBSCRIBE", "HELLO",
                "PING", "PONG", "SYNC", "ACK", "ERROR", "ANNOUNCE", "WELCOME", "set", "NOPE"]


@st.composite
def legacy_maps(draw, depth=0):
    d = {"type": draw(st.sampled_from(LEGACY_TYPES))}
    for key in draw(st.lists(st.sampled_from(LEGACY_KEYS), max_size=6, unique=True)):
        if key == "messages" and depth < 2:
            d[key] = draw(st.lists(legacy_maps(depth + 1), max_size=2))
        elif key == "ttl":
            d[key] = draw(st.sampled_from(["Never", "Sometimes"]) | st.integers(-5, 2**33)
                          | st.fixed_dictionaries({draw(st.sampled_from(["Sliding", "Absolute", "X"])):
                                                   st.integers(-5, 2**33)}))
        elif key == "options":
            d[key] = draw(st.dictionaries(st.sampled_from(["max_rate", "maxRate", "epsilon", "history",
                                                           "window", "junk"]), msgpack_values, max_size=3))
        elif key == "signals":
            d[key] = draw(st.lists(st.dictionaries(st.sampled_from(["address", "type", "datatype",
                                                                    "access", "signal_type"]),
                                                   msgpack_values, max_size=4), max_size=2))
        else:
            d[key] = draw(msgpack_values | st.integers(0, 2**64 - 1))
    return d


@SETTINGS
@given(m=legacy_maps())
def test_random_legacy_maps(m):
    """Legacy maps with the right keys and random values: DecodeError or a message
    that the binary encoder can write."""
    payload = msgpack.packb(m, use_bin_type=True)
    if len(payload) < 65535:
        check_input(reframe(payload))


# ---------------------------------------------------------------------------
# the malformed frames docs/protocol.md names, and more
# ---------------------------------------------------------------------------

WELCOME_OK = frame_bytes("s2c_welcome_default")


def utf8_get(bad: bytes) -> bytes:
    return reframe(b"\x22" + len(bad).to_bytes(2, "big") + bad)


MALFORMED = [
    # (id, frame, words the DecodeError must contain)
    ("bad magic", b"\x54" + WELCOME_OK[1:], ["magic", "0x54"]),
    ("bad magic zero", b"\x00\x01\x00\x01\x41", ["magic"]),
    ("length too long", b"\x53\x01\x00\x05\x41", ["length", "5"]),
    ("length too short", b"\x53\x01\x00\x01\x41\x41", ["length"]),
    ("length mismatch in a long frame", WELCOME_OK[:3] + bytes([WELCOME_OK[3] + 1]) + WELCOME_OK[4:],
     ["length", "declares 66 payload byte(s)", "carries 65"]),
    ("length mismatch, extra bytes", WELCOME_OK + b"\x00" * 40, ["length", "declares 65", "carries 105"]),
    ("length vs timestamp", b"\x53\x21\x00\x01" + b"\x00" * 8 + b"\x41\x00", ["length"]),
    ("header truncated", b"\x53\x01\x00", ["short"]),
    ("timestamp truncated", b"\x53\x21\x00\x01\x00\x00", ["short"]),
    ("empty payload", b"\x53\x01\x00\x00", ["empty"]),
    ("empty payload with timestamp", b"\x53\x21\x00\x00" + b"\x00" * 8, ["empty"]),
    ("unknown type 0x05", reframe(b"\x05"), ["unknown message type", "0x05"]),
    ("unknown type 0x99", reframe(b"\x99\x00\x00"), ["unknown message type", "0x99"]),
    ("unknown type 0xff", reframe(b"\xff"), ["unknown message type", "0xff"]),
    ("utf8 lone continuation", utf8_get(b"/\x80"), ["UTF-8", "GET"]),
    ("utf8 overlong", utf8_get(b"/\xc0\xaf"), ["UTF-8"]),
    ("utf8 surrogate", utf8_get(b"/\xed\xa0\x80"), ["UTF-8"]),
    ("utf8 above U+10FFFF", utf8_get(b"/\xf4\x90\x80\x80"), ["UTF-8"]),
    ("utf8 truncated sequence", utf8_get(b"/\xe2\x86"), ["UTF-8"]),
    ("utf8 in value", reframe(b"\x21\x08\x00\x02/a\x00\x02\xff\xfe"), ["UTF-8", "SET"]),
    ("utf8 in map key", reframe(b"\x21\x0b\x00\x02/a\x00\x01\x00\x01\xff\x00"), ["UTF-8", "map key"]),
    ("utf8 in HELLO name", reframe(b"\x01\x01\xe0\x00\x01\xff\x00\x00"), ["UTF-8", "HELLO", "name"]),
    ("truncated address", reframe(b"\x22\x00\x09/lumen"), ["truncated", "GET", "address"]),
    ("truncated SET value", reframe(b"\x21\x07\x00\x02/a\x3f\xe8"), ["truncated", "SET"]),
    ("truncated SET revision", reframe(b"\x21\x80\x00\x02/a\x00\x00\x01"), ["truncated", "revision"]),
    ("truncated SET ttl", reframe(b"\x21\x10\x00\x02/a\x00\x00"), ["truncated", "ttl"]),
    ("truncated PUBLISH timestamp", reframe(b"\x20\x30\x00\x02/a\x00\x00\x00"), ["truncated", "timestamp"]),
    ("truncated PUBLISH samples", reframe(b"\x20\x40\x00\x02/a\x02\x00\x02" + b"\x00" * 12), ["truncated", "samples"]),
    ("truncated SUBSCRIBE id", reframe(b"\x10\x00\x00"), ["truncated", "SUBSCRIBE", "id"]),
    ("truncated SUBSCRIBE options", reframe(b"\x10\x00\x00\x00\x01\x00\x02/a\xff\x02\x3f"), ["truncated", "epsilon"]),
    ("truncated UNSUBSCRIBE", reframe(b"\x11\x00\x00\x01"), ["truncated", "UNSUBSCRIBE"]),
    ("truncated HELLO token", reframe(b"\x01\x01\xe0\x00\x01x"), ["truncated", "HELLO", "token"]),
    ("WELCOME without token", frame_bytes("s2c_welcome_without_token_field"), ["truncated", "token"]),
    ("truncated SNAPSHOT param", reframe(b"\x23\x00\x02\x00\x02/a\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00"), ["truncated", "SNAPSHOT"]),
    ("truncated SYNC", reframe(b"\x40\x03\x00\x00\x00\x00\x00\x00\x00\x01\x00"), ["truncated", "SYNC"]),
    ("truncated ACK", reframe(b"\x50\x02\x00"), ["truncated", "ACK", "revision"]),
    ("ERROR without flags", reframe(b"\x51\x01\x90\x00\x01x"), ["truncated", "ERROR", "flags"]),
    ("truncated RESULT", reframe(b"\x61\x00\x01\x00\x02/a"), ["truncated", "RESULT"]),
    ("truncated ANNOUNCE meta", reframe(b"\x03\x00\x00\x00\x01\x00\x02/a\x00\x04\x02\x00"), ["truncated", "ANNOUNCE", "range"]),
    ("truncated REPLAY", reframe(b"\x24\x80\x00\x02/a\x00"), ["truncated", "REPLAY"]),
    ("truncated FEDERATION_SYNC", reframe(b"\x04\x01\x00\x01"), ["truncated", "FEDERATION_SYNC"]),
    ("federation op 0", reframe(b"\x04\x00\x00\x00\x00\x00\x00"), ["op", "FEDERATION_SYNC"]),
    ("federation op 5", reframe(b"\x04\x05\x00\x00\x00\x00\x00"), ["op"]),
    ("truncated BUNDLE entry", reframe(b"\x30\x00\x00\x01\x00\x05\x41"), ["truncated", "BUNDLE", "entry"]),
    ("BUNDLE entry of length 0", reframe(b"\x30\x00\x00\x01\x00\x00"), ["BUNDLE", "empty bundle entry"]),
    ("BUNDLE with a bad entry", reframe(b"\x30\x00\x00\x01\x00\x01\x99"), ["BUNDLE entry 0", "unknown message type"]),
    ("truncated array", reframe(b"\x21\x0a\x00\x02/a\x00\x03\x05" + b"\x00" * 8), ["truncated", "SET"]),
    ("truncated bytes value", reframe(b"\x21\x09\x00\x02/a\x00\x10abc"), ["truncated", "bytes"]),
]


@pytest.mark.parametrize("frame,words", [(f, w) for _, f, w in MALFORMED], ids=[i for i, _, _ in MALFORMED])
def test_malformed_frames_name_the_problem(frame, words):
    with pytest.raises(DecodeError) as info:
        decode_frame(frame)
    text = str(info.value)
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"


def test_decode_payload_empty():
    with pytest.raises(DecodeError, match="empty"):
        decode_payload(b"")


@pytest.mark.parametrize("code", [0x0C, 0x0D, 0x0E, 0x0F])
def test_unknown_value_type_in_set_flags(code):
    with pytest.raises(DecodeError, match=f"unknown value type 0x{code:02x}"):
        decode_frame(reframe(bytes([0x21, code]) + b"\x00\x02/a" + b"\x00" * 8))


@pytest.mark.parametrize("code", [0x0C, 0x10, 0x7F, 0xFF])
def test_unknown_value_type_elsewhere(code):
    c = bytes([code])
    frames = [
        reframe(b"\x20\x20\x00\x02/a\x01" + c + b"\x00" * 8),  # PUBLISH value
        reframe(b"\x21\x0a\x00\x02/a\x00\x01" + c + b"\x00" * 8),  # array item
        reframe(b"\x21\x0b\x00\x02/a\x00\x01\x00\x01k" + c + b"\x00" * 8),  # map value
        reframe(b"\x23\x00\x01\x00\x02/a" + c + b"\x00" * 17),  # SNAPSHOT value
        reframe(b"\x03\x00\x00\x00\x01\x00\x02/a\x00\x04\x04" + c + b"\x00" * 8),  # ANNOUNCE default
    ]
    for f in frames:
        with pytest.raises(DecodeError, match=f"unknown value type 0x{code:02x}"):
            decode_frame(f)


def nested_array_value(levels: int) -> bytes:
    """type byte + data of `levels` nested one-item arrays around a null."""
    return b"\x0a\x00\x01" * levels + b"\x00"


@pytest.mark.parametrize("levels", [1, 64, 128])
def test_nesting_up_to_128_levels_decodes(levels):
    m = decode_frame(reframe(b"\x20\x20\x00\x02/a\x01" + nested_array_value(levels))).message
    v, depth = m.value, 0
    while isinstance(v, list):
        v, depth = v[0], depth + 1
    assert depth == levels and v is None


@pytest.mark.parametrize("levels", [129, 130, 1000, 20000])
def test_nesting_deeper_than_128_levels_is_refused(levels):
    body = nested_array_value(levels)
    for frame in (reframe(b"\x20\x20\x00\x02/a\x01" + body), reframe(b"\x21\x0a\x00\x02/a" + body[1:])):
        with pytest.raises(DecodeError, match="nested deeper than 128"):
            decode_frame(frame)


def nested_bundle_payload(levels: int, innermost: bytes = b"") -> bytes:
    p = b"\x30\x00" + (b"\x00\x01" + len(innermost).to_bytes(2, "big") + innermost if innermost else b"\x00\x00")
    for _ in range(levels - 1):
        p = b"\x30\x00\x00\x01" + len(p).to_bytes(2, "big") + p
    return p


@pytest.mark.parametrize("levels", [1, 8])
def test_bundles_nested_8_levels_decode(levels):
    for inner in (b"", b"\x41"):
        m = decode_frame(reframe(nested_bundle_payload(levels, inner))).message
        for _ in range(levels - 1):
            m = m.messages[0]
        assert m.messages == ([M.Ping()] if inner else [])


@pytest.mark.parametrize("levels", [9, 12])
def test_bundles_nested_deeper_than_8_levels_are_refused(levels):
    for inner in (b"", b"\x41"):
        with pytest.raises(DecodeError, match="BUNDLE nested deeper than 8 levels"):
            decode_frame(reframe(nested_bundle_payload(levels, inner)))


@pytest.mark.parametrize("frame, error", [
    # 65535 items promised, none there: refused at the first missing byte, not after
    # reserving room for 65535 items
    (reframe(b"\x21\x0a\x00\x02/a\xff\xff"), r"truncated SET: .* at offset 8,"),
    (reframe(b"\x23\xff\xff"), r"truncated SNAPSHOT: .* at offset 3,"),
    (reframe(b"\x30\x00\xff\xff"), r"truncated BUNDLE: .* at offset 4,"),
    (reframe(b"\x04\x01\xff\xff"), r"truncated FEDERATION_SYNC: .* at offset 4,"),
    (reframe(b"\x61\xff\xff"), r"truncated RESULT: .* at offset 3,"),
    # deep but truncated: refused at the nesting limit, before reading further
    (reframe(b"\x21\x0a\x00\x02/a" + b"\x00\x01\x0a" * 21000), r"deeper than 128 levels"),
    # 21,000 valid PINGs in a BUNDLE that promises 32,767: read one by one to the end
    (reframe(b"\x30\x00\x7f\xff" + b"\x00\x01\x41" * 21000),
     r"truncated BUNDLE: .* at offset %d," % (4 + 3 * 21000)),
])
def test_worst_case_inputs_are_refused_where_they_go_wrong(frame, error):
    """Large counts over short data fail where the data ends (the offset in the error),
    deep nesting fails at the limit; every entry point agrees (check_input)."""
    with pytest.raises(DecodeError, match=error):
        decode_frame(frame)
    assert check_input(frame) is False


def test_largest_valid_array_decodes_whole():
    """65,520 nulls in one SET: the largest array that fits a frame decodes, item for item."""
    frame = reframe(b"\x21\x0a\x00\x02/a\xff\xf0" + b"\x00" * 65520)
    msg = decode_frame(frame).message
    assert type(msg) is M.Set and msg.address == "/a"
    assert msg.value == [None] * 65520
    assert check_input(frame) is True


# ---------------------------------------------------------------------------
# legacy MessagePack garbage
# ---------------------------------------------------------------------------


def deep_msgpack_list(levels: int) -> bytes:
    return b"\x91" * (levels - 1) + b"\x90"


LEGACY_BAD = [
    ("unsupported type", b"\x81\xa4type\xa3FOO", ["not supported", "FOO"]),
    ("map without type", msgpack.packb({"address": "/a"}), ["'type'"]),
    ("non-string type", msgpack.packb({"type": 1}), ["'type'"]),
    ("truncated map", b"\x82\xa4type", ["invalid MessagePack"]),
    ("invalid byte", b"\x81\xa4type\xc1", ["invalid MessagePack"]),
    ("trailing data", msgpack.packb({"type": "PING"}) + b"\x00", ["invalid MessagePack"]),
    ("map16 garbage", b"\xde\xff\xff\x01", ["invalid MessagePack"]),
    ("map32 garbage", b"\xdf\xff\xff\xff\xff", ["invalid MessagePack"]),
    ("non-str key", b"\x81\x01\x02", ["invalid MessagePack"]),
    ("SET without address", msgpack.packb({"type": "SET", "value": 1}), ["SET", "'address'"]),
    ("SET address not a string", msgpack.packb({"type": "SET", "address": 5}), ["'address'", "string"]),
    ("QUERY without pattern", msgpack.packb({"type": "QUERY"}), ["QUERY", "'pattern'"]),
    ("negative revision", msgpack.packb({"type": "SET", "address": "/a", "revision": -1}), ["'revision'"]),
    ("bad ttl", msgpack.packb({"type": "SET", "address": "/a", "ttl": "Sometimes"}), ["ttl"]),
    ("ext value", msgpack.packb({"type": "SET", "address": "/a", "value": msgpack.ExtType(5, b"x")}),
     ["not a CLASP value"]),
    ("bad samples", msgpack.packb({"type": "PUBLISH", "address": "/a", "samples": ["x"]}), ["samples"]),
    ("messages not a list", msgpack.packb({"type": "BUNDLE", "messages": 3}), ["messages"]),
    ("bad bundle entry", msgpack.packb({"type": "BUNDLE", "messages": [{"type": "SET"}]}), ["BUNDLE entry 0"]),
    ("bundle entry not a map", msgpack.packb({"type": "BUNDLE", "messages": [1]}), ["BUNDLE entry 0", "expected a map"]),
    ("UNSUBSCRIBE id", msgpack.packb({"type": "UNSUBSCRIBE", "id": "x"}), ["'id'"]),
    ("SYNC without t1", msgpack.packb({"type": "SYNC"}), ["'t1'"]),
    ("ERROR without code", msgpack.packb({"type": "ERROR", "message": "m"}), ["'code'"]),
    ("ANNOUNCE bad signal", msgpack.packb({"type": "ANNOUNCE", "signals": [{"type": "param"}]}), ["ANNOUNCE", "address"]),
    # out of the wire's range: refused here rather than breaking the re-encode later
    ("PUBLISH id > u32", msgpack.packb({"type": "PUBLISH", "address": "/a", "id": 2**32}), ["'id'"]),
    ("PUBLISH rate > u32", msgpack.packb({"type": "PUBLISH", "address": "/a", "rate": 2**40}), ["'rate'"]),
    ("SUBSCRIBE id > u32", msgpack.packb({"type": "SUBSCRIBE", "id": 2**32, "pattern": "/a"}), ["'id'"]),
    ("UNSUBSCRIBE id > u32", msgpack.packb({"type": "UNSUBSCRIBE", "id": 2**33}), ["'id'"]),
    ("ERROR code > u16", msgpack.packb({"type": "ERROR", "code": 70000}), ["'code'"]),
    ("ACK correlation > u32", msgpack.packb({"type": "ACK", "correlation_id": 2**32}), ["'correlation_id'"]),
    ("HELLO version > u8", msgpack.packb({"type": "HELLO", "version": 256}), ["'version'"]),
    ("value int > i64", msgpack.packb({"type": "SET", "address": "/a", "value": 2**63}), ["i64"]),
    ("nested value int > i64", msgpack.packb({"type": "SET", "address": "/a", "value": [{"k": 2**64 - 1}]}), ["i64"]),
    ("ttl seconds > 31 bits", msgpack.packb({"type": "SET", "address": "/a", "ttl": {"Sliding": 2**31}}), ["ttl"]),
    ("ttl seconds negative", msgpack.packb({"type": "SET", "address": "/a", "ttl": {"Absolute": -1}}), ["ttl"]),
    ("raw ttl > u32", msgpack.packb({"type": "SET", "address": "/a", "ttl": 2**32}), ["ttl"]),
    ("max_rate not an int", msgpack.packb({"type": "SUBSCRIBE", "id": 1, "pattern": "/a",
                                           "options": {"maxRate": "fast"}}), ["max_rate"]),
    ("history > u32", msgpack.packb({"type": "SUBSCRIBE", "id": 1, "pattern": "/a",
                                     "options": {"history": 2**32}}), ["history"]),
    ("datatype not a string", msgpack.packb({"type": "ANNOUNCE", "signals": [{"address": "/a", "datatype": 3}]}),
     ["datatype"]),
    ("value nested 129 levels", b"\x83\xa4type\xa3SET\xa7address\xa2/a\xa5value" + deep_msgpack_list(129),
     ["nested deeper than 128"]),
    ("value nested 900 levels", b"\x83\xa4type\xa3SET\xa7address\xa2/a\xa5value" + deep_msgpack_list(900),
     ["nested deeper than 128"]),
]


@pytest.mark.parametrize("payload,words", [(p, w) for _, p, w in LEGACY_BAD], ids=[i for i, _, _ in LEGACY_BAD])
def test_legacy_garbage_raises_decode_error(payload, words):
    for fn, data in ((decode_payload, payload), (decode_frame, reframe(payload))):
        with pytest.raises(DecodeError) as info:
            fn(data)
        text = str(info.value)
        for w in words:
            assert w in text, f"{w!r} not in {text!r}"


def test_legacy_value_nested_128_levels_decodes():
    payload = b"\x83\xa4type\xa3SET\xa7address\xa2/a\xa5value" + deep_msgpack_list(128)
    m = decode_payload(payload)
    v, depth = m.value, 0
    while v:
        v, depth = v[0], depth + 1
    assert depth == 127 and v == []
    assert decode_payload(encode_frame(m)[4:]) == m
