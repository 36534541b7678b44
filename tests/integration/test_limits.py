"""docs/protocol.md "Limits": max_connections, max_connections_per_ip and X-Forwarded-For from trusted
proxies, enforced before the upgrade with HTTP 503 and a reason (single process)."""
from __future__ import annotations

import asyncio

from websockets.exceptions import InvalidStatus

from clasp_fast.protocol import Get, Hello, Welcome, encode_frame

from tests.integration.conftest import RawWS, UpgradeRefused, connect_hello, recv_msg, ws_connect


async def _try_many(url: str, n: int, **kw):
    """``n`` simultaneous connection attempts: (open websockets, refusals as (status, body))."""
    results = await asyncio.gather(*(ws_connect(url, **kw) for _ in range(n)), return_exceptions=True)
    opened = [r for r in results if not isinstance(r, BaseException)]
    refused = []
    for r in results:
        if isinstance(r, InvalidStatus):
            refused.append((r.response.status_code, r.response.body.decode()))
        elif isinstance(r, BaseException):
            raise r
    return opened, refused


async def _close_all(conns):
    for ws in conns:
        await ws.close()


async def _wait_until_admitted(url: str, timeout: float = 2.0, **kw):
    """Connection slots are given back when the socket closes: retry briefly."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await ws_connect(url, **kw)
        except InvalidStatus:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_max_connections_per_ip(router_process):
    rp = router_process("--max-connections-per-ip", "5")
    opened, refused = await _try_many(rp.url, 8)
    try:
        assert len(opened) == 5 and len(refused) == 3, (len(opened), refused)
        for status, body in refused:
            assert status == 503
            assert "max_connections_per_ip = 5" in body and "127.0.0.1" in body, body
        # the admitted ones are real sessions
        for ws in opened:
            await ws.send(encode_frame(Hello(name="limited")))
            assert isinstance(await recv_msg(ws), Welcome)
        # close two: exactly two more are admitted
        for ws in opened[:2]:
            await ws.close()
        opened = opened[2:]
        first = await _wait_until_admitted(rp.url)       # waits for the slots to come back
        opened.append(first)
        more, refused = await _try_many(rp.url, 3)
        opened.extend(more)
        assert len(more) == 1 and len(refused) == 2, (len(more), refused)
        assert all(s == 503 and "max_connections_per_ip" in b for s, b in refused)
        assert len(opened) == 5
    finally:
        await _close_all(opened)


async def test_admitted_connections_are_working_sessions_and_refusal_is_logged(router_process):
    rp = router_process("--max-connections-per-ip", "2")
    a, _, _ = await connect_hello(rp.url, "a")
    b, _, _ = await connect_hello(rp.url, "b")
    try:
        _, refused = await _try_many(rp.url, 1)
        assert refused and refused[0][0] == 503
        for ws in (a, b):
            await ws.send(encode_frame(Get("/limits/none")))
            assert (await recv_msg(ws)).code == 404
        assert rp.wait_for_log("max_connections_per_ip", 3.0), rp.log()
    finally:
        await a.close()
        await b.close()


async def test_max_connections_total_across_source_addresses(router_process):
    rp = router_process("--max-connections", "3")
    sources = [f"127.0.0.{i}" for i in range(2, 8)]             # six different client IPs
    results = await asyncio.gather(
        *(RawWS.open("127.0.0.1", rp.port, local_host=src) for src in sources), return_exceptions=True)
    opened = [r for r in results if isinstance(r, RawWS)]
    refused = [r for r in results if isinstance(r, UpgradeRefused)]
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, UpgradeRefused)]
    try:
        assert not others, others
        assert len(opened) == 3 and len(refused) == 3, (len(opened), refused)
        for r in refused:
            assert r.status == 503
            assert "max_connections = 3" in r.body.decode(), r.body
        # the admitted connections really come from their own source addresses and work
        for raw in opened:
            assert raw.writer.get_extra_info("sockname")[0] in sources
            await raw.hello("multi-ip")
    finally:
        for raw in opened:
            raw.close()


async def test_trusted_proxy_forwarded_ip_counts_per_ip(router_process):
    rp = router_process("--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1")
    xff = lambda ip: {"additional_headers": {"X-Forwarded-For": ip}}    # noqa: E731
    first = await ws_connect(rp.url, **xff("10.0.0.1"))
    conns = [first]
    try:
        _, refused = await _try_many(rp.url, 1, **xff("10.0.0.1"))
        assert len(refused) == 1 and refused[0][0] == 503
        assert "10.0.0.1" in refused[0][1] and "max_connections_per_ip = 1" in refused[0][1], refused
        other, refused = await _try_many(rp.url, 1, **xff("10.0.0.2"))
        assert len(other) == 1 and not refused, refused
        conns.extend(other)
        # a chain: the right-most untrusted hop is the client (127.0.0.1 is the trusted proxy)
        chained, refused = await _try_many(rp.url, 1, **xff("10.0.0.9, 10.0.0.3, 127.0.0.1"))
        assert len(chained) == 1 and not refused, refused
        conns.extend(chained)
        _, refused = await _try_many(rp.url, 1, **xff("10.0.0.9, 10.0.0.3"))
        assert len(refused) == 1 and "10.0.0.3" in refused[0][1], refused
        # without the header, the peer address (127.0.0.1) is the client
        direct, refused = await _try_many(rp.url, 1)
        assert len(direct) == 1 and not refused
        conns.extend(direct)
    finally:
        await _close_all(conns)


async def test_forwarded_for_from_untrusted_peer_is_ignored(router_process):
    rp = router_process("--max-connections-per-ip", "1")           # no trusted proxies
    first = await ws_connect(rp.url, additional_headers={"X-Forwarded-For": "10.0.0.1"})
    try:
        _, refused = await _try_many(rp.url, 1, additional_headers={"X-Forwarded-For": "10.0.0.2"})
        assert len(refused) == 1 and refused[0][0] == 503 and "127.0.0.1" in refused[0][1], refused
    finally:
        await first.close()
