"""CLASP addresses ⇄ NATS subjects and key-value keys (clasp_fast/cluster/nats/subjects.py).

Properties: the subject and key mappings round-trip; every subject is a valid NATS subject
(no empty token, no whitespace, no ``.`` inside a token, wildcards only as whole tokens);
and a node subscribed to ``pattern_subjects(p)`` receives every address that ``p``
matches by the router's own matcher (NATS' matching written out here independently).
"""
import re

from hypothesis import given, settings, strategies as st

from clasp_fast._native.patterns import matches
from clasp_fast.cluster.nats import subjects

# segments as clients write them, with the characters NATS forbids or that escape uses
_chars = st.sampled_from(list("ab.>%= \t~Z9_-é") + ["\u00a0", "😀"])
segment = st.text(_chars, min_size=1, max_size=5).filter(lambda s: "/" not in s and "*" not in s)
addresses = st.lists(segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))
pattern_segment = st.one_of(segment, st.just("*"), st.just("**"), segment.map(lambda s: s + "*"))
patterns = st.lists(pattern_segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))

KEY_RE = re.compile(r"^[-/_=.a-zA-Z0-9]+$")


def valid_subject(s: str, wildcards: bool) -> bool:
    tokens = s.split(".")
    for i, t in enumerate(tokens):
        if not t or any(c.isspace() for c in t) or not t.isprintable():
            return False
        if ("*" in t or ">" in t) and not (wildcards and (t == "*" or (t == ">" and i == len(tokens) - 1))):
            return False
    return True


def nats_matches(sub: str, subj: str) -> bool:
    """NATS' rule: ``*`` one token, a last ``>`` one or more tokens."""
    a, b = sub.split("."), subj.split(".")
    for i, t in enumerate(a):
        if t == ">":
            return len(b) > i
        if i >= len(b) or (t != "*" and t != b[i]):
            return False
    return len(a) == len(b)


@given(addresses)
def test_subject_round_trip(address):
    s = subjects.subject(address)
    assert valid_subject(s, wildcards=False), s
    assert subjects.address(s) == address


def test_subject_examples():
    assert subjects.subject("/mixer/ch1/fader") == "clasp.mixer.ch1.fader"
    assert subjects.subject("/a.b/c d/>/%") == "clasp.a%2Eb.c%20d.%3E.%25"
    assert subjects.subject("/a/") == subjects.subject("/a")       # one route
    assert subjects.pattern_subjects("/mixer/*/fader") == ["clasp.mixer.*.fader"]
    assert subjects.pattern_subjects("/mixer/**") == ["clasp.mixer", "clasp.mixer.>"]
    assert subjects.pattern_subjects("/mixer/**/gain") == ["clasp.mixer", "clasp.mixer.>"]
    assert subjects.pattern_subjects("/mixer/fad*") == ["clasp.mixer.>"]


@given(addresses)
def test_key_round_trip(address):
    k = subjects.key(address)
    assert KEY_RE.match(k), k
    assert subjects.key_address(k) == address


@settings(max_examples=300)
@given(patterns, addresses)
def test_pattern_subjects_cover_every_match(pattern, address):
    subs = subjects.pattern_subjects(pattern)
    assert all(valid_subject(s, wildcards=True) for s in subs), subs
    if matches(pattern, address):
        assert any(nats_matches(s, subjects.subject(address)) for s in subs), (pattern, address, subs)


@settings(max_examples=300)
@given(patterns, addresses)
def test_exact_patterns_are_not_wider(pattern, address):
    """Patterns of literals, ``*`` and a trailing ``**`` subscribe to exactly their matches."""
    segs = pattern.split("/")[1:]
    if any("*" in s and s != "*" for s in segs[:-1]) or ("*" in segs[-1] and segs[-1] not in ("*", "**")):
        return
    subs = subjects.pattern_subjects(pattern)
    assert any(nats_matches(s, subjects.subject(address)) for s in subs) == matches(pattern, address)
