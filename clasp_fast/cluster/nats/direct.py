"""A nats-py client that hands the routed frames to the owner as the parser reads them.

nats-py delivers each message of a callback subscription through three loop steps: its
parser builds a ``Msg`` and puts it on the subscription's ``asyncio.Queue``; the
subscription's own task wakes, takes it and awaits the callback.  For the routed frames
(one NATS message per address and loop tick: at a steady 10k SET/s, one per SET) that is
most of the receiving owner's Python time: about 5 µs per message of a node's budget of
tens (bench: ``python -m bench --only nodes``).

``DirectClient`` keeps everything else of nats-py (connect, reconnect, the parser,
subscriptions, JetStream) and changes one step: a message for a subscription registered
with ``subscribe_direct`` is handed to its plain function right away, from the parser,
as ``fn(data, subject)``.  So the frames of every subscription are taken in the order
the server sent them on the socket (one task, no queue between), which is each
sender's order.  A message with headers, or for any other subscription, takes nats-py's
own path.

The step it replaces is nats-py's ``Client._process_msg(sid, subject, reply, data,
headers)``, the same from nats-py 2.9 on; ``check()`` refuses to start with a nats-py
whose method differs, naming the versions that work.
"""
from __future__ import annotations

import inspect
import logging
from typing import Callable

import nats
from nats.aio.client import Client

log = logging.getLogger("clasp_fast.cluster.nats")

_EXPECTED = ["self", "sid", "subject", "reply", "data", "headers"]


def check() -> None:
    """Raises RuntimeError if the installed nats-py dispatches messages differently."""
    got = list(inspect.signature(Client._process_msg).parameters)
    if got != _EXPECTED:
        raise RuntimeError(f"nats-py {getattr(nats, '__version__', '?')} is not supported by the "
                           f"cluster layer (Client._process_msg takes {got}, not {_EXPECTED}); "
                           f"install nats-py>=2.9,<3")


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
