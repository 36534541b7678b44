"""Token mode (issue 14) end to end, with ``--workers 2``: real processes, raw frames and the
real Python client's token argument.

Tokens (made like ``clasp-fast token new`` makes them, file written per test):
  lights: write:/lights/**        reader: read:/lights/**        admin: admin:/**
  old:    read:/** expired in 2020
"""
from __future__ import annotations

import asyncio
import signal

import pytest
import websockets

from clasp_fast.auth.tokens import new_token, parse_expiry, token_line
from clasp_fast.protocol import (Bundle, Error, Get, Hello, Publish, Query, Result, Set, Snapshot,
                                 Subscribe, Welcome, encode_frame)
from tests.integration.conftest import (UpgradeRefused, error_of, recv_msg, recv_until, ws_connect,
                                        wait_close_code)
from tests.integration.workers_support import Client

TOKENS = {"lights": new_token(), "reader": new_token(), "admin": new_token(), "old": new_token()}
SCOPES = {"lights": ["write:/lights/**"], "reader": ["read:/lights/**"], "admin": ["admin:/**"],
          "old": ["read:/**"]}
EXPIRES = {"old": parse_expiry("2020-01-01")}


def write_tokens(path, names=TOKENS) -> str:
    path.write_text("# test tokens\n" + "".join(
        token_line(n, TOKENS[n], SCOPES[n], EXPIRES.get(n)) + "\n" for n in names))
    return str(path)


@pytest.fixture
def token_router(router_process, tmp_path):
    def start(*args, names=TOKENS, workers=2):
        path = write_tokens(tmp_path / "tokens.txt", names)
        rp = router_process("--auth-tokens", path, "--log-level", "debug", *args, workers=workers)
        rp.tokens_path = tmp_path / "tokens.txt"
        return rp
    return start


async def hello(url: str, token, name: str = "auth-test"):
    """Connects, sends HELLO with ``token``; returns (ws, first message)."""
    ws = await ws_connect(url)
    await ws.send(encode_frame(Hello(name=name, token=token)))
    return ws, await recv_msg(ws, 3.0)


async def session(url: str, who: str):
    """A welcomed session for token ``who``; returns (ws, the WELCOME snapshot)."""
    ws, first = await hello(url, TOKENS[who])
    assert isinstance(first, Welcome), first
    snapshot = await recv_msg(ws, 3.0)
    assert isinstance(snapshot, Snapshot)
    return ws, snapshot


async def refused(ws, message) -> Error:
    await ws.send(encode_frame(message))
    err, _ = await recv_until(ws, lambda m: isinstance(m, Error), 3.0)
    return err


# --- 401 -------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "not-a-token", "old"])
async def test_a_missing_unknown_or_expired_token_gets_401_then_close_1008(token_router, token):
    rp = token_router()
    ws, first = await hello(rp.url, TOKENS.get(token, token))
    assert error_of(first).code == 401
    assert await wait_close_code(ws) == 1008


async def test_the_real_client_connects_with_its_token_argument(token_router):
    from clasp import Clasp
    from clasp.client import ClaspError
    rp = token_router()
    client = Clasp(rp.url, name="py", token=TOKENS["lights"])
    await asyncio.wait_for(client.connect(), 5)
    try:
        await client.set("/lights/1", 0.5)
        assert await asyncio.wait_for(client.get("/lights/1"), 5) == 0.5
    finally:
        await client.close()
    bad = Clasp(rp.url, name="py", token="wrong")
    with pytest.raises(ClaspError, match="1008"):       # ERROR 401, then the close
        await asyncio.wait_for(bad.connect(), 5)


# --- 403 per action --------------------------------------------------------------------

async def test_every_action_outside_the_scopes_gets_403_naming_the_address(token_router):
    rp = token_router()
    ws, _ = await session(rp.url, "lights")
    for message, address in [(Set(address="/sound/1", value=1.0), "/sound/1"),
                             (Set(address="/sound/1", value=1.0, lock=True), "/sound/1"),
                             (Set(address="/sound/1", value=1.0, unlock=True), "/sound/1"),
                             (Publish(address="/sound/hit", value=1.0), "/sound/hit"),
                             (Subscribe(id=1, pattern="/sound/**"), "/sound/**"),
                             (Get(address="/sound/1"), "/sound/1")]:
        err = await refused(ws, message)
        assert (err.code, err.address) == (403, address), (message, err)
        assert address in err.message
    # inside the scopes all is well
    await ws.send(encode_frame(Set(address="/lights/1", value=2.0)))
    await ws.send(encode_frame(Get(address="/lights/1")))
    snap, _ = await recv_until(ws, lambda m: isinstance(m, Snapshot), 3.0)
    assert [(p.address, p.value) for p in snap.params] == [("/lights/1", 2.0)]
    await ws.close()


async def test_a_read_scope_does_not_write_and_a_wider_pattern_is_refused(token_router):
    rp = token_router()
    ws, _ = await session(rp.url, "reader")
    err = await refused(ws, Set(address="/lights/1", value=1.0))
    assert (err.code, err.address) == (403, "/lights/1")
    for pattern in ["/**", "/*/1", "/light*/**"]:
        err = await refused(ws, Subscribe(id=2, pattern=pattern))
        assert (err.code, err.address) == (403, pattern)
    await ws.send(encode_frame(Subscribe(id=3, pattern="/lights/*/level")))
    await ws.send(encode_frame(Get(address="/lights/none")))
    err, _ = await recv_until(ws, lambda m: isinstance(m, Error), 3.0)
    assert err.code == 404          # the subscription passed; the GET is allowed, nothing there
    await ws.close()


async def test_a_bundle_with_one_part_outside_the_scopes_is_refused_whole(token_router):
    rp = token_router()
    ws, _ = await session(rp.url, "lights")
    err = await refused(ws, Bundle(messages=[Set(address="/lights/1", value=7.0),
                                             Set(address="/sound/1", value=7.0)]))
    assert (err.code, err.address) == (403, "/sound/1") and "nothing applied" in err.message
    await ws.send(encode_frame(Get(address="/lights/1")))
    err, _ = await recv_until(ws, lambda m: isinstance(m, Error), 3.0)
    assert err.code == 404          # the allowed part was not applied either
    await ws.close()


# --- filtered snapshot, QUERY, deliveries ------------------------------------------------

async def test_snapshot_query_and_deliveries_hold_only_what_the_session_may_read(token_router):
    rp = token_router()
    admin, _ = await session(rp.url, "admin")
    for address in ["/lights/1", "/lights/2", "/sound/1", "/secret"]:
        await admin.send(encode_frame(Set(address=address, value=1.0)))
    await admin.send(encode_frame(Get(address="/secret")))
    await recv_until(admin, lambda m: isinstance(m, Snapshot), 3.0)
    ws, snapshot = await session(rp.url, "reader")
    assert sorted(p.address for p in snapshot.params) == ["/lights/1", "/lights/2"]
    await ws.send(encode_frame(Query(pattern="/**")))
    result, _ = await recv_until(ws, lambda m: isinstance(m, Result), 3.0)
    assert sorted(s.address for s in result.signals) == ["/lights/1", "/lights/2"]
    await ws.send(encode_frame(Subscribe(id=1, pattern="/lights/**")))
    await recv_until(ws, lambda m: isinstance(m, Snapshot), 3.0)
    for address in ["/sound/1", "/lights/2"]:
        await admin.send(encode_frame(Set(address=address, value=5.0)))
    delivered, before = await recv_until(ws, lambda m: isinstance(m, Set), 3.0)
    assert delivered.address == "/lights/2" and before == []
    await ws.close()
    await admin.close()


# --- SIGHUP, throttle, logs, start-up line ---------------------------------------------

async def test_sighup_revocation_closes_a_live_session(token_router):
    rp = token_router()
    ws, _ = await session(rp.url, "lights")
    kept, _ = await session(rp.url, "reader")
    write_tokens(rp.tokens_path, ["reader", "admin"])
    rp.proc.send_signal(signal.SIGHUP)
    err, _ = await recv_until(ws, lambda m: isinstance(m, Error), 5.0)
    assert err.code == 401 and "'lights'" in err.message
    assert await wait_close_code(ws) == 1008
    first = (await hello(rp.url, TOKENS["lights"]))[1]
    assert error_of(first).code == 401
    await kept.send(encode_frame(Get(address="/lights/x")))
    err, _ = await recv_until(kept, lambda m: isinstance(m, Error), 3.0)
    assert err.code == 404            # the other session lives on
    await kept.close()


async def test_an_ip_with_too_many_failed_hellos_is_refused_for_a_while(token_router):
    rp = token_router("--max-failed-hellos", "3", "--failed-hello-block", "30")
    for _ in range(3):              # spread over both workers: the count is shared
        ws, first = await hello(rp.url, "guess")
        assert error_of(first).code == 401
        await wait_close_code(ws)
    with pytest.raises(UpgradeRefused) as exc:
        await Client.open("127.0.0.1", rp.port, name="blocked")
    assert exc.value.status == 429 and b"failed HELLOs" in exc.value.body
    with pytest.raises(websockets.InvalidStatus):
        await hello(rp.url, TOKENS["admin"])        # even with a good token, for a while


async def test_no_token_ever_appears_in_the_logs(token_router):
    rp = token_router()
    ws, _ = await session(rp.url, "admin")
    await ws.close()
    ws, _ = await hello(rp.url, TOKENS["old"])
    await wait_close_code(ws)
    ws, _ = await hello(rp.url, "a-wrong-token-value")
    await wait_close_code(ws)
    assert rp.wait_for_log("admitted with token 'admin'")
    log = rp.log()
    assert all(t not in log for t in [*TOKENS.values(), "a-wrong-token-value"]), log
    assert "WARNING: no TLS, tokens travel in clear text" in log


async def test_open_mode_says_so_at_start_up(router_process):
    rp = router_process(workers=2)
    assert "security: open mode" in rp.log()


def test_a_bad_tokens_file_stops_the_start_with_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys
    bad = tmp_path / "tokens.txt"
    bad.write_text("desk " + TOKENS["lights"] + " write:/lights/**\n")      # a token, not its hash
    for path, problem in [(bad, f"{bad} line 1: desk: the second field must be sha256:"),
                          (tmp_path / "missing.txt", "cannot read tokens file")]:
        run = subprocess.run([sys.executable, "-m", "clasp_fast", "--auth-tokens", str(path),
                              "--port", "0", "--check-config"], capture_output=True, text=True, timeout=30)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and problem in run.stderr, run.stderr
        assert TOKENS["lights"] not in run.stderr + run.stdout
