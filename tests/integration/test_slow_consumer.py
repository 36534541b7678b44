"""docs/operations.md "Slow subscribers and memory caps": a subscriber that falls behind ends on
the router's latest value and revision for every address (SETs conflate), events to it are
dropped and counted (one ERROR 503), a subscriber that keeps up gets everything in order, and
router memory stays bounded by the caps whatever clients do."""
from __future__ import annotations

import asyncio
import struct
import time

from bench.procs import rss_kb, tree_pids
from clasp_fast.protocol import Error, Get, Publish, Set, Snapshot, Subscribe, encode_frame
from clasp_fast.protocol import messages as M

from tests.integration.conftest import RawWS, connect_hello, recv_msg, recv_until
from tests.support import wait_log_count
from tests.ws_framing import split_frames


def masked(payload: bytes) -> bytes:
    """A client binary frame with an all-zero masking key (valid, and no XOR to compute)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, 0x80 | n))
    elif n < 65536:
        head = bytes((0x82, 0x80 | 126)) + struct.pack(">H", n)
    else:
        head = bytes((0x82, 0x80 | 127)) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload


class Reader:
    """Reads a RawWS in the background; keeps every CLASP message, or hands each to ``on``."""

    def __init__(self, ws: RawWS, on=None):
        self.ws, self.on = ws, on
        self.messages: list = []
        self.closed_with = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        from clasp_fast.protocol import decode_frame
        buf = bytearray()
        while True:
            data = await self.ws.reader.read(1 << 20)
            if not data:
                return
            buf += data
            for op, _fin, payload in split_frames(buf):
                if op == 0x2:
                    m = decode_frame(payload).message
                    if self.on is None:
                        self.messages.append(m)
                    else:
                        self.on(m)
                elif op == 0x8:
                    self.closed_with = payload
                    return

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass


def router_rss_mb(rp) -> float:
    """The router's RSS: its process, and with --workers N its workers too."""
    return sum(rss_kb(pid) for pid in tree_pids(rp.proc.pid)) / 1024


async def quiet(reader: Reader, seconds: float = 0.7, limit: float = 20.0):
    """Waits until ``reader`` got nothing for ``seconds`` (at most ``limit``)."""
    t0 = time.monotonic()
    last = -1
    while time.monotonic() - t0 < limit:
        n = len(reader.messages)
        if n == last:
            return
        last = n
        await asyncio.sleep(seconds)


async def test_slow_subscriber_ends_on_the_latest_state_keeping_up_one_gets_all_in_order(router_process):
    rp = router_process()
    N, ADDRS, BATCH = 200_000, 100, 5_000

    slow = await RawWS.open("127.0.0.1", rp.port, rcvbuf=4096)
    await slow.hello("slowpoke")
    slow.send_binary(encode_frame(Subscribe(1, "/c/**")))
    slow.send_binary(encode_frame(Get("/c/none")))
    assert isinstance(await slow.recv_msg(), Error)
    slow.writer.transport.pause_reading()          # stops reading: the kernel buffers fill up

    fast_ws = await RawWS.open("127.0.0.1", rp.port)
    await fast_ws.hello("keeps-up")
    fast_ws.send_binary(encode_frame(Subscribe(1, "/c/**")))
    fast_ws.send_binary(encode_frame(Get("/c/none")))
    assert isinstance(await fast_ws.recv_msg(), Error)
    last_rev: dict[str, int] = {}
    fast_count = [0]
    order_broken = []

    def on_fast(m):
        if isinstance(m, Set):
            if m.revision != last_rev.get(m.address, 0) + 1:
                order_broken.append((m.address, last_rev.get(m.address), m.revision))
            last_rev[m.address] = m.revision
            fast_count[0] += 1
    fast = Reader(fast_ws, on_fast)

    pub = await RawWS.open("127.0.0.1", rp.port)
    await pub.hello("publisher")
    rss0 = router_rss_mb(rp)
    t0 = time.monotonic()
    peak = rss0
    try:
        # paced so the keeping-up subscriber can read: a batch, then wait for it to arrive
        for start in range(0, N, BATCH):
            pub.writer.write(b"".join(masked(encode_frame(Set(f"/c/{i % ADDRS}", i)))
                                      for i in range(start, start + BATCH)))
            await pub.writer.drain()
            deadline = time.monotonic() + 20
            while fast_count[0] < start + BATCH and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            peak = max(peak, router_rss_mb(rp))
        flood_s = time.monotonic() - t0
        # events to the slow one are dropped and counted
        pub.writer.write(b"".join(masked(encode_frame(Publish("/c/ev", signal=M.SignalType.EVENT,
                                                              value="e" * 200)))
                                  for _ in range(2_000)))
        await pub.writer.drain()
        await asyncio.sleep(0.3)
        peak = max(peak, router_rss_mb(rp))
        assert fast_count[0] == N, f"the keeping-up subscriber got {fast_count[0]} of {N}"
        assert not order_broken, order_broken[:5]

        # the slow one reads again: it ends on exactly the router's state
        slow.writer.transport.resume_reading()
        slow_r = Reader(slow)
        await quiet(slow_r)
        await slow_r.stop()
        final: dict[str, tuple] = {}
        events, errors = 0, []
        for m in slow_r.messages:
            if isinstance(m, Set):
                assert m.revision > final.get(m.address, (None, 0))[1], f"stale SET after newer: {m}"
                final[m.address] = (m.value, m.revision)
            elif isinstance(m, Publish):
                events += 1
            elif isinstance(m, Error):
                errors.append(m)
        for k in range(ADDRS):
            pub.send_binary(encode_frame(Get(f"/c/{k}")))
        state = {}
        while len(state) < ADDRS:
            msg = await pub.recv_msg(5.0)
            if isinstance(msg, Snapshot):
                state.update({p.address: (p.value, p.revision) for p in msg.params})
        assert final == state
        sets_received = sum(1 for m in slow_r.messages if isinstance(m, Set))
        assert events < 2_000, "every event reached a stalled subscriber"
        overflow = [e for e in errors if e.code == 503]
        assert len(overflow) == 1 and "event(s) dropped" in overflow[0].message, errors
        print(f"\n200,000 SETs over 100 addresses in {flood_s:.1f} s (paced for the keeping-up "
              f"subscriber): slow subscriber received {sets_received} SETs and {events} of 2,000 "
              f"events ({overflow[0].message.split(':')[1].split('(')[0].strip()} at the notice); "
              f"router RSS {rss0:.1f} MB before, peak {peak:.1f} MB")
        assert peak - rss0 < 64, f"router RSS grew {peak - rss0:.1f} MB"
    finally:
        await fast.stop()
        slow.close()
        pub.close()
        fast_ws.close()


async def test_a_subscriber_that_never_drains_is_closed_after_slow_consumer_timeout(router_process):
    rp = router_process("--slow-consumer-timeout", "1")
    slow = await RawWS.open("127.0.0.1", rp.port, rcvbuf=4096)
    await slow.hello("stuck")
    slow.send_binary(encode_frame(Subscribe(1, "/t/**")))
    slow.send_binary(encode_frame(Get("/t/none")))
    assert isinstance(await slow.recv_msg(), Error)
    slow.writer.transport.pause_reading()
    pub, _, _ = await connect_hello(rp.url, "publisher")
    try:
        # 12 MB to 10 addresses: more than the kernel buffers take, so the router's side stalls
        for i in range(200):
            await pub.send(encode_frame(Set(f"/t/{i % 10}", ["x" * 60_000, i])))
        t0 = time.monotonic()
        # not reading for slow_consumer_timeout (1 s; the check runs once a second): closed,
        # and as it never reads the close, its socket is aborted CLOSE_GRACE (3 s) later
        await wait_log_count(rp, "did not complete the close within 3 s; aborted", 1, timeout=8.0)
        slow.writer.transport.resume_reading()
        r = Reader(slow)
        try:
            await asyncio.wait_for(r.task, 3.0)
        except ConnectionError:
            pass                                # reset by the abort: fine
        assert time.monotonic() - t0 < 9.5
        if r.closed_with is not None:
            assert r.closed_with[:2] == struct.pack(">H", 1008) and b"slow consumer" in r.closed_with
        # the publisher is served as before
        await pub.send(encode_frame(Set("/t/after", 1), qos=1))
        ack, _ = await recv_until(pub, lambda m: isinstance(m, M.Ack), 3.0)
        assert ack.address == "/t/after"
    finally:
        slow.close()
        await pub.close()
