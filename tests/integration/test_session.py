"""docs/protocol.md "Session": HELLO timeout (without stalling anyone else) and a second HELLO."""
from __future__ import annotations

import asyncio
import time

from clasp_fast.protocol import Get, Hello, Set, Snapshot, Subscribe, Welcome, encode_frame

from tests.integration.conftest import (connect_hello, error_of, expect_silence, open_socket,
                                        recv_msg, wait_close_code, ws_connect)


async def _timed_close(ws, opened: float, timeout: float):
    code = await wait_close_code(ws, timeout)
    return code, time.monotonic() - opened


_rt_counter = iter(range(1_000_000))


async def _round_trip(url: str) -> float:
    """Seconds for connect + HELLO + WELCOME (+ SNAPSHOT) of a fresh client, then a SET echo."""
    t0 = time.monotonic()
    ws, welcome, _ = await connect_hello(url, "busy-bee")
    elapsed = time.monotonic() - t0
    address = f"/ht/{next(_rt_counter)}"
    try:
        await ws.send(encode_frame(Subscribe(1, address)))
        await ws.send(encode_frame(Set(address, 7)))
        echo = await recv_msg(ws, 1.0)
        assert isinstance(echo, Set) and (echo.address, echo.value) == (address, 7), echo
    finally:
        await ws.close()
    return elapsed


async def test_hello_timeout_closes_silent_clients_1008_without_blocking_others(router_process):
    rp = router_process("--hello-timeout", "1")
    # a TCP connection that never sends an HTTP request
    idle_tcp_reader, idle_tcp_writer = await open_socket("127.0.0.1", rp.port)
    # 50 upgraded connections that never send HELLO
    silent = []
    for _ in range(50):
        silent.append((await ws_connect(rp.url), time.monotonic()))
    closers = [asyncio.ensure_future(_timed_close(ws, t, 4.0)) for ws, t in silent]
    try:
        # meanwhile other clients connect and talk without delay
        for _ in range(3):
            rt = await _round_trip(rp.url)
            assert rt < 1.0, f"connect+HELLO+WELCOME took {rt:.3f} s with 50 silent connections open"
        results = await asyncio.gather(*closers)
        for code, elapsed in results:
            assert code == 1008, results
            assert elapsed <= 2.2, f"closed {elapsed:.2f} s after connecting (hello_timeout 1)"
        # the raw TCP connection is still pending in the HTTP gate and blocks nobody
        rt = await _round_trip(rp.url)
        assert rt < 1.0
    finally:
        idle_tcp_writer.close()
        for ws, _ in silent:
            await ws.close()


async def test_hello_timeout_is_not_enforced_early(router_process):
    """A client that sends HELLO 0.7 s after connecting is within hello_timeout = 1 s and must be
    welcomed, whenever in the second it happened to connect (clients start 0.2 s apart)."""
    rp = router_process("--hello-timeout", "1")

    async def late_hello(delay_start: float):
        await asyncio.sleep(delay_start)
        ws = await ws_connect(rp.url)
        t0 = time.monotonic()
        try:
            await asyncio.sleep(0.7)
            try:
                await ws.send(encode_frame(Hello(name="late")))
                msg = await recv_msg(ws, 2.0)
            except Exception as exc:       # closed before the HELLO got there
                return f"failed after {time.monotonic() - t0:.2f} s: {exc!r} (close code {ws.close_code})"
            if not isinstance(msg, Welcome):
                return f"got {msg!r} instead of WELCOME"
            return None
        finally:
            await ws.close()

    outcomes = await asyncio.gather(*(late_hello(0.2 * i) for i in range(5)))
    problems = [o for o in outcomes if o is not None]
    assert not problems, (f"{len(problems)}/5 clients that sent HELLO 0.7 s after connecting "
                          f"(hello_timeout 1 s) were refused: {problems}")


async def test_second_hello_gets_error_400_and_first_session_stays(default_router):
    ws, welcome, _ = await connect_hello(default_router.url, "first-name")
    try:
        await ws.send(encode_frame(Subscribe(1, "/hello2/**")))
        await ws.send(encode_frame(Hello(name="second-name")))
        err = error_of(await recv_msg(ws))
        assert err.code == 400
        assert "HELLO" in err.message and welcome.session in err.message, err
        await expect_silence(ws, 0.2)              # no second WELCOME / SNAPSHOT
        # the first session carries on: its writes are attributed to the first session id
        await ws.send(encode_frame(Set("/hello2/x", 1.25)))
        echo = await recv_msg(ws)
        assert isinstance(echo, Set) and echo.value == 1.25 and echo.revision == 1, echo
        await ws.send(encode_frame(Get("/hello2/x")))
        snap = await recv_msg(ws)
        assert isinstance(snap, Snapshot)
        assert [(p.address, p.value, p.writer) for p in snap.params] == \
            [("/hello2/x", 1.25, welcome.session)], snap
        # and the subscription made before the second HELLO is still there
        other, _, _ = await connect_hello(default_router.url)
        try:
            await other.send(encode_frame(Set("/hello2/y", 2)))
            seen = await recv_msg(ws)
            assert isinstance(seen, Set) and (seen.address, seen.value) == ("/hello2/y", 2), seen
        finally:
            await other.close()
    finally:
        await ws.close()
