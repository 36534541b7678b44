"""Router core: SUBSCRIBE / UNSUBSCRIBE (docs/protocol.md "Addresses and patterns",
SUBSCRIBE and UNSUBSCRIBE rows, subscription options).
"""
from __future__ import annotations

import pytest

from clasp_fast.protocol import messages as M

from .test_router_support import Net, msgs, only, take_all

S = M.SignalType


def pair():
    net = Net()
    w = net.connect("writer")
    r = net.connect("reader")
    return net, w, r


def delivered(net, w, r, pattern, addresses, types=0xFF):
    """Subscribes ``r`` to ``pattern`` and returns the addresses of ``addresses`` it
    receives (SET and PUBLISH each)."""
    net.subscribe(r, pattern, types=types)
    got_set, got_pub = [], []
    for a in addresses:
        net.set(w, a, 1)
        got_set += [m.address for m in msgs(r)]
        net.send(w, M.Publish(a, signal=S.EVENT, value=1))
        got_pub += [m.address for m in msgs(r)]
    w.take_output()
    return got_set, got_pub


ADDRS = ["/a", "/a/b", "/a/x/b", "/a/x/y/b", "/a/b/c", "/zone", "/zone1", "/zoneA/x", "/zon",
         "/b", "/x/a/b", "/mixer/1/fader", "/mixer/2/fader", "/mixer/1/gain", "/mixer/1/fader/x"]

CASES = [
    ("/a/b", ["/a/b"]),
    ("/a/*", ["/a/b"]),
    ("/*", ["/a", "/zone", "/zone1", "/zon", "/b"]),
    ("/*/b", ["/a/b"]),
    ("/a/**", ["/a", "/a/b", "/a/x/b", "/a/x/y/b", "/a/b/c"]),
    ("/a/**/b", ["/a/b", "/a/x/b", "/a/x/y/b"]),
    ("/**/b", ["/a/b", "/a/x/b", "/a/x/y/b", "/b", "/x/a/b"]),
    ("/**", ADDRS),
    ("/zone*", ["/zone", "/zone1"]),
    ("/zone*/x", ["/zoneA/x"]),
    ("/a*", ["/a"]),                         # a two-character prefix glob is not '**'
    ("/z*/x", ["/zoneA/x"]),
    ("/mixer/*/fader", ["/mixer/1/fader", "/mixer/2/fader"]),
    ("/mixer/**/fader", ["/mixer/1/fader", "/mixer/2/fader"]),
    ("/a/b/", ["/a/b"]),                     # trailing '/' tolerated
    ("/a/**/", ["/a", "/a/b", "/a/x/b", "/a/x/y/b", "/a/b/c"]),
]


@pytest.mark.parametrize("pattern,expected", CASES, ids=[c[0] for c in CASES])
def test_pattern_routing(pattern, expected):
    net, w, r = pair()
    got_set, got_pub = delivered(net, w, r, pattern, ADDRS)
    assert got_set == expected
    assert got_pub == expected


@pytest.mark.parametrize("pattern,expected", CASES, ids=[c[0] for c in CASES])
def test_subscribe_snapshot_uses_the_same_matcher(pattern, expected):
    net, w, r = pair()
    for a in ADDRS:
        net.set(w, a, 1)
    net.send(r, M.Subscribe(1, pattern))
    got = msgs(r)
    assert len(got) == 1 and type(got[0]) is M.Snapshot
    assert sorted(p.address for p in got[0].params) == sorted(expected)
    assert sorted(p.address for p in net.router.snapshot(pattern)) == sorted(expected)


def test_overlapping_subscriptions_deliver_once():
    net, w, r = pair()
    for i, pat in enumerate(["/**", "/a/**", "/a/*", "/a/b", "/*/b", "/a/b/", "/**/b"], 1):
        net.subscribe(r, pat, id=i)
    net.set(w, "/a/b", 1)
    assert len(msgs(r)) == 1
    net.send(w, M.Publish("/a/b", signal=S.EVENT, value=1))
    assert len(msgs(r)) == 1
    net.send(w, M.Publish("/a/b", signal=S.STREAM, value=1))
    assert len(msgs(r)) == 1


def test_overlapping_subscriptions_with_different_masks_union():
    net, w, r = pair()
    net.subscribe(r, "/a/**", id=1, types=0x02)      # events
    net.subscribe(r, "/a/b", id=2, types=0x04)       # streams
    net.send(w, M.Publish("/a/b", signal=S.EVENT))
    net.send(w, M.Publish("/a/b", signal=S.STREAM))
    net.send(w, M.Publish("/a/b", signal=S.GESTURE))
    net.send(w, M.Publish("/a/c", signal=S.STREAM))
    net.set(w, "/a/b", 1)
    got = msgs(r)
    assert [(m.address, m.signal) for m in got] == [("/a/b", S.EVENT), ("/a/b", S.STREAM)]


def test_set_reaches_only_param_masks():
    net, w, r = pair()
    other = net.connect()
    net.subscribe(r, "/**", types=0x02)
    net.subscribe(other, "/**", types=0x01)
    net.set(w, "/p", 1)
    assert r.take_output() == []
    assert only(other, M.Set).address == "/p"


# --- SUBSCRIBE replies -----------------------------------------------------------


def test_subscribe_no_reply_when_nothing_matches():
    net, w, r = pair()
    net.set(w, "/other", 1)
    net.send(r, M.Subscribe(1, "/mine/**"))
    assert r.take_output() == []


def test_subscribe_snapshot_only_matching_params():
    net, w, r = pair()
    net.set(w, "/mine/a", 1)
    net.set(w, "/mine/b", 2.5)
    net.set(w, "/mine/b", 3.5)
    net.set(w, "/theirs/c", 3)
    net.send(w, M.Publish("/mine/ev", signal=S.EVENT, value=1))   # not state
    net.send(r, M.Subscribe(1, "/mine/**"))
    snap = only(r, M.Snapshot)
    params = {p.address: p for p in snap.params}
    assert set(params) == {"/mine/a", "/mine/b"}
    assert params["/mine/b"].revision == 2 and params["/mine/b"].value == 3.5
    assert params["/mine/a"].writer == w.id


@pytest.mark.parametrize("mask", [0x02, 0x04, 0x08, 0x10, 0x1E])
def test_no_snapshot_for_mask_without_params(mask):
    net, w, r = pair()
    net.set(w, "/mine/a", 1)
    net.send(r, M.Subscribe(1, "/mine/**", types=mask))
    assert r.take_output() == []


@pytest.mark.parametrize("mask", [0x00, 0xFF, 0x01, 0x03])
def test_snapshot_for_mask_with_params(mask):
    net, w, r = pair()
    net.set(w, "/mine/a", 1)
    net.send(r, M.Subscribe(1, "/mine/**", types=mask))
    assert [p.address for p in only(r, M.Snapshot).params] == ["/mine/a"]


def test_subscribe_ack_only_with_qos():
    net, w, r = pair()
    net.send(r, M.Subscribe(1, "/x/**"), qos=0)
    assert r.take_output() == []
    net.send(r, M.Subscribe(2, "/y/**"), qos=1)
    got = msgs(r)
    assert [type(m) for m in got] == [M.Ack]
    net.set(w, "/y/1", 1)
    r.take_output()
    net.send(r, M.Subscribe(3, "/y/**"), qos=1)
    assert [type(m) for m in msgs(r)] == [M.Snapshot, M.Ack]


@pytest.mark.parametrize("pattern", ["nolead", "", "/a//b", "//x", "///"])
def test_bad_pattern_is_202(pattern):
    net, w, r = pair()
    net.send(r, M.Subscribe(1, pattern))
    err = only(r, M.Error)
    assert err.code == 202
    assert err.address == pattern
    assert r.subscriptions == {}
    net.set(w, "/a/b", 1)
    assert r.take_output() == []


def test_subscription_limit_is_429_once():
    net = Net(max_subscriptions_per_session=3)
    w = net.connect()
    r = net.connect()
    for i in range(1, 4):
        net.send(r, M.Subscribe(i, f"/s{i}"))
    assert r.take_output() == []
    net.send(r, M.Subscribe(4, "/s4"))
    err = only(r, M.Error)
    assert err.code == 429
    net.send(r, M.Subscribe(5, "/s5"))              # within the second: no second 429
    assert r.take_output() == []
    assert len(r.subscriptions) == 3
    net.set(w, "/s4", 1)
    assert r.take_output() == []
    # replacing an existing id is not a new subscription
    net.send(r, M.Subscribe(3, "/s4"))
    snap = only(r, M.Snapshot)                        # /s4 was written (just not delivered)
    assert [(p.address, p.value) for p in snap.params] == [("/s4", 1)]
    net.set(w, "/s4", 2)
    assert only(r, M.Set).value == 2
    # after an UNSUBSCRIBE there is room again
    net.send(r, M.Unsubscribe(1))
    net.send(r, M.Subscribe(6, "/s6"))
    assert r.take_output() == []
    assert sorted(r.subscriptions) == [2, 3, 6]


def test_default_subscription_limit_is_1000():
    net = Net()
    r = net.connect()
    for i in range(1, 1001):
        net.send(r, M.Subscribe(i, f"/s/{i}"))
    assert r.take_output() == []
    net.send(r, M.Subscribe(1001, "/s/1001"))
    assert only(r, M.Error).code == 429


def test_unsubscribe_silent_and_immediate():
    net, w, r = pair()
    net.subscribe(r, "/u/**", id=7)
    net.set(w, "/u/1", 1)
    assert len(msgs(r)) == 1
    net.send(r, M.Unsubscribe(7), qos=1)
    assert r.take_output() == []
    net.set(w, "/u/1", 2)
    net.send(w, M.Publish("/u/1", signal=S.EVENT))
    assert r.take_output() == []
    net.send(r, M.Unsubscribe(12345))                 # unknown id: silent too
    assert r.take_output() == []
    assert r.subscriptions == {}


def test_unsubscribe_one_of_overlapping_keeps_the_other():
    net, w, r = pair()
    net.subscribe(r, "/u/**", id=1)
    net.subscribe(r, "/u/x", id=2)
    net.send(r, M.Unsubscribe(1))
    net.set(w, "/u/x", 1)
    net.set(w, "/u/y", 1)
    assert [m.address for m in msgs(r)] == ["/u/x"]


def test_reusing_id_replaces_subscription():
    net, w, r = pair()
    net.subscribe(r, "/old/**", id=1)
    net.set(w, "/new/a", 1)
    net.send(r, M.Subscribe(1, "/new/**"))
    snap = only(r, M.Snapshot)
    assert [p.address for p in snap.params] == ["/new/a"]
    net.set(w, "/old/a", 1)
    net.set(w, "/new/a", 2)
    assert [m.address for m in msgs(r)] == ["/new/a"]
    assert list(r.subscriptions) == [1]
    net.send(r, M.Unsubscribe(1))
    net.set(w, "/new/a", 3)
    assert r.take_output() == []


def test_subscribe_id_is_u32():
    net, w, r = pair()
    net.subscribe(r, "/big", id=0xFFFFFFFF)
    net.set(w, "/big", 1)
    assert len(msgs(r)) == 1
    net.send(r, M.Unsubscribe(0xFFFFFFFF))
    net.set(w, "/big", 2)
    assert r.take_output() == []


# --- maxRate and epsilon -------------------------------------------------------------


def test_max_rate_on_sets_latest_wins():
    net, w, r = pair()
    net.subscribe(r, "/m/**", options=M.SubscribeOptions(max_rate=10))     # 100 ms
    net.set(w, "/m/a", 0)
    assert [m.value for m in msgs(r)] == [0]
    for v in (1, 2, 3):
        net.advance(0.02)
        net.set(w, "/m/a", v)
    assert r.take_output() == []
    net.advance(0.045)                 # t = 105 ms
    got = msgs(r)
    assert [(m.value, m.revision) for m in got] == [(3, 4)]
    # per address: another address is not held back by /m/a
    net.set(w, "/m/b", 9)
    assert [m.value for m in msgs(r)] == [9]


def test_max_rate_limits_deliveries_per_second():
    net, w, r = pair()
    net.subscribe(r, "/m/**", options=M.SubscribeOptions(max_rate=20))     # 50 ms
    count = 0
    for i in range(200):                # 1 s at 200 Hz
        net.set(w, "/m/x", i)
        count += len(msgs(r))
        net.advance(0.005)
    net.advance(0.1)
    last = msgs(r)
    count += len(last)
    assert 19 <= count <= 22, count
    # the final value got through
    assert net.router.get("/m/x").value == 199


def test_max_rate_applies_to_publish():
    net, w, r = pair()
    net.subscribe(r, "/st/**", options=M.SubscribeOptions(max_rate=10))    # 100 ms
    for i in range(5):
        net.send(w, M.Publish("/st/x", signal=S.STREAM, value=float(i)))
        net.advance(0.01)
    first = [m.value for m in msgs(r)]
    assert first == [0.0], first
    net.advance(0.1)
    assert [m.value for m in msgs(r)] == [4.0]


def test_max_rate_is_per_subscription_not_per_session():
    net, w, r = pair()
    net.subscribe(r, "/m/**", id=1, options=M.SubscribeOptions(max_rate=1))
    net.subscribe(r, "/n/**", id=2)
    net.set(w, "/m/a", 1)
    net.set(w, "/m/a", 2)
    net.set(w, "/n/a", 1)
    net.set(w, "/n/a", 2)
    assert [(m.address, m.value) for m in msgs(r)] == [("/m/a", 1), ("/n/a", 1), ("/n/a", 2)]


def test_epsilon_skips_small_numeric_changes():
    net, w, r = pair()
    net.subscribe(r, "/e/**", options=M.SubscribeOptions(epsilon=0.1))
    for v in (0.0, 0.05, 0.09, 0.2, 0.25, 0.31, -0.5):
        net.set(w, "/e/x", v)
    # compared against the last value delivered
    assert [m.value for m in msgs(r)] == [0.0, 0.2, 0.31, -0.5]
    for v in (10, 10, 11):
        net.set(w, "/e/i", v)
    assert [m.value for m in msgs(r)] == [10, 11]
    # non-numeric values always pass
    for v in ("a", "a", "b"):
        net.set(w, "/e/s", v)
    assert [m.value for m in msgs(r)] == ["a", "a", "b"]


def test_epsilon_is_per_address_and_per_subscription():
    net, w, r = pair()
    other = net.connect()
    net.subscribe(r, "/e/**", options=M.SubscribeOptions(epsilon=1.0))
    net.subscribe(other, "/e/**")
    net.set(w, "/e/a", 0.0)
    net.set(w, "/e/b", 0.5)
    net.set(w, "/e/a", 0.5)
    assert [(m.address, m.value) for m in msgs(r)] == [("/e/a", 0.0), ("/e/b", 0.5)]
    assert len(msgs(other)) == 3


def test_replacing_gated_subscription_drops_its_gate():
    net, w, r = pair()
    net.subscribe(r, "/g/**", id=1, options=M.SubscribeOptions(max_rate=1))
    net.set(w, "/g/a", 1)
    net.set(w, "/g/a", 2)                     # held by the gate
    assert [m.value for m in msgs(r)] == [1]
    net.subscribe(r, "/g/**", id=1)           # replaced, no options
    net.advance(2.0)
    net.set(w, "/g/a", 3)
    net.set(w, "/g/a", 4)
    assert [m.value for m in msgs(r)] == [3, 4]


def test_overlapping_gated_subscriptions_deliver_once():
    """At most once per session, also when two gated subscriptions match."""
    net, w, r = pair()
    net.subscribe(r, "/m/**", id=1, options=M.SubscribeOptions(max_rate=1))
    net.subscribe(r, "/m/a", id=2, options=M.SubscribeOptions(epsilon=0.5))
    net.set(w, "/m/a", 0)
    net.set(w, "/m/a", 1)
    net.advance(2.0)
    net.set(w, "/m/a", 2)
    net.advance(2.0)
    revisions = [m.revision for m in msgs(r)]
    assert len(revisions) == len(set(revisions)), f"a SET delivered twice: {revisions}"
    assert revisions[0] == 1 and revisions[-1] == 3


def test_unsubscribe_cancels_held_gate_delivery():
    net, w, r = pair()
    net.subscribe(r, "/m/**", id=1, options=M.SubscribeOptions(max_rate=1))
    net.set(w, "/m/a", 0)
    net.set(w, "/m/a", 1)                     # held
    assert [m.value for m in msgs(r)] == [0]
    net.send(r, M.Unsubscribe(1))
    net.advance(2.0)
    assert r.take_output() == []


def test_closed_session_gets_no_held_gate_delivery():
    net, w, r = pair()
    net.subscribe(r, "/m/**", id=1, options=M.SubscribeOptions(max_rate=1))
    net.set(w, "/m/a", 0)
    net.set(w, "/m/a", 1)
    r.take_output()
    net.router.close_session(r)
    net.advance(2.0)
    assert r.take_output() == []


# --- routing caches follow subscription changes ----------------------------------------


def test_new_subscriber_sees_messages_to_cached_addresses():
    net, w, r = pair()
    early = net.connect()
    net.subscribe(early, "/c/**")
    net.send(w, M.Publish("/c/x", signal=S.EVENT, value=1))   # receivers cached
    net.set(w, "/c/p", 1)
    early.take_output()
    net.subscribe(r, "/c/*")
    net.send(w, M.Publish("/c/x", signal=S.EVENT, value=2))
    net.set(w, "/c/p", 2)
    assert [(type(m), m.value) for m in msgs(r)] == [(M.Publish, 2), (M.Set, 2)]
    assert len(msgs(early)) == 2
    net.send(r, M.Unsubscribe(1))
    net.router.close_session(early)
    net.send(w, M.Publish("/c/x", signal=S.EVENT, value=3))
    net.set(w, "/c/p", 3)
    assert r.take_output() == []
    assert early.take_output() == []


def test_subscribe_snapshot_is_split_below_64k():
    net, w, r = pair()
    for i in range(3000):
        net.set(w, f"/big/p{i:05d}", "v" * 100)
    net.set(w, "/small", 1)
    net.send(r, M.Subscribe(1, "/big/**"))
    raw = take_all(r)
    assert len(raw) >= 2
    seen = []
    from clasp_fast.protocol import decode_frame
    for f in raw:
        assert int.from_bytes(f[2:4], "big") <= 65535
        m = decode_frame(f).message
        assert type(m) is M.Snapshot
        seen += [p.address for p in m.params]
    assert sorted(seen) == [f"/big/p{i:05d}" for i in range(3000)]


def test_snapshots_list_params_in_the_order_they_were_last_written():
    """A client replays the initial state in write order (its callbacks fire that way)."""
    from clasp_fast.protocol import Hello, Set, Snapshot, Subscribe, decode_frame, encode_frame
    from clasp_fast.router import Router, RouterConfig

    r = Router(RouterConfig())
    w = r.open_session()
    r.receive(w, encode_frame(Hello("w")))
    order = [f"/ord/{k}" for k in (7, 3, 9, 1, 5, 3, 8)]     # /ord/3 written twice: last at #6
    for i, address in enumerate(order):
        r.receive(w, encode_frame(Set(address, i)))
    expected = ["/ord/7", "/ord/9", "/ord/1", "/ord/5", "/ord/3", "/ord/8"]
    s = r.open_session()
    r.receive(s, encode_frame(Hello("s")))
    welcome_snapshot = [decode_frame(f).message for f in s.take_output()][1]
    assert [p.address for p in welcome_snapshot.params] == expected
    r.receive(s, encode_frame(Subscribe(1, "/ord/**")))
    (snap,) = [decode_frame(f).message for f in s.take_output()]
    assert isinstance(snap, Snapshot) and [p.address for p in snap.params] == expected
