"""A WebSocket echo endpoint made of clasp-fast's own edge, for the Autobahn run (a test
fixture, not a product feature).

Everything a connection meets is the product's: the listening socket and the handshake
gate (``ClaspServer`` / ``HandshakeGate``), picows with the settings the server gives it,
the ``Edge`` (flushing, keepalive sweep) and ``Connection`` (close handling, protocol
errors, anything the edge checks on a frame).  Only the delivery of a complete data
message differs: the router would parse CLASP, the echo sends the message back.

``EchoConnection`` therefore passes every frame it does not deliver itself to
``Connection.on_ws_frame``: control frames (CLOSE: the edge's close handshake and close-code
checks), and any data frame with an RSV bit set (so the edge's own answer to reserved bits
is what Autobahn's section 3 sees).  It reassembles fragmented messages with the same rules
as ``Connection`` (a new message inside a fragmented one, or a continuation without one,
closes 1002; past ``max_frame_size`` + 12 closes 1009).  Text messages are echoed after a
UTF-8 check (1007), incrementally so that a bad fragment fails fast: the product refuses
text messages outright, so this check belongs to the fixture.

Run: ``python -m tests.deploy.echo_server --port N [--compression]``; it prints
``listening on HOST:PORT`` once it accepts connections and exits 0 on SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import codecs
import signal

import uvloop
from picows import WSCloseCode, WSMsgType

from clasp_fast._native.connection import Connection
from clasp_fast.config import Config
from clasp_fast.server.app import ClaspServer

DATA = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)


class EchoConnection(Connection):
    """``Connection``, delivering each complete data message back to its sender."""

    max_message_size = 65536 + 12  # set per server below (Connection's own cap is not public)

    def __init__(self, edge, session):
        self.kind = None            # TEXT/BINARY of the fragmented message in progress
        self.parts: list[bytes] = []
        self.size = 0
        self.utf8 = None

    def on_ws_frame(self, transport, frame):
        if frame.msg_type not in DATA or frame.rsv1 or frame.rsv2 or frame.rsv3:
            return super().on_ws_frame(transport, frame)
        if self.closing:
            return
        mt = frame.msg_type
        if mt == WSMsgType.CONTINUATION:
            if self.kind is None:
                return self.close(WSCloseCode.PROTOCOL_ERROR,
                                  "continuation frame without a message to continue")
        elif self.kind is not None:
            return self.close(WSCloseCode.PROTOCOL_ERROR,
                              "a new message started before the fragmented one finished")
        else:
            self.kind = mt
            self.parts = []
            self.size = 0
            self.utf8 = codecs.getincrementaldecoder("utf-8")() if mt == WSMsgType.TEXT else None
        payload = frame.get_payload_as_bytes()
        self.size += len(payload)
        if self.size > self.max_message_size:
            self.kind = None
            return self.close(WSCloseCode.MESSAGE_TOO_BIG,
                              f"message larger than {self.max_message_size} bytes")
        if self.utf8 is not None:
            try:
                self.utf8.decode(payload, final=bool(frame.fin))
            except UnicodeDecodeError:
                self.kind = None
                return self.close(WSCloseCode.INVALID_TEXT, "text message is not valid UTF-8")
        self.parts.append(payload)
        if frame.fin:
            kind, self.kind = self.kind, None
            transport.send(kind, b"".join(self.parts))
            self.parts = []


class EchoServer(ClaspServer):
    """The product's server, with ``EchoConnection`` as the listener of every upgrade."""

    def make_listener(self, request, client_ip: str, peer_port: int = 0):
        listener = super().make_listener(request, client_ip, peer_port)
        # super() built a ``Connection`` (maybe wrapped in a 101 response that names the
        # subprotocol); swap in the echo listener over the same session
        conn = getattr(listener, "listener", listener)
        if not isinstance(conn, Connection):      # the product refused the upgrade
            return listener
        echo = EchoConnection(self.edge, conn.session)
        echo.max_message_size = self.max_ws_frame
        if conn is listener:
            return echo
        listener.listener = echo
        return listener


async def serve(port: int, extra: dict) -> None:
    config = Config(host="127.0.0.1", port=port, hello_timeout=3600.0,
                    max_connections_per_ip=0, **extra).validate()
    server = EchoServer(config)
    host, bound = await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"listening on {host}:{bound}", flush=True)
    await stop.wait()
    await server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--compression", action="store_true",
                    help="permessage-deflate on (Config.compression, once the edge has it)")
    args = ap.parse_args()
    uvloop.run(serve(args.port, {"compression": True} if args.compression else {}))


if __name__ == "__main__":
    main()
