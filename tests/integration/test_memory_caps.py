"""docs/operations.md "Slow subscribers and memory caps": the memory attacks of issue 12, each
against a real router process, with its RSS growth printed and bounded by the caps, while a
normal client's SET -> ACK keeps working.  The SET -> ACK times are printed, during each
attack (a client connected beforehand, one SET every 50 ms) and after it (a new client's
connect + SET -> ACK), never asserted: the machine running the tests may be busy."""
from __future__ import annotations

import asyncio
import statistics
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


class AckProbe:
    """A normal client, connected before an attack, that sends a SET with QoS 1 every 50 ms
    and times each ACK (each must come within 30 s).  ``await take()`` returns the times of
    the SETs sent since the previous call (waiting for the ACK of one still unanswered)."""

    def __init__(self, ws, address: str):
        self.ws, self.address = ws, address
        self.samples: list[float] = []
        self.stopping = False
        self.idle = asyncio.Event()         # no SET waiting for its ACK
        self.task = asyncio.ensure_future(self._run())

    @classmethod
    async def start(cls, url: str, address: str = "/probe/x") -> "AckProbe":
        ws, _, _ = await connect_hello(url, "probe")
        return cls(ws, address)

    async def _run(self):
        i = 0
        while not self.stopping:
            self.idle.clear()
            t0 = time.monotonic()
            await self.ws.send(encode_frame(Set(self.address, i), qos=1))
            ack, _ = await recv_until(self.ws, lambda m: isinstance(m, Ack), 30.0)
            assert ack.address == self.address
            self.samples.append(time.monotonic() - t0)
            self.idle.set()
            i += 1
            await asyncio.sleep(0.05)

    async def take(self) -> list[float]:
        answered = asyncio.ensure_future(self.idle.wait())
        await asyncio.wait([self.task, answered], timeout=35.0, return_when=asyncio.FIRST_COMPLETED)
        answered.cancel()
        if self.task.done():
            self.task.result()          # raises what stopped it (no ACK within 30 s, ...)
        samples, self.samples = self.samples, []
        return samples

    async def stop(self):
        # a flag, not cancel(): on Python 3.11 a cancel that lands as wait_for's receive
        # completes can be swallowed, and the loop would go on for ever
        self.stopping = True
        await asyncio.wait([self.task], timeout=35.0)
        if not self.task.done():
            self.task.cancel()
        elif not self.task.cancelled():
            self.task.exception()       # retrieved: take() reports failures
        await self.ws.close()


def figures(samples: list[float]) -> str:
    assert samples, "the probe got no ACK at all"
    return (f"{len(samples)} SET->ACK, median {statistics.median(samples) * 1000:.1f} ms, "
            f"max {max(samples) * 1000:.1f} ms")


def kernel_send_queues(port: int) -> tuple[int, int]:
    """(bytes, sockets holding some) in the kernel send queues of the router's sockets on
    ``port``: sent but not acknowledged, or not sent yet (``ss``'s Send-Q), from /proc/net/tcp."""
    total = busy = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                queued = int(fields[4].split(":")[0], 16)
                total += queued
                busy += queued > 0
    return total, busy


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
    probe = await AckProbe.start(rp.url)
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
        during = await probe.take()
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
              f"{peak:.1f} MB (max_pending_output 4 MiB); during the flood: {figures(during)}; "
              f"after it, a new client's connect+SET->ACK took {rtt * 1000:.1f} ms")
        assert peak - rss0 < 48
    finally:
        await probe.stop()
        flood.close()
        await w.close()


async def test_a_stalled_subscriber_holds_at_most_unsent_limit_in_the_kernel(router_process):
    """server.websocket.unsent_limit (16 KiB) bounds what the kernel holds for a client that
    does not read; with 0 the kernel grows the socket's send buffer on its own (MiBs)."""
    queued = {}
    for args in ((), ("--unsent-limit", "0")):
        rp = router_process(*args)
        w, _, _ = await connect_hello(rp.url, "writer")
        sub = await stalled(rp.port, "stalled", Subscribe(1, "/**"))
        try:
            await asyncio.sleep(0.3)
            for i in range(40):                 # 2.4 MB for it
                await w.send(encode_frame(Set(f"/w/{i % 5}", BIG)))
            await w.send(encode_frame(Set("/w/last", 1), qos=1))
            await recv_until(w, lambda m: isinstance(m, Ack), 10.0)
            await asyncio.sleep(0.3)
            queued[args], holding = kernel_send_queues(rp.port)
            assert holding >= 1                 # it does not read: its socket holds output
        finally:
            sub.close()
            await w.close()
    default, zero = queued[()], queued[("--unsent-limit", "0")]
    print(f"\none stalled subscriber, 40 writes of 60 KB: the kernel holds {default / 1024:.0f} KiB "
          f"for it (unsent_limit 16 KiB), {zero / 1024:.0f} KiB with --unsent-limit 0")
    assert default < 128 * 1024                 # 16 KiB unsent + its 4 KiB window + one segment
    assert zero > 4 * default


@pytest.mark.slow
async def test_a_thousand_stalled_subscribers_under_60_kb_writes(router_process):
    rp = router_process("--max-connections-per-ip", "0", "--max-connections", "0")
    w, _, _ = await connect_hello(rp.url, "writer")
    rss0 = router_rss_mb(rp)
    subs = []
    probe = None
    try:
        for i in range(1000):
            subs.append(await stalled(rp.port, f"s{i}", Subscribe(1, "/**")))
        await asyncio.sleep(1.0)
        rss1 = router_rss_mb(rp)
        peak = rss1
        probe = await AckProbe.start(rp.url)      # its SETs go to the 1,000 as well
        await asyncio.sleep(0.3)
        before = await probe.take()
        for i in range(70):
            await w.send(encode_frame(Set(f"/w/{i % 5}", BIG)))
            if i % 10 == 9:
                await asyncio.sleep(0.1)
                peak = max(peak, router_rss_mb(rp))
        during = await probe.take()
        await asyncio.sleep(1.0)
        after = await probe.take()
        await probe.stop()
        peak = max(peak, router_rss_mb(rp))
        queued, holding = kernel_send_queues(rp.port)
        rtt = await set_ack_works(rp.url)
        print(f"\n1,000 stalled /** subscribers, 70 writes of 60 KB: router RSS {rss0:.1f} MB, "
              f"{rss1:.1f} MB with them connected, peak {peak:.1f} MB after the writes "
              f"(unbounded: ~4 GB); kernel send queues {queued / 1e6:.1f} MB on {holding} sockets "
              f"(without unsent_limit: ~1.1 GB); probe before the writes: {figures(before)}; during the "
              f"writes: {figures(during)}; in the second after: {figures(after)}; then a new "
              f"client's connect+SET->ACK took {rtt * 1000:.1f} ms")
        # the attack is real: the subscribers do not read, so each socket holds output...
        assert holding >= 1000
        # ... but at most about unsent_limit (16 KiB) unsent + their receive window in flight,
        # not the MiBs Linux lets a send buffer grow to (net.ipv4.tcp_wmem)
        assert queued < 1000 * 128 * 1024
        # per connection: buffer_size + one waiting SET per address (5 x 60 KB) + the transport's
        assert peak - rss1 < 1000 * 0.75
    finally:
        if probe is not None:
            await probe.stop()
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
    probe = await AckProbe.start(rp.url)
    hellos = []
    try:
        for i in range(50):
            hellos.append(await stalled(rp.port, f"h{i}"))
        await asyncio.sleep(2.0)
        peak = router_rss_mb(rp)
        during = await probe.take()
        rtt = await set_ack_works(rp.url)
        print(f"\n50 stalled HELLOs with 100,000 params (~8 MB of snapshot each): router RSS "
              f"{rss0:.1f} MB -> {peak:.1f} MB; during the HELLOs and 2 s after: "
              f"{figures(during)}; then a new client's connect+SET->ACK took {rtt * 1000:.1f} ms")
        assert peak - rss0 < 50 * 1.5        # a snapshot step (256 KiB) + buffers each, not 8 MB
    finally:
        await probe.stop()
        for h in hellos:
            h.close()
        w.close()
