"""Token mode in the router core (sans I/O): admission, 403 per action, filtered answers."""
from __future__ import annotations

from clasp_fast._native.shmlimits import FailedHellos
from clasp_fast.auth.guard import Guard
from clasp_fast.auth.tokens import Tokens, new_token, parse_line, token_line
from clasp_fast.protocol import messages as M

from tests.unit.test_router_support import WALL0, Net, msgs

DESK, VIEW, ALL = new_token(), new_token(), new_token()


def token_net() -> Net:
    net = Net()
    entries = [parse_line(token_line(name, token, scopes, None), i) for i, (name, token, scopes) in
               enumerate([("desk", DESK, ["write:/lights/**"]), ("view", VIEW, ["read:/lights/*"]),
                          ("all", ALL, ["admin:/**"])], 1)]
    net.router.guard = Guard("tokens.txt", FailedHellos(0, 1.0, 1.0), Tokens(entries))
    return net


def session(net: Net, token):
    s = net.open()
    net.send(s, M.Hello(name="t", token=token))
    return s


def welcomed(net: Net, token):
    s = session(net, token)
    got = msgs(s)
    assert type(got[0]) is M.Welcome, got
    return s, got[1:]


def error(s) -> M.Error:
    got = [m for m in msgs(s) if type(m) is M.Error]
    assert len(got) == 1, got
    return got[0]


def test_a_bad_token_gets_401_and_a_close_request():
    net = token_net()
    for token in (None, "nope"):
        s = session(net, token)
        assert error(s).code == 401 and s.close_request[0] == 1008 and not s.welcomed


def test_open_mode_gives_sessions_no_access_object():
    net = Net()
    s = net.connect()
    assert s.access is None


def test_writes_outside_the_scopes_get_403_and_change_nothing():
    net = token_net()
    s, _ = welcomed(net, DESK)
    for msg, address in [(M.Set("/sound/1", 1.0), "/sound/1"),
                         (M.Set("/sound/1", 1.0, lock=True), "/sound/1"),
                         (M.Publish(address="/sound/x", value=1), "/sound/x"),
                         (M.Bundle(messages=[M.Set("/lights/1", 1.0), M.Publish(address="/a", value=1)]), "/a"),
                         (M.Get("/lights/1"), "/lights/1"),         # write scope reads too: 404
                         (M.Subscribe(id=1, pattern="/**"), "/**")]:
        net.send(s, msg)
        err = error(s)
        expected = 404 if type(msg) is M.Get else 403
        assert (err.code, err.address) == (expected, address), (msg, err)
    assert net.router.get("/lights/1") is None and net.router.get("/sound/1") is None
    net.set(s, "/lights/1", 2.0)
    assert net.router.get("/lights/1").value == 2.0


def test_reads_are_filtered_and_wider_patterns_refused():
    net = token_net()
    admin, _ = welcomed(net, ALL)
    for address in ("/lights/1", "/lights/1/deep", "/sound/1"):
        net.set(admin, address, 1.0)
    s, snapshot = welcomed(net, VIEW)
    assert [p.address for snap in snapshot for p in snap.params] == ["/lights/1"]
    net.send(admin, M.Announce(namespace="/", signals=[
        M.SignalDef(address="/lights/*", signal=M.SignalType.PARAM),
        M.SignalDef(address="/lights/**", signal=M.SignalType.PARAM),
        M.SignalDef(address="/sound/x", signal=M.SignalType.EVENT)]))
    net.send(s, M.Query(pattern="/**"))
    result = msgs(s)[0]
    assert sorted(d.address for d in result.signals) == ["/lights/*", "/lights/1"]
    net.send(s, M.Subscribe(id=1, pattern="/lights/**"))
    assert error(s).code == 403
    net.send(s, M.Get("/lights/1/deep"))
    assert error(s).code == 403
    net.send(s, M.Subscribe(id=2, pattern="/lights/*"))
    assert [type(m) for m in msgs(s)] == [M.Snapshot]


def test_revoked_tokens_close_their_sessions_and_only_those():
    net = token_net()
    desk, _ = welcomed(net, DESK)
    view, _ = welcomed(net, VIEW)
    guard = net.router.guard
    guard.tokens = Tokens([e for e in guard.tokens.entries if e.name != "desk"])
    assert net.router.recheck_access() == 1
    assert error(desk).code == 401 and desk.close_request[0] == 1008
    assert view.close_request is None and msgs(view) == []


def test_a_token_that_expires_closes_its_session_when_its_time_comes():
    net = Net()
    entry = parse_line(token_line("temp", DESK, ["read:/**"], WALL0 + 60), 1)
    net.router.guard = Guard("tokens.txt", FailedHellos(0, 1.0, 1.0), Tokens([entry]))
    s, _ = welcomed(net, DESK)
    assert net.router.recheck_access(False) == 0
    net.advance(61)                       # the core's clock: no sleeping
    assert net.router.recheck_access(False) == 1
    assert error(s).code == 401 and s.close_request[0] == 1008
    assert error(session(net, DESK)).code == 401          # and no new session with it
