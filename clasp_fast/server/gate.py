"""What a TCP connection meets before it is a WebSocket: the handshake gate.

The gate reads the start of the connection itself (decrypted, when ``wss://``), so it can

* with ``proxy_protocol`` on, read a PROXY header (v1 or v2) from a trusted proxy and
  take the client address from it; a PROXY header from an untrusted peer, or a trusted
  proxy that sends none, is refused with ``400`` and a reason (over ``wss://`` the header
  comes before the TLS handshake, and a refused connection is dropped);
* answer plain HTTP probes (load balancers): ``GET``/``HEAD`` without an upgrade
  get ``200 ok``; ``/healthz`` and ``/readyz`` likewise (``/readyz`` says 503
  while the server is not accepting);
* check the upgrade request the way browsers and proxies expect: no ``Host`` → 400,
  ``Sec-WebSocket-Version`` other than 13 → 426 naming 13, an ``Origin`` outside
  ``allowed_origins`` (when set; a request without Origin is not a browser's) → 403;
* know the client IP before the upgrade (PROXY source or peer address, or the right-most
  untrusted ``X-Forwarded-For`` hop when that is a trusted proxy) and refuse an
  over-limit connection with ``HTTP 503`` and a reason, before any 101;
* then hand the socket, and the bytes read so far, to picows for the upgrade.

picows then owns the connection; the gate is gone.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Optional

from picows import WSAutoPingStrategy
from picows.picows import WSProtocol

from ..netaddr import is_local
from . import proxy_protocol
from .http import BadRequest, read_head, response
from .pages import reply

log = logging.getLogger("clasp_fast.server")

MAX_HEAD = 16 * 1024
WARN_INTERVAL = 60.0


def limit_unsent(transport, limit: int) -> None:
    """Lets at most about ``limit`` bytes of this connection's output wait unsent below the
    router (``unsent_limit``): in the kernel (TCP_NOTSENT_LOWAT: the socket takes no more
    once that much is unsent; data in flight does not count, so a fast client's throughput
    is not limited by it) and in the transport's buffer (its high-water mark: past it the
    transport pauses and the router conflates).  Without it Linux grows a socket's send
    buffer to MiBs (net.ipv4.tcp_wmem), so every client that stops reading made the router
    copy MiBs into the kernel for it: with 1,000 of them, seconds during which nobody else
    was served (docs/operations.md)."""
    transport.set_write_buffer_limits(high=limit)
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, limit)
    except OSError as exc:          # a kernel without it: the transport's limit still holds
        log.debug("TCP_NOTSENT_LOWAT not set: %s", exc)


class RateLimitedWarning:
    """One warning per kind per ``WARN_INTERVAL`` seconds (a proxy misconfiguration would
    otherwise log once per connection)."""

    __slots__ = ("last",)

    def __init__(self):
        self.last: dict[str, float] = {}

    def __call__(self, kind: str, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -WARN_INTERVAL) >= WARN_INTERVAL:
            self.last[kind] = now
            log.warning(msg, *args)


class _ClaspWSProtocol(WSProtocol):
    """picows' protocol, plus one hook: give the connection slot back when the socket closes."""

    __slots__ = ("_limits", "_client_ip")

    def __init__(self, limits, client_ip: str, *args):
        super().__init__(*args)
        self._limits = limits
        self._client_ip = client_ip

    def connection_lost(self, exc):
        try:
            super().connection_lost(exc)
        finally:
            limits, self._limits = self._limits, None
            if limits is not None:
                limits.release(self._client_ip)


class ProxyRefused(Exception):
    """A PROXY protocol header refused (or missing); ``body`` is the 400 answer's text."""

    def __init__(self, body: bytes):
        super().__init__(body.decode(errors="replace").strip())
        self.body = body


class HandshakeGate(asyncio.Protocol):
    """One per accepted TCP connection, until the request head is read."""

    __slots__ = ("server", "transport", "buf", "peer", "timer", "proxied", "opened_at")

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.buf = b""
        self.peer = "?"
        self.timer = None
        self.proxied = not server.proxy_protocol    # True once the PROXY question is settled

    def connection_made(self, transport):
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if isinstance(peername, tuple) else str(peername)
        loop = asyncio.get_running_loop()
        self.opened_at = loop.time()
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= self.server.fd_ceiling:
            self.server.refused_fd(self.peer, sock.fileno())
            transport.write(response("503 Service Unavailable", b"server out of file descriptors\n",
                                     extra="Retry-After: 1\r\n"))
            transport.close()
            self.transport = None
            return
        self.timer = loop.call_later(self.server.handshake_timeout, self._timeout)
        if not self.proxied and hasattr(transport, "read_preamble"):
            # wss:// over TLSStream: proxies send the PROXY header before the TLS handshake
            transport.read_preamble(self._proxy_before_tls)

    def connection_lost(self, exc):
        self._cancel_timer()

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timeout(self):
        self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes):
        if self.transport is None:      # answered (or answering): ignore the rest
            return
        self.buf += data
        if not self.proxied and not self._read_proxy_header():
            return
        try:
            head, _ = read_head(self.buf, MAX_HEAD)
        except BadRequest as exc:
            status = "431 Request Header Fields Too Large" if "large" in str(exc) else "400 Bad Request"
            return self._reply(status, f"{exc}\n".encode())
        if head is None:
            return
        self._cancel_timer()
        headers = head.headers
        if "websocket" not in headers.get("upgrade", "").lower():
            return self._probe(head.method, head.path)
        refusal = self._check_upgrade(headers)
        if refusal is not None:
            return self._reply(*refusal)
        server = self.server
        forwarded = headers.get("x-forwarded-for")
        client_ip = server.trusted_proxies.client_ip(self.peer, forwarded)
        if forwarded and client_ip == self.peer and not server.proxy_protocol \
                and not server.trusted_proxies.trusts(self.peer):
            server.warn("xff", "connection from %s carries X-Forwarded-For but %s is not in "
                        "trusted_proxies: its clients all count as %s for max_connections_per_ip; "
                        "add the proxy to server.trusted_proxies (--trusted-proxies)",
                        self.peer, self.peer, self.peer)
        if not server.accepting:
            server.counters.refuse("shutting_down")
            return self._reply("503 Service Unavailable", b"server is shutting down\n",
                               extra="Retry-After: 1\r\n")
        blocked = server.hello_block(client_ip)
        if blocked:
            refusal = (f"too many failed HELLOs from {client_ip} (security.max_failed_hellos): "
                       f"refused for {blocked:.0f} more second(s)")
            server.refused(client_ip, refusal)
            return self._reply("429 Too Many Requests", (refusal + "\n").encode(),
                               extra=f"Retry-After: {max(1, round(blocked))}\r\n")
        refusal = server.limits.try_admit(client_ip)
        if refusal is not None:
            server.refused(client_ip, refusal)
            return self._reply("503 Service Unavailable", (refusal + "\n").encode(),
                               extra="Retry-After: 1\r\n")
        self._handoff(client_ip)

    def _read_proxy_header(self) -> bool:
        """True once the PROXY header (if any) is consumed and the HTTP request may follow."""
        try:
            used = self._take_proxy_header(self.buf)
        except ProxyRefused as exc:
            self._reply("400 Bad Request", exc.body)
            return False
        if used is None:
            return False
        self.buf = self.buf[used:]
        return True

    def _proxy_before_tls(self, data: bytes) -> Optional[int]:
        """``wss://``: the PROXY header comes before the TLS handshake (TLSStream hands us the
        bytes until we say how many were the header); a refusal drops the connection."""
        try:
            return self._take_proxy_header(data)
        except ProxyRefused:
            self._cancel_timer()
            raise

    def _take_proxy_header(self, buf: bytes) -> Optional[int]:
        """How many bytes at the start of ``buf`` are the PROXY header (0: none, from a peer
        that is not a trusted proxy), None while more are needed; takes the client address
        from it.  Raises ProxyRefused: a header from an untrusted peer, none from a trusted
        proxy, or a malformed one."""
        server = self.server
        trusted = server.trusted_proxies.trusts(self.peer)
        try:
            if not trusted:
                present = proxy_protocol.has_header(buf)
                if present is None:
                    return None
                if present:
                    server.warn("proxy-untrusted", "refused a PROXY protocol header from %s: "
                                "not in server.trusted_proxies (--trusted-proxies)", self.peer)
                    raise ProxyRefused(f"PROXY protocol header from {self.peer}, which is "
                                       f"not in trusted_proxies: refused\n".encode())
                self.proxied = True
                return 0
            source, used = proxy_protocol.parse(buf)
        except proxy_protocol.ProxyHeaderError as exc:
            server.warn("proxy-missing", "refused a connection from trusted proxy %s: %s "
                        "(server.proxy_protocol is on: configure the proxy to send it, e.g. HAProxy "
                        "send-proxy-v2, or turn proxy_protocol off)", self.peer, exc)
            raise ProxyRefused(f"{exc}: proxy_protocol is on and {self.peer} is a "
                               f"trusted proxy\n".encode()) from None
        if not used:
            return None
        if source is not None:
            self.peer = source
        self.proxied = True
        return used

    def _check_upgrade(self, headers: dict) -> Optional[tuple]:
        """None, or the (status, body, ...) refusing a bad upgrade request."""
        if not headers.get("host"):
            return "400 Bad Request", b"the upgrade request has no Host header (RFC 6455 4.1)\n"
        version = headers.get("sec-websocket-version", "")
        if version != "13":
            return ("426 Upgrade Required", f"unsupported Sec-WebSocket-Version {version!r}: "
                    f"this server speaks 13 (RFC 6455)\n".encode(), False,
                    "Sec-WebSocket-Version: 13\r\n")
        allowed = self.server.allowed_origins
        origin = headers.get("origin")
        # only browsers send Origin, and they always do: an allow-list guards against other
        # sites' pages, so a client without Origin (a native client) is let through
        if allowed and origin is not None and origin.rstrip("/").lower() not in allowed:
            return ("403 Forbidden", f"Origin {origin!r} is not in server.websocket.allowed_origins"
                                     f"\n".encode())
        return None

    def _probe(self, method: str, path: str):
        if method not in ("GET", "HEAD"):
            return self._reply("405 Method Not Allowed", b"use GET or HEAD, or upgrade to WebSocket\n",
                               extra="Allow: GET, HEAD\r\n")
        if path == "/readyz" and not self.server.accepting:
            return self._reply("503 Service Unavailable", b"not accepting connections\n",
                               head_only=method == "HEAD")
        if path == "/readyz" and self.server.cross_node_up is False:
            return self._reply("503 Service Unavailable", b"NATS unreachable: serving this node's "
                               b"clients only, the other nodes do not see them\n", head_only=method == "HEAD")
        kind = self.server.pages.route(path)
        if kind is not None:            # metrics, status API, inspector (pages.py)
            transport, self.transport = self.transport, None
            asyncio.ensure_future(reply(transport, self.server.pages, kind, method, path))
            return
        self._reply("200 OK", b"ok\n", head_only=method == "HEAD")

    def _reply(self, status: str, body: bytes, head_only: bool = False, extra: str = ""):
        self._cancel_timer()
        self.transport.write(response(status, body, head_only=head_only, extra=extra))
        self.transport.close()

    def _handoff(self, client_ip: str):
        server = self.server
        counters = server.counters
        counters.accepted += 1
        counters.handshake.observe(asyncio.get_running_loop().time() - self.opened_at)
        peername = self.transport.get_extra_info("peername")
        port = peername[1] if isinstance(peername, tuple) else 0
        if log.isEnabledFor(logging.DEBUG):
            log.debug("connection from %s:%s (client %s)", self.peer, port, client_ip)
        proto = _ClaspWSProtocol(
            server.limits, client_ip,
            None, None, False,
            lambda request: server.make_listener(request, client_ip, port),
            server.picows_logger,
            True,                               # disconnect_on_exception
            server.handshake_timeout,
            False, 20.0, 20.0, WSAutoPingStrategy.PING_WHEN_IDLE,   # keepalive is ours (Edge.sweep)
            True,                               # enable_auto_pong
            server.max_ws_frame,
            None,                               # extra_headers (client side only)
            server.read_buffer_size,
        )
        transport, data = self.transport, self.buf
        if server.unsent_limit:
            limit_unsent(transport, server.unsent_limit)
        self.transport = None
        self.buf = b""
        transport.set_protocol(proto)
        proto.connection_made(transport)
        view = memoryview(data)
        while view:
            target = proto.get_buffer(-1)
            n = min(len(target), len(view))
            target[:n] = view[:n]
            proto.buffer_updated(n)
            view = view[n:]
