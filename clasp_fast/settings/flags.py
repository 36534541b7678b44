"""The command line, generated from the settings table.

Every setting gets its flag (and the flags of its aliases); values stay text here and
are parsed and checked by the setting itself (``Setting.from_text``), so a bad flag
gets the same message as a bad variable or file value.  Flags that are not given are
absent from the parsed namespace (the loader then keeps the file, variable or default).
"""
from __future__ import annotations

import argparse
import difflib
import sys

from .render import yaml_scalar
from .table import SETTINGS


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (with the closest flag for an unknown one), exit 2."""

    def error(self, message: str):
        unknown = [w for w in message.split() if w.startswith("--")] \
            if message.startswith("unrecognized arguments") else []
        known = [f for action in self._actions for f in action.option_strings]
        close = difflib.get_close_matches(unknown[0].split("=")[0], known, n=1) if unknown else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"clasp-fast: {message}{hint}; see clasp-fast --help", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="clasp-fast", argument_default=argparse.SUPPRESS, allow_abbrev=False,
        description="A fast CLASP router (WebSocket, binary v3 frames). Settings come from "
                    "defaults < the config file < CLASP_FAST_* variables < flags; "
                    "docs/configuration.md lists them all.")
    p.add_argument("--config", metavar="FILE",
                   help="YAML config file (default: $CLASP_FAST_CONFIG, else ./clasp.yaml when it exists)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective config as YAML, with where each value came from, and exit")
    p.add_argument("--check-config", action="store_true",
                   help="check the config (file, variables, flags) and exit 0 if it is valid")
    group = p.add_argument_group("settings (each also a config-file key and a CLASP_FAST_* variable)")
    for row in SETTINGS:
        help_text = f"{row.help} [{row.key}, {row.env}; default {yaml_scalar(row.default)}]"
        if row.kind.pytype is bool:
            group.add_argument(*row.flags, dest=row.name, action=argparse.BooleanOptionalAction,
                               help=help_text)
        else:
            group.add_argument(*row.flags, dest=row.name, metavar=row.kind.metavar, help=help_text)
    return p
