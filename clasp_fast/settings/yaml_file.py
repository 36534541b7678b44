"""Read a clasp.yaml: every key path the table knows, its value and its line.

PyYAML's ``SafeLoader`` composes the document into nodes (which carry their line);
the walk below checks the keys against the table's key paths as it goes, so an
unknown or misplaced key, a section that is not a mapping or a key given twice is
reported with the file, line and a "did you mean".  Values are built by the same
SafeLoader (what ``yaml.safe_load`` would give) and checked by the settings.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from .errors import ConfigError


@dataclass(frozen=True)
class FileValue:
    value: Any
    line: int


def _sections(keys: Iterable[str]) -> set[str]:
    out = set()
    for key in keys:
        parts = key.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return out


def suggestion(path: str, known: list[str]) -> str:
    """" (did you mean X?)" for the known key path closest to ``path``, or ""."""
    leaf = path.rsplit(".", 1)[-1]
    same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == leaf]
    close = same_leaf or difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    if not close:
        leaves = {k.rsplit(".", 1)[-1]: k for k in known}
        close = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.7)]
    return f" (did you mean {close[0]}?)" if close else ""


def read_yaml(path: str, keys: list[str]) -> dict[str, FileValue]:
    """``{key path: FileValue}`` for the keys ``path`` gives; ConfigError on any problem."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config file {path}: {reason} (--config)") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        out: dict[str, FileValue] = {}
        if root is not None and not (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
            _walk(loader, root, "", path, set(keys), _sections(keys), out)
        return out
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path} line {mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem} (check the indentation, brackets "
                          "and quotes there)") from None
    finally:
        loader.dispose()


def _walk(loader, node, prefix: str, path: str, keys: set[str], sections: set[str],
          out: dict[str, FileValue]) -> None:
    here = prefix.rstrip(".") or "the top level"
    if not isinstance(node, yaml.MappingNode):
        children = sorted({k[len(prefix):].split(".")[0] for k in keys | sections if k.startswith(prefix)})
        raise ConfigError(f"{path} line {node.start_mark.line + 1}: {here} must be a mapping of "
                          f"keys ({', '.join(children)})")
    seen: set[str] = set()
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        name = loader.construct_object(key_node, deep=True)
        full = f"{prefix}{name}"
        if not isinstance(name, str):
            raise ConfigError(f"{path} line {line}: key {name!r} in {here} is not a name")
        if full in seen:
            raise ConfigError(f"{path} line {line}: {full} is given twice")
        seen.add(full)
        if full in sections:
            is_null = isinstance(value_node, yaml.ScalarNode) and value_node.tag.endswith(":null")
            if not is_null:
                _walk(loader, value_node, full + ".", path, keys, sections, out)
        elif full in keys:
            out[full] = FileValue(loader.construct_object(value_node, deep=True),
                                  value_node.start_mark.line + 1)
        else:
            raise ConfigError(f"{path} line {line}: unknown key {full}"
                              f"{suggestion(full, sorted(keys))}; see docs/configuration.md")
