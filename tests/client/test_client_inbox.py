"""The client's native receive path (``clasp_fast._native.client_inbox``): SET and PUBLISH
parsed in place give the same values, with the same types, as ``decode_frame``; every other
message, and every frame of a recording client, takes the Python path."""
import asyncio
import struct

from clasp_fast import Clasp
from clasp_fast._native.client_inbox import Inbox
from clasp_fast._native.patterns import Subscription as NativeSub, Trie
from clasp_fast.protocol import (Phase, Ping, Publish, Set, SignalType, TypeMask, decode_frame,
                                 encode_frame)

from tests.interop.test_js_client import strict  # int, float and bool kept apart
from tests.support import wait_changed


def frame(payload: bytes) -> bytes:
    return b"\x53\x01" + struct.pack(">H", len(payload)) + payload


def set_frame(address: str, code: int, data: bytes, revision: int = 5) -> bytes:
    a = address.encode()
    return frame(bytes([0x21, 0x80 | code]) + struct.pack(">H", len(a)) + a + data
                 + struct.pack(">Q", revision))


def s16(text: str) -> bytes:
    b = text.encode()
    return struct.pack(">H", len(b)) + b


# every value code, the narrow ones (i8, i16, i32, f32) too, which the router never sends
CODES = [
    (0x00, b"", None),
    (0x01, b"\x00", False),
    (0x01, b"\x01", True),
    (0x02, b"\xfe", -2),
    (0x03, struct.pack(">h", -300), -300),
    (0x04, struct.pack(">i", 0), 0),
    (0x05, struct.pack(">q", -2**40), -2**40),
    (0x06, struct.pack(">f", 0.5), 0.5),
    (0x07, struct.pack(">d", 0.0), 0.0),
    (0x07, struct.pack(">d", -1e300), -1e300),
    (0x08, s16(""), ""),
    (0x08, s16("héllo"), "héllo"),
    (0x09, b"\x00\x02\x00\xff", b"\x00\xff"),
    (0x0A, b"\x00\x03\x05" + struct.pack(">q", 1) + b"\x07" + struct.pack(">d", 1.0) + b"\x01\x00",
     [1, 1.0, False]),
    (0x0B, b"\x00\x02" + s16("a") + b"\x00" + s16("b") + b"\x08" + s16(""), {"a": None, "b": ""}),
]


class Target:
    """What the client's trie holds: a subscription with ``callback`` and ``mask``."""

    def __init__(self, mask=TypeMask.ALL):
        self.mask = mask
        self.items = []
        self.callback = lambda value, address: self.items.append((address, value))


class FakeClient:
    def __init__(self):
        self.errors = []

    def _report(self, exc):
        self.errors.append(exc)

    def _task_done(self, task):
        pass


def make_inbox(*subs):
    trie = Trie()
    client = FakeClient()
    inbox = Inbox(client, trie)
    for i, (pattern, target) in enumerate(subs):
        trie.subscribe(NativeSub(target, i + 1, pattern, target.mask))
    return inbox, client


def test_every_value_code_keeps_its_value_and_type_as_decode_frame_gives_it():
    t = Target()
    inbox, _ = make_inbox(("/v/*", t))
    for i, (code, data, expected) in enumerate(CODES):
        f = set_frame(f"/v/{i}", code, data, revision=i + 1)
        assert inbox.receive(f) is True
        assert strict(decode_frame(f).message.value) == strict(expected)
        assert strict(inbox.values[f"/v/{i}"]) == strict(expected)
        assert inbox.revisions[f"/v/{i}"] == i + 1
    assert [(a, strict(v)) for a, v in t.items] == [
        (f"/v/{i}", strict(expected)) for i, (_, _, expected) in enumerate(CODES)]


def test_publish_signals_reach_the_callbacks_of_their_type_only():
    events, streams, gestures, params = (Target(TypeMask.EVENT), Target(TypeMask.STREAM),
                                         Target(TypeMask.GESTURE), Target(TypeMask.PARAM))
    inbox, _ = make_inbox(("/p/**", events), ("/p/**", streams), ("/p/**", gestures),
                          ("/p/**", params))
    frames = [
        encode_frame(Publish("/p/cue", SignalType.EVENT, {"go": 0}, Phase.START, 10)),
        encode_frame(Publish("/p/empty", SignalType.EVENT)),        # no value: None
        encode_frame(Publish("/p/level", SignalType.STREAM, 0.25, Phase.START, 11)),
        encode_frame(Publish("/p/touch", SignalType.GESTURE, {"x": 1}, Phase.MOVE, 12, 7)),
        encode_frame(Publish("/p/wave", SignalType.STREAM, samples=[0.5, 1.0], rate=100)),
        encode_frame(Set("/p/s", "", revision=3)),
    ]
    for f in frames:
        assert inbox.receive(f) is True
    assert [(a, strict(v)) for a, v in events.items] == [
        ("/p/cue", strict({"go": 0})), ("/p/empty", strict(None))]
    assert [(a, strict(v)) for a, v in streams.items] == [
        ("/p/level", strict(0.25)), ("/p/wave", strict(None))]     # samples: no value, as before
    assert gestures.items == [("/p/touch", {"x": 1})]
    assert [(a, strict(v)) for a, v in params.items] == [("/p/s", strict(""))]
    assert inbox.values == {"/p/s": ""} and inbox.revisions == {"/p/s": 3}


def test_routes_follow_subscribe_and_unsubscribe():
    a, b = Target(), Target()
    inbox, _ = make_inbox(("/r/*", a))
    f = encode_frame(Set("/r/x", 1, revision=1))
    inbox.receive(f)
    sub_b = NativeSub(b, 9, "/r/x", TypeMask.ALL)
    inbox.trie.subscribe(sub_b)             # the cached route of /r/x is stale now
    inbox.receive(f)
    inbox.trie.unsubscribe(sub_b)
    inbox.receive(f)
    assert len(a.items) == 3 and len(b.items) == 1


def test_other_messages_and_bad_frames_go_to_the_python_path():
    t = Target()
    inbox, _ = make_inbox(("/**", t))
    assert inbox.receive(encode_frame(Ping())) is False
    assert inbox.receive(b"garbage") is False
    assert inbox.receive(b"") is False
    bad_utf8 = set_frame("/x", 0x08, b"\x00\x01\xff")
    assert inbox.receive(bad_utf8) is False               # decode_frame names the problem
    assert inbox.receive(set_frame("/x", 0x05, b"\x00")) is False        # truncated
    recording = Inbox(FakeClient(), Trie(), native=False)
    assert recording.receive(encode_frame(Set("/x", 1, revision=1))) is False
    assert t.items == []


def test_a_failing_callback_is_reported_and_the_others_still_run():
    def boom(value, address):
        raise RuntimeError("boom")
    bad, good = Target(), Target()
    bad.callback = boom
    inbox, client = make_inbox(("/e/*", bad), ("/e/*", good))
    assert inbox.receive(encode_frame(Set("/e/x", 1, revision=1)))
    assert good.items == [("/e/x", 1)]
    assert [str(e) for e in client.errors] == ["boom"]


VALUES = [0, 1, -7, 2**40, 0.0, 1.5, -2.25, False, True, "", "text", None, b"\x00\x01",
          [1, 2.0, "x"], {"a": 1, "b": [False, 0.5]}]


async def test_a_real_router_s_sets_and_publishes_take_the_native_path(shared_router):
    a = await Clasp.connect(shared_router.url, name="sender")
    b = await Clasp.connect(shared_router.url, name="receiver")
    try:
        python_path = []                  # the types of the messages that reached _on_frame
        real = b._on_frame

        def spy(data):
            python_path.append(decode_frame(data).message.__class__.__name__)
            real(data)
        b._on_frame = spy
        got, changed = [], asyncio.Event()

        def cb(value, address):
            got.append((address, value))
            changed.set()
        await b.subscribe("/nat/**", cb)
        for i, v in enumerate(VALUES):
            await a.set(f"/nat/{i}", v)
        await a.emit("/nat/cue", 0)
        await a.emit("/nat/none")
        await a.stream("/nat/level", 0.5)
        await a.gesture("/nat/touch", 3, "start", False)
        async def coro_cb(value, address):      # a coroutine callback runs as a task
            got.append(("coro", value))
            changed.set()
        await b.subscribe("/nat/co", coro_cb)
        await a.set("/nat/co", 1.0)
        n = len(VALUES) + 4 + 2
        await wait_changed(lambda: len(got) >= n, changed, 5.0, lambda: f"got {got}")
        expected = ([(f"/nat/{i}", strict(v)) for i, v in enumerate(VALUES)]
                    + [("/nat/cue", strict(0)), ("/nat/none", strict(None)),
                       ("/nat/level", strict(0.5)), ("/nat/touch", strict(False))])
        assert [(x, strict(v)) for x, v in got[:len(expected)]] == expected
        assert sorted((x, strict(v)) for x, v in got[len(expected):]) == [
            ("/nat/co", strict(1.0)), ("coro", strict(1.0))]
        for i, v in enumerate(VALUES):
            assert strict(b.cached(f"/nat/{i}")) == strict(v)
            assert b.revision(f"/nat/{i}") == 1
        assert "Set" not in python_path and "Publish" not in python_path
        assert "Snapshot" in python_path or "Ack" in python_path     # the rest still goes there
    finally:
        await a.close()
        await b.close()
