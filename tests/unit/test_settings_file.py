"""The config file: each kind of mistake is one ConfigError naming the file, the line and
the key; --print-config output reads back as the same config."""
from __future__ import annotations

import pytest

from clasp_fast.settings import SETTINGS, ConfigError
from clasp_fast.settings.loader import load
from clasp_fast.settings.render import render_yaml


def load_file(tmp_path, text: str, *argv: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load(["--config", str(path), *argv], environ={}, cwd=str(tmp_path))


def refused(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_file(tmp_path, text)
    return str(err.value)


@pytest.mark.parametrize("text, words", [
    # unknown key, with the key it is closest to
    ("server:\n  port: 1\n  max_conections: 5\n",
     ["c.yaml line 3", "unknown key server.max_conections", "did you mean server.max_connections?"]),
    # a key in the wrong section: suggested where it belongs
    ("server:\n  ping_interval: 5\n", ["line 2", "did you mean server.websocket.ping_interval?"]),
    ("sever:\n  port: 1\n", ["line 1", "unknown key sever", "did you mean"]),
    # wrong type
    ("server:\n  port: \"80a\"\n", ["line 2", "server.port = '80a'", "is not an integer",
                                    "from 0 to 65535", "--port", "CLASP_FAST_PORT"]),
    ("server:\n  websocket:\n    compression: 1\n", ["line 3", "server.websocket.compression",
                                                     "true or false"]),
    # out of range
    ("server:\n  websocket:\n    pong_timeout: 0\n", ["line 3", "server.websocket.pong_timeout = 0",
                                                      "out of range", "greater than 0"]),
    # invalid YAML, with its line
    ("server:\n  port: 1\n bind: [\n", ["c.yaml line 3", "invalid YAML"]),
    ("server: 7\n", ["line 1", "server must be a mapping", "port"]),
    ("server:\n  port: 1\n  port: 2\n", ["line 3", "server.port is given twice"]),
    ("- 1\n- 2\n", ["line 1", "the top level must be a mapping"]),
    # the page's two places for max_frame_size, disagreeing
    ("server:\n  max_frame_size: 1000\n  websocket:\n    max_frame_size: 2000\n",
     ["lines 2 and 4", "server.max_frame_size = 1000", "server.websocket.max_frame_size = 2000",
      "disagree"]),
])
def test_a_mistake_in_the_file_names_file_line_and_key(tmp_path, text, words):
    msg = refused(tmp_path, text)
    for word in words:
        assert word in msg, msg
    assert "\n" not in msg


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(["--config", str(tmp_path / "missing.yaml")], environ={})
    assert "cannot read config file" in str(err.value) and "missing.yaml" in str(err.value)
    assert "No such file" in str(err.value)


def test_both_frame_size_keys_agreeing_are_accepted(tmp_path):
    c = load_file(tmp_path, "server:\n  max_frame_size: 1000\n  websocket: {max_frame_size: 1000}\n")
    assert c.config.max_frame_size == 1000
    c = load_file(tmp_path, "server:\n  websocket: {max_frame_size: 3000}\n")
    assert c.config.max_frame_size == 3000


def test_empty_file_and_empty_sections_mean_defaults(tmp_path):
    assert load_file(tmp_path, "").config.port == 7330
    assert load_file(tmp_path, "server:\n  tls:\n").config.tls_enabled is False


def test_print_config_output_reads_back_as_the_same_config(tmp_path):
    first = load_file(tmp_path, "server:\n  port: 9000\n  trusted_proxies: [10.0.0.0/8]\n"
                                "  tls: {cert: a.pem, key: k.pem}\nrouter: {name: 'x # y'}\n",
                      "--ping-interval", "2.5", "--allowed-origins", "https://a.example")
    text = render_yaml(vars(first.config), after=lambda row: first.sources[row.name])
    second = load_file(tmp_path, text)
    assert vars(second.config) == vars(first.config)
    assert second.config.tls_enabled and second.config.name == "x # y"
    assert all(s.startswith("file:") for s in second.sources.values())
    assert "# flag:--ping-interval" in text and "# implied by server.tls.cert" in text


def test_the_file_comes_from_the_flag_then_the_variable_then_the_working_directory(tmp_path):
    for name, port in (("flag.yaml", 1), ("env.yaml", 2), ("clasp.yaml", 3)):
        (tmp_path / name).write_text(f"server: {{port: {port}}}\n")
    env = {"CLASP_FAST_CONFIG": str(tmp_path / "env.yaml")}
    assert load(["--config", str(tmp_path / "flag.yaml")], environ=env, cwd=str(tmp_path)).config.port == 1
    assert load([], environ=env, cwd=str(tmp_path)).config.port == 2
    assert load([], environ={}, cwd=str(tmp_path)).config.port == 3
    (tmp_path / "empty").mkdir()
    assert load([], environ={}, cwd=str(tmp_path / "empty")).file is None
