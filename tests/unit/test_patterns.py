"""Addresses, patterns, the single-pattern matcher and the subscription trie
(docs/protocol.md "Addresses and patterns").

* ``matches(pattern, address)`` against a small independent reference matcher;
* ``Trie.lookup`` (live routing) against brute-force ``matches`` over random
  subscriptions, also after random unsubscribes, with type masks and gates;
* ``check_address`` / ``check_pattern`` verdicts and error texts.
"""
from __future__ import annotations

import fnmatch

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clasp_fast._native.patterns import (Subscription, Trie, check_address, check_pattern,
                                         matches, matches_signal)

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- an independent reference matcher -------------------------------------------------


def _segments(text: str) -> list[str]:
    assert text.startswith("/")
    body = text[1:]
    if body.endswith("/"):
        body = body[:-1]
    return body.split("/") if body else []


def ref_match(pattern: str, address: str) -> bool:
    ps, as_ = _segments(pattern), _segments(address)

    def go(i: int, j: int) -> bool:
        if i == len(ps):
            return j == len(as_)
        p = ps[i]
        if p == "**":
            return any(go(i + 1, k) for k in range(j, len(as_) + 1))
        if j == len(as_):
            return False
        if p == "*" or ("*" in p and fnmatch.fnmatchcase(as_[j], p)) or p == as_[j]:
            return go(i + 1, j + 1)
        return False

    return go(0, 0)


# --- strategies --------------------------------------------------------------------

LITERALS = ["a", "b", "c", "ab", "ba", "aa", "zone", "zone1"]
addr_segments = st.sampled_from(LITERALS)
pat_segments = st.one_of(
    st.sampled_from(LITERALS),
    st.just("*"),
    st.just("**"),
    st.sampled_from(["a*", "b*", "*a", "a*b", "zone*", "z*e*"]),
)


@st.composite
def addresses(draw):
    segs = draw(st.lists(addr_segments, min_size=0, max_size=5))
    text = "/" + "/".join(segs)
    if segs and draw(st.booleans()) and draw(st.booleans()):
        text += "/"
    return text


@st.composite
def patterns(draw):
    segs = draw(st.lists(pat_segments, min_size=0, max_size=5))
    text = "/" + "/".join(segs)
    if segs and draw(st.booleans()) and draw(st.booleans()):
        text += "/"
    return text


class Target:
    """A receiver stand-in (the trie only needs identity)."""

    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return f"T{self.n}"


def expected_lookup(subs, address):
    """Brute force: {target: (ungated mask, gated mask, {gated subs})} over ``matches``."""
    out = {}
    for sub in subs:
        if not matches(sub.pattern, address):
            continue
        mask, gmask, gated = out.get(sub.target, (0, 0, set()))
        if sub.gate is None:
            mask |= sub.mask
        else:
            gmask |= sub.mask
            gated = gated | {sub}
        out[sub.target] = (mask, gmask, gated)
    return out


def actual_lookup(trie, address):
    rows = trie.lookup(address)
    targets = [row[0] for row in rows]
    assert len(targets) == len(set(map(id, targets))), f"a target listed twice: {rows}"
    out = {}
    for target, mask, gmask, gated in rows:
        assert len(gated) == len(set(map(id, gated))), f"a gated sub listed twice: {gated}"
        out[target] = (mask, gmask, set(gated))
    return out


# --- matches() --------------------------------------------------------------------

EXAMPLES = [
    ("/a/b", "/a/b", True),
    ("/a/b", "/a/c", False),
    ("/a/b", "/a/b/c", False),
    ("/a/*", "/a/b", True),
    ("/a/*", "/a", False),
    ("/a/*", "/a/b/c", False),
    ("/*", "/", False),
    ("/**", "/", True),
    ("/**", "/a/b/c", True),
    ("/a/**", "/a", True),
    ("/a/**", "/a/b/c", True),
    ("/a/**", "/b", False),
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/x/b", True),
    ("/a/**/b", "/a/x/y/b", True),
    ("/a/**/b", "/a/x/y/c", False),
    ("/**/b", "/b", True),
    ("/**/b", "/x/y/b", True),
    ("/**/b/**", "/b", True),
    ("/**/**", "/a", True),
    ("/a/**/b/**/c", "/a/b/c", True),
    ("/a/**/b/**/c", "/a/x/b/y/z/c", True),
    ("/a/**/b/**/c", "/a/c/b", False),
    ("/zone*", "/zone1", True),
    ("/zone*", "/zoneA", True),
    ("/zone*", "/zon", False),
    ("/zone*", "/zone1/x", False),
    ("/zone*/x", "/zone1/x", True),
    ("/a*", "/a", True),                            # two-character prefix globs
    ("/a*", "/ab", True),
    ("/a*", "/", False),
    ("/a*", "/b", False),
    ("/a*", "/a/b", False),
    ("/x/a*", "/x/b/c", False),
    ("/z*/x", "/zone/x", True),
    ("/z*/x", "/zone/y/x", False),
    ("/*a", "/ba", True),
    ("/*a", "/ab", False),
    ("/a*b", "/axxb", True),
    ("/a*b", "/axxbc", False),
    ("/Zone", "/zone", False),                      # case-sensitive
    ("/a/b/", "/a/b", True),                        # trailing '/' tolerated
    ("/a/b", "/a/b/", True),
    ("/mixer/*/fader", "/mixer/1/fader", True),
    ("/mixer/*/fader", "/mixer/1/2/fader", False),
    ("/mixer/**/fader", "/mixer/1/2/fader", True),
]


@pytest.mark.parametrize("pattern,address,expected", EXAMPLES)
def test_matches_examples(pattern, address, expected):
    assert matches(pattern, address) is expected
    assert ref_match(pattern, address) is expected


def test_matches_rejects_invalid_input():
    with pytest.raises(ValueError, match="must start with '/'"):
        matches("a", "/a")
    with pytest.raises(ValueError, match="wildcard"):
        matches("/a", "/a/*")
    with pytest.raises(ValueError, match="empty segment"):
        matches("/a//b", "/a")


@SETTINGS
@given(patterns(), addresses())
@example("/a*", "/b/c")
@example("/zone*", "/zone1")
def test_matches_agrees_with_reference(pattern, address):
    assert matches(pattern, address) == ref_match(pattern, address)


# --- the trie ---------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_trie_lookup_agrees_with_brute_force(data):
    ntargets = data.draw(st.integers(1, 4))
    targets = [Target(i) for i in range(ntargets)]
    specs = data.draw(st.lists(
        st.tuples(st.integers(0, ntargets - 1), patterns(),
                  st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x03, 0xFF]),
                  st.booleans()),
        min_size=0, max_size=12))
    trie = Trie()
    subs = []
    for i, (t, pattern, mask, gated) in enumerate(specs):
        sub = Subscription(targets[t], i + 1, pattern, mask, object() if gated else None)
        trie.subscribe(sub)
        subs.append(sub)
    probe = data.draw(st.lists(addresses(), min_size=1, max_size=8))
    for address in probe:
        assert actual_lookup(trie, address) == expected_lookup(subs, address), address
    # random unsubscribes (some twice), then check again
    remove = data.draw(st.lists(st.integers(0, max(len(subs) - 1, 0)), max_size=len(subs)))
    removed = set()
    for k in remove:
        if not subs:
            break
        sub = subs[k]
        assert trie.unsubscribe(sub) is (k not in removed)
        removed.add(k)
    live = [s for k, s in enumerate(subs) if k not in removed]
    for address in probe:
        assert actual_lookup(trie, address) == expected_lookup(live, address), address
    # and re-subscribing what was removed restores the full picture
    for k in sorted(removed):
        trie.subscribe(subs[k])
    for address in probe:
        assert actual_lookup(trie, address) == expected_lookup(subs, address), address
    assert trie.count == len(subs)


@SETTINGS
@given(st.lists(patterns(), min_size=1, max_size=10), st.lists(addresses(), min_size=1, max_size=6))
def test_trie_same_pattern_many_times_is_one_entry_per_target(pats, addrs):
    target = Target(0)
    trie = Trie()
    subs = [Subscription(target, i, p) for i, p in enumerate(pats)]
    for s in subs:
        trie.subscribe(s)
    for a in addrs:
        rows = trie.lookup(a)
        hit = any(matches(p, a) for p in pats)
        assert len(rows) == (1 if hit else 0)
        if hit:
            assert rows[0][0] is target and rows[0][1] == 0xFF


def test_trie_unsubscribe_everything_leaves_it_empty():
    trie = Trie()
    t = Target(0)
    subs = [Subscription(t, i, p) for i, p in enumerate(
        ["/a/**", "/a/*/b", "/**", "/zone*", "/a/b", "/a/b", "/**/b"])]
    for s in subs:
        trie.subscribe(s)
    assert len(trie.lookup("/a/x/b")) == 1
    for s in subs:
        assert trie.unsubscribe(s) is True
    assert trie.count == 0
    for a in ("/", "/a", "/a/b", "/a/x/b", "/zone1"):
        assert trie.lookup(a) == []
    assert trie.unsubscribe(subs[0]) is False


def test_trie_generation_moves_on_change():
    trie = Trie()
    g0 = trie.gen
    s = Subscription(Target(0), 1, "/a")
    trie.subscribe(s)
    assert trie.gen > g0
    g1 = trie.gen
    trie.unsubscribe(s)
    assert trie.gen > g1


def test_subscription_mask_zero_means_all():
    assert Subscription(Target(0), 1, "/a", 0).mask == 0xFF
    assert Subscription(Target(0), 1, "/a", 0xFF).mask == 0xFF
    assert Subscription(Target(0), 1, "/a", 0x04).mask == 0x04


def test_subscription_rejects_bad_pattern():
    with pytest.raises(ValueError, match="empty segment"):
        Subscription(Target(0), 1, "/a//b")
    with pytest.raises(ValueError, match="must start with '/'"):
        Subscription(Target(0), 1, "a")


def test_trie_lookup_rejects_invalid_address():
    with pytest.raises(ValueError):
        Trie().lookup("/a/*")


# --- check_address / check_pattern ------------------------------------------------

VALID_ADDRESSES = ["/", "/a", "/a/b", "/a/b/", "/lumen/layer/0/opacity", "/ünï/cödé", "/a b/c",
                   "/a.b/c-d/e_f"]


@pytest.mark.parametrize("address", VALID_ADDRESSES)
def test_valid_addresses(address):
    assert check_address(address) is None
    assert check_pattern(address) is None


@pytest.mark.parametrize("pattern", ["/*", "/**", "/a/**/b", "/zone*", "/a/*/", "/**/x/**"])
def test_valid_patterns(pattern):
    assert check_pattern(pattern) is None


@pytest.mark.parametrize("text,why", [
    ("a", "it must start with '/'"),
    ("", "it must start with '/'"),
    ("a/b", "it must start with '/'"),
])
def test_no_leading_slash_text(text, why):
    assert check_address(text) == f"invalid address {text!r}: {why}"
    assert check_pattern(text) == f"invalid pattern {text!r}: {why}"


@pytest.mark.parametrize("text", ["/a//b", "///", "//a", "//", "/a//"])
def test_empty_segment_text(text):
    why = "empty segment ('//'); segments are separated by one '/'"
    assert check_address(text) == f"invalid address {text!r}: {why}"
    assert check_pattern(text) == f"invalid pattern {text!r}: {why}"


@pytest.mark.parametrize("text", ["/a/*", "/**", "/x*", "/a/b*c/d"])
def test_wildcard_in_address_text(text):
    assert check_address(text) == (f"invalid address {text!r}: '*' is a wildcard and only "
                                   f"allowed in subscription and query patterns")
    assert check_pattern(text) is None


def test_too_deep_text():
    ok = "/x" * 128
    deep = "/x" * 129
    assert check_address(ok) is None
    assert check_address(deep) == f"invalid address {deep!r}: more than 128 segments"
    assert check_pattern(deep) == f"invalid pattern {deep!r}: more than 128 segments"


# --- matches_signal (QUERY against announced addresses) ---------------------------------


def test_matches_signal_takes_announced_stars_literally():
    assert matches_signal("/lumen/**", "/lumen/cue/*") is True
    assert matches_signal("/lumen/cue/*", "/lumen/cue/*") is True
    assert matches_signal("/lumen/cue/go", "/lumen/cue/*") is False
    assert matches_signal("/lumen/**", "/other/x") is False
    assert matches_signal("bad", "/x") is False
