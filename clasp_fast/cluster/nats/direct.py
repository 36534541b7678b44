"""A nats-py client that hands the routed frames to the owner as the parser reads them.

nats-py delivers each message of a callback subscription through three loop steps: its
parser builds a ``Msg`` and puts it on the subscription's ``asyncio.Queue``; the
subscription's own task wakes, takes it and awaits the callback.  For the routed frames
(one NATS message per address and loop tick: at a steady 10k SET/s, one per SET) that is
most of the receiving owner's Python time: about 5 µs per message of a node's budget of
tens (bench: ``python -m bench --only nodes``).

``DirectClient`` keeps everything else of nats-py (connect, reconnect, the parser,
subscriptions, JetStream) and changes two steps:

* **in**: a message for a subscription registered with ``subscribe_direct`` is handed to
  its plain function right away, from the parser, as ``fn(data, subject)``.  So the
  frames of every subscription are taken in the order the server sent them on the
  socket, which is each sender's order.  A message with headers, or for any other
  subscription, takes nats-py's own path.
* **out**: ``publish_now`` writes a PUB to the socket at once when nothing of nats-py's
  waits to be written, instead of appending it to nats-py's buffer and waking its
  flusher task (one loop iteration and a few Futures per tick of the owner).

They lean on nats-py's internals: ``Client._process_msg(sid, subject, reply, data,
headers)`` and the buffer its ``publish`` fills (``_pending``, ``_pending_data_size``,
``_flush_queue``), the same from nats-py 2.9 on; ``check()`` refuses to start with a
nats-py that differs, naming the versions that work.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Callable

import nats
from nats.aio.client import Client
from nats.protocol.command import pub_cmd

log = logging.getLogger("clasp_fast.cluster.nats")

WRITE_BUFFER_LIMIT = 65536     # bytes in the socket's buffer: beyond, nats-py's flusher drains it
_EXPECTED = ["self", "sid", "subject", "reply", "data", "headers"]
_BUFFER = ["_pending", "_pending_data_size", "_max_pending_size", "_max_payload", "_flush_queue",
           "_flusher_task", "_transport", "_subs"]


def check() -> None:
    """Raises RuntimeError if the installed nats-py dispatches or buffers differently."""
    got = list(inspect.signature(Client._process_msg).parameters)
    missing = [name for name in _BUFFER if not hasattr(Client(), name)]
    if got != _EXPECTED or missing:
        raise RuntimeError(f"nats-py {getattr(nats, '__version__', '?')} is not supported by the "
                           f"cluster layer (Client._process_msg takes {got}, expected {_EXPECTED}; "
                           f"missing {missing}); install nats-py>=2.9,<3")


class DirectClient(Client):
    """nats-py's ``Client``, with plain-function subscriptions called from its parser."""

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, Callable[[bytes, bytes], None]] = {}

    async def subscribe_direct(self, subject: str, fn: Callable[[bytes, bytes], None]):
        """Subscribes to ``subject``; each message (without headers) is ``fn(data,
        subject)`` (``subject`` as bytes), called synchronously in socket order.  Returns
        nats-py's ``Subscription`` (``unsubscribe()`` ends it)."""
        sub = await self.subscribe(subject)
        self._direct[sub._id] = fn
        return sub

    def publish_now(self, subject: str, payload: bytes) -> bool:
        """``publish(subject, payload)`` without a coroutine, if nats-py can take it at once:
        connected, not draining, its buffer has room.  Nothing of nats-py's waiting to be
        written and the socket's buffer not full: the PUB is written to the socket here (no
        flusher task woken); else it joins nats-py's buffer behind what is there.  Returns
        False when it cannot (then ``await publish()``: it waits for room or raises, as
        nats-py decides)."""
        cmd = pub_cmd(subject, b"", payload)
        flusher = self._flusher_task
        if (not self.is_connected or self.is_draining_pubs or len(payload) > self._max_payload
                or self._pending_data_size + len(cmd) > self._max_pending_size > 0
                or flusher is None or flusher.done()):
            return False
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += len(payload)
        socket_buffer = getattr(getattr(self._transport, "_io_writer", None), "transport", None)
        if not self._pending and socket_buffer is not None \
                and socket_buffer.get_write_buffer_size() < WRITE_BUFFER_LIMIT:
            self._transport.write(cmd)
            return True
        self._pending.append(cmd)
        self._pending_data_size += len(cmd)
        if self._flush_queue.empty():       # wake nats-py's flusher: it writes and drains
            self._flush_queue.put_nowait(asyncio.get_running_loop().create_future())
        return True

    def _remove_sub(self, sid: int, max_msgs: int = 0) -> None:
        self._direct.pop(sid, None)
        super()._remove_sub(sid, max_msgs)

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes) -> None:
        fn = self._direct.get(sid)
        if fn is None or headers:
            return await super()._process_msg(sid, subject, reply, data, headers)
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        try:
            fn(data, subject)
        except Exception:           # (nats-py's read loop would stop on it)
            log.exception("cluster: applying a message on %s failed", subject.decode(errors="replace"))
