"""Router core: GET, SYNC, PING, ANNOUNCE + QUERY, server-only types
(docs/protocol.md "Behaviour by message").
"""
from __future__ import annotations

import pytest

from clasp_fast.protocol import messages as M

from .test_router_support import Net, frame, msgs, only

S = M.SignalType


# --- GET --------------------------------------------------------------------------


def test_get_returns_one_param_snapshot():
    net = Net()
    w = net.connect()
    r = net.connect()
    net.set(w, "/g/a", 1.5)
    net.set(w, "/g/a", 2.5)
    net.set(w, "/g/b", 7)
    net.send(r, M.Get("/g/a"))
    snap = only(r, M.Snapshot)
    assert len(snap.params) == 1
    p = snap.params[0]
    assert (p.address, p.value, p.revision, p.writer) == ("/g/a", 2.5, 2, w.id)
    assert type(p.value) is float
    assert abs(p.timestamp - net.wall_us()) < 10_000_000
    net.send(r, M.Get("/g/b"))
    p = only(r, M.Snapshot).params[0]
    assert p.value == 7 and type(p.value) is int


def test_get_unknown_address_is_404_with_address():
    net = Net()
    r = net.connect()
    net.send(r, M.Get("/nothing/here"))
    err = only(r, M.Error)
    assert err.code == 404
    assert err.address == "/nothing/here"
    assert r.close_request is None


def test_get_is_exact_not_a_pattern():
    net = Net()
    w = net.connect()
    net.set(w, "/g/a", 1)
    net.send(w, M.Get("/g"))
    assert only(w, M.Error).code == 404


def test_get_does_not_subscribe():
    net = Net()
    w = net.connect()
    r = net.connect()
    net.set(w, "/g/a", 1)
    net.send(r, M.Get("/g/a"))
    r.take_output()
    net.set(w, "/g/a", 2)
    assert r.take_output() == []


def test_get_null_value():
    net = Net()
    w = net.connect()
    net.set(w, "/nul", None)
    net.send(w, M.Get("/nul"))
    p = only(w, M.Snapshot).params[0]
    assert p.value is None and p.revision == 1


# --- SYNC / PING ------------------------------------------------------------------


def test_sync_reply():
    net = Net()
    s = net.connect()
    before = net.wall_us()
    net.send(s, M.Sync(t1=123456))
    after = net.wall_us()
    m = only(s, M.Sync)
    assert m.t1 == 123456
    assert before <= m.t2 <= m.t3 <= after
    assert m.t3 < 2 ** 53


def test_sync_reply_bytes_have_t2_and_t3_flags():
    net = Net()
    s = net.connect()
    net.send(s, M.Sync(t1=1))
    raw = s.take_output()
    assert len(raw) == 1
    assert raw[0][4] == 0x40 and raw[0][5] == 0x03
    assert len(raw[0]) == 4 + 2 + 24


def test_ping_pong():
    net = Net()
    s = net.connect()
    net.send(s, M.Ping())
    raw = s.take_output()
    assert raw == [bytes.fromhex("5301000142")]


def test_ping_with_qos_still_just_pong():
    net = Net()
    s = net.connect()
    net.send(s, M.Ping(), qos=1)
    assert [type(m) for m in msgs(s)] == [M.Pong]


# --- ANNOUNCE / QUERY -------------------------------------------------------------


def announce(net, s, qos=0):
    net.send(s, M.Announce("/lumen", [
        M.SignalDef("/lumen/layer/0/opacity", S.PARAM, "f64", "rw", M.SignalMeta(unit="%")),
        M.SignalDef("/lumen/cue/go", S.EVENT),
        M.SignalDef("/lumen/audio/level", S.STREAM, "f32", "r"),
        M.SignalDef("/other/thing", S.EVENT),
    ]), qos=qos)


def test_announce_ack_only_with_qos():
    net = Net()
    s = net.connect()
    announce(net, s, qos=0)
    assert s.take_output() == []
    announce(net, s, qos=1)
    ack = only(s, M.Ack)
    assert ack.address == "/lumen"


def test_announce_is_not_broadcast():
    net = Net()
    s = net.connect()
    watcher = net.connect()
    net.subscribe(watcher, "/**")
    announce(net, s)
    assert watcher.take_output() == []


def test_query_returns_announced_signals_and_params():
    net = Net()
    s = net.connect()
    q = net.connect()
    announce(net, s)
    net.set(s, "/lumen/layer/1/opacity", 0.5)
    net.set(s, "/elsewhere", 1)
    net.send(q, M.Query("/lumen/**"))
    res = only(q, M.Result)
    by = {d.address: d for d in res.signals}
    assert set(by) == {"/lumen/layer/0/opacity", "/lumen/cue/go", "/lumen/audio/level",
                       "/lumen/layer/1/opacity"}
    assert by["/lumen/layer/0/opacity"].signal == S.PARAM
    assert by["/lumen/layer/0/opacity"].datatype == "f64"
    assert by["/lumen/layer/0/opacity"].access == "rw"
    assert by["/lumen/cue/go"].signal == S.EVENT
    assert by["/lumen/audio/level"].signal == S.STREAM
    assert by["/lumen/audio/level"].access == "r"
    assert by["/lumen/layer/1/opacity"].signal == S.PARAM
    assert all(d.meta is None for d in res.signals)          # RESULT has no meta


def test_query_narrow_pattern_and_no_match():
    net = Net()
    s = net.connect()
    announce(net, s)
    net.send(s, M.Query("/lumen/cue/*"))
    assert [d.address for d in only(s, M.Result).signals] == ["/lumen/cue/go"]
    net.send(s, M.Query("/nothing/**"))
    assert only(s, M.Result).signals == []


def test_query_param_listed_once_when_announced_and_set():
    net = Net()
    s = net.connect()
    announce(net, s)
    net.set(s, "/lumen/layer/0/opacity", 0.3)
    net.send(s, M.Query("/lumen/layer/**"))
    got = [d.address for d in only(s, M.Result).signals]
    assert got == ["/lumen/layer/0/opacity"]


def test_query_legacy_msgpack():
    net = Net()
    s = net.connect()
    announce(net, s)
    net.send(s, M.Query("/lumen/**"), legacy=True)
    res = only(s, M.Result)
    assert {d.address for d in res.signals} == {"/lumen/layer/0/opacity", "/lumen/cue/go",
                                                "/lumen/audio/level"}


def test_query_bad_pattern_is_202():
    net = Net()
    s = net.connect()
    net.send(s, M.Query("no-slash"))
    err = only(s, M.Error)
    assert err.code == 202 and err.address == "no-slash"


def test_announce_overwrites_by_address():
    net = Net()
    s = net.connect()
    announce(net, s)
    net.send(s, M.Announce("/lumen", [M.SignalDef("/lumen/cue/go", S.STREAM, "i64")]))
    net.send(s, M.Query("/lumen/cue/go"))
    res = only(s, M.Result)
    assert [(d.address, d.signal, d.datatype) for d in res.signals] == [
        ("/lumen/cue/go", S.STREAM, "i64")]


# --- server-only types ---------------------------------------------------------------

SERVER_ONLY = [
    M.Welcome(session="x", name="y", time=1),
    M.Snapshot(params=[M.ParamValue("/a", 1, 1)]),
    M.Ack(address="/a", revision=1),
    M.Error(code=500, message="boom"),
    M.Result(signals=[M.SignalDef("/a")]),
    M.Pong(),
]


@pytest.mark.parametrize("msg", SERVER_ONLY, ids=[type(m).__name__ for m in SERVER_ONLY])
def test_server_only_types_are_ignored(msg):
    net = Net()
    s = net.connect()
    watcher = net.connect()
    net.subscribe(watcher, "/**")
    net.send(s, msg, qos=1)
    assert s.take_output() == []
    assert watcher.take_output() == []
    assert s.close_request is None
    assert net.router.get("/a") is None
    net.send(s, M.Ping())
    assert [type(m) for m in msgs(s)] == [M.Pong]


def test_error_frames_always_carry_the_flags_byte():
    net = Net()
    s = net.connect()
    net.send(s, M.Get("/missing"))
    raw = s.take_output()
    assert len(raw) == 1
    p = raw[0][4:]
    assert p[0] == 0x51 and int.from_bytes(p[1:3], "big") == 404
    mlen = int.from_bytes(p[3:5], "big")
    flags = p[5 + mlen]
    assert flags == 0x01                                    # address present
    assert p[6 + mlen:] == len("/missing").to_bytes(2, "big") + b"/missing"
    net.raw(s, frame(b"\x77"))                              # 400 without an address
    p = s.take_output()[0][4:]
    mlen = int.from_bytes(p[3:5], "big")
    assert len(p) == 6 + mlen and p[5 + mlen] == 0x00
