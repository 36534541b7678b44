"""``Clasp``: the asyncio CLASP client (picows, the native wire codec, one write per tick).

How it works, in four parts:

* **Sending.**  Every frame is encoded by ``clasp_fast.protocol`` and appended to a list;
  at the end of the loop iteration (``call_soon``) the whole list is masked into one buffer
  by ``clasp_fast._native.wsclient.masked_frames`` and written with one ``transport.write``.
  So a thousand ``set``/``emit`` calls in one iteration cost one syscall.
* **Answers.**  The router answers in order per session.  Every request that expects an
  answer (a SET with QoS confirm, GET, SUBSCRIBE, QUERY, a PING barrier, ...) is appended to
  one FIFO; ACK, SNAPSHOT-for-GET, RESULT, PONG and ERROR resolve its head.  A
  fire-and-forget message (a plain ``set``/``emit``) has no entry: if it may still draw an
  ERROR when a request is sent, a PING goes first, so an ERROR that arrives while a PING
  heads the FIFO belongs to a fire-and-forget message (it goes to the ``on_error``
  callbacks) and one that arrives while a request heads it belongs to that request (it is
  raised from the call, as a ``ClaspError`` subclass).
* **Receiving.**  ``clasp_fast._native.client_inbox`` is the picows listener: it parses SET
  and PUBLISH in place with the router's own parsers, updates the cache (value and revision
  per address) and calls the subscription callbacks, found with the router's pattern trie
  (``clasp_fast._native.patterns``) and kept per address until the trie changes.  Every
  other message goes to ``_on_frame`` here, decoded by ``decode_frame``; SNAPSHOT updates
  the cache too.  A frame that cannot be decoded is logged and skipped.
* **Reconnecting.**  With ``reconnect=True`` a lost connection is retried with exponential
  backoff and jitter; on success the cache is rebuilt from the router's HELLO snapshot, every
  subscription is sent again (its snapshot reaches its callback), and what was sent while
  disconnected (a bounded queue) goes out.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import itertools
import logging
import random
import ssl as ssl_module
import time as time_module
from typing import Any, AsyncIterator, Callable, Optional

from picows import WSCloseCode, WSError, ws_connect

from .._native.client_inbox import Inbox, Listener, deliver
from .._native.wsclient import masked_frames
from .._native.patterns import Subscription as _NativeSub, Trie, check_pattern
from ..protocol import (NO_VALUE, Ack, Bundle, DecodeError, Error, Get, Hello, Phase, Ping, Pong,
                        Publish, Query, Result, Set, SignalType, Snapshot, Subscribe,
                        SubscribeOptions, Sync, Ttl, TtlMode, TypeMask, Unsubscribe, Welcome,
                        decode_frame, encode_frame, encode_set_frame)
from .errors import (ClaspError, ConnectionFailed, ConnectionLost, InvalidAddress, NotConnected,
                     QueueFull, RequestTimeout, error_for)

log = logging.getLogger("clasp_fast.client")

DEFAULT_URL = "ws://localhost:7330"
_PING = encode_frame(Ping())
_PONG = encode_frame(Pong())
_FLUSH_AT = 4096            # frames: flush at once rather than at the end of the iteration
_MISSING: Any = object()

# what a pending entry waits for
_WELCOME, _PONG_K, _ACK, _GET, _SUB, _RESULT, _SYNC, _BARRIER = range(8)
# _BARRIER: a message the router does not acknowledge (PUBLISH) followed by a PING: its PONG
# says the message was taken, an ERROR before it says why not


class _Pending:
    """One request the router will answer (the head of the FIFO is answered first)."""

    __slots__ = ("kind", "future", "address", "sub", "params")

    def __init__(self, kind: int, future: asyncio.Future, address: Optional[str] = None,
                 sub: Optional["Subscription"] = None, params: Optional[list] = None):
        self.kind = kind
        self.future = future
        self.address = address
        self.sub = sub
        self.params = params            # SNAPSHOT params collected for a snapshot() call

    def resolve(self, value: Any) -> None:
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
            self.future.exception()     # whoever awaits still gets it; no "never retrieved"


class Subscription:
    """What ``subscribe`` returns: call it to unsubscribe; ``await`` it to wait until the
    router has taken the subscription (it raises the router's ERROR if it refused)."""

    __slots__ = ("client", "id", "pattern", "callback", "mask", "options", "native", "ack",
                 "active")

    def __init__(self, client: "Clasp", sid: int, pattern: str, callback, mask: int,
                 options: Optional[SubscribeOptions]):
        self.client = client
        self.id = sid
        self.pattern = pattern
        self.callback = callback
        self.mask = mask
        self.options = options
        self.native = _NativeSub(self, sid, pattern, mask)
        self.ack: Optional[asyncio.Future] = None
        self.active = True

    def __call__(self) -> None:
        self.client._unsubscribe(self)

    unsubscribe = __call__

    def __await__(self):
        return self._ready().__await__()

    async def _ready(self) -> "Subscription":
        if self.ack is None:
            await self.client._wait_ready(None)
        await self.client._await(self.ack, None, f"SUBSCRIBE {self.pattern}")
        return self

    def deliver(self, value: Any, address: str) -> None:
        if self.callback is not None:
            deliver(self.callback, value, address, self.client)

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.pattern!r}>"


class _ClassOrInstance:
    """``Clasp.connect(url, ...)`` makes and connects a client; ``client.connect()`` connects
    one made with ``Clasp(url, ...)`` (the ``clasp-to`` way)."""

    def __init__(self, on_class, on_instance):
        self.on_class = on_class
        self.on_instance = on_instance
        functools.update_wrapper(self, on_class)

    def __get__(self, obj, cls):
        if obj is None:
            return functools.partial(self.on_class, cls)
        return functools.partial(self.on_instance, obj)


def _ttl(ttl: Optional[int], absolute: bool) -> Optional[Ttl]:
    if ttl is None:
        return None
    if isinstance(ttl, Ttl):
        return ttl
    if ttl == 0:
        return Ttl(TtlMode.NEVER, 0)
    return Ttl(TtlMode.ABSOLUTE if absolute else TtlMode.SLIDING, int(ttl))


def _options(options: dict) -> tuple[int, Optional[SubscribeOptions]]:
    """clasp-to style options (``maxRate``, ``epsilon``, ``history``, ``window``; snake_case
    too) and our ``types`` mask -> (mask, SubscribeOptions or None)."""
    opts = dict(options)
    mask = int(opts.pop("types", TypeMask.ALL))
    fields = {}
    for key, name in (("maxRate", "max_rate"), ("max_rate", "max_rate"), ("epsilon", "epsilon"),
                      ("history", "history"), ("window", "window")):
        if key in opts:
            v = opts.pop(key)
            if v is not None:
                fields[name] = v
    if opts:
        raise TypeError(f"unknown subscribe option(s) {', '.join(sorted(opts))}; allowed: "
                        f"maxRate, epsilon, history, window, types")
    return mask, (SubscribeOptions(**fields) if fields else None)


def insecure_ssl_context() -> ssl_module.SSLContext:
    """TLS without certificate checks (test certificates only)."""
    ctx = ssl_module.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl_module.CERT_NONE
    return ctx


class Clasp:
    """A CLASP client.  ``client = await Clasp.connect("ws://localhost:7330")``.

    The verbs of ``clasp-to`` (``set``, ``get``, ``subscribe``/``on``, ``emit``, ``stream``,
    ``gesture``, ``bundle``, ``cached``, ``close``, ``session_id``, ``time()``, the
    ``on_connect``/``on_disconnect``/``on_error`` callbacks) with the same arguments and
    callback order ``callback(value, address)``, plus confirmed and conditional SETs,
    locks, typed errors, ``watch()`` and ``snapshot()``.  See docs/client.md.
    """

    def __init__(self, url: str = DEFAULT_URL, name: str = "clasp-fast client", *,
                 token: Optional[str] = None, reconnect: bool = True,
                 ssl: Optional[ssl_module.SSLContext] = None, timeout: float = 10.0,
                 features: Any = None, reconnect_interval: Optional[float] = None,
                 reconnect_delay: float = 0.25, max_reconnect_delay: float = 10.0,
                 queue_size: int = 10000, record: bool = False):
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"CLASP URL {url!r}: use ws://host:port or wss://host:port")
        self.url = url
        self.name = name
        self.token = token
        self.reconnect = reconnect
        self.ssl = ssl
        self.timeout = timeout
        self.features = features        # accepted for clasp-to compatibility
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = reconnect_interval if reconnect_interval is not None \
            else max_reconnect_delay
        self.queue_size = queue_size
        self.welcome: Optional[Welcome] = None
        self.close_code: Optional[int] = None

        self._transport = None
        self._listener: Optional[Listener] = None
        self._ready = False             # WELCOME and the HELLO snapshot are in: user frames go out
        self._opening = False
        self._closing = False
        self._ever_connected = False
        self._out: list[bytes] = []
        self._flush_handle: Optional[asyncio.Handle] = None
        self._backlog: collections.deque[bytes] = collections.deque()
        self._fired = False             # a fire-and-forget frame went out since the last fence
        self._pending: collections.deque[_Pending] = collections.deque()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._connected_evt = asyncio.Event()
        self._closed_evt = asyncio.Event()
        self._reconnect_task: Optional[asyncio.Task] = None
        self._time_offset = 0

        self._subs: dict[int, Subscription] = {}
        self._trie = Trie()
        self._ids = itertools.count(1)

        self._on_connect: list[Callable] = []
        self._on_disconnect: list[Callable] = []
        self._on_error: list[Callable] = []

        # low-level access (tests, tools): every decoded message, for next()/drain()
        self._record: Optional[list] = [] if record else None
        self._changed = asyncio.Event()
        # received SETs and PUBLISHes (recorded ones too: they come through _on_frame)
        self._inbox = Inbox(self, self._trie, native=not record)
        self._values: dict[str, Any] = self._inbox.values
        self._revisions: dict[str, int] = self._inbox.revisions

    # --- connecting ------------------------------------------------------------------

    async def _connect_new(cls, url: str = DEFAULT_URL, name: str = "clasp-fast client",
                           **kwargs) -> "Clasp":
        self = cls(url, name, **kwargs)
        await self._connect_instance()
        return self

    async def _connect_instance(self) -> "Clasp":
        if self._ready:
            raise ClaspError("already connected")
        self._closing = False
        await self._open()
        return self

    connect = _ClassOrInstance(_connect_new, _connect_instance)

    async def __aenter__(self) -> "Clasp":
        if not self._ever_connected:
            await self._connect_instance()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _open(self) -> None:
        """One connection attempt: upgrade, HELLO, WELCOME, the HELLO snapshot; then the
        subscriptions again and the queued frames."""
        self._loop = asyncio.get_running_loop()
        self._opening = True
        listener = self._listener = Listener(self, self._inbox)
        ctx = self.ssl
        if ctx is None and self.url.startswith("wss:"):
            ctx = ssl_module.create_default_context()
        try:
            try:
                transport, _ = await asyncio.wait_for(
                    ws_connect(lambda: listener, self.url, ssl_context=ctx,
                               extra_headers={"Sec-WebSocket-Protocol": "clasp"},
                               websocket_handshake_timeout=self.timeout, enable_auto_ping=True,
                               auto_ping_idle_timeout=20, auto_ping_reply_timeout=10,
                               logger_name="clasp_fast.client.ws"),
                    self.timeout)
            except asyncio.TimeoutError:
                raise ConnectionFailed(f"cannot reach the router at {self.url}: no WebSocket "
                                       f"upgrade within {self.timeout} s") from None
            except (OSError, WSError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                raise ConnectionFailed(f"cannot reach the router at {self.url}: {reason} "
                                       f"(is clasp-fast running there? check --url)") from None
            self._transport = transport
            self.close_code = None
            self._writable.set()
            loop = self._loop
            welcome = _Pending(_WELCOME, loop.create_future())
            initial = _Pending(_PONG_K, loop.create_future())
            self._pending.clear()
            self._pending.extend((welcome, initial))
            self._push(encode_frame(Hello(name=self.name, token=self.token)))
            self._push(_PING)
            self._flush()
            self.welcome = await self._await(welcome.future, self.timeout, "WELCOME")
            await self._await(initial.future, self.timeout, "the initial SNAPSHOT")
        except BaseException as exc:       # ClaspError, or cancelled by close()
            self._drop_transport()
            if isinstance(exc, (ConnectionLost, RequestTimeout)):
                raise ConnectionFailed(f"the router at {self.url} did not complete the CLASP "
                                       f"handshake: {exc}") from None
            raise
        finally:
            self._opening = False
        self._time_offset = self.welcome.time - int(time_module.time() * 1_000_000)
        for sub in list(self._subs.values()):
            self._send_subscribe(sub)
        if self._backlog:
            self._out.extend(self._backlog)
            self._backlog.clear()
            self._fired = True
        self._ready = True
        self._ever_connected = True
        self._flush()
        self._connected_evt.set()
        self._closed_evt.clear()
        for cb in list(self._on_connect):
            self._call(cb)

    def _drop_transport(self) -> None:
        t, self._transport = self._transport, None
        self._ready = False
        if t is not None:
            t.disconnect()

    def _on_disconnected(self, listener: Listener) -> None:
        if listener is not self._listener:
            return
        self._listener = None
        self._transport = None
        was_ready, self._ready = self._ready, False
        self._connected_evt.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._out = []              # lost with the connection, like what the kernel still held
        lost = ConnectionLost(f"connection to {self.url} lost before the router answered"
                              + (f" (close code {self.close_code})" if self.close_code else ""))
        pending, self._pending = self._pending, collections.deque()
        for p in pending:
            p.fail(lost)
        if not was_ready:
            if not self._opening:
                self._closed_evt.set()
            return
        reason = ("closed by the client" if self._closing else
                  f"closed with code {self.close_code}" if self.close_code else "connection lost")
        for cb in list(self._on_disconnect):
            self._call(cb, reason)
        if self.reconnect and not self._closing:
            self._reconnect_task = asyncio.ensure_future(self._reconnect_loop())
        else:
            self._closed_evt.set()

    async def _reconnect_loop(self) -> None:
        """Exponential backoff with jitter until a connection succeeds or ``close()``."""
        attempt = 0
        while not self._closing:
            delay = min(self.max_reconnect_delay, self.reconnect_delay * (2 ** attempt))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            if self._closing:
                return
            try:
                await self._open()
                log.info("clasp: reconnected to %s after %d attempt(s)", self.url, attempt + 1)
                return
            except Exception as exc:
                attempt = min(attempt + 1, 30)
                log.info("clasp: reconnect to %s failed: %s", self.url, exc)

    async def close(self) -> None:
        """Closes the connection (code 1000) and stops reconnecting."""
        self._closing = True
        self.reconnect = False
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        t = self._transport
        if t is not None:
            self._flush()
            t.send_close(WSCloseCode.OK)
            t.disconnect()
            try:
                await asyncio.wait_for(self._closed_evt.wait(), 2.0)
            except asyncio.TimeoutError:
                pass
        self._ready = False
        self._closed_evt.set()

    def run(self) -> None:
        """Runs the event loop forever (clasp-to compatibility; blocks)."""
        asyncio.get_event_loop().run_forever()

    # --- state -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ready

    @property
    def session_id(self) -> Optional[str]:
        return self.welcome.session if self.welcome is not None else None

    def time(self) -> int:
        """The router's clock now, in µs since the Unix epoch (from WELCOME)."""
        return int(time_module.time() * 1_000_000) + self._time_offset

    def cached(self, address: str) -> Any:
        """The last value this client saw for ``address`` (None if none)."""
        return self._values.get(address)

    def revision(self, address: str) -> Optional[int]:
        """The revision of the cached value of ``address``."""
        return self._revisions.get(address)

    # --- callbacks ---------------------------------------------------------------------

    def on_connect(self, callback: Callable[[], Any]) -> Callable:
        self._on_connect.append(callback)
        return callback

    def on_disconnect(self, callback: Callable[[Optional[str]], Any]) -> Callable:
        self._on_disconnect.append(callback)
        return callback

    def on_error(self, callback: Callable[[Exception], Any]) -> Callable:
        """Errors no call can raise: ERRORs for fire-and-forget messages, failing
        subscriptions, exceptions of subscription callbacks."""
        self._on_error.append(callback)
        return callback

    def _call(self, cb, *args) -> None:
        try:
            res = cb(*args)
            if inspect.isawaitable(res):
                asyncio.ensure_future(res).add_done_callback(self._task_done)
        except Exception:
            log.exception("clasp: callback %r failed", cb)

    def _task_done(self, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._report(task.exception())

    def _report(self, exc: BaseException) -> None:
        if not self._on_error:
            log.warning("clasp: %s", exc)
        for cb in list(self._on_error):
            self._call(cb, exc)

    # --- sending -----------------------------------------------------------------------

    def _push(self, frame: bytes) -> None:
        """Appends a frame to this iteration's write (connection assumed open)."""
        self._out.append(frame)
        if len(self._out) >= _FLUSH_AT:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        out = self._out
        if not out or self._transport is None:
            return
        self._out = []
        self._transport.underlying_transport.write(masked_frames(out, random.getrandbits(32)))

    def _fire(self, frame: bytes) -> None:
        """A frame that expects no answer: now, or queued while disconnected."""
        if self._ready:
            self._fired = True
            self._push(frame)
        elif self.reconnect and not self._closing and self._ever_connected:
            if len(self._backlog) >= self.queue_size:
                raise QueueFull(f"disconnected from {self.url} and the send queue is full "
                                f"({self.queue_size} messages, queue_size); nothing was sent")
            self._backlog.append(frame)
        else:
            raise NotConnected(self._not_connected())

    def _not_connected(self) -> str:
        if self._closing:
            return "the client is closed"
        return f"not connected to {self.url} (reconnect is off)"

    def _request(self, frame: bytes, kind: int, address: Optional[str] = None,
                 sub: Optional[Subscription] = None, params: Optional[list] = None) -> _Pending:
        """Sends a frame the router will answer; the connection must be ready."""
        if self._fired:
            self._fired = False
            self._push(_PING)
            self._pending.append(_Pending(_PONG_K, self._loop.create_future()))
        self._push(frame)
        p = _Pending(kind, self._loop.create_future(), address, sub, params)
        self._pending.append(p)
        return p

    async def _wait_ready(self, timeout: Optional[float]) -> None:
        if self._ready:
            return
        if not (self.reconnect and not self._closing and self._ever_connected):
            raise NotConnected(self._not_connected())
        try:
            await asyncio.wait_for(self._connected_evt.wait(), timeout or self.timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"not reconnected to {self.url} within "
                                 f"{timeout or self.timeout} s") from None

    async def _await(self, fut: asyncio.Future, timeout: Optional[float], what: str) -> Any:
        timeout = timeout or self.timeout
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no answer to {what} from {self.url} within {timeout} s") \
                from None

    async def _ask(self, frame: bytes, kind: int, address: Optional[str], timeout, what: str,
                   params: Optional[list] = None) -> Any:
        await self._wait_ready(timeout)
        if kind == _BARRIER:
            self._request(frame, _BARRIER, address)     # no answer of its own: PING after it
            p = self._pending.pop()
            self._push(_PING)
            self._pending.append(p)
        else:
            p = self._request(frame, kind, address, params=params)
        if not self._writable.is_set():
            await self._writable.wait()
        return await self._await(p.future, timeout, what)

    # --- the verbs -----------------------------------------------------------------------

    async def set(self, address: str, value: Any, *, ttl: Optional[int] = None,
                  absolute: bool = False, confirm: bool = False, revision: Optional[int] = None,
                  timeout: Optional[float] = None) -> Optional[int]:
        """Writes a param.  Fire-and-forget by default (returns None); with
        ``confirm=True`` waits for the router's ACK and returns the new revision.
        ``revision=n`` writes only if the current revision is ``n`` (else ``Conflict``;
        implies confirm).  ``ttl`` seconds (0 = never expires), ``absolute`` as in clasp-to."""
        t = _ttl(ttl, absolute)
        raw = t.raw if t is not None else None
        if confirm or revision is not None:
            return await self._ask(encode_set_frame(address, value, revision, 1, raw), _ACK,
                                   address, timeout, f"SET {address}")
        self._fire(encode_set_frame(address, value, None, 0, raw))
        if not self._writable.is_set():
            await self._writable.wait()
        return None

    async def lock(self, address: str, value: Any = _MISSING, *,
                   timeout: Optional[float] = None) -> int:
        """Takes the lock on ``address`` (writing ``value``, or the current value); returns
        the revision.  Raises ``Locked`` if another session holds it."""
        return await self._lock(address, value, True, timeout)

    async def unlock(self, address: str, value: Any = _MISSING, *,
                     timeout: Optional[float] = None) -> int:
        """Releases this session's lock on ``address`` (writing ``value``, or the current
        value); returns the revision.  Raises ``Locked`` if another session holds it."""
        return await self._lock(address, value, False, timeout)

    async def _lock(self, address: str, value: Any, lock: bool, timeout) -> int:
        if value is _MISSING:
            if address in self._values:
                value = self._values[address]
            else:
                try:
                    value = await self.get(address, timeout)
                except LookupError:
                    value = None
        msg = Set(address, value, None, lock, not lock)
        return await self._ask(encode_frame(msg, 1), _ACK, address, timeout,
                               f"{'lock' if lock else 'unlock'} {address}")

    async def get(self, address: str, timeout: Optional[float] = None) -> Any:
        """The param's current value, asked from the router.  ``NotFound`` if none."""
        return (await self.param(address, timeout)).value

    async def param(self, address: str, timeout: Optional[float] = None):
        """The param at ``address`` as a ``ParamValue`` (value, revision, writer, timestamp)."""
        return await self._ask(encode_frame(Get(address)), _GET, address, timeout,
                               f"GET {address}")

    async def snapshot(self, pattern: str, timeout: Optional[float] = None) -> list:
        """Every param matching ``pattern`` now, as ``ParamValue``s (one SUBSCRIBE, its
        SNAPSHOT, then UNSUBSCRIBE)."""
        problem = check_pattern(pattern)
        if problem is not None:
            raise InvalidAddress(problem, code=202, address=pattern)
        sid = next(self._ids)
        params: list = []
        try:
            await self._ask(encode_frame(Subscribe(sid, pattern, TypeMask.PARAM), 1), _SUB,
                            pattern, timeout, f"SUBSCRIBE {pattern}", params=params)
        finally:
            if self._ready:
                self._push(encode_frame(Unsubscribe(sid)))
        return params

    async def query(self, pattern: str, timeout: Optional[float] = None) -> list:
        """The announced signals (and params) matching ``pattern``: a list of ``SignalDef``."""
        return await self._ask(encode_frame(Query(pattern)), _RESULT, pattern, timeout,
                               f"QUERY {pattern}")

    query_signals = get_signals = query

    async def emit(self, address: str, payload: Any = None, *, confirm: bool = False,
                   timeout: Optional[float] = None) -> None:
        """Sends an event (PUBLISH, signal type event)."""
        await self._publish(Publish(address, SignalType.EVENT, payload, Phase.START, self.time()),
                            confirm, timeout)

    async def stream(self, address: str, value: Any, *, confirm: bool = False,
                     timeout: Optional[float] = None) -> None:
        """Sends a stream sample (PUBLISH, signal type stream)."""
        await self._publish(Publish(address, SignalType.STREAM, value, Phase.START, self.time()),
                            confirm, timeout)

    async def gesture(self, address: str, gesture_id: int, phase: Any,
                      payload: Any = None, *, confirm: bool = False,
                      timeout: Optional[float] = None) -> None:
        """Sends one gesture phase: ``phase`` is ``start``, ``move``, ``end`` or ``cancel``."""
        ph = phase if isinstance(phase, Phase) else Phase[str(phase).upper()]
        await self._publish(Publish(address, SignalType.GESTURE, payload, ph, self.time(),
                                    gesture_id), confirm, timeout)

    async def timeline(self, address: str, keyframes: Any = None, loop: bool = False,
                       start_time: Optional[int] = None) -> None:
        """A timeline PUBLISH (clasp-to's signature).  The binary wire format carries no
        keyframes, so subscribers get the address and the start time only."""
        await self._publish(Publish(address, SignalType.TIMELINE, NO_VALUE, Phase.START,
                                    start_time or self.time()), False, None)

    async def publish(self, address: str, value: Any = None,
                      signal: SignalType = SignalType.EVENT, *, confirm: bool = False,
                      timeout: Optional[float] = None, **fields) -> None:
        """Any PUBLISH (``fields``: phase, timestamp, id, samples, rate)."""
        await self._publish(Publish(address, signal, value, **fields), confirm, timeout)

    async def _publish(self, msg: Publish, confirm: bool, timeout) -> None:
        if confirm:
            await self._ask(encode_frame(msg), _BARRIER, msg.address, timeout,
                            f"PUBLISH {msg.address}")
            return
        self._fire(encode_frame(msg))
        if not self._writable.is_set():
            await self._writable.wait()

    async def bundle(self, messages: list, at: Optional[int] = None, *, confirm: bool = False,
                     timeout: Optional[float] = None) -> Optional[int]:
        """Applies SETs and PUBLISHes all or nothing, now or ``at`` (router µs).
        ``messages``: ``{"set": (address, value)}`` / ``{"emit": (address, payload)}`` as in
        clasp-to, or ``Set``/``Publish`` objects.  With ``confirm`` returns the revision of
        the last SET (an ERROR naming the failed address is raised instead)."""
        inner = []
        for m in messages:
            if isinstance(m, (Set, Publish)):
                inner.append(m)
            elif "set" in m:
                inner.append(Set(m["set"][0], m["set"][1]))
            elif "emit" in m:
                inner.append(Publish(m["emit"][0], SignalType.EVENT, m["emit"][1]))
            else:
                raise ValueError(f"bundle entry {m!r}: use {{'set': (address, value)}} or "
                                 f"{{'emit': (address, payload)}}")
        msg = Bundle(inner, at)
        if confirm:
            return await self._ask(encode_frame(msg, 1), _ACK, None, timeout, "BUNDLE")
        self._fire(encode_frame(msg))
        return None

    # --- subscriptions -------------------------------------------------------------------

    def subscribe(self, pattern: str, callback: Optional[Callable[[Any, str], Any]] = None,
                  **options) -> Subscription:
        """Calls ``callback(value, address)`` for every matching SET (and the param's
        current value from the router's snapshot) and PUBLISH.  Returns a
        ``Subscription``: call it to unsubscribe, ``await`` it to wait until the router
        has it.  ``options``: ``maxRate``, ``epsilon``, ``history``, ``window``, ``types``
        (a ``TypeMask``).  ``callback`` may be a coroutine function."""
        problem = check_pattern(pattern)
        if problem is not None:
            raise InvalidAddress(problem, code=202, address=pattern)
        mask, opts = _options(options)
        sub = Subscription(self, next(self._ids), pattern, callback, mask, opts)
        self._subs[sub.id] = sub
        self._trie.subscribe(sub.native)
        if self._ready:
            self._send_subscribe(sub)
        elif self._closing:
            self._forget(sub)
            raise NotConnected(self._not_connected())
        return sub

    def on(self, pattern: str, **options) -> Callable:
        """Decorator: ``@client.on("/mixer/*/fader")`` subscribes the function."""
        def decorator(func):
            self.subscribe(pattern, func, **options)
            return func
        return decorator

    def _send_subscribe(self, sub: Subscription) -> None:
        p = self._request(encode_frame(Subscribe(sub.id, sub.pattern, sub.mask, sub.options), 1),
                          _SUB, sub.pattern, sub)
        sub.ack = p.future

    def _forget(self, sub: Subscription) -> None:
        if self._subs.pop(sub.id, None) is not None:
            self._trie.unsubscribe(sub.native)
        sub.active = False

    def _unsubscribe(self, sub: Subscription) -> None:
        if not sub.active:
            return
        self._forget(sub)
        if self._ready:
            self._push(encode_frame(Unsubscribe(sub.id)))

    async def watch(self, pattern: str, **options) -> AsyncIterator[tuple[str, Any]]:
        """``async for address, value in client.watch(pattern)``: the subscription lives
        while the loop runs."""
        queue: asyncio.Queue = asyncio.Queue()
        sub = self.subscribe(pattern, lambda value, address: queue.put_nowait((address, value)),
                             **options)
        try:
            while True:
                yield await queue.get()
        finally:
            sub()

    # --- receiving -----------------------------------------------------------------------

    def _on_frame(self, data: bytes) -> None:
        try:
            msg = decode_frame(data).message
        except DecodeError as exc:
            log.warning("clasp: skipping a frame this client cannot decode: %s", exc)
            return
        if self._record is not None:
            self._record.append(msg)
            self._changed.set()
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            log.debug("clasp: ignoring %s from the router", type(msg).__name__.upper())
            return
        try:
            handler(self, msg)
        except Exception:
            log.exception("clasp: failed to handle %r", msg)

    def _on_set(self, msg: Set) -> None:
        self._inbox.apply_set(msg.address, msg.value, msg.revision)

    def _on_publish(self, msg: Publish) -> None:
        self._inbox.apply_publish(msg.address, None if msg.value is NO_VALUE else msg.value,
                                  int(msg.signal))

    def _on_snapshot(self, msg: Snapshot) -> None:
        head = self._pending[0] if self._pending else None
        for p in msg.params:
            self._values[p.address] = p.value
            self._revisions[p.address] = p.revision
        if head is None:
            return
        if head.kind == _GET:
            for p in msg.params:
                if p.address == head.address:
                    self._pending.popleft()
                    head.resolve(p)
                    return
        elif head.kind == _SUB:
            if head.params is not None:
                head.params.extend(msg.params)
            if head.sub is not None and head.sub.active:
                for p in msg.params:
                    head.sub.deliver(p.value, p.address)

    def _on_ack(self, msg: Ack) -> None:
        for i, p in enumerate(self._pending):
            if p.kind in (_ACK, _SUB) and (p.address is None or msg.address is None
                                           or p.address == msg.address):
                break
        else:
            return                      # not ours (a frame sent with send(msg, qos=1))
        for _ in range(i):
            # the router answered a later request: this one got no answer (it was dropped)
            self._unanswered(self._pending.popleft())
        self._pending.popleft().resolve(msg.revision)

    def _on_pong(self, msg: Pong) -> None:
        while self._pending:
            head = self._pending.popleft()
            if head.kind == _PONG_K or head.kind == _BARRIER:
                head.resolve(None)
                return
            self._unanswered(head)

    def _unanswered(self, p: _Pending) -> None:
        p.fail(ClaspError("the router did not answer this request (dropped, e.g. by its rate "
                          "limit)", address=p.address))

    def _on_error(self, msg: Error) -> None:
        err = error_for(msg.code, msg.message, msg.address)
        head = self._pending[0] if self._pending else None
        if self._opening and head is not None:      # refused during the handshake
            self._pending.popleft()
            head.fail(err)
            return
        if head is None or head.kind == _PONG_K or (msg.code == 503 and not msg.address) or (
                msg.code == 429 and not msg.address):
            self._report(err)
            return
        if head.kind == _BARRIER:       # its PING is still to be answered: keep a place for it
            self._pending[0] = _Pending(_PONG_K, self._loop.create_future())
        else:
            self._pending.popleft()
        head.fail(err)
        if head.kind == _SUB and head.sub is not None:
            self._forget(head.sub)
            self._report(err)

    def _on_result(self, msg: Result) -> None:
        if self._pending and self._pending[0].kind == _RESULT:
            self._pending.popleft().resolve(msg.signals)

    def _on_welcome(self, msg: Welcome) -> None:
        if self._pending and self._pending[0].kind == _WELCOME:
            self._values.clear()        # the HELLO snapshot that follows is the whole state
            self._revisions.clear()
            self._pending.popleft().resolve(msg)

    def _on_ping(self, msg: Ping) -> None:
        if self._transport is not None:
            self._push(_PONG)

    def _on_sync(self, msg: Sync) -> None:
        if self._pending and self._pending[0].kind == _SYNC:
            self._pending.popleft().resolve(msg)

    # --- low level (tests and tools) -----------------------------------------------------

    def send(self, msg, qos: int = 0) -> None:
        """Sends any message as is.  Its answer is not matched to anything: read it with
        ``next``.  (For messages the router answers, use the verbs instead: the answer to
        a PING or GET sent this way would be taken for the answer to a pending request.)"""
        self._fire(encode_frame(msg, qos))

    def send_raw(self, frame: bytes) -> None:
        """Sends bytes as one binary WebSocket message (e.g. a hand-made frame)."""
        self._fire(bytes(frame))

    async def ping(self, timeout: Optional[float] = None) -> None:
        """A barrier: everything the router sent before its PONG has been handled."""
        await self._wait_ready(timeout)
        self._fired = False
        self._push(_PING)
        p = _Pending(_PONG_K, self._loop.create_future())
        self._pending.append(p)
        await self._await(p.future, timeout, "PING")

    async def next(self, kind=object, timeout: float = 5.0, where=None):
        """The next recorded message of type ``kind`` (a type or tuple) that satisfies
        ``where``; others stay recorded.  Needs ``record=True``."""
        if self._record is None:
            raise ClaspError("next() needs a client made with record=True")

        async def wait():
            while True:
                for i, msg in enumerate(self._record):
                    if isinstance(msg, kind) and (where is None or where(msg)):
                        return self._record.pop(i)
                if self._closed_evt.is_set() and not self._ready:
                    raise NotConnected(f"connection closed (code {self.close_code})")
                self._changed.clear()
                await self._changed.wait()
        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no {getattr(kind, '__name__', kind)} within {timeout} s") \
                from None

    def drain(self) -> list:
        """Every recorded message, oldest first (needs ``record=True``)."""
        out, self._record = self._record or [], ([] if self._record is not None else None)
        return out


_HANDLERS = {
    Set: Clasp._on_set,
    Publish: Clasp._on_publish,
    Snapshot: Clasp._on_snapshot,
    Ack: Clasp._on_ack,
    Pong: Clasp._on_pong,
    Error: Clasp._on_error,
    Result: Clasp._on_result,
    Welcome: Clasp._on_welcome,
    Ping: Clasp._on_ping,
    Sync: Clasp._on_sync,
}

