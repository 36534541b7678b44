"""Replay (docs/protocol.md): a SUBSCRIBE with the ``since`` option (router wall time, µs)
gets a SNAPSHOT of only the params written after it, or all of them when the router cannot
tell what changed (it started after ``since``, or a param it held expired since)."""
from __future__ import annotations

from clasp_fast.protocol import Snapshot, SubscribeOptions, Ttl, TtlMode, decode_frame, encode_frame
from clasp_fast.protocol import Subscribe

from tests.unit.test_router_support import Net, frames_of


def snapshot_addresses(s) -> list[str]:
    return [p.address for f in frames_of(s) if isinstance(f.message, Snapshot) for p in f.message.params]


def subscribe_since(net, s, pattern: str, since):
    net.subscribe(s, pattern, options=SubscribeOptions(since=since), drain=False)
    return snapshot_addresses(s)


def test_the_since_option_round_trips_on_the_wire():
    msg = Subscribe(7, "/a/**", options=SubscribeOptions(since=1_800_000_000_123_456))
    assert decode_frame(encode_frame(msg)).message == msg


def test_only_params_written_after_since_come_back():
    net = Net()
    w = net.connect("writer")
    net.advance(1)
    net.set(w, "/r/old", 1)
    net.advance(1)
    seen = net.wall_us()
    net.advance(1)
    net.set(w, "/r/new", 2)
    net.set(w, "/r/old2", 3)
    net.set(w, "/other/x", 4)
    reader = net.connect("reader")
    assert sorted(subscribe_since(net, reader, "/r/*", seen)) == ["/r/new", "/r/old2"]


def written(*addresses) -> Net:
    """A router where one client wrote ``addresses``, a second apart, a second ago."""
    net = Net()
    w = net.connect()
    for address in addresses:
        net.advance(1)
        net.set(w, address, 1)
    net.advance(1)
    return net


def test_nothing_changed_means_no_snapshot():
    net = written("/r/a")
    reader = net.connect("reader")
    assert subscribe_since(net, reader, "/r/**", net.wall_us()) == []


def test_without_the_option_the_snapshot_is_whole():
    net = written("/r/a", "/r/b")
    reader = net.connect("reader")
    net.subscribe(reader, "/r/**", drain=False)
    assert sorted(snapshot_addresses(reader)) == ["/r/a", "/r/b"]


def test_a_since_before_the_router_started_gets_everything():
    net = Net()
    w = net.connect()
    before_start = net.wall_us() - 10_000_000
    net.advance(1)
    net.set(w, "/r/a", 1)
    reader = net.connect("reader")
    assert subscribe_since(net, reader, "/r/**", before_start) == ["/r/a"]


def ttl_case(net, wait: float):
    """/r/keep and a /s/brief that lives 1 s are written; returns the wall time (µs) 0.5 s
    later, after which ``wait`` s pass: a client that saw everything up to then replays."""
    w = net.connect()
    net.advance(1)
    net.set(w, "/r/keep", 1)
    net.set(w, "/s/brief", 1, ttl=Ttl(TtlMode.SLIDING, 1))
    net.advance(0.5)
    seen = net.wall_us()
    net.advance(wait)
    return seen


def test_a_param_that_expired_after_since_makes_the_snapshot_whole():
    net = Net(expiry_sweep_interval=3600.0)
    seen = ttl_case(net, 5)           # /s/brief expired after `seen` (not swept yet)
    reader = net.connect("reader")
    assert subscribe_since(net, reader, "/**", seen) == ["/r/keep"]        # all that is left


def test_a_sweep_that_removed_params_moves_the_horizon():
    net = Net(expiry_sweep_interval=1.0)
    seen = ttl_case(net, 3)           # the sweep removed /s/brief
    reader = net.connect("reader")
    assert subscribe_since(net, reader, "/r/**", seen) == ["/r/keep"]
