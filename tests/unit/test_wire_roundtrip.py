"""Property tests: every message type survives encode -> decode -> encode.

For each dataclass in ``clasp_fast.protocol.messages`` (and for CLASP values on
their own), hypothesis generates instances; the codec must give back an equal
message, with int / float / bool and map key order kept (``strict``), and
re-encoding the decoded message must give the same bytes.
"""
from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clasp_fast.protocol import (
    NO_VALUE,
    DecodeError,
    EncodeError,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_payload,
    value_code,
    ws_frame,
    ws_unframe,
)
from clasp_fast.protocol import messages as M

from .wire_support import MESSAGES, U64, any_message, publishes, strict, values

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_roundtrip(msg, qos=0, timestamp=None):
    payload = encode_payload(msg)
    assert len(payload) <= 65535
    assert payload[0] == msg.TYPE
    back = decode_payload(payload)
    assert type(back) is type(msg)
    assert back == msg
    assert strict(back) == strict(msg)
    assert encode_payload(back) == payload

    frame = encode_frame(msg, qos=qos, timestamp=timestamp)
    hs = 12 if timestamp is not None else 4
    assert frame[0] == 0x53
    assert frame[1] == (qos << 6) | (0x20 if timestamp is not None else 0) | 0x01
    assert int.from_bytes(frame[2:4], "big") == len(payload)
    assert frame[hs:] == payload
    f = decode_frame(frame)
    assert f.qos == qos and f.timestamp == timestamp and f.flags == frame[1] and f.legacy is False
    assert strict(f.message) == strict(msg)
    assert encode_frame(f.message, qos=f.qos, timestamp=f.timestamp) == frame


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_every_message_type_roundtrips(kind):
    @SETTINGS
    @given(msg=MESSAGES[kind], qos=st.integers(0, 2), timestamp=st.none() | U64)
    def run(msg, qos, timestamp):
        assert type(msg).__name__ == kind
        check_roundtrip(msg, qos, timestamp)

    run()


def test_the_strategies_cover_every_message_dataclass():
    declared = {name for name, obj in vars(M).items()
                if isinstance(obj, type) and hasattr(obj, "TYPE") and obj.__module__ == M.__name__}
    assert declared == set(MESSAGES)
    assert {c.value for c in M.MessageType} == {getattr(M, k).TYPE for k in MESSAGES}


@SETTINGS
@given(value=values)
def test_values_roundtrip_in_set_publish_snapshot_and_announce(value):
    for msg in (
        M.Set("/v", value),
        M.Publish("/v", value=value),
        M.Snapshot([M.ParamValue("/v", value, 1)]),
        M.Announce("/ns", [M.SignalDef("/ns/v", meta=M.SignalMeta(default=value))]),
        M.Bundle([M.Set("/v", value), M.Publish("/w", value=value)]),
    ):
        check_roundtrip(msg)


@SETTINGS
@given(value=values)
def test_value_codes(value):
    """SET carries the value code in its flags' low nibble: it is ``value_code``."""
    payload = encode_payload(M.Set("/v", value))
    assert payload[1] & 0x0F == value_code(value)
    expect = {type(None): 0, bool: 1, int: 5, float: 7, str: 8, bytes: 9, list: 10, dict: 11}
    assert value_code(value) == expect[type(value)]


@pytest.mark.parametrize("value", [
    float("nan"), -float("nan"), [1.0, float("nan")], {"x": float("nan")},
    struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0],
])
def test_nan_roundtrips_bit_for_bit(value):
    """NaN != NaN, so == cannot check it; the bytes and the strict form can."""
    frame = encode_frame(M.Set("/nan", value))
    back = decode_frame(frame).message.value
    assert strict(back) == strict(value)
    assert encode_frame(M.Set("/nan", back)) == frame
    pub = decode_frame(encode_frame(M.Publish("/nan", samples=[float("nan"), 1.0]))).message
    assert math.isnan(pub.samples[0]) and pub.samples[1] == 1.0


@pytest.mark.parametrize("value", [0.0, -0.0, float("inf"), -float("inf"), 5e-324, 1.7976931348623157e308])
def test_float_edge_values(value):
    back = decode_frame(encode_frame(M.Set("/f", value))).message.value
    assert type(back) is float and back.hex() == value.hex()


@pytest.mark.parametrize("value", [0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1, True, False])
def test_int_edge_values(value):
    back = decode_frame(encode_frame(M.Set("/i", value))).message.value
    assert type(back) is type(value) and back == value


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64])
def test_int_outside_i64_is_an_encode_error(value):
    with pytest.raises(EncodeError, match="i64"):
        encode_frame(M.Set("/i", value))


@pytest.mark.parametrize("value", [object(), {1: "x"}, {"a": {2: 3}}, [set()], 1j])
def test_unencodable_values_raise_encode_error(value):
    with pytest.raises(EncodeError):
        encode_frame(M.Set("/x", value))


def test_tuple_bytearray_memoryview_values_encode_as_array_and_bytes():
    assert decode_frame(encode_frame(M.Set("/t", (1, 2.0)))).message.value == [1, 2.0]
    assert decode_frame(encode_frame(M.Set("/b", bytearray(b"ab")))).message.value == b"ab"
    assert decode_frame(encode_frame(M.Set("/b", memoryview(b"ab")))).message.value == b"ab"


@SETTINGS
@given(msg=publishes())
def test_publish_value_indicator(msg):
    payload = encode_payload(msg)
    addr_len = len(msg.address.encode())
    indicator = payload[4 + addr_len]
    if msg.samples is not None:
        assert indicator == 2
    elif msg.value is NO_VALUE:
        assert indicator == 0
    else:
        assert indicator == 1
    flags = payload[1]
    assert flags >> 5 == msg.signal and flags & 0x07 == msg.phase
    assert bool(flags & 0x10) == (msg.timestamp is not None)
    assert bool(flags & 0x08) == (msg.id is not None)
    if msg.rate is not None:
        assert payload[-4:] == msg.rate.to_bytes(4, "big")


def test_publish_samples_win_over_value_and_rate_is_read_only_at_the_end():
    p = M.Publish("/a", signal=M.SignalType.STREAM, value=3, samples=[1.0, 2.0], rate=100)
    back = decode_payload(encode_payload(p))
    assert back.samples == [1.0, 2.0] and back.value is NO_VALUE and back.rate == 100
    # rate has no flag bit: 4+ trailing bytes are the rate, fewer are ignored
    base = encode_payload(M.Publish("/a"))
    assert decode_payload(base + b"\x00\x00\x00\x07").rate == 7
    assert decode_payload(base + b"\x00\x00\x07").rate is None
    assert decode_payload(base + b"\x00\x00\x00\x07\xff").rate == 7


def test_empty_options_and_empty_token_normalise():
    """Two documented non-identities: option flags 0x00 read back as no options,
    and an empty token (always on the wire) as no token."""
    assert decode_payload(encode_payload(M.Subscribe(1, "/a", options=M.SubscribeOptions()))).options is None
    assert decode_payload(encode_payload(M.Hello("n", token=""))).token is None
    assert decode_payload(encode_payload(M.Welcome("s", "n", 1, token=""))).token is None


def test_ttl_raw_forms():
    for ttl, raw in [(M.Ttl(M.TtlMode.NEVER), 0), (M.Ttl(M.TtlMode.SLIDING, 30), 30),
                     (M.Ttl(M.TtlMode.ABSOLUTE, 3600), 0x80000E10),
                     (M.Ttl(M.TtlMode.ABSOLUTE, 0), 0x80000000),
                     (M.Ttl(M.TtlMode.SLIDING, 0x7FFFFFFF), 0x7FFFFFFF)]:
        payload = encode_payload(M.Set("/t", 1, ttl=ttl))
        assert payload[1] & 0x10
        assert payload[-4:] == raw.to_bytes(4, "big")
        assert decode_payload(payload).ttl == ttl == M.Ttl.from_raw(raw)


def nested_list(levels: int):
    v: list = []
    for _ in range(levels - 1):
        v = [v]
    return v


def nested_bundle(levels: int, inner=()):
    b = M.Bundle(list(inner))
    for _ in range(levels - 1):
        b = M.Bundle([b])
    return b


@pytest.mark.parametrize("levels", [1, 2, 127, 128])
def test_values_nested_up_to_128_levels_roundtrip(levels):
    for value in (nested_list(levels), {"k": nested_list(levels - 1)} if levels > 1 else {}):
        check_roundtrip(M.Set("/deep", value))


@pytest.mark.parametrize("levels", [129, 130, 200])
def test_values_nested_deeper_than_128_levels_do_not_encode(levels):
    """The encoder refuses exactly what the decoder refuses (not a frame its own
    decoder would reject)."""
    with pytest.raises(EncodeError, match="128"):
        encode_frame(M.Set("/deep", nested_list(levels)))
    with pytest.raises(EncodeError, match="128"):
        encode_frame(M.Publish("/deep", value={"k": nested_list(levels - 1)}))


@pytest.mark.parametrize("levels", [1, 2, 8])
def test_bundles_nested_up_to_8_levels_roundtrip(levels):
    check_roundtrip(nested_bundle(levels, [M.Set("/a", 1)]))
    check_roundtrip(nested_bundle(levels))


@pytest.mark.parametrize("levels", [9, 10])
def test_bundles_nested_deeper_than_8_levels_do_not_encode(levels):
    with pytest.raises(EncodeError, match="8 levels"):
        encode_frame(nested_bundle(levels, [M.Ping()]))
    with pytest.raises(EncodeError, match="8 levels"):
        encode_frame(nested_bundle(levels))


def test_payload_limit():
    """65535 payload bytes fit in a frame, 65536 do not."""
    head = len(encode_payload(M.Set("/b", b"")))
    fits = M.Set("/b", b"x" * (65535 - head))
    frame = encode_frame(fits)
    assert len(frame) == 4 + 65535
    assert decode_frame(frame).message == fits
    with pytest.raises(EncodeError, match="65535"):
        encode_frame(M.Set("/b", b"x" * (65536 - head)))
    with pytest.raises(EncodeError):
        encode_frame(M.Set("/b", "x" * 70000))  # a string holds at most 65535 bytes


@pytest.mark.parametrize("msg", [
    M.Set("/a", 1, revision=-1),
    M.Set("/a", 1, revision=2**64),
    M.Subscribe(id=2**32, pattern="/a"),
    M.Unsubscribe(id=-1),
    M.Publish("/a", id=2**32),
    M.Publish("/a", rate=2**32),
    M.Error(code=65536, message="x"),
    M.Hello("x", version=256),
    M.Sync(t1=2**64),
])
def test_out_of_range_integer_fields_raise_encode_error(msg):
    with pytest.raises(EncodeError):
        encode_frame(msg)


def test_encode_rejects_non_messages():
    for bad in (None, 1, "SET", {"type": "SET"}, M.Frame(M.Ping())):
        with pytest.raises(EncodeError):
            encode_frame(bad)


# ---------------------------------------------------------------------------
# legacy (MessagePack) encoding
# ---------------------------------------------------------------------------


def test_legacy_frames_roundtrip():
    from .wire_support import legacy_messages

    @SETTINGS
    @given(msg=legacy_messages | st.builds(M.Bundle, messages=st.lists(legacy_messages, max_size=3),
                                            timestamp=st.none() | U64))
    def run(msg):
        frame = encode_frame(msg, legacy=True)
        assert frame[1] == 0x01  # version bits still 1, like the Python client
        assert 0x80 <= frame[4] <= 0x8F  # a fixmap
        f = decode_frame(frame)
        assert f.legacy is True
        assert strict(f.message) == strict(msg)

    run()


# ---------------------------------------------------------------------------
# WebSocket framing helpers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_ws_frame_header_sizes(size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    out = ws_frame(data)
    assert out[0] == 0x82
    if size < 126:
        assert out[1] == size and out[2:] == data
    elif size < 65536:
        assert out[1] == 126 and int.from_bytes(out[2:4], "big") == size and out[4:] == data
    else:
        assert out[1] == 127 and int.from_bytes(out[2:10], "big") == size and out[10:] == data
    assert ws_unframe(out) == [data]


@SETTINGS
@given(chunks=st.lists(st.binary(max_size=300), max_size=5))
def test_ws_unframe_inverts_ws_frame(chunks):
    assert ws_unframe(b"".join(ws_frame(c) for c in chunks)) == chunks


@SETTINGS
@given(msg=any_message)
def test_ws_frame_carries_clasp_frames(msg):
    frame = encode_frame(msg)
    [inner] = ws_unframe(ws_frame(frame))
    assert strict(decode_frame(inner).message) == strict(msg)


@pytest.mark.parametrize("data", [
    b"\x82", b"\x82\x05abc", b"\x82\x7e", b"\x82\x7e\x00", b"\x82\x7e\x01\x00",
    b"\x82\x7f", b"\x82\x7f\x00\x00\x00", b"\x82\x7f" + b"\xff" * 8 + b"x" * 20,
    b"\x82\x7f" + (2**64 - 10).to_bytes(8, "big") + b"x" * 20,
    b"\x82\x7f" + (2**63).to_bytes(8, "big"),
])
def test_ws_unframe_rejects_truncated_and_absurd_lengths(data):
    with pytest.raises(DecodeError, match="truncated"):
        ws_unframe(data)


# ---------------------------------------------------------------------------
# frame header flags
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("flags", range(256))
def test_header_flags_on_decode(flags):
    """QoS is bits 7-6 (reserved 3 reads as 0, like Rust); bit 5 announces the
    8-byte timestamp; the version, encrypted and compressed bits do not change how
    the payload is read (the first payload byte decides); ``flags`` keeps the byte."""
    ts = 1_700_000_000_000_000
    for payload, want in ((encode_payload(M.Set("/a", 1.5, revision=2)), M.Set("/a", 1.5, revision=2)),
                          (encode_frame(M.Query("/q"), legacy=True)[4:], M.Query("/q"))):
        head = bytes([0x53, flags]) + len(payload).to_bytes(2, "big")
        frame = head + (ts.to_bytes(8, "big") if flags & 0x20 else b"") + payload
        f = decode_frame(frame)
        assert f.flags == flags
        assert f.qos == (flags >> 6 if flags >> 6 != 3 else 0)
        assert f.timestamp == (ts if flags & 0x20 else None)
        assert f.legacy is (payload[0] >= 0x80)
        assert strict(f.message) == strict(want)


@SETTINGS
@given(msg=MESSAGES["Set"], qos=st.integers(0, 2))
def test_encode_set_frame_is_encode_frame_of_a_set(msg, qos):
    """The client's object-free SET encoder writes the same bytes as encode_frame(Set(...))
    (lock/unlock are not part of it: the client sends those through encode_frame)."""
    from clasp_fast.protocol import encode_set_frame
    msg = M.Set(msg.address, msg.value, msg.revision, False, False, msg.ttl)
    raw = msg.ttl.raw if msg.ttl is not None else None
    assert encode_set_frame(msg.address, msg.value, msg.revision, qos, raw) == encode_frame(msg, qos)


def test_ws_payload_start_is_the_header_length_ws_frame_wrote():
    from clasp_fast.protocol import DecodeError, ws_frame, ws_payload_start
    for size, header in ((10, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)):
        frame = ws_frame(b"x" * size)
        assert ws_payload_start(frame) == header and len(frame) == header + size
    with pytest.raises(DecodeError):
        ws_payload_start(b"\x82")
