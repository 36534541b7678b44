"""Scopes: what a token lets a session do, and the two decisions made from them.

A scope is ``LEVEL:PATTERN`` with LEVEL ``read``, ``write`` or ``admin`` (admin ⊇ write ⊇
read) and PATTERN a subscription pattern (``/lights/**``, ``/desk/*/level``, ``/zone*``).

- ``Scopes.may(level, address)``: may the session do an action of ``level`` on
  ``address`` (SET/PUBLISH/lock need write, GET of one address needs read)?  Decided by
  the router's one matcher (``clasp_fast._native.patterns.matches``).
- ``Scopes.covers(level, pattern)``: does every address ``pattern`` can match fall under
  the session's scopes of ``level``?  SUBSCRIBE and GET/QUERY of a pattern need this for
  read: a pattern wider than the scopes is refused, never narrowed (``read:/x/*`` does not
  allow ``/x/**``).  Pattern-contains-pattern is decided exactly, see ``covers``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from clasp_fast._native.patterns import check_pattern, matches

READ, WRITE, ADMIN = 1, 2, 3
LEVELS = {"read": READ, "write": WRITE, "admin": ADMIN}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
GLOBSTAR = "**"


class ScopeError(ValueError):
    """A scope that does not parse; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Scope:
    level: int
    pattern: str

    def __str__(self) -> str:
        return f"{LEVEL_NAMES[self.level]}:{self.pattern}"


def parse_scope(text: str) -> Scope:
    level, sep, pattern = text.partition(":")
    if not sep or level not in LEVELS:
        raise ScopeError(f"scope {text!r} must be LEVEL:PATTERN with LEVEL one of "
                         f"read, write, admin (e.g. write:/lights/**)")
    problem = check_pattern(pattern)
    if problem is not None:
        raise ScopeError(f"scope {text!r}: {problem}")
    return Scope(LEVELS[level], pattern)


def segments(pattern: str) -> tuple[str, ...]:
    """The segments of a valid pattern ("/" has none; a trailing "/" is tolerated)."""
    body = pattern[1:]
    if body.endswith("/"):
        body = body[:-1]
    return tuple(body.split("/")) if body else ()


def _fresh_char(text: str) -> str:
    """A character that occurs nowhere in ``text`` (and is neither "/" nor "*")."""
    used = set(text)
    return next(c for c in map(chr, range(1, 0x10000)) if c not in used and c not in "/*")


def _seg_matches(pattern_seg: str, address_seg: str) -> bool:
    return matches("/" + pattern_seg, "/" + address_seg)


def covers(scope_patterns: Iterable[str], pattern: str) -> bool:
    """Whether every address ``pattern`` matches is matched by one of ``scope_patterns``.

    Exact, by a walk over the scopes' automaton (states: (scope, segment index)) driven
    by ``pattern``'s segments, each replaced by its *least* address segment: a segment
    made from the pattern segment with every ``*`` turned into one character ``z`` that
    no scope contains.  A scope segment matches that witness exactly when it matches
    every segment the pattern segment can match (literal characters of a scope cannot
    match ``z``, so its ``*`` must absorb each of them), so following only the witness
    gives the fewest states any address can reach.  A ``**`` in ``pattern`` stands for
    any number of such witness segments: the walk checks the rest of ``pattern`` after
    0, 1, 2, ... of them until the state set repeats.  Matching of one segment is the
    router's matcher (``matches``)."""
    scopes = [segments(p) for p in scope_patterns]
    want = segments(pattern)
    if not scopes:
        return False
    z = _fresh_char("".join(seg for scope in scopes for seg in scope))

    def close(states: Iterable[tuple[int, int]]) -> frozenset:
        out = set(states)
        todo = list(out)
        while todo:
            k, i = todo.pop()
            if i < len(scopes[k]) and scopes[k][i] == GLOBSTAR and (k, i + 1) not in out:
                out.add((k, i + 1))
                todo.append((k, i + 1))
        return frozenset(out)

    def step(states: frozenset, witness: str) -> frozenset:
        nxt = []
        for k, i in states:
            if i < len(scopes[k]):
                seg = scopes[k][i]
                if seg == GLOBSTAR:
                    nxt.append((k, i))
                elif _seg_matches(seg, witness):
                    nxt.append((k, i + 1))
        return close(nxt)

    @lru_cache(maxsize=None)
    def ok(states: frozenset, j: int) -> bool:
        if not states:
            return False
        if j == len(want):
            return any(i == len(scopes[k]) for k, i in states)
        if want[j] == GLOBSTAR:
            seen = set()
            while states not in seen:
                if not ok(states, j + 1):
                    return False
                seen.add(states)
                states = step(states, z)
            return True
        return ok(step(states, want[j].replace("*", z)), j + 1)

    return ok(close((k, 0) for k in range(len(scopes))), 0)


class Scopes:
    """The scopes of one token, by level (a write scope is also a read scope, and so on)."""

    def __init__(self, scopes: Iterable[Scope]):
        self.scopes = tuple(scopes)
        self._by_level = {level: tuple(s.pattern for s in self.scopes if s.level >= level)
                          for level in LEVELS.values()}

    def patterns(self, level: int) -> tuple[str, ...]:
        """The patterns granting ``level`` (those of higher levels included)."""
        return self._by_level[level]

    def may(self, level: int, address: str) -> bool:
        """May an action of ``level`` touch ``address``?"""
        return any(matches(p, address) for p in self._by_level[level])

    def covers(self, level: int, pattern: str) -> bool:
        """Is every address ``pattern`` matches allowed at ``level``?"""
        return covers(self._by_level[level], pattern)

    def everything(self, level: int) -> bool:
        """Is every address allowed at ``level`` (e.g. ``write:/**``)?"""
        return self.covers(level, "/**")

    def __str__(self) -> str:
        return " ".join(map(str, self.scopes))
