"""Scope decisions (clasp_fast.auth.scopes) against a brute-force oracle.

The oracle enumerates every address up to depth 4 over a small set of segments and asks
the router's matcher directly: an action on an address is allowed when some scope of
that level matches it; a pattern is covered when every enumerated address it matches is
matched by some scope.  Patterns are drawn from segments that exercise literals, ``*``,
``**`` and in-segment globs over the same letters, so the enumeration contains the
addresses that tell them apart (including "c", which no pattern mentions).
"""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clasp_fast._native.patterns import matches
from clasp_fast.auth.scopes import (ADMIN, READ, WRITE, Scope, ScopeError, Scopes, covers,
                                    parse_scope)

# every pattern segment's least member with its '*'s filled by a letter no pattern uses
# ("c", "ac", "cb", "acb", "cac"), plus plain members, so the enumeration tells globs apart
ADDRESS_SEGMENTS = ["a", "b", "c", "ab", "ba", "ac", "cb", "acb", "cac"]
PATTERN_SEGMENTS = ["a", "b", "ab", "*", "**", "a*", "*b", "*a*", "a*b"]
DEPTH = 4
ADDRESSES = ["/" + "/".join(p) for n in range(DEPTH + 1)
             for p in itertools.product(ADDRESS_SEGMENTS, repeat=n)]

patterns = st.lists(st.sampled_from(PATTERN_SEGMENTS), min_size=0, max_size=3).map(
    lambda segs: "/" + "/".join(segs))
scopes = st.lists(st.tuples(st.sampled_from([READ, WRITE, ADMIN]), patterns), min_size=0,
                  max_size=3).map(lambda items: Scopes(Scope(l, p) for l, p in items))


def oracle_may(scopes: Scopes, level: int, address: str) -> bool:
    return any(s.level >= level and matches(s.pattern, address) for s in scopes.scopes)


def oracle_covers(scopes: Scopes, level: int, pattern: str) -> bool:
    return all(oracle_may(scopes, level, a) for a in ADDRESSES if matches(pattern, a))


@settings(max_examples=300, deadline=None)
@given(scopes, st.sampled_from([READ, WRITE, ADMIN]), st.sampled_from(ADDRESSES))
def test_may_is_the_oracle(scopes, level, address):
    assert scopes.may(level, address) == oracle_may(scopes, level, address)


@settings(max_examples=1000, deadline=None)
@given(scopes, st.sampled_from([READ, WRITE, ADMIN]), patterns)
def test_covers_is_the_oracle(scopes, level, pattern):
    assert scopes.covers(level, pattern) == oracle_covers(scopes, level, pattern)


@pytest.mark.parametrize("scope, pattern, expected", [
    ("/x/*", "/x/**", False),          # wider: refused, never narrowed
    ("/x/**", "/x/*", True),
    ("/x/**", "/x", True),             # ** matches zero segments
    ("/x/*", "/x", False),
    ("/*/**", "/**/*", True),          # the same set written two ways
    ("/**", "/a/**", True),
    ("/zone*", "/zone1*", True),
    ("/zone*", "/zone", True),
    ("/zone*", "/*", False),
    ("/zone*", "/zo*", False),
    ("/lights/**", "/lights/**/level", True),
    ("/lights/**", "/**", False),
    ("/lights/*/level", "/lights/*/*", False),
])
def test_covers_examples(scope, pattern, expected):
    assert covers([scope], pattern) is expected


def test_a_union_of_scopes_can_cover_what_neither_covers():
    assert covers(["/a", "/a/*/**"], "/a/**")
    assert not covers(["/a"], "/a/**") and not covers(["/a/*/**"], "/a/**")


def test_levels_nest():
    s = Scopes([parse_scope("admin:/a/**"), parse_scope("write:/b/**"), parse_scope("read:/c")])
    assert s.may(READ, "/a/x") and s.may(WRITE, "/a/x") and s.may(ADMIN, "/a/x")
    assert s.may(READ, "/b") and s.may(WRITE, "/b") and not s.may(ADMIN, "/b")
    assert s.may(READ, "/c") and not s.may(WRITE, "/c")
    assert s.covers(READ, "/b/**") and not s.covers(READ, "/**")
    assert not s.everything(READ) and Scopes([parse_scope("read:/**")]).everything(READ)


@pytest.mark.parametrize("text, problem", [
    ("/lights/**", "must be LEVEL:PATTERN"),
    ("rw:/a", "must be LEVEL:PATTERN"),
    ("write:lights", "must start with '/'"),
    ("read:/a//b", "empty segment"),
])
def test_bad_scopes_say_what_is_wrong(text, problem):
    with pytest.raises(ScopeError, match=problem.replace("(", r"\(")):
        parse_scope(text)
