"""Shutdown on SIGTERM (close 1001, exit 0) and keepalive (pings, pong timeout)."""
from __future__ import annotations

import asyncio
import signal
import time

import pytest

from clasp_fast.protocol import Get, Set, Subscribe, encode_frame

from tests.integration.conftest import (RawWS, close_code_of, connect_hello, recv_msg,
                                        wait_close_code, ws_connect)


async def test_sigterm_closes_every_client_1001_and_exits_0(router_process):
    rp = router_process()
    clients = [(await connect_hello(rp.url, f"c{i}"))[0] for i in range(5)]
    not_hello = await ws_connect(rp.url)                        # upgraded, no HELLO yet
    raw = await RawWS.open("127.0.0.1", rp.port)
    await raw.hello("raw")
    try:
        await clients[0].send(encode_frame(Subscribe(1, "/**")))
        await clients[1].send(encode_frame(Set("/bye/x", 1)))
        await recv_msg(clients[0])                              # everyone is live

        t0 = time.monotonic()
        stopper = asyncio.ensure_future(asyncio.to_thread(rp.stop, 8.0))
        codes = await asyncio.gather(*(wait_close_code(ws, 5.0) for ws in [*clients, not_hello]))
        assert codes == [1001] * 6, codes

        async def raw_close():
            while True:
                op, payload = await raw.recv_frame(5.0)
                if op == 0x8:
                    return close_code_of(payload)
                assert op != -1, "EOF without a close frame"
        assert await raw_close() == 1001

        exit_code = await asyncio.wait_for(stopper, 8.0)
        elapsed = time.monotonic() - t0
        assert exit_code == 0, rp.log()
        assert elapsed < 4.0, f"took {elapsed:.2f} s to shut down"
    finally:
        raw.close()
        for ws in clients:
            await ws.close()
        await not_hello.close()


async def test_keepalive_keeps_answering_client_and_drops_silent_one(router_process):
    rp = router_process("--ping-interval", "1", "--pong-timeout", "1")
    # websockets answers pings by itself (its reader runs in the background)
    good, _, _ = await connect_hello(rp.url, "answers-pings")
    # a hand-made client that reads but never answers a ping
    bad = await RawWS.open("127.0.0.1", rp.port)
    await bad.hello("deaf")
    t0 = time.monotonic()
    try:
        pings = 0
        close_code = None
        closed_at = None
        deadline = t0 + 4.5
        while time.monotonic() < deadline:
            try:
                op, payload = await bad.recv_frame(deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            if op == 0x9:
                pings += 1                                      # deliberately not answered
            elif op == 0x8:
                close_code = close_code_of(payload)
                closed_at = time.monotonic() - t0
            elif op == -1:
                closed_at = closed_at or time.monotonic() - t0
                break
        assert pings >= 1, "the router never pinged an idle client"
        assert close_code == 1001, f"close code {close_code}"
        # pinged after 1-2 s of silence (1 s sweep), closed on the sweep after pong_timeout
        assert closed_at is not None and closed_at <= 3.5, f"dropped after {closed_at} s"

        # make sure the answering client was idle for > 4 s in total, then check it is still served
        await asyncio.sleep(max(0.0, 4.2 - (time.monotonic() - t0)))
        assert good.close_code is None
        await good.send(encode_frame(Get("/keepalive/none")))
        err = await recv_msg(good, 1.0)
        assert err.code == 404
    finally:
        bad.close()
        await good.close()


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_without_tls_keeps_serving(router_process, workers):
    """SIGHUP means "reload the certificate": without TLS it must not stop the router."""
    rp = router_process(workers=workers)
    ws, _, _ = await connect_hello(rp.url, "hup")
    try:
        rp.proc.send_signal(signal.SIGHUP)
        assert rp.wait_for_log("nothing to reload", 5.0), rp.log()
        assert rp.proc.poll() is None
        await ws.send(encode_frame(Subscribe(1, "/hup/**")))
        await ws.send(encode_frame(Set("/hup/x", 1)))
        echo = await recv_msg(ws)
        assert isinstance(echo, Set) and echo.address == "/hup/x"
    finally:
        await ws.close()
