"""The ``durable`` scenario: what persistence costs (docs/persistence.md).

The same SET load against clasp-fast with ``--no-persistence`` and with a state file, at
QoS fire and at QoS commit.  Each client keeps ``window`` SETs in flight on its own
addresses and times every SET from the moment its block is written until its answer: its
own echo at QoS fire (the client subscribes to its addresses; the router sends a SET to
every matching session, the writer included), its ACK at QoS commit (sent once the SET's
transaction is on disk when persistence is on).  Answers of one client come back in the
order of its SETs, so send times are matched first in, first out.

``python -m bench.durable --url ws://127.0.0.1:7330 --qos 2`` drives a running router.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import time

from picows import WSListener, WSMsgType, ws_connect

from clasp_fast._native.wsclient import masked_frames
from clasp_fast.protocol import Hello, Set, Subscribe, encode_frame

ACK, SET = 0x50, 0x21
QOS_NAMES = {0: "fire", 2: "commit"}


class Client(WSListener):
    """One picows client: HELLO (and SUBSCRIBE to its addresses at QoS fire), then SET blocks."""

    def __init__(self, index: int, qos: int, addresses: int, block: int):
        self.qos, self.block = qos, block
        self.prefix = f"/durable/c{index}"
        frames = [encode_frame(Set(f"{self.prefix}/{i % addresses}", float(i)), qos=qos)
                  for i in range(block)]
        self.payload = masked_frames(frames)
        self.answer_type = ACK if qos else SET
        self.sent_at: collections.deque = collections.deque()   # [send time, frames left] per block
        self.inflight = 0
        self.answered = 0
        self.latencies: list[int] = []
        self.recording = False
        self.window = 0
        self.transport = None
        self.greeting = 0           # WELCOME and SNAPSHOT(s) still to skip
        self.room = asyncio.Event()

    def on_ws_frame(self, transport, frame):
        if frame.msg_type != WSMsgType.BINARY:
            return
        payload = frame.get_payload_as_memoryview()
        if len(payload) <= 4:
            return
        if self.greeting:
            self.greeting -= 1
            return
        if payload[4] != self.answer_type:
            return
        block = self.sent_at[0]
        block[1] -= 1
        if not block[1]:
            self.sent_at.popleft()
        if self.recording:
            self.latencies.append(time.perf_counter_ns() - block[0])
            self.answered += 1
        self.inflight -= 1
        if self.inflight + self.block <= self.window:
            self.room.set()

    async def open(self, url: str, subscribe: bool):
        self.transport, _ = await ws_connect(lambda: self, url,
                                             extra_headers={"Sec-WebSocket-Protocol": "clasp"})
        self.greeting = 2                    # WELCOME, SNAPSHOT
        greet = [encode_frame(Hello(name="durable-bench"))]
        if subscribe:
            greet.append(encode_frame(Subscribe(1, self.prefix + "/**")))
            self.greeting += 1               # its SNAPSHOT
        self.transport.underlying_transport.write(masked_frames(greet))

    async def run(self, window: int, stop_at: float):
        self.window = max(window, self.block)
        write = self.transport.underlying_transport.write
        while time.monotonic() < stop_at:
            while self.inflight + self.block <= self.window:
                self.sent_at.append([time.perf_counter_ns(), self.block])
                self.inflight += self.block
                write(self.payload)
            self.room.clear()
            try:
                await asyncio.wait_for(self.room.wait(), 5)
            except asyncio.TimeoutError:
                raise RuntimeError(f"no answer for 5 s with {self.inflight} SETs in flight") from None

    async def drain(self, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


def percentile(values: list[int], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] / 1e6


async def measure(url: str, qos: int, *, clients: int = 4, window: int = 1000, block: int = 50,
                  addresses: int = 1000, warmup: float = 0.5, duration: float = 2.0) -> dict:
    """SETs/s answered and answer latency (ms) at ``qos`` against the router at ``url``."""
    cs = [Client(i, qos, addresses, block) for i in range(clients)]
    await asyncio.gather(*(c.open(url, subscribe=qos == 0) for c in cs))
    await asyncio.sleep(0.2)
    start = time.monotonic()
    tasks = [asyncio.ensure_future(c.run(window, start + warmup + duration)) for c in cs]
    await asyncio.sleep(warmup)
    for c in cs:
        c.recording = True
    t0 = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    for c in cs:
        c.recording = False
    await asyncio.gather(*(c.drain() for c in cs))
    for c in cs:
        c.transport.disconnect()
    lat = [x for c in cs for x in c.latencies]
    return {"qos": QOS_NAMES.get(qos, str(qos)), "rate": sum(c.answered for c in cs) / elapsed,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "count": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.durable", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--qos", type=int, default=2, choices=(0, 2))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=2.0)
    args = ap.parse_args()
    import uvloop
    r = uvloop.run(measure(args.url, args.qos, clients=args.clients, duration=args.duration))
    print(f"QoS {r['qos']}: {r['rate']:,.0f} SET/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
          f"({r['count']:,} SETs timed)")


if __name__ == "__main__":
    main()
