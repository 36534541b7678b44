"""Helpers for the edge integration tests: real clasp-fast processes, raw clients.

Two kinds of client:

* ``connect_hello(url)``: a ``websockets`` client that offers ``clasp``, sends
  HELLO and reads WELCOME + SNAPSHOT.  ``recv_msg`` / ``recv_until`` decode
  CLASP frames with a timeout.
* ``RawWS``: a hand-made WebSocket client over an asyncio stream, for what a
  well-behaved library will not do (Firefox headers, never answering pings,
  not reading at all, binding a source address, tiny receive buffers).

Every wait here has a timeout.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Optional

import pytest
import websockets
from websockets.asyncio.client import connect

from clasp_fast.protocol import Error, Hello, Snapshot, Welcome, decode_frame, encode_frame

from tests.ws_framing import (UpgradeRefused, client_frame, close_code_of,  # noqa: F401 (re-exported)
                              parse_response_head, split_frames, upgrade_request)


# --- websockets clients ---------------------------------------------------------------

async def ws_connect(url: str, *, subprotocols=("clasp",), timeout: float = 5.0, **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    kw.setdefault("compression", None)
    return await connect(url, subprotocols=list(subprotocols) if subprotocols else None,
                         open_timeout=timeout, close_timeout=2, **kw)


async def recv_msg(ws, timeout: float = 2.0):
    """The next CLASP message (decoded) on ``ws``; raises TimeoutError after ``timeout``."""
    data = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(data, bytes), f"the router sent a text message: {data!r}"
    return decode_frame(data).message


async def recv_until(ws, predicate, timeout: float = 2.0):
    """Messages until one satisfies ``predicate``; returns (that message, the ones before)."""
    deadline = time.monotonic() + timeout
    skipped = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching message within {timeout} s; got {skipped!r}")
        msg = await recv_msg(ws, left)
        if predicate(msg):
            return msg, skipped
        skipped.append(msg)


async def expect_silence(ws, seconds: float = 0.3):
    """Asserts that nothing arrives on ``ws`` for ``seconds``."""
    try:
        data = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected message: {decode_frame(data).message if isinstance(data, bytes) else data!r}")


async def connect_hello(url: str, name: str = "edge-test", **kw):
    """Connects (subprotocol clasp), sends HELLO, reads WELCOME and the SNAPSHOT.

    Returns (ws, welcome, snapshot)."""
    ws = await ws_connect(url, **kw)
    await ws.send(encode_frame(Hello(name=name)))
    welcome = await recv_msg(ws, 3.0)
    assert isinstance(welcome, Welcome), welcome
    snapshot = await recv_msg(ws, 3.0)
    assert isinstance(snapshot, Snapshot), snapshot
    return ws, welcome, snapshot


async def wait_close_code(ws, timeout: float = 3.0) -> Optional[int]:
    """Reads (discarding) until the connection closes; returns the close code received."""
    async def drain():
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            pass
    await asyncio.wait_for(drain(), timeout)
    return ws.close_code


def raw_frame(payload: bytes, flags: int = 0x01, declared: Optional[int] = None) -> bytes:
    """A CLASP frame with a 4-byte header around ``payload`` (``declared`` overrides the length)."""
    n = len(payload) if declared is None else declared
    return bytes([0x53, flags]) + struct.pack(">H", n) + payload


def error_of(msg) -> Error:
    assert isinstance(msg, Error), f"expected ERROR, got {msg!r}"
    return msg


# --- a raw WebSocket client ---------------------------------------------------------

async def open_socket(host: str, port: int, *, local_host: Optional[str] = None,
                      rcvbuf: Optional[int] = None, timeout: float = 3.0):
    """An asyncio stream over a socket we configure ourselves (source address, SO_RCVBUF)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if local_host is not None:
        sock.bind((local_host, 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def read_http_response(reader, timeout: float = 3.0) -> tuple[int, str, dict, bytes]:
    """(status, head text, lower-cased headers, body-so-far or whole body until EOF)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    text = head.decode("latin-1")
    status, headers = parse_response_head(text)
    return status, text, headers, b""


class RawWS:
    """A hand-rolled client: does the upgrade itself, then frames bytes by hand
    (tests/ws_framing.py)."""

    def __init__(self, reader, writer, headers: dict):
        self.reader, self.writer, self.headers = reader, writer, headers
        self.buf = bytearray()
        self.frames: list[tuple[int, bool, bytes]] = []

    @classmethod
    async def open(cls, host: str, port: int, path: str = "/", *, protocol: Optional[str] = "clasp",
                   connection: str = "Upgrade", extra: tuple = (), local_host: Optional[str] = None,
                   rcvbuf: Optional[int] = None, timeout: float = 3.0) -> "RawWS":
        reader, writer = await open_socket(host, port, local_host=local_host, rcvbuf=rcvbuf,
                                           timeout=timeout)
        request, accept = upgrade_request(host, port, path, protocol=protocol,
                                          connection=connection, extra=extra)
        writer.write(request)
        try:
            status, head, headers, _ = await read_http_response(reader, timeout)
        except BaseException:
            writer.close()
            raise
        if status != 101:
            body = b""
            try:
                body = await asyncio.wait_for(reader.read(), timeout)
            finally:
                writer.close()
            raise UpgradeRefused(status, head, body)
        assert headers.get("sec-websocket-accept") == accept, head
        return cls(reader, writer, headers)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.writer.write(client_frame(opcode, payload, fin))

    def send_binary(self, payload: bytes) -> None:
        self.send_frame(0x2, payload)

    async def recv_frame(self, timeout: float = 2.0) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; (-1, b'') at EOF."""
        async def read():
            while not self.frames:
                data = await self.reader.read(65536)
                if not data:
                    return -1, b""
                self.buf += data
                self.frames.extend(split_frames(self.buf))
            op, _fin, payload = self.frames.pop(0)
            return op, payload
        return await asyncio.wait_for(read(), timeout)

    async def recv_msg(self, timeout: float = 2.0):
        """The next CLASP message, skipping pings (which are NOT answered)."""
        deadline = time.monotonic() + timeout
        while True:
            op, payload = await self.recv_frame(max(0.01, deadline - time.monotonic()))
            if op == 0x2:
                return decode_frame(payload).message
            if op in (0x9, 0xA):
                continue
            raise AssertionError(f"expected a binary message, got opcode {op} {payload!r}")

    async def hello(self, name: str = "raw-client"):
        self.send_binary(encode_frame(Hello(name=name)))
        welcome = await self.recv_msg(3.0)
        assert isinstance(welcome, Welcome), welcome
        snapshot = await self.recv_msg(3.0)
        assert isinstance(snapshot, Snapshot), snapshot
        return welcome

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()


@pytest.fixture(scope="module")
def default_router(shared_router):
    """One clasp-fast with default settings, shared by the tests of a module that need nothing else."""
    return shared_router
