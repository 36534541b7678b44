"""``clasp-fast``: load the settings (file, variables, flags), set up logging, run the router."""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
from typing import Optional

from .auth.tokens import TokenFileError, load_tokens
from .auth.guard import security_note
from .config import Config
from .settings.bind_address import check_bind_address
from .settings.errors import ConfigError
from .settings.loader import load
from .settings.render import render_yaml


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def serve(config: Config, *, reuse_port: bool = False, sock=None, limits=None,
                on_started=None) -> int:
    from .server.app import ClaspServer

    server = ClaspServer(config, reuse_port=reuse_port, sock=sock, limits=limits)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload_tokens)
    host, port = await server.start()
    metrics = None
    if config.metrics_port:
        from .server.metrics import start_metrics
        try:
            metrics = await start_metrics(server, config.host, config.metrics_port)
        except OSError as exc:
            print(f"clasp-fast: cannot serve metrics on {config.host}:{config.metrics_port}: "
                  f"{exc.strerror or exc} (pick another --metrics-port)", file=sys.stderr)
            await server.stop()
            return 1
    if on_started is not None:
        on_started(server, host, port)
    else:
        print(f"clasp-fast listening on ws://{host}:{port} (name {config.name!r}, 1 worker; "
              f"{security_note(config)})", flush=True)
    await stop.wait()
    logging.getLogger("clasp_fast").info("shutting down: closing %d connection(s) with 1001",
                                         server.connection_count)
    await server.stop()
    if metrics is not None:
        metrics.close()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    from .client import commands        # `clasp-fast sub|set|get|pub|snapshot`: the client
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in commands.COMMANDS:
        return commands.main(args)
    if args[:1] == ["token"]:            # `clasp-fast token new`: tokens for security.mode token
        from .auth.command import main as token_main
        return token_main(args[1:])
    try:
        loaded = load(argv)
        if loaded.print_config:
            print(render_yaml(vars(loaded.config), after=lambda row: loaded.sources[row.name]), end="")
            return 0
        config = loaded.config
        check_bind_address(config.host, loaded.sources["host"])
        if config.security_mode == "token":
            load_tokens(config.auth_tokens)
    except (ConfigError, TokenFileError) as exc:
        print(f"clasp-fast: {exc}", file=sys.stderr)
        return 2
    if loaded.check_config:
        print(f"clasp-fast: the configuration is valid"
              f"{f' (file {loaded.file})' if loaded.file else ''}")
        return 0
    setup_logging(config.log_level)
    if config.workers > 1:
        from .cluster.supervisor import run_supervisor
        return run_supervisor(config)
    import uvloop
    try:
        return uvloop.run(serve(config))
    except OSError as exc:
        hint = " (is another server using the port? pick one with --port)" \
            if exc.errno == errno.EADDRINUSE else ""
        print(f"clasp-fast: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}{hint}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
