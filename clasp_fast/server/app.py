"""The server: one process (or one worker) serving CLASP over WebSocket.

Wires the layers together: the handshake gate (``gate.py``) accepts TCP and
answers probes, picows runs the WebSocket protocol, ``Connection`` feeds the
router core and ``Edge`` flushes its output once per loop tick.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import resource
import socket
import time
from typing import Optional

from picows import WSUpgradeResponse, WSUpgradeResponseWithListener

from .._native.connection import Connection, Edge
from .._native.tlsstream import TLSStream
from ..router import Router
from ..config import Config
from ..limits import LocalLimits
from ..netaddr import TrustedProxies, is_local
from . import permessage_deflate, tls
from .control import Control
from .figures import SAMPLE_EVERY, EdgeCounters, refusal_reason
from .gate import HandshakeGate, RateLimitedWarning
from .pages import Pages
from ..auth.guard import Guard
from ..auth.tokens import TokenFileError

log = logging.getLogger("clasp_fast.server")

TOKEN_CHECK_INTERVAL = 1.0      # seconds between checks for sessions whose token expired


def tune_gc() -> None:
    """Fewer, later garbage collections.  The hot path allocates no Python objects, but
    every connection brings a few dozen (picows, asyncio, the session); with the default
    thresholds a connection storm triggers full collections over every live connection,
    which showed up as tens of milliseconds in the p99 of connect → WELCOME.  Objects that
    exist at start-up are frozen out of collection altogether."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


FD_RESERVE = 32         # descriptors kept free for the bus, metrics, logs and refusing


class PicowsLog(logging.LoggerAdapter):
    """picows' logger.  What a client causes (a WebSocket protocol error, an oversize
    message, a slow reader pausing the writes) is the client's problem, answered with a
    close code: logged at DEBUG, not ERROR, and counted by close code
    (``clasp_websocket_errors_total``).  Anything else picows logs is unchanged.

    (A LoggerAdapter, not a Logger: picows then skips creating a child Logger object for
    every connection: memory per idle connection.)"""

    CLIENT_CAUSED = ("WS parser error", "on_ws_frame raised WSProtocolError", "Protocol writing")

    def __init__(self, counters: EdgeCounters):
        super().__init__(logging.getLogger("picows.server"), {})
        self.counters = counters

    def log(self, level, msg, *args, **kwargs):
        if level >= logging.WARNING and isinstance(msg, str) and msg.startswith(self.CLIENT_CAUSED):
            if level >= logging.ERROR:
                detail = args[0] if args else None
                code = detail[0] if isinstance(detail, tuple) and detail else 1002
                self.counters.websocket_error(int(code))
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


def _offers_clasp(request) -> bool:
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    return any(p.strip() == "clasp" for p in offered.split(","))


class ClaspServer:
    connection_class = Connection       # the listener of every upgrade (a test fixture swaps it)

    def __init__(self, config: Config, *, limits=None, router: Optional[Router] = None,
                 reuse_port: bool = False, sock: Optional[socket.socket] = None,
                 failed_hellos=None):
        self.config = config
        self.router = router if router is not None else Router(config.router_config())
        # token mode: who may open a session (None: open mode, nothing is checked)
        self.guard = Guard.from_config(config, failed_hellos)
        self.router.guard = self.guard
        self._token_timer: Optional[asyncio.TimerHandle] = None
        self.limits = limits if limits is not None else LocalLimits(
            config.max_connections, config.max_connections_per_ip)
        self.trusted_proxies = TrustedProxies(config.trusted_proxies)
        self.proxy_protocol = config.proxy_protocol
        self.allowed_origins = frozenset(o.strip().rstrip("/").lower() for o in config.allowed_origins
                                         if o.strip())
        self.ssl_context = tls.make_context(config)      # raises tls.TLSError
        # wss:// over the lean TLSStream (else over uvloop's TLS)
        self.lean_tls = self.ssl_context is not None and tls.lean_tls(self.ssl_context)
        if self.ssl_context is not None and config.proxy_protocol and not self.lean_tls:
            raise tls.TLSError("server.proxy_protocol with server.tls needs clasp-fast's own TLS "
                               "layer (the PROXY header comes before the TLS handshake), which "
                               "cannot run here (see the warning above): let the proxy terminate TLS")
        self.warn = RateLimitedWarning()
        self.handshake_timeout = config.handshake_timeout
        self.max_ws_frame = config.max_frame_size + 12
        self.read_buffer_size = config.read_buffer_size
        self.unsent_limit = config.unsent_limit
        self.compression = config.compression
        self.reuse_port = reuse_port
        self.sock = sock
        self.accepting = False
        #: cluster mode: whether this node's NATS link is up (None: a standalone router)
        self.cross_node_up: Optional[bool] = None
        #: cluster mode, worker 0: the NATS bridge's figures (a callable returning a dict)
        self.cross_node_figures = None
        self.refusals = 0
        self.counters = EdgeCounters()
        # file descriptors are handed out lowest first: a connection whose descriptor is
        # this high leaves fewer than FD_RESERVE free, and is refused (gate.py)
        self.fd_ceiling = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_RESERVE
        self.picows_logger = PicowsLog(self.counters)
        self.control = Control(self)       # a cluster worker replaces it (cluster/worker.py)
        self.pages = Pages(self)
        self.edge: Optional[Edge] = None
        self._server: Optional[asyncio.AbstractServer] = None

    # --- called by the gate -------------------------------------------------------

    def make_listener(self, request, client_ip: str, peer_port: int = 0):
        # Firefox sends "Connection: keep-alive, Upgrade"; picows wants exactly "upgrade"
        tokens = [t.strip().lower() for t in request.headers.get("Connection", "").split(",")]
        if "upgrade" in tokens:
            request.headers["Connection"] = "Upgrade"
        conn = self.connection_class(self.edge, self.router.open_session(client_ip))
        conn.peer_port = peer_port
        headers = {}
        if _offers_clasp(request):
            headers["Sec-WebSocket-Protocol"] = "clasp"
        if self.compression:
            agreement = permessage_deflate.negotiate(request.headers.getall("Sec-WebSocket-Extensions", ()))
            if agreement is not None:
                conn.accept_deflate(agreement.server_bits, agreement.client_no_context_takeover)
                headers["Sec-WebSocket-Extensions"] = agreement.response
        if headers:
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_101_response(extra_headers=headers), conn)
        return conn

    def refused(self, ip: str, reason: str) -> None:
        self.refusals += 1
        self.counters.refuse(refusal_reason(reason))
        log.warning("refused connection from %s (%d refused so far): %s", ip, self.refusals, reason)
        if "max_connections_per_ip" in reason and is_local(ip) and not self.trusted_proxies.trusts(ip):
            self.warn("proxy-ip", "%s, a loopback/private address, reached max_connections_per_ip: "
                      "if it is a reverse proxy, every client behind it counts as %s; add it to "
                      "server.trusted_proxies (--trusted-proxies; the proxy then sends "
                      "X-Forwarded-For or a PROXY header) or raise server.max_connections_per_ip "
                      "(--max-connections-per-ip)", ip, ip)

    def refused_fd(self, ip: str, fd: int) -> None:
        """A connection refused near the file-descriptor limit (counted, logged once a minute)."""
        self.counters.refuse("fd_limit")
        self.warn("fd-limit", "refusing connections: file descriptor %d of a limit of %d is in use "
                  "(%d refused so far; %d kept in reserve); raise the limit (ulimit -n, systemd "
                  "LimitNOFILE) or lower server.max_connections (--max-connections)",
                  fd, self.fd_ceiling + FD_RESERVE, self.counters.refused["fd_limit"], FD_RESERVE)

    def reload_tls(self) -> None:
        """SIGHUP: the certificate files again, for new connections (raises tls.TLSError)."""
        if self.ssl_context is None:
            log.info("SIGHUP: TLS is off, nothing to reload")
            return
        tls.reload(self.ssl_context, self.config)
        log.info("TLS certificate reloaded from %s", self.config.tls_cert)

    # --- token mode ---------------------------------------------------------------

    def hello_block(self, ip: str) -> float:
        """Seconds ``ip`` stays refused after too many failed HELLOs (0.0: let it in)."""
        return self.guard.blocked_for(ip, time.monotonic()) if self.guard is not None else 0.0

    def reload_tokens(self) -> None:
        """SIGHUP: re-read the tokens file, close the sessions whose token is gone, changed or
        expired.  A bad file is logged and the old tokens stay."""
        if self.guard is None:
            return
        try:
            self.guard.reload()
        except TokenFileError as exc:
            log.error("SIGHUP: tokens file not reloaded, the old tokens stay: %s", exc)
            return
        self.check_tokens()

    def check_tokens(self, reloaded: bool = True) -> None:
        """Closes the sessions whose token is no longer valid (revoked on reload, expired)."""
        self.router.recheck_access(reloaded)    # ERROR 401 each; the edge then closes them

    def _token_tick(self) -> None:
        self.check_tokens(reloaded=False)
        self._token_timer = asyncio.get_running_loop().call_later(TOKEN_CHECK_INTERVAL, self._token_tick)

    # --- lifecycle ----------------------------------------------------------------

    def prepare(self) -> None:
        """Sets up the I/O edge (flushing, timers, keepalive) before anything connects."""
        loop = asyncio.get_running_loop()
        tune_gc()
        if not self.picows_logger.logger.isEnabledFor(logging.DEBUG):
            self.picows_logger.logger.setLevel(logging.WARNING)
        self.edge = Edge(self.router, loop, max_frame_size=self.config.max_frame_size,
                         hello_timeout=self.config.hello_timeout,
                         ping_interval=self.config.ping_interval,
                         pong_timeout=self.config.pong_timeout)
        if self.pages.metrics_on:
            self.edge.sample_mask = SAMPLE_EVERY - 1
            self.edge.on_sample = self.counters.latency.observe
        self.counters.lag.start()
        if self.guard is not None:
            self._token_timer = loop.call_later(TOKEN_CHECK_INTERVAL, self._token_tick)

    async def listen(self) -> tuple[str, int]:
        """Starts accepting clients; returns the address it listens on."""
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self._server = await loop.create_server(self._protocol_factory(), sock=self.sock,
                                                    backlog=4096, **self._tls_args())
        else:
            self._server = await loop.create_server(
                self._protocol_factory(), self.config.host, self.config.port,
                reuse_port=self.reuse_port or None, backlog=4096, **self._tls_args())
        self.accepting = True
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    def _protocol_factory(self):
        """What each accepted TCP connection gets: the handshake gate, under a TLSStream
        for wss://."""
        if self.lean_tls:
            ctx = self.ssl_context
            return lambda: TLSStream(ctx, HandshakeGate(self))
        return lambda: HandshakeGate(self)

    def _tls_args(self) -> dict:
        if self.ssl_context is None or self.lean_tls:
            return {}
        return {"ssl": self.ssl_context, "ssl_handshake_timeout": self.handshake_timeout}

    @property
    def scheme(self) -> str:
        return "wss" if self.ssl_context is not None else "ws"

    async def start(self) -> tuple[str, int]:
        self.prepare()
        return await self.listen()

    async def stop(self, timeout: float = 3.0) -> None:
        """Stops accepting, closes every connection with 1001, waits for them to go."""
        self.accepting = False
        if self._token_timer is not None:
            self._token_timer.cancel()
        if self._server is not None:
            self._server.close()
        if self.edge is not None:
            self.edge.close_all(1001, "server shutting down")
            deadline = asyncio.get_running_loop().time() + timeout
            while self.edge.connections and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            self.edge.stop()
        self.counters.lag.stop()

    @property
    def connection_count(self) -> int:
        return len(self.edge.connections) if self.edge is not None else 0
