"""A load-generator process: ``python -m bench.gen '<JSON spec>'``
(``clasp_fast_bench.gen`` when installed).

Started (pinned, in its own process group) by the bench controller.  It connects
its clients, prints ``{"event": "ready", ...}`` on stdout, then obeys one JSON
command per stdin line, answering each with one JSON line.  It exits on
``{"cmd": "exit"}``, on end of stdin, or when the controller dies (PDEATHSIG).

Roles (``spec["role"]``):

* ``subs``: N subscriber connections (native ``Receiver``s): HELLO, SUBSCRIBE,
  then a CLASP PING whose PONG proves the subscription is in place.  Each publishes
  its delivery count in a slot of the shared ``Board``; it checks per-publisher
  order (sequence words) and may record latency stamps.
* ``pubs``: M publisher connections driven by a native ``Pump``: pre-masked frame
  blocks written with one syscall each, at most ``window`` messages in flight
  (``Σ sent − min over subscribers of received``), waiting on an eventfd that the
  subscribers poke when they make progress.
* ``latency``: one publisher and one subscriber in this process; messages go out on a
  fixed-rate schedule, each stamped with its *scheduled* send time (no coordinated
  omission); the loop spins (``call_soon``) so sends are on time and nothing here
  sleeps through a delivery.
* ``storm``: opens connections at a fixed rate with a lean asyncio client (upgrade
  request, HELLO after the 101); TCP connect → WELCOME per connection.
* ``idle``: opens N connections (HELLO, WELCOME) and keeps them open.
* ``calibrate``: finds where a value's last bytes land in a delivered SET and PUBLISH
  (the router appends a revision to SET; a bare forwarder appends nothing).
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import mmap
import os
import socket
import ssl
import sys
import time
import traceback
from typing import Optional

import uvloop
from picows import WSAutoPingStrategy, WSMsgType, ws_connect
from picows.picows import WSProtocol
from picows.url import parse_url

from ._loadgen import Board, Pump, Receiver, board_size, masked_frames, monotonic_ns
from clasp_fast._native.tlsstream import TLSStream, unusable
from clasp_fast.protocol import (Hello, Ping, Publish, Set, SignalType, Subscribe, decode_frame,
                                 encode_frame)

IP_BIND_ADDRESS_NO_PORT = 24
HELLO = encode_frame(Hello("bench"))
PING = encode_frame(Ping())
VALUE_SIZE = 32          # bytes values: [16 filler][8 sequence word][8 send time]
STAMP_FROM_END = 0       # in the publisher's frame (the value ends the frame)
SEQ_FROM_END = 8


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    sys.stderr.write(f"[gen {os.getpid()}] {msg}\n")
    sys.stderr.flush()


class Sources:
    """A picows socket_factory binding each new connection to the next source address
    (127.0.0.x), so big connection counts do not run out of ephemeral ports."""

    def __init__(self, ips):
        self.ips = list(ips) or ["127.0.0.1"]
        self.i = 0

    def __call__(self, parsed_url):
        ip = self.ips[self.i % len(self.ips)]
        self.i += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        except OSError:
            pass
        s.bind((ip, 0))
        return s


def frame_value(filler: bytes = b"v", size: int = 32) -> bytes:
    """A value of ``size`` bytes: ``filler`` repeated, then 16 bytes for the sequence word
    and the send stamp (so a long value compresses well)."""
    return (filler * size)[:max(0, size - 16)] + bytes(16)


def build_frames(spec: dict, conn: int) -> list[bytes]:
    """The CLASP frames of publisher connection ``conn``: ``spec['addresses']`` addresses
    from the template (``{p}``: publisher number, ``{i}``: address number)."""
    kind = spec.get("kind", "set")
    tmpl = spec["address"]
    n = int(spec.get("addresses", 1))
    value = frame_value(size=int(spec.get("value_size", 32)))
    out = []
    for i in range(n):
        addr = tmpl.format(p=conn + spec.get("pub_base", 0), i=i)
        if kind == "set":
            out.append(encode_frame(Set(addr, value)))
        else:
            out.append(encode_frame(Publish(addr, SignalType.EVENT, value)))
    return out


async def wait_ctl(rx: Receiver, pred, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if rx.transport is not None and rx.transport.is_disconnected:
            raise ConnectionError("disconnected while waiting for the router")
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError("no answer from the router")
        fut = loop.create_future()
        rx.ctl_waiter = fut
        if pred():
            rx.ctl_waiter = None
            break
        try:
            await asyncio.wait_for(fut, min(left, 0.5))
        except asyncio.TimeoutError:
            pass


class Base:
    def __init__(self, spec: dict):
        self.spec = spec
        self.url = spec["url"]
        self.hello_frame = encode_frame(Hello("bench", token=spec["token"])) if spec.get("token") else HELLO
        self.sources = Sources(spec.get("ips", ["127.0.0.1"]))
        self.ssl = None
        if self.url.startswith("wss:"):
            # the bench's server has a throw-away self-signed certificate
            self.ssl = ssl.create_default_context()
            self.ssl.check_hostname = False
            self.ssl.verify_mode = ssl.CERT_NONE
            self.lean_tls = unusable(self.ssl) is None
        self.headers = {"Sec-WebSocket-Protocol": "clasp"}
        if spec.get("deflate"):
            self.headers["Sec-WebSocket-Extensions"] = "permessage-deflate"
        self.board = None
        self.transports = []
        if spec.get("board"):
            fd = os.open(spec["board"], os.O_RDWR)
            try:
                self.mm = mmap.mmap(fd, board_size(spec["board_subs"]))
            finally:
                os.close(fd)
            self.board = Board(self.mm, spec["board_subs"])

    async def connect(self, rx: Receiver, read_buffer: int = 16384, raw: bool = False,
                      url: Optional[str] = None):
        """A picows client connection (to ``url``, default the spec's); ``raw``: on uvloop's
        own TCP transport, so that ``rx.take_over()`` can later replace picows with the
        native RawReader."""
        if self.ssl is not None and self.lean_tls:
            return await self.connect_tls(rx, read_buffer, url or self.url)
        tr, _ = await ws_connect(lambda: rx, url or self.url, socket_factory=self.sources,
                                 ssl_context=self.ssl, extra_headers=self.headers,
                                 websocket_handshake_timeout=20, read_buffer_init_size=read_buffer,
                                 enable_auto_pong=True, use_aiofastnet=False if raw else None)
        self.transports.append(tr)
        return tr

    async def connect_tls(self, rx: Receiver, read_buffer: int, url: str):
        """``wss://`` with clasp-fast's own TLS layer (``TLSStream``, client end) under
        picows, instead of picows' TLS (aiofastnet's or uvloop's).  The generator decrypts
        every delivery of a wss:// fan-out on its own cores: with a heavier TLS than the
        server's, the scenario would measure the generator (``docs/benchmarks.md``)."""
        u = parse_url(url)
        loop = asyncio.get_running_loop()
        sock = self.sources(u)
        sock.setblocking(False)
        await loop.sock_connect(sock, (u.host, u.port))
        proto = WSProtocol(u.netloc, u.resource_name, True, lambda: rx, logging.getLogger("picows.client"),
                           True, 20, False, 10.0, 10.0, WSAutoPingStrategy.PING_WHEN_IDLE, True,
                           10 * 1024 * 1024, self.headers, read_buffer)
        await loop.create_connection(lambda: TLSStream(self.ssl, proto, u.host), sock=sock)
        await asyncio.wait_for(proto.wait_until_handshake_complete(), 20)
        self.transports.append(proto.transport)
        return proto.transport

    async def hello(self, rx: Receiver, read_buffer: int = 16384, raw: bool = False,
                    url: Optional[str] = None):
        tr = await self.connect(rx, read_buffer, raw, url)
        tr.send(WSMsgType.BINARY, self.hello_frame)
        await wait_ctl(rx, lambda: rx.welcomed, 20)
        return tr

    async def gather_limited(self, coros, limit: int = 200):
        sem = asyncio.Semaphore(limit)

        async def one(c):
            async with sem:
                return await c
        return await asyncio.gather(*(one(c) for c in coros))

    async def setup(self) -> dict:
        return {}

    async def handle(self, cmd: dict) -> dict:
        raise ValueError(f"unknown command {cmd.get('cmd')!r}")

    async def close(self) -> None:
        for tr in self.transports:
            try:
                tr.disconnect(False)
            except Exception:
                pass
        await asyncio.sleep(0.05)


def _errors_text(rxs) -> list[str]:
    out = []
    for rx in rxs:
        for raw in rx.error_frames:
            try:
                m = decode_frame(raw).message
                out.append(f"ERROR {m.code}: {m.message}")
            except Exception:
                out.append(f"ERROR frame {raw[:40].hex()}")
            if len(out) >= 5:
                return out
    return out


class Subs(Base):
    COMMANDS = {"stats", "reset_hist"}

    async def setup(self) -> dict:
        s = self.spec
        n = s["n"]
        patterns = s.get("patterns", ["/**"])
        self.rxs = [Receiver(s.get("stamp_offset", -1), s.get("seq_offset", -1), deliveries_only=True,
                             max_pubs=s.get("max_pubs", 1)) for _ in range(n)]
        if self.board is not None:
            for i, rx in enumerate(self.rxs):
                rx.attach(self.board, s["slot_base"] + i)

        raw = s.get("raw", True)

        async def one(i, rx):
            tr = await self.hello(rx, s.get("read_buffer", 65536), raw)
            tr.send(WSMsgType.BINARY, encode_frame(Subscribe(1, patterns[i % len(patterns)])))
            tr.send(WSMsgType.BINARY, PING)
            await wait_ctl(rx, lambda: rx.pongs >= 1, 20)
            if raw:
                rx.take_over()
        await self.gather_limited([one(i, rx) for i, rx in enumerate(self.rxs)])
        return {"subs": n, "raw": raw}

    def stats(self) -> dict:
        hist: dict = {}
        if self.spec.get("stamp_offset", -1) >= 0:
            for rx in self.rxs:
                for b, c in rx.histogram_raw().items():
                    hist[b] = hist.get(b, 0) + c
        return {"count": sum(rx.count for rx in self.rxs),
                "min": min(rx.count for rx in self.rxs),
                "max": max(rx.count for rx in self.rxs),
                "out_of_order": sum(rx.out_of_order for rx in self.rxs),
                "gaps": sum(rx.gaps for rx in self.rxs),
                "errors": sum(rx.errors for rx in self.rxs),
                "error_samples": _errors_text(self.rxs),
                "disconnected": sum(1 for rx in self.rxs
                                    if rx.lost or rx.transport is None or rx.transport.is_disconnected),
                "hist": {str(k): v for k, v in hist.items()}}

    async def handle(self, cmd: dict) -> dict:
        if cmd["cmd"] == "stats":
            return self.stats()
        if cmd["cmd"] == "reset_hist":
            for rx in self.rxs:
                rx.reset_histogram()
            return {}
        return await super().handle(cmd)


class Pubs(Base):
    COMMANDS = {"probe", "run", "stop", "pub_stats"}

    async def setup(self) -> dict:
        s = self.spec
        n = s["n"]
        self.rxs = [Receiver(deliveries_only=True) for _ in range(n)]
        trs = await self.gather_limited([self.hello(rx) for rx in self.rxs])
        block = s.get("block", 100)
        frames = []
        for j in range(n):
            fl = build_frames(s, j)
            if len(fl) < 8 * block:         # a template of several blocks: one write per block
                fl = fl * -(-8 * block // len(fl))
            frames.append(fl)
        self.pump = Pump(list(trs), frames, block,
                         stamp_from_end=STAMP_FROM_END if s.get("stamp", False) else -1,
                         seq_from_end=SEQ_FROM_END,
                         pub_ids=[s.get("pub_base", 0) + j for j in range(n)],
                         board=self.board, pub_index=s.get("pub_index", 0))
        self.efd = s.get("eventfd", -1)
        self.wake = None
        self.task = None
        self.waits = 0
        if self.efd >= 0:
            os.set_blocking(self.efd, False)
            asyncio.get_running_loop().add_reader(self.efd, self._on_efd)
        return {"pubs": n, "frame_size": len(frames[0][0])}

    def _on_efd(self) -> None:
        try:
            os.read(self.efd, 8)
        except BlockingIOError:
            pass
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def _wait_wake(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.wake = fut = loop.create_future()
        h = loop.call_later(timeout, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            h.cancel()
            self.wake = None

    async def _run(self) -> None:
        pump, board = self.pump, self.board
        budget = max(pump.block, int(board.window))
        while True:
            n, state = pump.run(budget)
            if state == 2:
                return
            if state == 1:
                if board.window - pump.arm() >= pump.block:
                    pump.disarm()
                    continue
                self.waits += 1
                await self._wait_wake(0.02)
                pump.disarm()
            else:
                await asyncio.sleep(0)

    async def handle(self, cmd: dict) -> dict:
        c = cmd["cmd"]
        if c == "probe":
            self.pump.send_one(0)
            return {}
        if c == "run":
            self.run_base = (self.pump.sent, self.pump.writes, self.waits)
            self.task = asyncio.ensure_future(self._run())
            return {}
        if c == "stop":            # the controller has raised the board's stop flag
            if self.task is not None:
                try:
                    await asyncio.wait_for(self.task, 10)
                finally:
                    self.task = None
            b = getattr(self, "run_base", (0, 0, 0))
            return {"sent": self.pump.sent - b[0], "writes": self.pump.writes - b[1],
                    "waits": self.waits - b[2]}
        if c == "pub_stats":
            return {"sent": self.pump.sent, "writes": self.pump.writes, "waits": self.waits,
                    "errors": sum(rx.errors for rx in self.rxs),
                    "error_samples": _errors_text(self.rxs)}
        return await super().handle(cmd)


class Latency(Base):
    async def setup(self) -> dict:
        s = self.spec
        self.rx = Receiver(s["stamp_offset"], s["seq_offset"], deliveries_only=True)
        raw = s.get("raw", True)
        tr = await self.hello(self.rx, 65536, raw)
        tr.send(WSMsgType.BINARY, encode_frame(Subscribe(1, s.get("pattern", "/**"))))
        tr.send(WSMsgType.BINARY, PING)
        await wait_ctl(self.rx, lambda: self.rx.pongs >= 1, 20)
        if raw:
            self.rx.take_over()
        self.prx = Receiver(deliveries_only=True)
        ptr = await self.hello(self.prx, url=s.get("pub_url"))      # (two nodes: the other one)
        frames = build_frames(s, 0)
        frames = frames * -(-4096 // len(frames))     # a template of ≥ 4096 frames
        self.pump = Pump([ptr], [frames], 4096, stamp_from_end=STAMP_FROM_END,
                         seq_from_end=SEQ_FROM_END)
        # a first message through, so the path is warm and the subscription is in place
        self.pump.send_one(0)
        deadline = time.monotonic() + 10
        while self.rx.count < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return {}

    async def measure(self, rate: int, warmup: float, duration: float) -> dict:
        loop = asyncio.get_running_loop()
        rx, pump = self.rx, self.pump
        done = loop.create_future()
        c0, s0, ooo0, gaps0 = rx.count, pump.sent, rx.out_of_order, rx.gaps
        t0 = monotonic_ns()
        t_warm = t0 + int(warmup * 1e9)
        t_end = t_warm + int(duration * 1e9)
        st = {"warm": False, "iters": 0, "c1": 0, "s1": 0}
        pump.start_schedule(rate, t0)

        def spin():
            now = monotonic_ns()
            try:
                pump.send_due(now)
            except Exception as exc:           # the router closed the connection
                if not done.done():
                    done.set_exception(exc)
                return
            st["iters"] += 1
            if not st["warm"] and now >= t_warm:
                st["warm"] = True
                rx.reset_histogram()
                st["c1"], st["s1"] = rx.count, pump.sent
            if now >= t_end:
                if not done.done():
                    done.set_result(now)
                return
            loop.call_soon(spin)

        loop.call_soon(spin)
        t_stop = await done
        sent_total = pump.sent - s0
        sent_measured = pump.sent - st["s1"]
        # drain: wait for the last messages (up to 1 s)
        deadline = time.monotonic() + 1.0
        while rx.count - c0 < sent_total and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        return {"rate": rate, "sent": sent_measured,
                "received": rx.count - st["c1"], "lost": max(0, sent_total - (rx.count - c0)),
                "out_of_order": rx.out_of_order - ooo0, "gaps": rx.gaps - gaps0,
                "achieved": sent_measured / max(1e-9, (t_stop - t_warm) / 1e9),
                "iterations": st["iters"], "errors": rx.errors + self.prx.errors,
                "error_samples": _errors_text([rx, self.prx]),
                "hist": {str(k): v for k, v in rx.histogram_raw().items()}}

    async def handle(self, cmd: dict) -> dict:
        if cmd["cmd"] == "measure":
            return await self.measure(int(cmd["rate"]), float(cmd["warmup"]), float(cmd["duration"]))
        return await super().handle(cmd)


class StormConn(asyncio.Protocol):
    """A lean WebSocket client for the connection storm: the upgrade request on connect,
    HELLO (pre-masked) after the 101, and the time the WELCOME frame arrives.  Much less
    client-side work per connection than a full picows client, so the generator does not
    add its own queueing to the connect → WELCOME time."""

    def __init__(self, request: bytes, hello: bytes, done):
        self.request = request
        self.hello = hello
        self.done = done
        self.buf = b""
        self.upgraded = False
        self.welcome_ns = 0
        self.upgraded_ns = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        if self.welcome_ns:
            return
        self.buf += data
        if not self.upgraded:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                self._finish(ConnectionError(self.buf[:60].decode(errors="replace")))
                return
            self.upgraded = True
            self.upgraded_ns = monotonic_ns()
            self.buf = self.buf[i + 4:]
            self.transport.write(self.hello)
        buf = self.buf
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            n = buf[1] & 0x7F
            hl = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n = int.from_bytes(buf[2:4], "big")
                hl = 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n = int.from_bytes(buf[2:10], "big")
                hl = 10
            if len(buf) < hl + n:
                break
            payload = buf[hl:hl + n]
            buf = buf[hl + n:]
            if opcode == 2 and n > 4:
                off = 12 if payload[1] & 0x20 else 4
                if payload[off] == 0x02:
                    self.welcome_ns = monotonic_ns()
                    self._finish(None)
                    return
        self.buf = buf

    def _finish(self, exc):
        if not self.done.done():
            if exc is None:
                self.done.set_result(self.welcome_ns)
            else:
                self.done.set_exception(exc)

    def connection_lost(self, exc):
        self._finish(exc or ConnectionError("closed before WELCOME"))


class Storm(Base):
    async def setup(self) -> dict:
        self.open = []
        return {}

    async def storm(self, rate: float, count: int) -> dict:
        import base64
        loop = asyncio.get_running_loop()
        host, port = self.url.split("//", 1)[1].rstrip("/").split(":")
        port = int(port)
        request = (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: "
                   f"{base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: clasp\r\n\r\n").encode()
        hello = masked_frames([HELLO])
        lat, sched_lat, failures = [], [], []
        phases = {"tcp_connect": [], "upgrade": [], "hello_to_welcome": []}
        start = loop.time() + 0.01
        start_ns = monotonic_ns() + 10_000_000

        async def one(k: int):
            done = loop.create_future()
            t0 = monotonic_ns()
            try:
                sock = self.sources(None)
                sock.setblocking(False)
                await loop.sock_connect(sock, (host, port))
                tc = monotonic_ns()
                tr, proto = await loop.create_connection(
                    lambda: StormConn(request, hello, done), sock=sock)
                self.open.append(tr)
                t1 = await asyncio.wait_for(done, 10)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            lat.append(t1 - t0)
            phases["tcp_connect"].append(tc - t0)
            phases["upgrade"].append(proto.upgraded_ns - tc)
            phases["hello_to_welcome"].append(t1 - proto.upgraded_ns)
            sched_lat.append(t1 - (start_ns + int(k * 1e9 / rate)))

        tasks = []
        for k in range(count):
            delay = start + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(k)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
        return {"count": count, "ok": len(lat), "failures": len(failures),
                "failure_samples": failures[:5], "latencies_ns": lat,
                "sched_latencies_ns": sched_lat, "elapsed": elapsed,
                "phases_ns": phases}

    async def handle(self, cmd: dict) -> dict:
        if cmd["cmd"] == "storm":
            return await self.storm(float(cmd["rate"]), int(cmd["count"]))
        if cmd["cmd"] == "close_all":
            for tr in self.open:
                tr.abort()
            self.open = []
            await asyncio.sleep(0.2)
            return {}
        return await super().handle(cmd)

    async def close(self) -> None:
        for tr in self.open:
            tr.abort()


class Idle(Base):
    async def setup(self) -> dict:
        n = self.spec["n"]
        self.rxs = [Receiver(deliveries_only=True) for _ in range(n)]
        results = await self.gather_limited(
            [self._one(rx) for rx in self.rxs], self.spec.get("concurrency", 100))
        failed = [r for r in results if r]
        return {"open": n - len(failed), "failures": len(failed), "failure_samples": failed[:5]}

    async def _one(self, rx):
        try:
            await self.hello(rx, self.spec.get("read_buffer", 4096))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    async def handle(self, cmd: dict) -> dict:
        if cmd["cmd"] == "count":
            return {"open": sum(1 for rx in self.rxs
                                if rx.transport is not None and not rx.transport.is_disconnected)}
        return await super().handle(cmd)


class Calibrate(Base):
    async def setup(self) -> dict:
        rx = Receiver(deliveries_only=True, capture=True)
        tr = await self.hello(rx, 65536)
        tr.send(WSMsgType.BINARY, encode_frame(Subscribe(1, "/bench/**")))   # (token mode: in scope)
        tr.send(WSMsgType.BINARY, PING)
        await wait_ctl(rx, lambda: rx.pongs >= 1, 20)
        prx = Receiver(deliveries_only=True)
        ptr = await self.hello(prx)
        marker = b"\xa5STAMP\x5a\xc3"
        value = b"m" * 24 + marker
        out = {}
        for kind, frame in (("set", encode_frame(Set("/bench/calibrate", value))),
                            ("publish", encode_frame(Publish("/bench/calibrate", SignalType.EVENT,
                                                             value)))):
            before = rx.count
            ptr.send(WSMsgType.BINARY, frame)
            deadline = time.monotonic() + 5
            while rx.count == before and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            payload = rx.last_payload
            if rx.count == before or payload is None or marker not in payload:
                out[kind] = None
            else:
                out[kind] = len(payload) - (payload.rindex(marker) + len(marker))
            out[kind + "_frame_size"] = len(payload) if payload else None
        return out


class Multi(Base):
    """Several roles in one process (e.g. a publisher next to its subscribers, which saves
    a context switch per wake-up on the shared generator core)."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        common = {k: v for k, v in spec.items() if k not in ("role", "parts")}
        self.parts = [ROLES[p["role"]]({**common, **p}) for p in spec["parts"]]

    async def setup(self) -> dict:
        info = {}
        for part in self.parts:
            info.update(await part.setup())
        return info

    async def handle(self, cmd: dict) -> dict:
        for part in self.parts:
            if cmd["cmd"] in getattr(part, "COMMANDS", ()):
                return await part.handle(cmd)
        raise ValueError(f"unknown command {cmd.get('cmd')!r}")

    async def close(self) -> None:
        for part in self.parts:
            await part.close()


ROLES = {"subs": Subs, "pubs": Pubs, "latency": Latency, "storm": Storm, "idle": Idle,
         "calibrate": Calibrate, "multi": Multi}


async def amain(spec: dict) -> int:
    loop = asyncio.get_running_loop()
    import logging
    logging.getLogger("picows").setLevel(logging.ERROR)
    role = ROLES[spec["role"]](spec)
    try:
        info = await asyncio.wait_for(role.setup(), spec.get("setup_timeout", 120))
    except Exception as exc:
        emit({"event": "error", "error": f"setup failed: {type(exc).__name__}: {exc}"})
        log(traceback.format_exc())
        return 1
    emit({"event": "ready", **info})

    lines: asyncio.Queue = asyncio.Queue()
    buf = bytearray()
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)

    def on_stdin():
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            loop.remove_reader(fd)
            lines.put_nowait(None)
            return
        buf.extend(chunk)
        while b"\n" in buf:
            i = buf.index(b"\n")
            line = bytes(buf[:i])
            del buf[:i + 1]
            lines.put_nowait(line)
    loop.add_reader(fd, on_stdin)

    while True:
        line = await lines.get()
        if line is None:
            break
        cmd = json.loads(line)
        if cmd.get("cmd") == "exit":
            break
        try:
            res = await role.handle(cmd)
            emit({"event": "ok", **res})
        except Exception as exc:
            log(traceback.format_exc())
            emit({"event": "error", "error": f"{type(exc).__name__}: {exc}"})
    await role.close()
    return 0


def main() -> int:
    # No cyclic GC in the generator: a full collection over thousands of connections'
    # objects pauses the loop for milliseconds, which would show up as router latency.
    # A generator process lives for one scenario, so what cycles leak meanwhile is small.
    gc.disable()
    spec = json.loads(sys.argv[1])
    return uvloop.run(amain(spec))


if __name__ == "__main__":
    sys.exit(main())
