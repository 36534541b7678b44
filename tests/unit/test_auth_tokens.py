"""The tokens file (clasp_fast.auth.tokens) and `clasp-fast token new`."""
from __future__ import annotations

import pytest

from clasp_fast.auth.command import main as token_main
from clasp_fast.auth.scopes import READ, WRITE
from clasp_fast.auth.tokens import (TokenFileError, Tokens, load_tokens, new_token, parse_expiry,
                                    token_line)

T_DESK, T_OLD = new_token(), new_token()
NOW = parse_expiry("2026-12-06T12:00:00Z")


def write(tmp_path, text):
    path = tmp_path / "tokens.txt"
    path.write_text(text)
    return str(path)


def test_a_token_is_256_random_bits_and_its_line_holds_only_the_hash():
    assert len(T_DESK) == 43 and T_DESK != T_OLD
    line = token_line("desk", T_DESK, ["write:/lights/**"], None)
    assert T_DESK not in line and line.startswith("desk sha256:")


def test_find_by_token_with_scopes_and_expiry(tmp_path):
    path = write(tmp_path, "# venue tokens\n\n"
                 + token_line("desk", T_DESK, ["write:/lights/**", "read:/**"], None) + "  # FOH\n"
                 + token_line("old", T_OLD, ["read:/a"], parse_expiry("2026-12-01")) + "\n")
    tokens = load_tokens(path)
    desk = tokens.find(T_DESK, NOW)
    assert desk.name == "desk" and desk.line == 3
    assert desk.scopes.may(WRITE, "/lights/1") and not desk.scopes.may(WRITE, "/sound")
    assert desk.scopes.may(READ, "/sound")
    assert tokens.find(T_OLD, NOW) is None                        # expired
    assert tokens.find(T_OLD, parse_expiry("2026-11-30")).name == "old"
    assert tokens.find("not-a-token", NOW) is None and tokens.find(None, NOW) is None
    assert tokens.find("", NOW) is None


def test_still_valid_after_reload(tmp_path):
    before = load_tokens(write(tmp_path, token_line("desk", T_DESK, ["read:/**"], None)))
    desk = before.find(T_DESK, NOW)
    assert before.still_valid(desk, NOW)
    assert not Tokens([]).still_valid(desk, NOW)                   # revoked
    narrower = load_tokens(write(tmp_path, token_line("desk", T_DESK, ["read:/a/**"], None)))
    assert not narrower.still_valid(desk, NOW)                     # scopes changed
    expiring = load_tokens(write(tmp_path, token_line("desk", T_DESK, ["read:/**"], NOW - 1)))
    assert not expiring.still_valid(desk, NOW)


@pytest.mark.parametrize("line, problem", [
    ("desk sha256:abc", "a token line is NAME sha256:HASH SCOPE"),
    ("desk " + "a" * 64 + " read:/a", "sha256: and 64 lowercase hex digits"),
    ("desk sha256:" + "a" * 64 + " read:/a expires=soon", "expires= must be an ISO 8601"),
    ("desk sha256:" + "a" * 64 + " read:a", "invalid pattern 'a'"),
    ("desk sha256:" + "a" * 64 + " expires=2027-01-01", "no scope"),
    ("d/k sha256:" + "a" * 64 + " read:/a", "name 'd/k'"),
])
def test_a_bad_line_is_named_with_its_file_and_number(tmp_path, line, problem):
    path = write(tmp_path, "# header\n" + line + "\n")
    with pytest.raises(TokenFileError) as exc:
        load_tokens(path)
    assert str(exc.value).startswith(f"{path} line 2: ") and problem in str(exc.value)


def test_duplicate_names_and_missing_file(tmp_path):
    path = write(tmp_path, token_line("a", T_DESK, ["read:/x"], None) + "\n"
                 + token_line("a", T_OLD, ["read:/y"], None) + "\n")
    with pytest.raises(TokenFileError, match="line 2: name 'a' is already used on line 1"):
        load_tokens(path)
    with pytest.raises(TokenFileError, match=r"cannot read tokens file .*nope.*--auth-tokens"):
        load_tokens(str(tmp_path / "nope"))


def test_token_new_prints_the_token_once_and_a_line_that_loads(tmp_path, capsys):
    assert token_main(["new", "--name", "desk", "--scope", "write:/lights/**",
                       "--scope", "read:/**", "--expires", "2099-01-01"]) == 0
    out = capsys.readouterr().out.splitlines()
    token, line = out[1], out[3]
    assert out.count(token) == 1 and token not in line
    tokens = load_tokens(write(tmp_path, line + "\n"))
    entry = tokens.find(token, NOW)
    assert entry.name == "desk" and entry.scopes.may(WRITE, "/lights/x")
    assert entry.expires == parse_expiry("2099-01-01")


def test_token_new_refuses_a_bad_scope_in_one_line(capsys):
    assert token_main(["new", "--name", "desk", "--scope", "write:lights"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scope" in err and "must start with '/'" in err
