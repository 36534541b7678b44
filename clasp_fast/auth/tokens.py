"""The tokens file: who may connect in token mode, and with which scopes.

One token per line, fields separated by spaces; ``#`` starts a comment::

    # name  hash                                                                    scopes...          [expires=...]
    desk    sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 write:/lights/** read:/**
    guest   sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752 read:/lights/** expires=2027-01-31T00:00:00Z

- name: a label for logs (the token itself is never logged); letters, digits, ``-_.``
- hash: ``sha256:`` and the hex SHA-256 of the token text (``clasp-fast token new``
  makes a 256-bit random token and prints it once with its line); the file never holds
  a token
- scopes: one or more ``read:PATTERN`` / ``write:PATTERN`` / ``admin:PATTERN``
- ``expires=``: optional, an ISO 8601 date or UTC time; the token is refused from then on

``load_tokens(path)`` raises ``TokenFileError`` naming the file, line and problem.
``Tokens.find(token, now)`` compares SHA-256 hashes in constant time (``hmac.compare_digest``
over every entry) and returns the entry, or None for an unknown or expired token.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from .scopes import ScopeError, Scopes, parse_scope

HASH_PREFIX = "sha256:"
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
TOKEN_BYTES = 32            # 256 bits


class TokenFileError(Exception):
    """The tokens file cannot be used; the message names the file, line and problem."""


@dataclass(frozen=True)
class TokenEntry:
    name: str
    digest: bytes               # SHA-256 of the token
    scopes: Scopes
    expires: Optional[float]    # Unix seconds, or None
    line: int

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_token() -> str:
    """A new random token: 256 bits, URL-safe text."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def parse_expiry(text: str) -> float:
    """Unix seconds for an ISO 8601 date or time (UTC unless it says otherwise)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def format_expiry(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_line(name: str, token: str, scopes: list[str], expires: Optional[float]) -> str:
    """The tokens-file line for ``token`` (its hash, never the token)."""
    fields = [name, HASH_PREFIX + token_digest(token).hex(), *scopes]
    if expires is not None:
        fields.append("expires=" + format_expiry(expires))
    return " ".join(fields)


def parse_line(text: str, line: int) -> Optional[TokenEntry]:
    """The entry on one line, None for a blank or comment line; ValueError says what is wrong."""
    fields = text.split("#", 1)[0].split()
    if not fields:
        return None
    if len(fields) < 3:
        raise ValueError("a token line is NAME sha256:HASH SCOPE... [expires=TIME]; "
                         f"found {len(fields)} field(s)")
    name, digest, *rest = fields
    if not NAME.match(name):
        raise ValueError(f"name {name!r} must be 1 to 64 letters, digits, '-', '_' or '.'")
    if not digest.startswith(HASH_PREFIX) or not HEX64.match(digest[len(HASH_PREFIX):]):
        raise ValueError(f"{name}: the second field must be sha256: and 64 lowercase hex digits "
                         "(the hash of the token, as `clasp-fast token new` prints it), not a token")
    expires = None
    if rest and rest[-1].startswith("expires="):
        try:
            expires = parse_expiry(rest.pop()[len("expires="):])
        except ValueError:
            raise ValueError(f"{name}: expires= must be an ISO 8601 date or time, "
                             "e.g. expires=2027-01-31 or expires=2027-01-31T18:00:00Z") from None
    if not rest:
        raise ValueError(f"{name}: no scope; give at least one of read:PATTERN, write:PATTERN, "
                         "admin:PATTERN")
    try:
        scopes = Scopes(parse_scope(s) for s in rest)
    except ScopeError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return TokenEntry(name, bytes.fromhex(digest[len(HASH_PREFIX):]), scopes, expires, line)


class Tokens:
    """The entries of one tokens file."""

    def __init__(self, entries: list[TokenEntry], path: str = ""):
        self.entries = entries
        self.path = path

    def find(self, token: Optional[str], now: float) -> Optional[TokenEntry]:
        """The entry of ``token`` if it is known and not expired at ``now``, else None.
        Every entry is compared (constant time, whichever matches)."""
        if not token:
            return None
        digest = token_digest(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        return None if found is None or found.expired(now) else found

    def still_valid(self, entry: TokenEntry, now: float) -> bool:
        """Whether a session admitted with ``entry`` may stay after a reload: the same hash
        is still in the file with the same scopes, and not expired."""
        return any(hmac.compare_digest(e.digest, entry.digest) and str(e.scopes) == str(entry.scopes)
                   and not e.expired(now) for e in self.entries)


def load_tokens(path: str) -> Tokens:
    """Read and check the tokens file; TokenFileError names the file, line and problem."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise TokenFileError(f"cannot read tokens file {path}: {exc.strerror or exc} "
                             "(security.tokens_file, --auth-tokens)") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"tokens file {path} is not UTF-8 text") from None
    entries: list[TokenEntry] = []
    names: dict[str, int] = {}
    for number, text in enumerate(lines, 1):
        try:
            entry = parse_line(text, number)
        except ValueError as exc:
            raise TokenFileError(f"{path} line {number}: {exc}") from None
        if entry is None:
            continue
        if entry.name in names:
            raise TokenFileError(f"{path} line {number}: name {entry.name!r} is already used on "
                                 f"line {names[entry.name]}; give each token its own name")
        names[entry.name] = number
        entries.append(entry)
    return Tokens(entries, path)
