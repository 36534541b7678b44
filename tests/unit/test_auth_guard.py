"""The failed-HELLO table, the Guard (admission, reload) and the security settings."""
from __future__ import annotations

import multiprocessing
import os

import pytest

from clasp_fast._native.shmlimits import FailedHellos
from clasp_fast.auth.guard import Guard, security_note
from clasp_fast.auth.tokens import TokenFileError, new_token, token_line
from clasp_fast.settings import Config
from clasp_fast.settings.errors import ConfigError
from clasp_fast.settings.loader import load

TOKEN = new_token()


def test_an_ip_is_blocked_after_max_failures_within_the_window_then_let_in_again():
    table = FailedHellos(3, 10.0, 60.0)
    assert [table.failed("10.0.0.1", t) for t in (1.0, 2.0, 3.0)] == [False, False, True]
    assert table.blocked_for("10.0.0.1", 4.0) == 59.0
    assert table.blocked_for("10.0.0.2", 4.0) == 0.0          # per IP
    assert table.blocked_for("10.0.0.1", 63.0) == 0.0         # for a while only
    # failures spread wider than the window never block
    assert [table.failed("10.0.0.3", t) for t in (1.0, 12.0, 23.0, 34.0)] == [False] * 4


def test_zero_max_failures_never_blocks():
    table = FailedHellos(0, 10.0, 60.0)
    assert not any(table.failed("10.0.0.1", 1.0) for _ in range(100))
    assert table.blocked_for("10.0.0.1", 1.0) == 0.0


def _fail_twice(table, ip):
    table.bind(1)
    table.failed(ip, 1.0)
    table.failed(ip, 1.5)
    os._exit(0)


def test_failures_are_counted_across_forked_processes():
    table = FailedHellos(3, 10.0, 60.0)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_fail_twice, args=(table, "192.0.2.7"))
    child.start()
    child.join(10)
    assert child.exitcode == 0
    assert table.failed("192.0.2.7", 2.0) is True             # 2 in the child + 1 here


def test_guard_admits_known_tokens_and_counts_refusals(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(token_line("desk", TOKEN, ["write:/lights/**"], None) + "\n")
    guard = Guard(str(path), FailedHellos(2, 10.0, 60.0))
    access, why = guard.admit(TOKEN, "10.0.0.1", 1e9, 1.0)
    assert why == "" and access.name == "desk" and access.may_write_address("/lights/3")
    assert not access.may_write_address("/sound") and not access.write_all
    assert access.may_read("/lights/1") and not access.may_read("/x")
    assert access.covers_read("/lights/*") and not access.covers_read("/**")
    assert guard.admit(None, "10.0.0.1", 1e9, 1.0) == (None, "no token in HELLO")
    assert guard.admit("nope", "10.0.0.1", 1e9, 2.0) == (None, "unknown or expired token")
    assert guard.blocked_for("10.0.0.1", 3.0) > 0
    # reload: the desk token is gone; a broken file keeps the old tokens
    path.write_text("broken line\n")
    with pytest.raises(TokenFileError, match="line 1"):
        guard.reload()
    assert guard.still_valid(access.entry, 1e9)
    path.write_text("")
    guard.reload()
    assert not guard.still_valid(access.entry, 1e9)


def test_write_decisions_are_cached_per_address_and_stay_right(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(token_line("desk", TOKEN, ["write:/a/*", "read:/**"], None) + "\n")
    access, _ = Guard(str(path), FailedHellos(0, 1.0, 1.0)).admit(TOKEN, None, 1e9, 1.0)
    for _ in range(3):                      # first decided, then looked up
        assert [access.may_write_address(a) for a in ("/a/1", "/a", "/a/1/2", "/b/1")] == \
            [True, False, False, False]
    many = [f"/a/{i}" for i in range(10000)]  # more addresses than the cache holds
    assert all(access.may_write_address(a) for a in many)
    assert not access.may_write_address("/b/1")


def test_tokens_file_flag_implies_token_mode_and_open_mode_refuses_a_file(tmp_path):
    loaded = load(["--auth-tokens", "t.txt"], environ={}, cwd=str(tmp_path))
    assert loaded.config.security_mode == "token"
    assert loaded.sources["security_mode"] == "implied by security.tokens_file"
    with pytest.raises(ConfigError, match="security.mode token needs security.tokens_file"):
        load(["--security-mode", "token"], environ={}, cwd=str(tmp_path))
    with pytest.raises(ConfigError, match="--auth-tokens"):
        load(["--security-mode", "open", "--auth-tokens", "t.txt"], environ={}, cwd=str(tmp_path))


def test_the_start_up_note_says_open_or_warns_about_clear_text_tokens():
    assert "open mode" in security_note(Config())
    note = security_note(Config(security_mode="token", auth_tokens="t.txt"))
    assert "token mode" in note and "clear text" in note
    tls = Config(security_mode="token", auth_tokens="t.txt", tls_enabled=True, tls_cert="c", tls_key="k")
    assert "clear text" not in security_note(tls)
