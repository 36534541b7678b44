"""The config objects each layer reads, generated from the settings table.

``Config`` has every setting as a flat attribute (``config.host``, ``config.port``,
``config.ping_interval``); the edge, the cluster and the command line read it.
``RouterConfig`` has the settings of layer "router", the ones the sans-I/O core
enforces; ``Config.router_config()`` builds it.  Both are dataclasses whose fields,
defaults and checks come from the table: building one with a value a setting does not
accept raises ``ConfigError`` naming its key path, flag and variable.  Fields are
keyword-only; ``objects.pyi`` (generated) lists them for editors and type checkers.
"""
from __future__ import annotations

from dataclasses import field, make_dataclass
from typing import Iterable

from .errors import ConfigError
from .setting import Setting
from .table import SETTINGS, broken_rule

ROUTER_SETTINGS = [s for s in SETTINGS if s.layer == "router"]


def _check_fields(rows: Iterable[Setting]):
    rows = list(rows)

    def __post_init__(self) -> None:
        for row in rows:
            setattr(self, row.name, row.accept(getattr(self, row.name)))

    return __post_init__


def _dataclass(name: str, rows: list[Setting], doc: str, **methods):
    fields = [(r.name, r.kind.pytype, field(default_factory=r.fresh_default)) for r in rows]
    cls = make_dataclass(name, fields, kw_only=True,
                         namespace={"__doc__": doc, "__post_init__": _check_fields(rows), **methods})
    cls.__module__ = __name__
    return cls


RouterConfig = _dataclass(
    "RouterConfig", ROUTER_SETTINGS,
    "Settings of the router core (see clasp_fast.settings.table; layer 'router').")


def _router_config(self) -> "RouterConfig":
    """The core's share of this config."""
    return RouterConfig(**{r.name: getattr(self, r.name) for r in ROUTER_SETTINGS})


def _validate(self) -> "Config":
    """Checks across settings (``RULES``); returns self or raises ConfigError."""
    rule = broken_rule(vars(self))
    if rule is not None:
        raise ConfigError(rule.message)
    return self


Config = _dataclass(
    "Config", SETTINGS,
    "Every setting of clasp-fast as a flat attribute (see clasp_fast.settings.table).",
    router_config=_router_config, validate=_validate)
