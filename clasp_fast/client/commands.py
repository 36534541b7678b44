"""``clasp-fast sub|set|get|pub|snapshot``: the client on the command line.

    clasp-fast sub '/mixer/**'              address value revision, one line each (--json)
    clasp-fast set /mixer/1/fader 0.5       prints the new revision
    clasp-fast get /mixer/1/fader           prints the value as JSON (--json: with revision)
    clasp-fast pub /cue/go '{"n": 1}'       an event (--stream, --gesture)
    clasp-fast snapshot '/mixer/**'         a table (--json: a JSON array)

Values are printed as JSON (bytes as a "0x..." hex string); a VALUE argument is parsed as
JSON, and taken as a string when it is not JSON.  Exit codes: see ``EXIT_CODES``.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, Optional

import orjson

from ..protocol import TypeMask
from .client import DEFAULT_URL, Clasp, insecure_ssl_context
from .errors import (ClaspError, Conflict, ConnectionFailed, ConnectionLost, Forbidden,
                     InvalidAddress, Locked, NotConnected, NotFound, RequestTimeout, Unauthorized,
                     describe_code)

COMMANDS = frozenset({"sub", "set", "get", "pub", "snapshot"})

EXIT_OK = 0
EXIT_ERROR = 1          # any other ERROR from the router
EXIT_USAGE = 2          # bad arguments, invalid address or pattern
EXIT_UNREACHABLE = 3    # cannot connect, or the connection was lost
EXIT_NOT_FOUND = 4      # get: no param at the address
EXIT_REFUSED = 5        # set: stale revision (409) or locked by another session (423)
EXIT_DENIED = 6         # unauthorized (401, 3xx) or forbidden (403)
EXIT_TIMEOUT = 7        # the router did not answer in --timeout seconds

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "the router answered with an ERROR not listed below",
    EXIT_USAGE: "bad arguments, or an invalid address or pattern (ERROR 2xx)",
    EXIT_UNREACHABLE: "the router is not reachable, or the connection was lost",
    EXIT_NOT_FOUND: "no param at the address (ERROR 404)",
    EXIT_REFUSED: "write refused: stale revision (409) or locked by another session (423)",
    EXIT_DENIED: "unauthorized (401, 3xx) or forbidden (403)",
    EXIT_TIMEOUT: "the router did not answer within --timeout seconds",
}


def parse_value(text: str) -> Any:
    """A VALUE argument: JSON if it parses (``1`` is an int, ``1.0`` a float, ``true``,
    ``null``, ``"1"`` the string), else the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    raise TypeError


def dumps(v: Any) -> str:
    return orjson.dumps(v, default=_default).decode()


def _param_doc(p) -> dict:
    return {"address": p.address, "value": p.value, "revision": p.revision, "writer": p.writer,
            "timestamp": p.timestamp}


def _parser() -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {k}  {v}" for k, v in EXIT_CODES.items())
    p = argparse.ArgumentParser(prog="clasp-fast", description="CLASP client commands "
                                "(clasp-fast with no command starts the router)",
                                epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=DEFAULT_URL, help=f"router URL (default {DEFAULT_URL})")
    common.add_argument("--token", help="token sent in HELLO")
    common.add_argument("--insecure", action="store_true",
                        help="wss:// without certificate checks (test certificates)")
    common.add_argument("--name", default="clasp-fast cli", help="client name sent in HELLO")
    common.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for the router (default 5)")
    sub = p.add_subparsers(dest="command", required=True)
    common_kw = {"parents": [common], "epilog": epilog,
                 "formatter_class": argparse.RawDescriptionHelpFormatter}

    s = sub.add_parser("sub", **common_kw, help="print what matches PATTERN, a line each")
    s.add_argument("pattern")
    s.add_argument("--json", action="store_true", help="one JSON object a line")
    s.add_argument("--count", type=int, default=0, help="exit after this many lines")
    s.add_argument("--params-only", action="store_true", help="only SETs, no events")

    s = sub.add_parser("set", **common_kw, help="write a param; prints the new revision")
    s.add_argument("address")
    s.add_argument("value", help="JSON, else a string")
    s.add_argument("--revision", type=int, help="write only if the current revision is this")
    s.add_argument("--ttl", type=int, help="seconds after the last write (0 = never expires)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--lock", action="store_true", help="also take the lock")
    g.add_argument("--unlock", action="store_true", help="also release this session's lock")

    s = sub.add_parser("get", **common_kw, help="print a param's value (JSON)")
    s.add_argument("address")
    s.add_argument("--json", action="store_true", help="value, revision, writer, timestamp")

    s = sub.add_parser("pub", **common_kw, help="publish an event (or stream / gesture)")
    s.add_argument("address")
    s.add_argument("value", nargs="?", default="null", help="JSON, else a string (default null)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--stream", action="store_true", help="a stream sample")
    g.add_argument("--gesture", action="store_true", help="a gesture phase")
    s.add_argument("--id", type=int, default=1, help="gesture id (default 1)")
    s.add_argument("--phase", default="start", choices=["start", "move", "end", "cancel"])

    s = sub.add_parser("snapshot", **common_kw, help="every param matching PATTERN")
    s.add_argument("pattern")
    s.add_argument("--json", action="store_true", help="a JSON array")
    return p


def _fail(command: str, exc: BaseException) -> int:
    if isinstance(exc, ClaspError) and exc.code:
        what = f"{describe_code(exc.code)} (ERROR {exc.code}): {exc.message}"
    else:
        what = str(exc)
    print(f"clasp-fast {command}: {what}", file=sys.stderr)
    if isinstance(exc, (ConnectionFailed, ConnectionLost, NotConnected)):
        return EXIT_UNREACHABLE
    if isinstance(exc, InvalidAddress):
        return EXIT_USAGE
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, (Conflict, Locked)):
        return EXIT_REFUSED
    if isinstance(exc, (Unauthorized, Forbidden)):
        return EXIT_DENIED
    if isinstance(exc, RequestTimeout):
        return EXIT_TIMEOUT
    return EXIT_ERROR


async def _connect(args, reconnect: bool = False) -> Clasp:
    ssl = insecure_ssl_context() if args.insecure else None
    return await Clasp.connect(args.url, args.name, token=args.token, ssl=ssl,
                               timeout=args.timeout, reconnect=reconnect)


async def _sub(args) -> int:
    client = await _connect(args, reconnect=True)
    done = asyncio.Event()
    seen = 0

    def line(address: str, value: Any, revision: Optional[int], kind: str) -> None:
        nonlocal seen
        if args.json:
            print(dumps({"address": address, "value": value, "revision": revision,
                         "type": kind}), flush=True)
        else:
            print(f"{address} {dumps(value)} {revision if revision is not None else '-'}",
                  flush=True)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    client.on_disconnect(lambda reason: print(f"clasp-fast sub: disconnected ({reason}); "
                                              f"reconnecting", file=sys.stderr, flush=True))
    client.on_error(lambda exc: print(f"clasp-fast sub: {exc}", file=sys.stderr, flush=True))
    client.subscribe(args.pattern, lambda v, a: line(a, v, client.revision(a), "set"),
                     types=TypeMask.PARAM)
    if not args.params_only:
        client.subscribe(args.pattern, lambda v, a: line(a, v, None, "publish"),
                         types=TypeMask.EVENT | TypeMask.STREAM | TypeMask.GESTURE
                         | TypeMask.TIMELINE)
    try:
        await done.wait()
    finally:
        await client.close()
    return EXIT_OK


async def _set(args) -> int:
    async with await _connect(args) as client:
        value = parse_value(args.value)
        if args.lock or args.unlock:
            rev = await (client.lock if args.lock else client.unlock)(args.address, value,
                                                                      timeout=args.timeout)
        else:
            rev = await client.set(args.address, value, confirm=True, revision=args.revision,
                                   ttl=args.ttl, timeout=args.timeout)
    print(rev, flush=True)
    return EXIT_OK


async def _get(args) -> int:
    async with await _connect(args) as client:
        p = await client.param(args.address, args.timeout)
    if args.json:
        print(dumps(_param_doc(p)))
    else:
        print(dumps(p.value))
    return EXIT_OK


async def _pub(args) -> int:
    async with await _connect(args) as client:
        value = parse_value(args.value)
        if args.stream:
            await client.stream(args.address, value, confirm=True, timeout=args.timeout)
        elif args.gesture:
            await client.gesture(args.address, args.id, args.phase, value, confirm=True,
                                 timeout=args.timeout)
        else:
            await client.emit(args.address, value, confirm=True, timeout=args.timeout)
    return EXIT_OK


async def _snapshot(args) -> int:
    async with await _connect(args) as client:
        params = await client.snapshot(args.pattern, args.timeout)
    params.sort(key=lambda p: p.address)
    if args.json:
        print(dumps([_param_doc(p) for p in params]))
        return EXIT_OK
    rows = [("ADDRESS", "VALUE", "REVISION")] + [(p.address, dumps(p.value), str(p.revision))
                                                  for p in params]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for a, v, r in rows:
        print(f"{a:<{w0}}  {v:<{w1}}  {r}")
    return EXIT_OK


_RUN = {"sub": _sub, "set": _set, "get": _get, "pub": _pub, "snapshot": _snapshot}


def main(argv: list[str]) -> int:
    """Runs one command (``argv[0]`` is in ``COMMANDS``); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:           # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    import uvloop
    try:
        return uvloop.run(_RUN[args.command](args))
    except KeyboardInterrupt:
        return EXIT_OK
    except ClaspError as exc:
        return _fail(args.command, exc)
    except ValueError as exc:           # e.g. a --url that is not ws:// or wss://
        print(f"clasp-fast {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
