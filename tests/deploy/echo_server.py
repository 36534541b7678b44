"""A WebSocket echo endpoint made of clasp-fast's own edge, for the Autobahn run (a test
fixture, not a product feature).

Everything a connection meets is the product's: the listening socket and the handshake
gate (``ClaspServer`` / ``HandshakeGate``, including the permessage-deflate negotiation),
picows with the settings the server gives it, the ``Edge`` (flushing, keepalive sweep) and
``Connection``: every frame check (reserved bits, fragmentation rules, close codes, the
``max_frame_size`` + 12 cap), the reassembly of fragmented messages and the inflation of
compressed ones.  Only the delivery of a complete data message differs: the router would
parse CLASP, the echo sends the message back.  ``EchoConnection`` overrides
``Connection.on_ws_message``, the hook for exactly that.

Text messages are echoed after a UTF-8 check (1007): the product refuses text messages
outright, so this check belongs to the fixture.  It sees whole messages, so a bad fragment
is found when the message is complete (Autobahn 6.4.x: NON-STRICT, not fail-fast).

Run: ``python -m tests.deploy.echo_server --port N [--compression]``; it prints
``listening on HOST:PORT`` once it accepts connections and exits 0 on SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from picows import WSCloseCode, WSMsgType

from clasp_fast._native.connection import Connection
from clasp_fast.config import Config
from clasp_fast.server.app import ClaspServer


class EchoConnection(Connection):
    """``Connection``, delivering each complete data message back to its sender."""

    def on_ws_message(self, msg_type, payload):
        if self.closing:
            return
        if msg_type == WSMsgType.TEXT:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                return self.close(WSCloseCode.INVALID_TEXT, "text message is not valid UTF-8")
        n = len(payload)
        head = bytes([0x80 | msg_type]) + (bytes([n]) if n < 126 else
                                           (b"\x7e" + n.to_bytes(2, "big")) if n < 65536 else
                                           (b"\x7f" + n.to_bytes(8, "big")))
        # a direct reply of the edge: compressed when permessage-deflate was agreed
        self.send_frame(head + payload)


class EchoServer(ClaspServer):
    """The product's server, with ``EchoConnection`` as the listener of every upgrade."""

    connection_class = EchoConnection


async def serve(port: int, max_message: int, extra: dict) -> None:
    config = Config(host="127.0.0.1", port=port, hello_timeout=3600.0,
                    max_connections_per_ip=0, **extra).validate()
    server = EchoServer(config)
    # Autobahn 12-13 echo messages of 128 KiB, past the product's range for max_frame_size
    # (a CLASP frame's length is 16 bits): the fixture raises the edge's caps (picows' frame
    # limit, the edge's message limit) after the router was built with a valid config
    config.max_frame_size = max_message
    server.max_ws_frame = max_message + 12
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
    ap.add_argument("--max-message", type=int, default=65536,
                    help="the edge's message cap less 12 (Config.max_frame_size, set past its "
                         "range: Autobahn 12-13 send messages of 128 KiB)")
    ap.add_argument("--compression", action="store_true",
                    help="permessage-deflate on (Config.compression)")
    args = ap.parse_args()
    uvloop.run(serve(args.port, args.max_message, {"compression": True} if args.compression else {}))


if __name__ == "__main__":
    main()
