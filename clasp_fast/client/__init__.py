"""A small asyncio CLASP client on picows, built on the same wire codec as the router.

Used by the benchmarks and handy for scripts and tests::

    async with await ClaspClient.connect("ws://localhost:7330", name="console") as c:
        await c.subscribe("/mixer/**")
        c.set("/mixer/1/fader", 0.5)
        msg = await c.next(Set)             # the SET broadcast, with its revision
        print(msg.address, msg.value, msg.revision)

Everything the router sends is decoded into the dataclasses of
``clasp_fast.protocol`` and queued; ``next(type)`` waits for the next message of
a type (others stay queued).  ``send(msg, qos)`` sends any message.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import Any, Optional

from picows import WSListener, WSMsgType, ws_connect

from ..protocol import (Error, Get, Hello, Ping, Pong, Publish, Set, SignalType, Snapshot,
                        Subscribe, Unsubscribe, Welcome, decode_frame, encode_frame)


class _Listener(WSListener):
    def __init__(self, client: "ClaspClient"):
        self.client = client

    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.BINARY:
            self.client._on_frame(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.client.close_code = frame.get_close_code()
            transport.disconnect()

    def on_ws_disconnected(self, transport):
        self.client._closed.set()


class ClaspClient:
    def __init__(self):
        self.transport = None
        self.welcome: Optional[Welcome] = None
        self.close_code: Optional[int] = None
        self._queue: list[Any] = []
        self._changed = asyncio.Event()
        self._closed = asyncio.Event()
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, url: str, name: str = "clasp-fast client", timeout: float = 10.0,
                      **picows_kwargs) -> "ClaspClient":
        """Connects, sends HELLO and waits for WELCOME (and the initial SNAPSHOT)."""
        self = cls()
        self.transport, _ = await ws_connect(lambda: _Listener(self), url,
                                             extra_headers={"Sec-WebSocket-Protocol": "clasp"},
                                             **picows_kwargs)
        self.send(Hello(name=name))
        self.welcome = await self.next(Welcome, timeout)
        await self.next(Snapshot, timeout)
        return self

    async def __aenter__(self) -> "ClaspClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- sending -------------------------------------------------------------------

    def send(self, msg, qos: int = 0) -> None:
        self.transport.send(WSMsgType.BINARY, encode_frame(msg, qos))

    def send_raw(self, frame: bytes) -> None:
        """Sends bytes as one binary WebSocket message (e.g. a hand-made frame)."""
        self.transport.send(WSMsgType.BINARY, frame)

    def set(self, address: str, value, qos: int = 0, **fields) -> None:
        self.send(Set(address, value, **fields), qos)

    def publish(self, address: str, value=None, signal: SignalType = SignalType.EVENT, **fields) -> None:
        self.send(Publish(address, signal=signal, value=value, **fields))

    async def subscribe(self, pattern: str, types: int = 0xFF, options=None) -> int:
        """Subscribes and waits until the router has taken it (a PING/PONG round trip)."""
        sid = next(self._ids)
        self.send(Subscribe(sid, pattern, types, options))
        await self.ping()
        return sid

    def unsubscribe(self, sid: int) -> None:
        self.send(Unsubscribe(sid))

    async def get(self, address: str, timeout: float = 5.0):
        """The param's value (via GET); raises LookupError on ERROR 404."""
        self.send(Get(address))
        msg = await self.next((Snapshot, Error), timeout,
                              lambda m: isinstance(m, Error) or any(p.address == address for p in m.params))
        if isinstance(msg, Error):
            raise LookupError(msg.message)
        return next(p for p in msg.params if p.address == address)

    async def ping(self, timeout: float = 5.0) -> None:
        """A barrier: everything the router had to send before the PONG has arrived."""
        self.send(Ping())
        await self.next(Pong, timeout)

    # --- receiving -------------------------------------------------------------------

    def _on_frame(self, data: bytes) -> None:
        self._queue.append(decode_frame(data).message)
        self._changed.set()

    async def next(self, kind=object, timeout: float = 5.0, where=None):
        """The next queued message of type ``kind`` (a type or tuple) that satisfies ``where``."""
        async def wait():
            while True:
                for i, msg in enumerate(self._queue):
                    if isinstance(msg, kind) and (where is None or where(msg)):
                        return self._queue.pop(i)
                if self._closed.is_set():
                    raise ConnectionError(f"connection closed (code {self.close_code})")
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(wait(), timeout)

    def drain(self) -> list:
        """Every queued message, oldest first."""
        out, self._queue = self._queue, []
        return out

    async def close(self) -> None:
        if self.transport is not None and not self._closed.is_set():
            self.transport.send_close(1000)
            self.transport.disconnect()
            try:
                await asyncio.wait_for(self._closed.wait(), 2.0)
            except asyncio.TimeoutError:
                pass
