"""The documentation states what the code does."""
import re
from pathlib import Path

from clasp_fast.config import SETTINGS, Config, build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_doc_lists_every_setting_with_its_flag_and_default():
    text = (DOCS / "configuration.md").read_text()
    defaults = Config()
    for key, _ in SETTINGS:
        default = getattr(defaults, key)
        if isinstance(default, list):
            default = ",".join(default) or "(none)"
        row = f"| `{key}` | `--{key.replace('_', '-')}` | `{default}` |"
        assert row in text, f"docs/configuration.md has no row for {key}: expected {row!r}"


def test_configuration_doc_has_no_setting_the_code_lacks():
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \| `--", text, re.M))
    assert documented == {key for key, _ in SETTINGS}


def test_every_setting_has_a_flag():
    parser = build_parser()
    flags = {a.dest for a in parser._actions}
    assert {key for key, _ in SETTINGS} <= flags
    assert {key for key, _ in SETTINGS} == set(Config.__dataclass_fields__)
