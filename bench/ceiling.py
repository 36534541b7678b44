"""The ceiling server: what picows + uvloop can do on this box with no CLASP work at all.

``python -m bench.ceiling --port P --mode tick|send`` (``clasp_fast_bench.ceiling`` when installed)

A bare picows server (native listener: ``_loadgen.CeilingConn``):

* HELLO gets a canned WELCOME and an empty SNAPSHOT (so the bench's clients, which
  wait for WELCOME, work unchanged); CLASP PING gets PONG;
* SUBSCRIBE makes the connection a subscriber (the pattern is ignored);
* every other binary frame is forwarded, unchanged, to every subscriber connection.

Modes:

* ``send``: one ``WSTransport.send`` per delivery (one ``send(2)`` each);
* ``tick``: each delivery is appended to the subscriber's buffer; every buffer is
  flushed with one write per connection per loop tick (a ``loop.call_soon`` callback).

It uses the same transport settings as clasp-fast (uvloop's TCP transport, a 4 KiB
initial read buffer) so memory and speed compare like for like.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__package__}.ceiling")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("tick", "send"), default="tick")
    ap.add_argument("--read-buffer-size", type=int, default=4096)
    args = ap.parse_args(argv)

    import uvloop
    from picows import ws_create_server, WSUpgradeResponse, WSUpgradeResponseWithListener
    from ._loadgen import CeilingConn, CeilingHub
    from clasp_fast.protocol import Pong, Snapshot, Welcome, encode_frame

    logging.getLogger("picows").setLevel(logging.WARNING)

    async def serve() -> int:
        loop = asyncio.get_running_loop()
        welcome = encode_frame(Welcome(session="00000000-0000-4000-8000-000000000000",
                                       name="ceiling", time=0))
        hub = CeilingHub(loop, args.mode == "tick", welcome, encode_frame(Snapshot([])),
                         encode_frame(Pong()))

        def factory(request):
            offered = request.headers.get("Sec-WebSocket-Protocol", "")
            conn = CeilingConn(hub)
            if "clasp" in [p.strip() for p in offered.split(",")]:
                return WSUpgradeResponseWithListener(
                    WSUpgradeResponse.create_101_response(
                        extra_headers={"Sec-WebSocket-Protocol": "clasp"}), conn)
            return conn

        server = await ws_create_server(factory, args.host, args.port, backlog=4096,
                                        use_aiofastnet=False,
                                        read_buffer_init_size=args.read_buffer_size,
                                        websocket_handshake_timeout=10)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"ceiling ({args.mode}) listening on ws://{args.host}:{args.port}", flush=True)
        await stop.wait()
        server.close()
        return 0

    return uvloop.run(serve())


if __name__ == "__main__":
    sys.exit(main())
