"""One row of the settings table and what follows from it: flags, variables, messages.

A ``Setting`` has a flat ``name`` (the attribute code reads, ``config.ping_interval``),
the ``key`` path it has in the YAML file (``server.websocket.ping_interval``), a kind
(what values it accepts), a default and a help line.  The flag (``--ping-interval``) and
the environment variable (``CLASP_FAST_PING_INTERVAL``) are derived from the name.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .kinds import Invalid

ENV_PREFIX = "CLASP_FAST_"


@dataclass(frozen=True)
class Setting:
    name: str
    key: str
    kind: Any
    default: Any
    help: str
    #: "router" settings are also fields of the core's RouterConfig
    layer: str = "edge"
    #: other flat names accepted as a flag and a variable (``bind`` for ``host``)
    aliases: tuple[str, ...] = ()
    #: other key paths where the file may give the same value (they must agree)
    also_at: tuple[str, ...] = ()

    @property
    def flags(self) -> list[str]:
        return ["--" + n.replace("_", "-") for n in (self.name, *self.aliases)]

    @property
    def flag(self) -> str:
        return self.flags[0]

    @property
    def envs(self) -> list[str]:
        return [ENV_PREFIX + n.upper() for n in (self.name, *self.aliases)]

    @property
    def env(self) -> str:
        return self.envs[0]

    @property
    def keys(self) -> list[str]:
        return [self.key, *self.also_at]

    def fresh_default(self) -> Any:
        """The default, copied (lists must not be shared between config objects)."""
        return copy.copy(self.default)

    def error(self, origin: str, value: Any, problem: str) -> ConfigError:
        where = f"{origin}: " if origin else ""
        return ConfigError(f"{where}{self.key} = {value!r} {problem}; allowed: {self.kind.allowed()} "
                           f"(flag {self.flag}, env {self.env})")

    def accept(self, value: Any, origin: str = "") -> Any:
        """``value`` (from a file or code) checked and normalised, or ConfigError."""
        try:
            return self.kind.accept(value)
        except Invalid as exc:
            raise self.error(origin, value, str(exc)) from None

    def from_text(self, text: str, origin: str) -> Any:
        """``text`` (from a flag or variable) parsed and checked, or ConfigError."""
        try:
            return self.kind.from_text(text)
        except Invalid as exc:
            raise self.error(origin, text, str(exc)) from None
