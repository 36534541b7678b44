"""clasp-fast with a config file, CLASP_FAST_* variables and flags, as real processes:
mistakes exit 2 with one line naming the key, precedence file < env < flag, and
--print-config output is a config file that gives the same config."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.integration.conftest import connect_hello
from tests.support import REPO, RouterProcess, free_port

ENV = {k: v for k, v in os.environ.items() if not k.startswith("CLASP_FAST_")}


def run_cli(*args: str, env: dict | None = None, cwd=REPO, timeout: float = 15.0):
    return subprocess.run([sys.executable, "-m", "clasp_fast", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**ENV, **(env or {})})


def write(tmp_path, text: str, name: str = "clasp.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_config_error(r, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, r.stderr
    assert line.startswith("clasp-fast: "), line
    for word in words:
        assert word in line, line
    assert "listening on" not in r.stdout


@pytest.mark.parametrize("text, words", [
    ("server:\n  port: 7330\n  max_conections: 10\n",
     ["line 3", "server.max_conections", "did you mean server.max_connections?"]),
    ("server:\n  websocket:\n    ping_interval: soon\n",
     ["line 3", "server.websocket.ping_interval", "is not a number", "--ping-interval"]),
    ("server:\n  max_connections_per_ip: -5\n",
     ["line 2", "server.max_connections_per_ip = -5", "out of range", "at least 0"]),
    ("server:\n  port: [7330\n", ["line", "invalid YAML"]),
    ("server:\n  max_frame_size: 1000\n  websocket:\n    max_frame_size: 2000\n",
     ["server.max_frame_size = 1000", "server.websocket.max_frame_size = 2000", "disagree"]),
], ids=["unknown-key", "wrong-type", "out-of-range", "invalid-yaml", "frame-size-places-disagree"])
def test_a_mistake_in_the_file_exits_2_naming_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    assert_config_error(run_cli("--config", path, "--host", "127.0.0.1", "--port", "0"), path, *words)


def test_an_unreadable_file_exits_2_naming_it(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"server:\n  port: \xff\xfe\n")
    assert_config_error(run_cli("--config", str(binary)), "cannot read config file", str(binary))
    assert_config_error(run_cli("--config", str(tmp_path)), "cannot read config file", "Is a directory")


def test_a_missing_file_exits_2_naming_it(tmp_path):
    assert_config_error(run_cli("--config", str(tmp_path / "nope.yaml")), "nope.yaml", "No such file")


def test_a_bad_variable_exits_2_naming_it():
    assert_config_error(run_cli("--check-config", env={"CLASP_FAST_MAX_CONNECTIONS": "many"}),
                        "env CLASP_FAST_MAX_CONNECTIONS", "server.max_connections", "is not an integer")


def test_an_address_this_machine_lacks_is_reported_as_such():
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): no machine has it; nothing is sent to it
    r = run_cli("--host", "192.0.2.1", "--port", str(free_port()))
    assert_config_error(r, "server.bind = '192.0.2.1'", "no such address", "--host")
    assert "port" not in r.stderr.split(":", 2)[-1].split("(flag")[0]


def test_check_config_validates_and_exits_0_without_listening(tmp_path):
    path = write(tmp_path, "server:\n  bind: 127.0.0.1\n  websocket: {ping_interval: 5}\n")
    r = run_cli("--config", path, "--check-config")
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout and "listening on" not in r.stdout
    assert_config_error(run_cli("--config", path, "--check-config", "--pong-timeout", "0"),
                        "server.websocket.pong_timeout")


def test_clasp_yaml_in_the_working_directory_is_read(tmp_path):
    write(tmp_path, "router:\n  name: from-cwd\n")
    r = run_cli("--print-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["router"]["name"] == "from-cwd"
    assert "# file:clasp.yaml" in r.stdout


def test_precedence_file_then_variable_then_flag(tmp_path):
    path = write(tmp_path, "server:\n  max_connections: 11\n  max_connections_per_ip: 12\n"
                           "  websocket: {pong_timeout: 13}\n")
    r = run_cli("--config", path, "--print-config", "--max-connections", "31",
                env={"CLASP_FAST_MAX_CONNECTIONS": "21", "CLASP_FAST_MAX_CONNECTIONS_PER_IP": "22"})
    assert r.returncode == 0, r.stderr
    server = yaml.safe_load(r.stdout)["server"]
    assert (server["max_connections"], server["max_connections_per_ip"],
            server["websocket"]["pong_timeout"], server["port"]) == (31, 22, 13, 7330)
    lines = {ln.split(":")[0].strip(): ln for ln in r.stdout.splitlines()}
    assert lines["max_connections"].endswith("# flag:--max-connections")
    assert lines["max_connections_per_ip"].endswith("# env:CLASP_FAST_MAX_CONNECTIONS_PER_IP")
    assert lines["pong_timeout"].endswith(f"# file:{path}")
    assert lines["port"].endswith("# default")


def test_print_config_round_trips_through_config(tmp_path):
    first = run_cli("--print-config", "--bind", "127.0.0.1", "--trusted-proxies", "10.0.0.0/8,::1",
                    "--tls-cert", "c.pem", "--tls-key", "k.pem", "--allowed-origins", "https://a.example",
                    env={"CLASP_FAST_PARAM_TTL": "60.5", "CLASP_FAST_COMPRESSION": "true"})
    assert first.returncode == 0, first.stderr
    path = write(tmp_path, first.stdout, "printed.yaml")
    second = run_cli("--config", path, "--print-config")
    assert second.returncode == 0, second.stderr
    assert yaml.safe_load(second.stdout) == yaml.safe_load(first.stdout)
    assert yaml.safe_load(first.stdout)["server"]["tls"]["enabled"] is True
    assert f"# file:{path}" in second.stdout and "# default" not in second.stdout


async def test_a_router_takes_its_settings_from_the_file_then_variables_then_flags(tmp_path):
    port = free_port()
    path = write(tmp_path, f"server:\n  bind: 127.0.0.1\n  port: {port}\nrouter:\n  name: from-file\n")
    cases = [((), {}, "from-file"), ((), {"CLASP_FAST_NAME": "from-env"}, "from-env"),
             (("--name", "from-flag"), {"CLASP_FAST_NAME": "from-env"}, "from-flag")]
    for flags, env, expected in cases:
        rp = RouterProcess(env=env)
        rp.args, rp.port = ["--config", path, "--no-persistence", *flags], port     # bind and port only from the file
        with rp:
            assert f"ws://127.0.0.1:{port}" in rp.log()
            ws, welcome, _ = await connect_hello(rp.url)
            await ws.close()
            assert welcome.name == expected
