"""Router core: SET (docs/protocol.md "Behaviour by message"; "Frames out"; "Limits").

Revisions, broadcast incl. the writer, ACK only for QoS >= 1 and after the echo,
stale revision 409, locks 423, int/float kept and narrow codes widened, TTL,
invalid addresses 202.
"""
from __future__ import annotations

import struct

import pytest

from clasp_fast.protocol import decode_frame
from clasp_fast.protocol import messages as M

from .test_router_support import (Net, frame, msgs, narrow_set, only, set_payload)


def setup_pair(**cfg):
    net = Net(**cfg)
    w = net.connect("writer")
    r = net.connect("reader")
    net.subscribe(w, "/**")
    net.subscribe(r, "/**")
    return net, w, r


def set_value_code(raw_frame: bytes) -> int:
    """The value type code of an outgoing SET frame (flags low nibble)."""
    hs = 12 if raw_frame[1] & 0x20 else 4
    assert raw_frame[hs] == 0x21
    return raw_frame[hs + 1] & 0x0F


# --- revisions and broadcast ------------------------------------------------------


def test_revisions_start_at_1_and_increment_per_address():
    net, w, r = setup_pair()
    seq = [("/a", 1), ("/a", 2), ("/b", "x"), ("/a", 3), ("/b", "y"), ("/c", None)]
    for addr, val in seq:
        net.set(w, addr, val)
    got = msgs(r)
    assert [(m.address, m.value, m.revision) for m in got] == [
        ("/a", 1, 1), ("/a", 2, 2), ("/b", "x", 1), ("/a", 3, 3), ("/b", "y", 2), ("/c", None, 1)]
    assert net.router.param_state("/a") == (3, None)
    assert net.router.param_state("/b") == (2, None)
    assert net.router.param_state("/c") == (1, None)
    assert net.router.param_state("/nope") == (0, None)
    assert net.router.get("/c").value is None     # null is a value, not a delete


def test_broadcast_reaches_every_matching_session_including_writer():
    net = Net()
    w = net.connect()
    r1 = net.connect()
    r2 = net.connect()
    outsider = net.connect()
    net.subscribe(w, "/mix/**")
    net.subscribe(r1, "/mix/*/gain")
    net.subscribe(r2, "/mix/ch1/gain")
    net.subscribe(outsider, "/other/**")
    net.set(w, "/mix/ch1/gain", 0.75)
    for s in (w, r1, r2):
        m = only(s, M.Set)
        assert (m.address, m.value, m.revision) == ("/mix/ch1/gain", 0.75, 1)
    assert outsider.take_output() == []


def test_writer_not_subscribed_gets_nothing_at_qos0():
    net = Net()
    w = net.connect()
    r = net.connect()
    net.subscribe(r, "/**")
    net.set(w, "/x", 1)
    assert w.take_output() == []
    assert only(r, M.Set).revision == 1


def test_broadcast_frame_layout_is_binary_v3_with_revision():
    net, w, r = setup_pair()
    net.set(w, "/lumen/opacity", 0.75)
    raw = r.take_output()
    assert len(raw) == 1
    f = raw[0]
    assert f[0] == 0x53 and f[1] & 0x07 == 1 and not f[1] & 0x20
    assert f[4] == 0x21
    assert f[5] & 0x80                       # has revision
    assert set_value_code(f) == 0x07
    assert f[-8:] == struct.pack(">Q", 1)


def test_ack_only_with_qos_at_least_1_and_after_echo():
    net, w, r = setup_pair()
    net.set(w, "/q", 1, qos=0)
    assert [type(m) for m in msgs(w)] == [M.Set]
    net.set(w, "/q", 2, qos=1)
    got = msgs(w)
    assert [type(m) for m in got] == [M.Set, M.Ack]
    assert got[0].revision == 2
    assert (got[1].address, got[1].revision) == ("/q", 2)
    net.set(w, "/q", 3, qos=2)
    got = msgs(w)
    assert [type(m) for m in got] == [M.Set, M.Ack]
    assert (got[1].address, got[1].revision) == ("/q", 3)
    # readers never get ACKs
    assert [type(m) for m in msgs(r)] == [M.Set, M.Set, M.Set]


def test_ack_to_unsubscribed_writer():
    net = Net()
    w = net.connect()
    net.set(w, "/q", 1, qos=1)
    ack = only(w, M.Ack)
    assert (ack.address, ack.revision) == ("/q", 1)


def test_expected_revision_matching_is_accepted():
    net, w, r = setup_pair()
    net.set(w, "/rev", "a")
    net.set(w, "/rev", "b", revision=1, qos=1)
    got = msgs(w)
    assert [type(m) for m in got] == [M.Set, M.Set, M.Ack]
    assert got[1].value == "b" and got[1].revision == 2
    assert got[2].revision == 2


def test_stale_expected_revision_is_409_with_address_value_unchanged():
    net, w, r = setup_pair()
    net.set(w, "/rev", 10)
    net.set(w, "/rev", 11)
    w.take_output()
    r.take_output()
    net.set(w, "/rev", 99, revision=1, qos=1)
    err = only(w, M.Error)
    assert err.code == 409
    assert err.address == "/rev"
    assert r.take_output() == []
    assert net.router.get("/rev").value == 11
    assert net.router.param_state("/rev") == (2, None)


def test_expected_revision_on_missing_param_is_ignored_on_creation():
    # docs/protocol.md, "stale expected revision" row: the check applies only to existing
    # params (revision=5 on a missing address -> revision 1).
    net, w, r = setup_pair()
    net.set(w, "/fresh", 1, revision=5, qos=1)
    got = msgs(w)
    assert [type(m) for m in got] == [M.Set, M.Ack], got
    assert got[0].revision == 1
    assert net.router.param_state("/fresh") == (1, None)


# --- locks ------------------------------------------------------------------------


def test_lock_holder_writes_others_get_423():
    net, a, r = setup_pair()
    b = net.connect("b")
    net.set(a, "/door", "closed", lock=True, qos=1)
    got = msgs(a)
    assert [type(m) for m in got] == [M.Set, M.Ack]
    assert got[0].lock is True                   # lock flag kept on the broadcast
    assert net.router.param_state("/door") == (1, a.id)
    r.take_output()
    # another session: rejected, value unchanged
    net.set(b, "/door", "open", qos=1)
    err = only(b, M.Error)
    assert err.code == 423 and err.address == "/door"
    assert r.take_output() == []
    assert net.router.get("/door").value == "closed"
    # the holder keeps writing
    net.set(a, "/door", "ajar")
    assert only(r, M.Set).value == "ajar"
    assert net.router.param_state("/door") == (2, a.id)


def test_non_holder_unlock_is_423_and_changes_nothing():
    net, a, r = setup_pair()
    b = net.connect("b")
    net.set(a, "/door", "closed", lock=True)
    r.take_output()
    net.set(b, "/door", "hijack", unlock=True)
    err = only(b, M.Error)
    assert err.code == 423 and err.address == "/door"
    assert net.router.get("/door").value == "closed"
    assert net.router.param_state("/door") == (1, a.id)
    assert r.take_output() == []


def test_holder_unlock_releases_and_writes():
    net, a, r = setup_pair()
    b = net.connect("b")
    net.set(a, "/door", "closed", lock=True)
    net.set(a, "/door", "released", unlock=True)
    assert net.router.param_state("/door") == (2, None)
    assert net.router.get("/door").value == "released"
    net.set(b, "/door", "mine", qos=1)
    assert [type(m) for m in msgs(b)] == [M.Ack]
    assert net.router.get("/door").value == "mine"


def test_locked_write_with_stale_revision_gets_an_error_and_changes_nothing():
    net, a, r = setup_pair()
    b = net.connect("b")
    net.set(a, "/door", 1, lock=True)
    net.set(b, "/door", 2, revision=7)
    err = only(b, M.Error)
    assert err.code in (409, 423) and err.address == "/door"
    assert net.router.param_state("/door") == (1, a.id)


def test_close_session_releases_its_locks():
    net, a, r = setup_pair()
    b = net.connect("b")
    net.set(a, "/l1", 1, lock=True)
    net.set(a, "/l2", 2, lock=True)
    net.router.close_session(a)
    assert net.router.param_state("/l1") == (1, None)
    assert net.router.param_state("/l2") == (1, None)
    assert net.router.get("/l1").value == 1          # state stays
    net.set(b, "/l1", 10, qos=1)
    assert [type(m) for m in msgs(b)] == [M.Ack]
    assert net.router.get("/l1").value == 10


def test_lock_taken_by_another_after_release():
    net, a, r = setup_pair()
    b = net.connect("b")
    net.set(a, "/l", 1, lock=True)
    net.set(a, "/l", 2, unlock=True)
    net.set(b, "/l", 3, lock=True)
    assert net.router.param_state("/l") == (3, b.id)
    a.take_output()
    net.set(a, "/l", 4)
    assert only(a, M.Error).code == 423


# --- value types ------------------------------------------------------------------


@pytest.mark.parametrize("value,code", [(0, 0x05), (-1, 0x05), (2 ** 40, 0x05), (7, 0x05),
                                        (1.0, 0x07), (0.5, 0x07), (-0.0, 0x07),
                                        (True, 0x01), ("s", 0x08), (None, 0x00)])
def test_int_stays_int_and_float_stays_float(value, code):
    net, w, r = setup_pair()
    net.set(w, "/v", value)
    raw = r.take_output()
    assert len(raw) == 1
    assert set_value_code(raw[0]) == code
    got = decode_frame(raw[0]).message.value
    assert got == value and type(got) is type(value)
    snap = net.router.get("/v")
    assert type(snap.value) is type(value)


@pytest.mark.parametrize("kind,value,out_code,expected", [
    ("i8", -5, 0x05, -5),
    ("i8", 127, 0x05, 127),
    ("i16", -300, 0x05, -300),
    ("i32", 70000, 0x05, 70000),
    ("i32", -(2 ** 31), 0x05, -(2 ** 31)),
    ("f32", 0.5, 0x07, 0.5),
    ("f32", -1.25, 0x07, -1.25),
])
def test_narrow_codes_widen_on_output(kind, value, out_code, expected):
    net, w, r = setup_pair()
    net.raw(w, frame(narrow_set("/n", kind, value), qos=1))
    raw_r = r.take_output()
    assert len(raw_r) == 1
    assert set_value_code(raw_r[0]) == out_code
    m = decode_frame(raw_r[0]).message
    assert m.value == expected and type(m.value) is type(expected)
    assert m.revision == 1
    wm = [decode_frame(f).message for f in w.take_output()]
    assert [type(x) for x in wm] == [M.Set, M.Ack]
    stored = net.router.get("/n").value
    assert stored == expected and type(stored) is type(expected)
    # a late joiner's snapshot carries the widened code too
    late = net.open()
    net.send(late, M.Hello(name="late"))
    snap_raw = late.take_output()[1]
    assert decode_frame(snap_raw).message.params[0].value == expected
    # SNAPSHOT entry: count u16, str address, type byte
    entry_type = snap_raw[4 + 3 + 2 + len("/n")]
    assert entry_type == out_code


def test_narrow_set_keeps_revision_lock_and_ttl_handling():
    net, w, r = setup_pair()
    net.set(w, "/n", 1)
    r.take_output()
    w.take_output()
    net.raw(w, frame(narrow_set("/n", "i16", 9, revision=1, lock=True), qos=1))
    m = only(r, M.Set)
    assert (m.value, m.revision, m.lock) == (9, 2, True)
    assert net.router.param_state("/n") == (2, w.id)
    w.take_output()
    net.raw(w, frame(narrow_set("/n", "i8", 3, revision=1)))
    assert only(w, M.Error).code == 409


# --- invalid addresses ---------------------------------------------------------------


@pytest.mark.parametrize("address", ["nolead", "", "/a//b", "//", "/a//", "/a/*", "/a/**", "/x*",
                                     "/a/*/c"])
def test_invalid_set_address_is_202_with_address(address):
    net, w, r = setup_pair()
    net.set(w, address, 1, qos=1)
    err = only(w, M.Error)
    assert err.code == 202
    assert err.address == address
    assert r.take_output() == []
    assert net.router.param_count == 0


def test_trailing_slash_is_tolerated():
    net, w, r = setup_pair()
    net.set(w, "/t/", 1, qos=1)
    got = msgs(w)
    assert [type(m) for m in got] == [M.Set, M.Ack]


# --- TTL ----------------------------------------------------------------------------


def test_param_ttl_expiry_modes():
    """param_ttl 0.3 s default; SET TTL: sliding / absolute / never (whole seconds)."""
    net = Net(param_ttl=0.3, expiry_sweep_interval=0.1)
    w = net.connect()
    sliding = 1              # 1 s after the last write
    absolute = 0x80000000 | 1  # 1 s after the write that carried it
    net.raw(w, frame(set_payload("/ttl/sliding", 0x05, struct.pack(">q", 1), ttl_raw=sliding)))
    net.raw(w, frame(set_payload("/ttl/absolute", 0x05, struct.pack(">q", 1), ttl_raw=absolute)))
    net.raw(w, frame(set_payload("/ttl/never", 0x05, struct.pack(">q", 1), ttl_raw=0)))
    net.raw(w, frame(set_payload("/ttl/once", 0x05, struct.pack(">q", 1), ttl_raw=sliding)))
    net.set(w, "/ttl/default", 1)
    net.set(w, "/ttl/default-rewritten", 1)
    assert w.take_output() == []
    net.advance(0.2)
    net.set(w, "/ttl/default-rewritten", 2)        # slides the default TTL
    net.advance(0.2)
    # t = 0.4: default (0.3 s) expired; the rewritten one not yet
    assert net.router.get("/ttl/default") is None
    assert net.router.param_state("/ttl/default") == (0, None)
    assert net.router.get("/ttl/default-rewritten").value == 2
    net.set(w, "/ttl/sliding", 2)                  # a write without TTL keeps the sliding TTL
    net.set(w, "/ttl/absolute", 2)                 # ...and the absolute deadline
    net.advance(0.8)
    # t = 1.2
    assert net.router.get("/ttl/default-rewritten") is None
    assert net.router.get("/ttl/once") is None
    assert net.router.get("/ttl/absolute") is None
    assert net.router.get("/ttl/sliding").value == 2
    assert net.router.get("/ttl/never").value == 1
    # GET of an expired param: 404
    net.send(w, M.Get("/ttl/once"))
    err = only(w, M.Error)
    assert err.code == 404 and err.address == "/ttl/once"
    net.advance(0.35)
    # t = 1.55: the sliding TTL (last write at 0.4) has passed
    assert net.router.get("/ttl/sliding") is None
    assert net.router.get("/ttl/never").value == 1
    # sweeps remove expired params silently; a re-created param restarts at revision 1
    watcher = net.connect()
    net.subscribe(watcher, "/**")
    net.advance(1.0)
    assert net.router.param_count == 1
    assert watcher.take_output() == []
    net.set(w, "/ttl/sliding", 3)
    assert net.router.param_state("/ttl/sliding") == (1, None)


def test_expired_param_not_in_snapshots():
    net = Net(param_ttl=0.15)
    w = net.connect()
    net.set(w, "/gone", 1)
    net.raw(w, frame(set_payload("/kept", 0x05, struct.pack(">q", 1), ttl_raw=0)))
    net.advance(0.25)
    late = net.open()
    net.send(late, M.Hello(name="late"))
    got = msgs(late)
    assert [type(m) for m in got] == [M.Welcome, M.Snapshot]
    assert [p.address for p in got[1].params] == ["/kept"]
    assert [p.address for p in net.router.snapshot("/**")] == ["/kept"]


def test_param_ttl_zero_means_never():
    net = Net(param_ttl=0)
    w = net.connect()
    net.set(w, "/forever", 1)
    net.advance(10_000)
    assert net.router.get("/forever").value == 1


def test_set_metadata_writer_and_timestamp():
    net = Net()
    w = net.connect()
    before = net.wall_us()
    net.set(w, "/m", 1)
    after = net.wall_us()
    p = net.router.get("/m")
    assert p.writer == w.id
    assert before - 1000 <= p.timestamp <= after + 1000
    assert p.revision == 1


def test_close_session_does_not_release_a_lock_now_held_by_another():
    net, a, r = setup_pair()
    b = net.connect("b")
    net.set(a, "/l", 1, lock=True)
    net.set(a, "/l", 2, unlock=True)
    net.set(b, "/l", 3, lock=True)
    net.router.close_session(a)
    assert net.router.param_state("/l") == (3, b.id)
