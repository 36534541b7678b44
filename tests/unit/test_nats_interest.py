"""interest.py without NATS: subjects are reference-counted per pattern; messages are
applied in the order they come, second copies (overlapping subscriptions) dropped."""
import asyncio

from clasp_fast.cluster.nats import subjects
from clasp_fast.cluster.nats.interest import NodeInterest


class Link:
    index = 63


class Bridge:
    """What NodeInterest uses of the bridge: its link, whether NATS is up."""
    link = Link()
    up = False                  # nothing waits for NATS here


def stamped(sender: NodeInterest, payload: bytes) -> bytes:
    return sender.stamp(payload)


def test_messages_are_applied_once_in_the_order_they_come():
    applied = []
    here = NodeInterest(Bridge(), lambda payload, subject: applied.append((payload, subject)))
    x, y = NodeInterest(Bridge(), None), NodeInterest(Bridge(), None)
    m = {n: stamped(x, b"x%d" % n) for n in range(1, 4)}
    y1 = stamped(y, b"y1")
    # NATS sends a message once per matching subscription, one copy after the other
    for data in (m[1], m[1], y1, m[2], y1, m[3]):
        here._on_message(data, b"clasp.x")
    assert applied == [(b"x1", "clasp.x"), (b"y1", "clasp.x"), (b"x2", "clasp.x"), (b"x3", "clasp.x")]
    assert (here.received, here.duplicates) == (6, 2)
    here._on_message(m[2], b"clasp.x")      # a late second copy: dropped
    here._on_message(b"short", b"clasp.x")  # not stamped: ignored
    assert len(applied) == 4


async def test_subjects_are_counted_per_pattern():
    here = NodeInterest(Bridge(), None)
    here.interest("/a/**", True, None)
    here.interest("/a/b", True, None)
    here.interest("/a/**", True, None)
    assert {s: e.count for s, e in here.subjects.items()} == {"clasp.a": 2, "clasp.a.>": 2, "clasp.a.b": 1}
    here.interest("/a/**", False, None)
    here.interest("/a/**", False, None)
    assert {s: e.count for s, e in here.subjects.items() if e.count} == {"clasp.a.b": 1}
    here.interest("/x", True, Link())      # the bridge's own link: not the node's clients
    assert "clasp.x" not in here.subjects


async def test_a_subject_leaving_is_not_trusted_by_a_subscribe():
    """Unsubscribed and wanted again before NATS heard of it: a SUBSCRIBE then waits for
    the next confirmation instead of trusting the leaving subscription."""
    bridge = Bridge()
    here = NodeInterest(bridge, None)
    here.interest("/l/*", True, None)
    here.subjects["clasp.l.*"].confirmed = True      # as after the reconcile's flush
    here.interest("/l/*", False, None)
    bridge.up = True
    try:
        class Msg:
            pattern = "/l/*"
        assert here.hold_subscribe(None, Msg, 0) is True
    finally:
        bridge.up = False


def test_receives_says_whether_a_subject_is_covered():
    here = NodeInterest(Bridge(), None)
    here.interest("/a/**", True, None)
    here.interest("/b/*/c", True, None)
    assert [here.receives(subjects.subject(a)) for a in ("/a", "/a/x/y", "/b/1/c", "/b/1/d", "/c", "/b/1/c/d")] \
        == [True, True, True, False, False, False]
    here.interest("/a/**", False, None)
    assert not here.receives(subjects.subject("/a/x/y"))
