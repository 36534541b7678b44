"""The command line: a port in use, invalid settings and unknown flags fail fast with one line
that says why (the config file has its own tests: test_config_file.py)."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys

import pytest

from tests.support import REPO


def run_cli(*args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clasp_fast", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def busy_port():
    """A loopback port another socket listens on, for the duration."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_port_in_use_exits_1_naming_the_port():
    with busy_port() as port:
        r = run_cli("--host", "127.0.0.1", "--port", str(port))
    assert r.returncode == 1, r
    assert str(port) in r.stderr and "another server" in r.stderr, r.stderr
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


def test_unknown_flag_exits_2_in_one_line_with_the_closest_flag():
    r = run_cli("--ping-intervall", "4")
    assert r.returncode == 2
    assert r.stderr.strip() == ("clasp-fast: unrecognized arguments: --ping-intervall 4 "
                                "(did you mean --ping-interval?); see clasp-fast --help")


def test_bind_is_the_same_setting_as_host():
    with busy_port() as port:
        r = run_cli("--bind", "127.0.0.1", "--port", str(port))
    assert r.returncode == 1, r
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "another server" in r.stderr
