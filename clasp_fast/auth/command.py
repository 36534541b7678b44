"""``clasp-fast token new --name NAME --scope SCOPE [--scope ...] [--expires TIME]``.

Prints a new random token once (keep it: only its hash is stored) and the line to add to
the tokens file.  Exit 2 with one line when an argument is wrong.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from .scopes import ScopeError, parse_scope
from .tokens import NAME, new_token, parse_expiry, token_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clasp-fast token",
                                     description="make tokens for security.mode token")
    sub = parser.add_subparsers(dest="action", required=True)
    new = sub.add_parser("new", help="print a new random token and its tokens-file line")
    new.add_argument("--name", required=True, help="label for logs (letters, digits, -_.)")
    new.add_argument("--scope", action="append", required=True, metavar="LEVEL:PATTERN",
                     help="read:/lights/**, write:/lights/**, admin:/** (repeat for more)")
    new.add_argument("--expires", metavar="TIME",
                     help="ISO 8601 date or UTC time after which the token is refused")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    problem: Optional[str] = None
    expires = None
    if not NAME.match(args.name):
        problem = f"--name {args.name!r} must be 1 to 64 letters, digits, '-', '_' or '.'"
    for scope in args.scope:
        try:
            parse_scope(scope)
        except ScopeError as exc:
            problem = problem or f"--scope: {exc}"
    if args.expires is not None:
        try:
            expires = parse_expiry(args.expires)
        except ValueError:
            problem = problem or (f"--expires {args.expires!r} must be an ISO 8601 date or time, "
                                  "e.g. 2027-01-31 or 2027-01-31T18:00:00Z")
    if problem:
        print(f"clasp-fast token: {problem}", file=sys.stderr)
        return 2
    token = new_token()
    print(f"token (shown once; give it to the client, e.g. Clasp(url, token=...)):\n{token}\n"
          f"line for the tokens file:\n{token_line(args.name, token, args.scope, expires)}")
    return 0
