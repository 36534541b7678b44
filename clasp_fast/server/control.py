"""The control channel: how any worker gets the figures of all workers.

With ``--workers N`` each worker listens on a Unix socket in the abstract namespace
(``\\0clasp-fast-control.<group>.<index>``, beside its bus listener).  A request is one
line naming what is wanted (``figures`` or ``sessions``); the answer is that worker's
JSON (orjson), then the connection closes.  Whichever worker is asked for ``/metrics``
or ``/status`` (on the WebSocket port or on ``metrics.port``, both shared with
SO_REUSEPORT) asks the others and adds its own, so there is one endpoint for the whole
router.  A scrape costs each worker one small read of counters; nothing is sent
between scrapes.  A worker that does not answer within ``TIMEOUT`` (dead, restarting)
is left out, and the answer says so (``clasp_workers_up``).

With one worker there is no socket: ``gather`` reads the figures in-process.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable, Optional

import orjson

from .figures import figures, session_rows

log = logging.getLogger("clasp_fast.server")

TIMEOUT = 2.0
KINDS: dict[str, Callable] = {"figures": figures, "sessions": session_rows}


def control_address(group: str, index: int) -> str:
    return f"\0clasp-fast-control.{group}.{index}"


def dumps(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


class Control:
    """This worker's end of the control channel (and the client of the others')."""

    def __init__(self, server, index: int = 0, nworkers: int = 1, group: Optional[str] = None):
        self.server, self.index, self.nworkers, self.group = server, index, nworkers, group
        self._listener: Optional[asyncio.AbstractServer] = None

    async def start(self) -> None:
        if self.nworkers > 1:
            # uvloop takes abstract-namespace names only as ready sockets (as the bus does)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(control_address(self.group, self.index))
            sock.listen(64)
            self._listener = await asyncio.get_running_loop().create_unix_server(
                lambda: _ControlProtocol(self), sock=sock)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def local(self, kind: str):
        # through JSON like the answers of the other workers, so all look alike (string keys)
        return orjson.loads(dumps(KINDS[kind](self.server, self.index)))

    async def gather(self, kind: str) -> list:
        """[this worker's answer, then each other worker's] (workers that did not answer
        are missing)."""
        others = [i for i in range(self.nworkers) if i != self.index]
        answers = await asyncio.gather(*(self._ask(i, kind) for i in others))
        return [self.local(kind)] + [a for a in answers if a is not None]

    async def _ask(self, index: int, kind: str):
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(control_address(self.group, index))     # local: does not block
            except OSError:
                sock.close()
                raise
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(sock=sock), TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            return None
        try:
            writer.write(kind.encode() + b"\n")
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
            return orjson.loads(data) if data else None
        except (OSError, asyncio.TimeoutError, orjson.JSONDecodeError):
            return None
        finally:
            writer.close()


class _ControlProtocol(asyncio.Protocol):
    def __init__(self, control: Control):
        self.control, self.buf, self.transport = control, b"", None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.buf += data
        if b"\n" not in self.buf:
            if len(self.buf) > 64:
                self.transport.close()
            return
        kind = self.buf.split(b"\n", 1)[0].decode(errors="replace")
        if kind in KINDS:
            self.transport.write(dumps(self.control.local(kind)))
        self.transport.close()
