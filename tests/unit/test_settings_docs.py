"""docs/configuration.md, examples/clasp.yaml and settings/objects.pyi are what the settings
table generates."""
from __future__ import annotations

from clasp_fast.config import Config
from clasp_fast.settings import SETTINGS
from clasp_fast.settings.generate import DOC, EXAMPLE, STUB, configuration_md, example_yaml
from clasp_fast.settings.stub import objects_stub
from clasp_fast.settings.loader import load

FIX = "run `python -m clasp_fast.settings.generate` and commit the result"


def test_configuration_doc_is_generated_from_the_table():
    text = DOC.read_text()
    assert text == configuration_md(text), f"docs/configuration.md is stale: {FIX}"


def test_configuration_doc_has_a_row_per_setting_with_flag_variable_and_default():
    text = DOC.read_text()
    for row in SETTINGS:
        line = next((ln for ln in text.splitlines() if ln.startswith(f"| `{row.key}`")), None)
        assert line is not None, row.key
        assert f"`{row.flag}`" in line and f"`{row.env}`" in line


def test_example_file_is_generated_from_the_table_and_gives_the_defaults(tmp_path):
    assert EXAMPLE.read_text() == example_yaml(), f"examples/clasp.yaml is stale: {FIX}"
    loaded = load(["--config", str(EXAMPLE)], environ={}, cwd=str(tmp_path))
    assert vars(loaded.config) == vars(Config())
    assert all(src.startswith("file:") for src in loaded.sources.values()), "a key is missing"


def test_the_stub_of_the_config_classes_is_generated_from_the_table():
    assert STUB.read_text() == objects_stub(), f"clasp_fast/settings/objects.pyi is stale: {FIX}"
    assert "    ping_interval: float" in STUB.read_text()
    assert "    trusted_proxies: list[str]" in STUB.read_text()
