"""The command line: a port in use and invalid settings fail fast with a message that says why."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.support import REPO


def run_cli(*args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clasp_fast", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_port_in_use_exits_nonzero_naming_the_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli("--host", "127.0.0.1", "--port", str(port))
    assert r.returncode != 0, r
    assert str(port) in r.stderr, r.stderr
    assert "listening on" not in r.stdout


@pytest.mark.parametrize("args, setting", [
    (("--buffer-size", "0"), "buffer_size"),
    (("--max-frame-size", "0"), "max_frame_size"),
    (("--max-connections", "-1"), "max_connections"),
    (("--hello-timeout", "0"), "hello_timeout"),
    (("--pong-timeout", "-3"), "pong_timeout"),
    (("--ping-interval", "-1"), "ping_interval"),
    (("--port", "70000"), "port"),
    (("--trusted-proxies", "not-an-ip"), "trusted_proxies"),
])
def test_invalid_setting_exits_2_naming_it(args, setting):
    r = run_cli("--host", "127.0.0.1", *args)
    assert r.returncode == 2, r
    assert setting in r.stderr, r.stderr
    assert "listening on" not in r.stdout


def test_non_numeric_value_exits_2_naming_the_flag():
    r = run_cli("--host", "127.0.0.1", "--buffer-size", "lots")
    assert r.returncode == 2
    assert "--buffer-size" in r.stderr, r.stderr
