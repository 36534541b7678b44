"""``objects.pyi``: the generated config classes spelled out for editors and type checkers."""
from __future__ import annotations

from .kinds import ListOf, Nullable
from .objects import ROUTER_SETTINGS
from .table import SETTINGS


def annotation(kind) -> str:
    if isinstance(kind, Nullable):
        return f"Optional[{annotation(kind.inner)}]"
    if isinstance(kind, ListOf):
        return f"list[{annotation(kind.item)}]"
    return kind.pytype.__name__


def _class(name: str, rows, methods: list[str]) -> list[str]:
    out = [f"class {name}:"]
    out += [f"    {r.name}: {annotation(r.kind)}" for r in rows]
    out.append("    def __init__(")
    out += ["        self,", "        *,"] + [f"        {r.name}: {annotation(r.kind)} = ...," for r in rows]
    out.append("    ) -> None: ...")
    return out + [f"    {m}" for m in methods]


def objects_stub() -> str:
    lines = ['"""Generated from clasp_fast/settings/table.py by `python -m clasp_fast.settings.generate`."""',
             "from typing import Optional", "", "ROUTER_SETTINGS: list", "",
             *_class("RouterConfig", ROUTER_SETTINGS, []), "",
             *_class("Config", SETTINGS, ["def router_config(self) -> RouterConfig: ...",
                                          "def validate(self) -> Config: ..."])]
    return "\n".join(lines) + "\n"
