"""What a TCP connection meets before it is a WebSocket: the handshake gate.

The gate reads the HTTP request head itself, so it can

* answer plain HTTP probes (load balancers): ``GET``/``HEAD`` without an upgrade
  get ``200 ok``; ``/healthz`` and ``/readyz`` likewise (``/readyz`` says 503
  while the server is not accepting);
* know the client IP before the upgrade (peer address, or the right-most
  untrusted ``X-Forwarded-For`` hop when the peer is a trusted proxy) and refuse
  an over-limit connection with ``HTTP 503`` and a reason, before any 101;
* then hand the socket, and the bytes read so far, to picows for the upgrade.

picows then owns the connection; the gate is gone.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Iterable, Optional

from picows import WSAutoPingStrategy
from picows.picows import WSProtocol

log = logging.getLogger("clasp_fast.server")

MAX_HEAD = 16 * 1024


def _response(status: str, body: bytes, head_only: bool = False, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n").encode() + \
        (b"" if head_only else body)


class TrustedProxies:
    """Which peers may tell us the client address in ``X-Forwarded-For``."""

    def __init__(self, entries: Iterable[str] = ()):
        self.networks = [ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip()]

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def client_ip(self, peer: str, forwarded_for: Optional[str]) -> str:
        """The right-most address of the chain that is not a trusted proxy."""
        if not self.networks or not forwarded_for or not self.trusts(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


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


class HandshakeGate(asyncio.Protocol):
    """One per accepted TCP connection, until the request head is read."""

    __slots__ = ("server", "transport", "buf", "peer", "timer")

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.buf = b""
        self.peer = "?"
        self.timer = None

    def connection_made(self, transport):
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if isinstance(peername, tuple) else str(peername)
        self.timer = asyncio.get_running_loop().call_later(
            self.server.handshake_timeout, self._timeout)

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
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._reply("431 Request Header Fields Too Large", b"request head too large\n")
            return
        self._cancel_timer()
        head = self.buf[:end].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return self._reply("400 Bad Request", b"malformed request line\n")
        method, target, _version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        upgrade = "websocket" in headers.get("upgrade", "").lower()
        if not upgrade:
            return self._probe(method, target)
        client_ip = self.server.trusted_proxies.client_ip(self.peer, headers.get("x-forwarded-for"))
        if not self.server.accepting:
            return self._reply("503 Service Unavailable", b"server is shutting down\n",
                               extra="Retry-After: 1\r\n")
        blocked = self.server.hello_block(client_ip)
        if blocked:
            refusal = (f"too many failed HELLOs from {client_ip} (security.max_failed_hellos): "
                       f"refused for {blocked:.0f} more second(s)")
            self.server.refused(client_ip, refusal)
            return self._reply("429 Too Many Requests", (refusal + "\n").encode(),
                               extra=f"Retry-After: {max(1, round(blocked))}\r\n")
        refusal = self.server.limits.try_admit(client_ip)
        if refusal is not None:
            self.server.refused(client_ip, refusal)
            return self._reply("503 Service Unavailable", (refusal + "\n").encode(),
                               extra="Retry-After: 1\r\n")
        self._handoff(client_ip)

    def _probe(self, method: str, target: str):
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return self._reply("405 Method Not Allowed", b"use GET or HEAD, or upgrade to WebSocket\n",
                               extra="Allow: GET, HEAD\r\n")
        if path == "/readyz" and not self.server.accepting:
            return self._reply("503 Service Unavailable", b"not accepting connections\n",
                               head_only=method == "HEAD")
        self._reply("200 OK", b"ok\n", head_only=method == "HEAD")

    def _reply(self, status: str, body: bytes, head_only: bool = False, extra: str = ""):
        self._cancel_timer()
        self.transport.write(_response(status, body, head_only, extra))
        self.transport.close()

    def _handoff(self, client_ip: str):
        server = self.server
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
