"""The files made from the settings table: docs/configuration.md's settings tables,
examples/clasp.yaml and clasp_fast/settings/objects.pyi.

``python -m clasp_fast.settings.generate`` rewrites them (run it after changing the
table); ``--check`` exits 1 if one differs from what the table gives.  In the Markdown
file only the part between the two markers is generated; the prose around it is written
by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .render import render_yaml, yaml_scalar
from .stub import objects_stub
from .table import SETTINGS

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"
EXAMPLE = REPO / "examples" / "clasp.yaml"
STUB = Path(__file__).with_name("objects.pyi")
BEGIN = "<!-- settings: generated from clasp_fast/settings/table.py by " \
        "`python -m clasp_fast.settings.generate`; do not edit by hand -->"
END = "<!-- end of generated settings -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_tables() -> str:
    """One Markdown table per YAML section: key, flag, variable, default, allowed, meaning."""
    sections: dict[str, list[str]] = {}
    for row in SETTINGS:
        key = " or ".join(f"`{k}`" for k in row.keys)
        flags = " ".join(f"`{f}`" for f in row.flags)
        if row.kind.pytype is bool:
            flags += " / " + " ".join(f"`--no-{f[2:]}`" for f in row.flags)
        envs = " ".join(f"`{e}`" for e in row.envs)
        sections.setdefault(row.key.rsplit(".", 1)[0], []).append(
            f"| {key} | {flags} | {envs} | `{_cell(yaml_scalar(row.default))}` | "
            f"{_cell(row.kind.allowed())} | {_cell(row.help)} |")
    out: list[str] = []
    for section, rows in sections.items():
        out += [f"### `{section}`", "",
                "| key | flag | environment variable | default | allowed | meaning |",
                "|---|---|---|---|---|---|", *rows, ""]
    return "\n".join(out)


def configuration_md(current: str) -> str:
    """``current`` (the doc as committed) with its generated part made from the table."""
    head, sep, rest = current.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{DOC} lacks the markers {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n\n{settings_tables()}\n{END}{tail}"


EXAMPLE_HEADER = """\
# clasp.yaml: every setting of clasp-fast with its default.
# Generated from clasp_fast/settings/table.py (python -m clasp_fast.settings.generate).
# Use it with `clasp-fast --config clasp.yaml` (./clasp.yaml is read when present);
# keep only the keys you change. CLASP_FAST_* variables and flags override the file.
"""


def example_yaml() -> str:
    return render_yaml({row.name: row.default for row in SETTINGS}, header=EXAMPLE_HEADER,
                       above=lambda row: f"{row.help}\n{row.kind.allowed()}; "
                                         f"{' '.join(row.flags)}; {' '.join(row.envs)}")


def main(argv: list[str]) -> int:
    wanted = {DOC: configuration_md(DOC.read_text()), EXAMPLE: example_yaml(), STUB: objects_stub()}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p.relative_to(REPO)} differs from the settings table; "
                  "run python -m clasp_fast.settings.generate", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
