"""docs/operations.md "Slow subscribers and memory caps": the memory attacks of issue 12, each
against a real router process, with its RSS growth printed and bounded by the caps, while a
normal client's SET -> ACK keeps working."""
from __future__ import annotations

import asyncio
import time

import pytest

from clasp_fast.protocol import Ack, Get, Hello, Set, Subscribe, encode_frame

from tests.integration.conftest import RawWS, connect_hello, recv_until
from tests.integration.test_slow_consumer import Reader, masked, router_rss_mb

BIG = "v" * 60_000


async def set_ack_works(url: str, address: str = "/normal/x") -> float:
    """A new client connects and its SET with QoS 1 is ACKed; returns the seconds that took."""
    t0 = time.monotonic()
    ws, _, _ = await connect_hello(url, "normal", timeout=30.0)
    try:
        await ws.send(encode_frame(Set(address, 1), qos=1))
        ack, _ = await recv_until(ws, lambda m: isinstance(m, Ack), 5.0)
        assert ack.address == address
        return time.monotonic() - t0
    finally:
        await ws.close()


async def stalled(port: int, name: str, *first) -> RawWS:
    """A client that sent HELLO (and ``first``) and then never reads."""
    ws = await RawWS.open("127.0.0.1", port, rcvbuf=4096)
    ws.writer.transport.pause_reading()
    ws.send_binary(encode_frame(Hello(name=name)))
    for msg in first:
        ws.send_binary(encode_frame(msg))
    return ws


async def test_a_get_flood_that_is_never_read_is_closed_at_its_cap(router_process):
    rp = router_process("--max-pending-output", "4194304")
    w, _, _ = await connect_hello(rp.url, "writer")
    await w.send(encode_frame(Set("/big", BIG), qos=1))
    await recv_until(w, lambda m: isinstance(m, Ack), 3.0)
    rss0 = router_rss_mb(rp)
    flood = await stalled(rp.port, "flood")
    peak = rss0
    try:
        get = masked(encode_frame(Get("/big")))
        for _ in range(44):                      # 44,000 GETs: 2.6 GB of answers if kept
            if flood.writer.is_closing():
                break
            flood.writer.write(get * 1000)
            try:
                await asyncio.wait_for(flood.writer.drain(), 2.0)
            except (ConnectionError, asyncio.TimeoutError):
                break
            peak = max(peak, router_rss_mb(rp))
        await asyncio.sleep(0.5)
        peak = max(peak, router_rss_mb(rp))
        # it was closed at the cap: what the kernel holds, then the close frame (or the abort)
        flood.writer.transport.resume_reading()
        r = Reader(flood)
        try:
            await asyncio.wait_for(r.task, 10.0)
        except ConnectionError:
            pass
        assert r.closed_with is None or (r.closed_with[:2] == b"\x03\xf0"
                                         and b"max_pending_output" in r.closed_with), r.closed_with
        rtt = await set_ack_works(rp.url)
        print(f"\nGET flood of a 60 KB param, never read: router RSS {rss0:.1f} MB -> peak "
              f"{peak:.1f} MB (max_pending_output 4 MiB); a new client's connect+SET->ACK took {rtt * 1000:.1f} ms")
        assert peak - rss0 < 48
    finally:
        flood.close()
        await w.close()


@pytest.mark.slow
async def test_a_thousand_stalled_subscribers_under_60_kb_writes(router_process):
    rp = router_process("--max-connections-per-ip", "0", "--max-connections", "0")
    w, _, _ = await connect_hello(rp.url, "writer")
    rss0 = router_rss_mb(rp)
    subs = []
    try:
        for i in range(1000):
            subs.append(await stalled(rp.port, f"s{i}", Subscribe(1, "/**")))
        await asyncio.sleep(1.0)
        rss1 = router_rss_mb(rp)
        peak = rss1
        for i in range(70):
            await w.send(encode_frame(Set(f"/w/{i % 5}", BIG)))
            if i % 10 == 9:
                await asyncio.sleep(0.1)
                peak = max(peak, router_rss_mb(rp))
        await asyncio.sleep(1.0)
        peak = max(peak, router_rss_mb(rp))
        rtt = await set_ack_works(rp.url)
        print(f"\n1,000 stalled /** subscribers, 70 writes of 60 KB: router RSS {rss0:.1f} MB, "
              f"{rss1:.1f} MB with them connected, peak {peak:.1f} MB after the writes "
              f"(unbounded: ~4 GB); a new client's connect+SET->ACK took {rtt * 1000:.1f} ms")
        # per connection: buffer_size + one waiting SET per address (5 x 60 KB) + the transport's
        assert peak - rss1 < 1000 * 0.75
    finally:
        for s in subs:
            s.close()
        await w.close()


@pytest.mark.slow
async def test_stalled_hellos_do_not_pin_the_whole_snapshot(router_process):
    rp = router_process()
    w = await RawWS.open("127.0.0.1", rp.port)
    await w.hello("writer")
    for start in range(0, 100_000, 10_000):
        w.writer.write(b"".join(masked(encode_frame(Set(f"/state/{i}", "s" * 40)))
                                for i in range(start, start + 10_000)))
        await w.writer.drain()
    w.send_binary(encode_frame(Set("/state/last", 1), qos=1))
    while not isinstance(await w.recv_msg(10.0), Ack):
        pass
    rss0 = router_rss_mb(rp)
    hellos = []
    try:
        for i in range(50):
            hellos.append(await stalled(rp.port, f"h{i}"))
        await asyncio.sleep(2.0)
        peak = router_rss_mb(rp)
        rtt = await set_ack_works(rp.url)
        print(f"\n50 stalled HELLOs with 100,000 params (~8 MB of snapshot each): router RSS "
              f"{rss0:.1f} MB -> {peak:.1f} MB; a new client's connect+SET->ACK took {rtt * 1000:.1f} ms")
        assert peak - rss0 < 50 * 1.5        # a snapshot step (256 KiB) + buffers each, not 8 MB
    finally:
        for h in hellos:
            h.close()
        w.close()
