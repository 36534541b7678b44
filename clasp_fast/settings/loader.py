"""Where the effective config comes from: defaults < file < CLASP_FAST_* variables < flags.

``load(argv)`` parses the command line, reads the config file (``--config FILE``, else
``$CLASP_FAST_CONFIG``, else ``./clasp.yaml`` when present), the environment and the flags, checks every value as
it is read (so a message names where the bad value came from) and the rules across
settings, and returns the ``Config`` with the source of each value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from .errors import ConfigError
from .flags import build_parser
from .objects import Config
from .table import BY_NAME, SETTINGS, broken_rule
from .yaml_file import read_yaml

DEFAULT_FILE = "clasp.yaml"
CONFIG_ENV = "CLASP_FAST_CONFIG"          # the file, when --config is not given
DEFAULT = "default"


@dataclass
class Loaded:
    config: Config
    #: {flat name: "default" | "file:PATH" | "env:NAME" | "flag:--x" | "implied by ..."}
    sources: dict[str, str]
    file: Optional[str]
    print_config: bool = False
    check_config: bool = False


def _from_file(path: str, values: dict, sources: dict) -> None:
    given = read_yaml(path, [k for row in SETTINGS for k in row.keys])
    for row in SETTINGS:
        found = [(k, given[k]) for k in row.keys if k in given]
        accepted = [(k, fv, row.accept(fv.value, f"{path} line {fv.line}")) for k, fv in found]
        if len({repr(v) for _, _, v in accepted}) > 1:
            (k1, f1, v1), (k2, f2, v2) = accepted[:2]
            raise ConfigError(f"{path} lines {f1.line} and {f2.line}: {k1} = {v1!r} and {k2} = {v2!r} "
                              f"disagree; give one of them, or the same value in both")
        if accepted:
            values[row.name] = accepted[0][2]
            sources[row.name] = f"file:{path}"


def _from_env(environ: Mapping[str, str], values: dict, sources: dict) -> None:
    for row in SETTINGS:
        for name in row.envs:
            if name in environ:
                values[row.name] = row.from_text(environ[name], f"env {name}")
                sources[row.name] = f"env:{name}"
                break


def _from_flags(ns, values: dict, sources: dict) -> None:
    for row in SETTINGS:
        if hasattr(ns, row.name):
            given = getattr(ns, row.name)
            origin = f"flag {row.flag}"
            values[row.name] = row.accept(given, origin) if isinstance(given, bool) \
                else row.from_text(given, origin)
            sources[row.name] = f"flag:{row.flag}"


def _imply(values: dict, sources: dict) -> None:
    """A certificate and key given (and TLS not switched off explicitly) mean TLS is on;
    a tokens file given (and the mode not set explicitly) means token mode."""
    if sources["tls_enabled"] == DEFAULT and values["tls_cert"] and values["tls_key"]:
        values["tls_enabled"] = True
        sources["tls_enabled"] = "implied by server.tls.cert and server.tls.key"
    if sources["security_mode"] == DEFAULT and values["auth_tokens"]:
        values["security_mode"] = "token"
        sources["security_mode"] = "implied by security.tokens_file"


def _check_rules(values: dict, sources: dict) -> None:
    rule = broken_rule(values)
    if rule is not None:
        given = [f"{BY_NAME[n].key} = {values[n]!r} from {sources[n]}"
                 for n in rule.names if sources[n] != DEFAULT]
        raise ConfigError(rule.message + (f" ({'; '.join(given)})" if given else ""))


def load(argv: Optional[list[str]] = None, environ: Optional[Mapping[str, str]] = None,
         cwd: Optional[str] = None) -> Loaded:
    """The effective config for this command line; ConfigError says what is wrong.
    (Unknown flags and ``--help`` are argparse's: it exits 2 or 0 itself.)"""
    ns = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    path = getattr(ns, "config", None) or environ.get(CONFIG_ENV) or None
    here = Path(cwd) / DEFAULT_FILE if cwd else Path(DEFAULT_FILE)
    if path is None and here.is_file():
        path = str(here)
    values = {row.name: row.fresh_default() for row in SETTINGS}
    sources = {row.name: DEFAULT for row in SETTINGS}
    if path is not None:
        _from_file(path, values, sources)
    _from_env(environ, values, sources)
    _from_flags(ns, values, sources)
    _imply(values, sources)
    _check_rules(values, sources)
    return Loaded(Config(**values), sources, path, getattr(ns, "print_config", False),
                  getattr(ns, "check_config", False))
