"""Settings as YAML text: ``--print-config`` and examples/clasp.yaml.

One renderer writes the nested YAML of the table's key paths (a setting with two key
paths, ``max_frame_size``, is written at both), with an optional comment line above a
key and an optional comment after its value.  Scalars are written in JSON form, which
YAML reads back to the same value, so the output round-trips through ``--config``.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional

from .setting import Setting
from .table import SETTINGS


def yaml_scalar(value: Any) -> str:
    """``value`` as YAML flow text that ``yaml.safe_load`` reads back unchanged."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))          # 30, as a person writes it; read back as a number
        text = repr(value)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    return json.dumps(value)


def _tree(rows: list[Setting]) -> dict:
    """{section: {...: Setting}} in table order; second key paths go last in their section."""
    placed = [(row.key, row) for row in rows] + [(key, row) for row in rows for key in row.also_at]
    tree: dict = {}
    for key, row in placed:
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = row
    return tree


def render_yaml(values: dict[str, Any], *, above: Optional[Callable[[Setting], str]] = None,
                after: Optional[Callable[[Setting], str]] = None, header: str = "") -> str:
    """YAML for ``values`` ({flat name: value}); ``above``/``after`` give per-key comments."""
    lines: list[tuple[str, str]] = []        # (text, comment after it)

    def walk(node: dict, indent: str) -> None:
        for name, child in node.items():
            if isinstance(child, dict):
                lines.append((f"{indent}{name}:", ""))
                walk(child, indent + "  ")
                continue
            if above is not None:
                lines.extend((f"{indent}# {text}", "") for text in above(child).split("\n"))
            lines.append((f"{indent}{name}: {yaml_scalar(values[child.name])}",
                          after(child) if after is not None else ""))

    walk(_tree(SETTINGS), "")
    width = max(len(text) for text, comment in lines if comment) + 2 if after is not None else 0
    body = "\n".join(f"{text.ljust(width)}# {comment}" if comment else text for text, comment in lines)
    return header + body + "\n"
