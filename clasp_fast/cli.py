"""``clasp-fast``: load the settings (file, variables, flags), set up logging, run the router."""
from __future__ import annotations

import sys
from typing import Optional

from .auth.tokens import TokenFileError, load_tokens
from .auth.guard import security_note
from .config import Config
from .logs import setup_logging
from .settings.bind_address import check_bind_address
from .settings.errors import ConfigError
from .settings.loader import load
from .settings.render import render_yaml


async def serve(config: Config, *, reuse_port: bool = False, sock=None, limits=None,
                on_started=None) -> int:
    """One process serving until SIGTERM/SIGINT; exit code 2 for a TLS file problem, 1 if it
    cannot listen."""
    from .server.app import ClaspServer
    from .server.run import PortClaim, StartError, run_server
    from .server.tls import TLSError

    try:
        server = ClaspServer(config, reuse_port=reuse_port, sock=sock, limits=limits)
    except TLSError as exc:
        print(f"clasp-fast: {exc}", file=sys.stderr)
        return 2
    claim = PortClaim(config.host, config.port)
    problem = None if (sock is not None or reuse_port) else claim.take()
    if problem:
        print(f"clasp-fast: {problem}", file=sys.stderr)
        return 1

    def ready(host: str, port: int) -> None:
        if on_started is not None:
            on_started(server, host, port)
        else:
            print(f"clasp-fast listening on {server.scheme}://{host}:{port} (name {config.name!r}, "
                  f"1 worker; {security_note(config)})", flush=True)

    journal = None
    if config.persistence:
        from .state.owner import OwnerJournal
        journal = OwnerJournal(config, server.router)      # main() holds the file's lock
    try:
        return await run_server(server, metrics_port=config.metrics_port, journal=journal,
                                on_ready=ready)
    except StartError as exc:
        print(f"clasp-fast: {exc}", file=sys.stderr)
        return 1
    finally:
        claim.release()


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
    setup_logging(config.log_level, config.log_format)
    if config.persistence:
        from .state import JournalError, claim
        try:
            claim(config.state_file)       # the lock is held until exit; forked workers share it
        except JournalError as exc:
            print(f"clasp-fast: {exc}", file=sys.stderr)
            return 1
    if config.workers > 1:
        from .cluster.supervisor import run_supervisor
        return run_supervisor(config)
    import uvloop
    return uvloop.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
