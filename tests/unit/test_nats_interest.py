"""interest.py without NATS: subjects are reference-counted per pattern; messages that
nats-py's per-subscription tasks hand over out of order are applied in each sender's
order, second copies (overlapping subscriptions) dropped."""
import asyncio

from clasp_fast.cluster.nats import subjects
from clasp_fast.cluster.nats.interest import NodeInterest


class Link:
    index = 63


class Bridge:
    """What NodeInterest uses of the bridge: its link, whether NATS is up."""
    link = Link()
    up = False                  # nothing waits for NATS here


def stamped(sender: NodeInterest, payload: bytes):
    class Msg:
        data = sender.stamp(payload)
        subject = "clasp.x"
    return Msg


async def test_messages_are_applied_in_each_senders_order_once():
    applied = []
    here = NodeInterest(Bridge(), lambda payload, subject: applied.append(payload))
    x, y = NodeInterest(Bridge(), None), NodeInterest(Bridge(), None)
    m = {n: stamped(x, b"x%d" % n) for n in range(1, 5)}
    y1 = stamped(y, b"y1")
    # subscription A's task drains its queue (1, 3), then B's (2, 4, and 3 again: B overlaps A)
    for msg in (m[1], m[3], y1, m[2], m[4], m[3]):
        await here._on_message(msg)
    assert applied == []                    # applied once every woken task has run
    await asyncio.sleep(0)
    assert [p for p in applied if p.startswith(b"x")] == [b"x1", b"x2", b"x3", b"x4"]
    assert b"y1" in applied and len(applied) == 5
    assert (here.received, here.duplicates) == (6, 1)
    await here._on_message(m[2])            # a late second copy: dropped
    await asyncio.sleep(0)
    assert len(applied) == 5


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
