"""Helpers for the ``--workers N`` integration tests (tests/integration/test_workers_*.py).

* ``start_cluster(router_process, workers, *args)``: clasp-fast with N workers and
  ``--log-level debug``, so that every worker logs
  ``w<index> clasp_fast.server: connection from <ip>:<port> ...`` for each accepted
  WebSocket connection.
* ``ConnLog``: reads those lines, so a test can say which worker a client landed on
  (matched by the client's local address and port).
* ``Client``: a small asyncio WebSocket client (tests/ws_framing.py, so 30 of them can read
  hundreds of thousands of routed frames per second in one test process).  It records every
  CLASP message it receives (decoded with clasp-fast's codec), answers pings, and can bind
  a source address.  ``Client.open`` raises ``UpgradeRefused(status, head, body)`` when the
  router answers the upgrade with something other than 101.
* ``worker_pids(rp)``: {worker index: pid} of the supervisor's children.  Each worker keeps
  only its own bus listener (abstract Unix socket ``@clasp-fast.<supervisor pid>.<index>``),
  so the index is read from the worker's open sockets (/proc/<pid>/fd + /proc/net/unix).

Every wait here is bounded.
"""
from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import struct
import time
from typing import Any, Callable, Iterable, Optional

from clasp_fast.protocol import (Ack, Error, Get, Hello, Ping, Pong, Snapshot, Welcome,
                                 decode_frame, encode_frame)

from tests.support import alive, children, wait_changed, wait_log_count, wait_until  # noqa: F401
from tests.ws_framing import (UpgradeRefused, client_frame, close_code_of, parse_response_head,
                              split_frames, upgrade_request)
CONN_RE = re.compile(r" w(\d+) clasp_fast\.server: connection from ([0-9.]+):(\d+) ")
# picows logs each upgraded connection under its own logger name, and "Disconnected" under
# the same name at the start of connection_lost; in the same call the router then closes the
# session (releasing its locks) and the connection slot is given back
CLOSED_RE = re.compile(r" w(\d+) clasp_fast\.server: connection from ([0-9.]+):(\d+) closed ")


def start_cluster(router_process, workers: int, *args: str):
    """clasp-fast with ``workers`` workers, debug logging (one log line per accepted
    connection, naming the worker)."""
    return router_process(*args, "--log-level", "debug", workers=workers)


# --- which worker holds a connection ----------------------------------------------------

class ConnLog:
    """Indexes the router's "connection from ip:port" debug lines, by (ip, port)."""

    def __init__(self, rp):
        self.rp = rp
        self.scanned = 0
        self.seen: dict[tuple[str, int], list[tuple[int, int]]] = collections.defaultdict(list)
        self.closed: dict[tuple[str, int], list[tuple[int, int]]] = collections.defaultdict(list)

    def mark(self) -> int:
        """A position in the log: only lines after it are considered for a new connection."""
        return len(self.rp.output)

    def _scan(self) -> None:
        lines = self.rp.output
        end = len(lines)
        for i in range(self.scanned, end):
            m = CLOSED_RE.search(lines[i])
            if m:
                self.closed[(m.group(2), int(m.group(3)))].append((i, int(m.group(1))))
                continue
            m = CONN_RE.search(lines[i])
            if m:
                self.seen[(m.group(2), int(m.group(3)))].append((i, int(m.group(1))))
        self.scanned = end

    async def wait_disconnected(self, sockname: tuple, since: int = 0, timeout: float = 5.0) -> None:
        """Waits until the worker that accepted ``sockname`` (at or after ``since``) logged
        "connection from <ip>:<port> closed": its session (subscriptions, locks) is closed by
        then; the connection slot is released later in that same call."""
        key = (sockname[0], int(sockname[1]))

        def closed():
            self._scan()
            return any(i >= since for i, _ in self.closed.get(key, ()))
        await wait_until(closed, timeout, f"log line ending the connection from {key[0]}:{key[1]}",
                         poll=0.02)

    async def worker_of(self, sockname: tuple, since: int = 0, timeout: float = 5.0) -> int:
        """The index of the worker that logged accepting the connection from ``sockname``
        (our local (ip, port)) at or after log position ``since``."""
        key = (sockname[0], int(sockname[1]))

        def found():
            self._scan()
            return [w for i, w in self.seen.get(key, ()) if i >= since]
        return (await wait_until(found, timeout, f"'connection from {key[0]}:{key[1]}' line in the "
                                 f"router log", poll=0.02))[-1]


def spread(placed: Iterable[tuple[str, int]]) -> str:
    """'worker 0: a, b | worker 1: c' for [(client name, worker)]."""
    by = collections.defaultdict(list)
    for name, w in placed:
        by[w].append(name)
    return " | ".join(f"worker {w}: {', '.join(map(str, by[w]))}" for w in sorted(by))


# --- the client -------------------------------------------------------------------------

class Client(asyncio.Protocol):
    """One WebSocket connection to the router (see the module docstring).

    ``msgs``: every CLASP message received, in order.  ``worker``: the worker it landed on
    (set by ``open(..., conn_log=...)``).  ``closed`` / ``close_code``: the end of the
    connection (``close_code`` is the code of the router's close frame, None if none came).
    """

    def __init__(self, name: str):
        self.name = name
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.upgraded = False
        self.head: Optional[asyncio.Future] = None
        self.eof: Optional[asyncio.Future] = None
        self.msgs: list[Any] = []
        self.ack_times: list[float] = []         # monotonic arrival time of each ACK
        self.changed = asyncio.Event()
        self.closed = False
        self.close_code: Optional[int] = None
        self.close_sent = False
        self.worker: Optional[int] = None
        self.sockname: Optional[tuple] = None
        self.session: Optional[str] = None
        self.welcome_snapshot: list = []
        self.accept = ""
        self.conn_log: Optional[ConnLog] = None
        self.log_mark = 0

    # asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        self.sockname = transport.get_extra_info("sockname")

    def data_received(self, data: bytes):
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0 or self.head.done():
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            status, _ = parse_response_head(head)
            del self.buf[:end + 4]
            if status == 101:
                self.upgraded = True
            self.head.set_result((status, head))
            if not self.upgraded:
                return
        self._frames()

    def _frames(self) -> None:
        got = False
        for op, fin, payload in split_frames(self.buf):
            if op == 0x2:
                assert fin, "the router fragmented a message"
                msg = decode_frame(payload).message
                self.msgs.append(msg)
                if type(msg) is Ack:
                    self.ack_times.append(time.monotonic())
                got = True
            elif op == 0x8:
                self.close_code = close_code_of(payload)
                if not self.close_sent:
                    self.close_sent = True
                    self.transport.write(client_frame(0x8, payload[:2]))
                got = True
            elif op == 0x9:
                self.transport.write(client_frame(0xA, payload))
            elif op == 0x1:
                raise AssertionError(f"the router sent a text message: {payload!r}")
        if got:
            self.changed.set()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.closed = True
        if self.head is not None and not self.head.done():
            self.head.set_exception(ConnectionError(f"{self.name}: connection lost during the upgrade"))
        if self.eof is not None and not self.eof.done():
            self.eof.set_result(None)
        self.changed.set()

    # opening
    @classmethod
    async def open(cls, host: str, port: int, *, name: str = "workers-test",
                   local_host: Optional[str] = None, hello: bool = True,
                   conn_log: Optional[ConnLog] = None, timeout: float = 5.0) -> "Client":
        loop = asyncio.get_running_loop()
        self = cls(name)
        self.head = loop.create_future()
        self.eof = loop.create_future()
        since = conn_log.mark() if conn_log is not None else 0
        self.conn_log, self.log_mark = conn_log, since
        await asyncio.wait_for(loop.create_connection(
            lambda: self, host, port, local_addr=(local_host, 0) if local_host else None), timeout)
        request, self.accept = upgrade_request(host, port)
        self.transport.write(request)
        try:
            status, head = await asyncio.wait_for(asyncio.shield(self.head), timeout)
        except BaseException:
            self.transport.abort()
            raise
        if status != 101:
            try:
                await asyncio.wait_for(asyncio.shield(self.eof), timeout)
            finally:
                self.transport.abort()
            raise UpgradeRefused(status, head, bytes(self.buf))
        _, headers = parse_response_head(head)
        assert headers.get("sec-websocket-accept") == self.accept, head
        if conn_log is not None:
            self.worker = await conn_log.worker_of(self.sockname, since)
        if hello:
            await self.hello(timeout)
        return self

    async def hello(self, timeout: float = 5.0) -> Welcome:
        """HELLO, then a PING: WELCOME and every SNAPSHOT before the PONG are the welcome."""
        start = len(self.msgs)
        self.send(Hello(name=self.name))
        self.send(Ping())
        await self.wait_for(lambda: any(type(m) is Pong for m in self.msgs[start:]), timeout, "WELCOME")
        got = self.msgs[start:]
        welcome = got[0]
        assert type(welcome) is Welcome, got[:3]
        self.session = welcome.session
        end = next(i for i, m in enumerate(got) if type(m) is Pong)
        snaps = got[1:end]
        assert snaps and all(type(m) is Snapshot for m in snaps), got[:end]
        self.welcome_snapshot = [p for s in snaps for p in s.params]
        return welcome

    # sending
    def send(self, msg, qos: int = 0) -> None:
        self.send_raw(encode_frame(msg, qos=qos))

    def send_raw(self, clasp_frame: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError(f"{self.name} is closed")
        self.transport.write(client_frame(0x2, clasp_frame))

    # waiting
    async def wait_for(self, pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition"):
        return await wait_changed(
            pred, self.changed, timeout,
            lambda: f"{self.name} (worker {self.worker}): no {what} within {timeout} s; "
                    f"{len(self.msgs)} messages, last: {self.msgs[-5:]!r}; closed={self.closed}",
            poll=0.2)

    async def barrier(self, timeout: float = 5.0) -> None:
        """PING -> PONG: what the router queued for us before has been received."""
        n = sum(1 for m in self.msgs if type(m) is Pong)
        self.send(Ping())
        await self.wait_for(lambda: sum(1 for m in self.msgs if type(m) is Pong) > n, timeout, "PONG")

    async def request(self, msg, pred: Callable[[Any], bool], qos: int = 0, timeout: float = 5.0,
                      what: str = "reply"):
        """Sends ``msg``; returns the first message after it that satisfies ``pred``."""
        start = len(self.msgs)
        self.send(msg, qos)

        def found():
            for m in self.msgs[start:]:
                if pred(m):
                    return [m]
            return None
        return (await self.wait_for(found, timeout, what))[0]

    async def get(self, address: str, timeout: float = 5.0):
        """GET ``address``: the ParamValue, or the ERROR the router answered."""
        def answer(m):
            if type(m) is Snapshot:
                return any(p.address == address for p in m.params)
            return type(m) is Error and m.address == address
        m = await self.request(Get(address), answer, timeout=timeout, what=f"answer to GET {address}")
        if type(m) is Error:
            return m
        return next(p for p in m.params if p.address == address)

    def of(self, kind) -> list:
        return [m for m in self.msgs if type(m) is kind]

    def errors(self) -> list:
        return self.of(Error)

    def acks(self) -> list:
        return self.of(Ack)

    # closing
    async def close(self, timeout: float = 3.0) -> None:
        """Close handshake (1000), then wait until the router closes the socket."""
        if self.transport is None or self.closed:
            return
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(client_frame(0x8, struct.pack(">H", 1000)))
        try:
            await asyncio.wait_for(asyncio.shield(self.eof), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self.transport.abort()

    async def gone(self, timeout: float = 5.0) -> None:
        """Waits until the router logged the end of this connection (see ConnLog)."""
        assert self.conn_log is not None, "opened without conn_log"
        await self.conn_log.wait_disconnected(self.sockname, self.log_mark, timeout)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self, timeout: float = 5.0) -> Optional[int]:
        await asyncio.wait_for(asyncio.shield(self.eof), timeout)
        return self.close_code

    def __repr__(self):
        return f"<Client {self.name} worker {self.worker}>"


async def open_clients(rp, log: ConnLog, n: int, prefix: str = "c", **kw) -> list[Client]:
    """``n`` clients opened concurrently (each knows its worker)."""
    return list(await asyncio.gather(*(Client.open(rp.host, rp.port, name=f"{prefix}{i}", conn_log=log, **kw)
                                       for i in range(n))))


async def clients_on_workers(rp, log: ConnLog, wanted: Iterable[int], prefix: str = "p",
                             attempts: int = 120, keep: Optional[list] = None) -> dict[int, Client]:
    """Opens clients until one sits on each worker in ``wanted``; closes the others.
    Returns {worker: client}.  Clients in ``keep`` count too (and are never closed)."""
    wanted = set(wanted)
    got: dict[int, Client] = {}
    for c in keep or ():
        if c.worker in wanted and c.worker not in got and not c.closed:
            got[c.worker] = c
    i = 0
    while not wanted <= set(got):
        assert i < attempts, (f"{attempts} connections did not reach workers {sorted(wanted - set(got))}; "
                              f"reached {sorted(got)}")
        batch = await open_clients(rp, log, 4, prefix=f"{prefix}{i}-")
        i += 4
        for c in batch:
            if c.worker in wanted and c.worker not in got:
                got[c.worker] = c
            else:
                await c.close()
    return got


async def close_all(clients: Iterable[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients if c is not None), return_exceptions=True)


# --- worker processes -------------------------------------------------------------------

def _bus_inodes(supervisor: int) -> dict[str, int]:
    prefix = f"@clasp-fast.{supervisor}."
    out = {}
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7].startswith(prefix):
                out[parts[6]] = int(parts[7][len(prefix):])
    return out


def worker_pids(rp) -> dict[int, int]:
    """{worker index: pid} of the supervisor's live children whose index is certain."""
    sup = rp.proc.pid
    names = _bus_inodes(sup)
    out = {}
    for pid in children(sup):
        found = set()
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                index = names.get(link[8:-1])
                if index is not None:
                    found.add(index)
        if len(found) == 1:         # a just-forked worker still holds every listener
            out[found.pop()] = pid
    return out


async def wait_worker_pids(rp, n: int, timeout: float = 10.0, exclude: Iterable[int] = ()) -> dict[int, int]:
    """Waits until all ``n`` workers are identifiable (and none of them has a pid in ``exclude``)."""
    exclude = set(exclude)
    last: dict[int, int] = {}

    def identified():
        last.clear()
        last.update(worker_pids(rp))
        return dict(last) if len(last) == n and not exclude & set(last.values()) else None
    return await wait_until(identified, timeout,
                            lambda: f"workers not all identifiable within {timeout} s: {last}")


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
