"""commit.py's side of the bucket's watch, without NATS: a write of an address no pattern of
the node covers is applied as the watch shows it (no routed frame will come, so neither it
nor a PING barrier waits); one the node subscribes to waits for its routed frame; a lost
bucket's revisions are forgotten."""
from __future__ import annotations

from clasp_fast.cluster.nats.commit import Commits


class Entry:
    def __init__(self, key: str, value: bytes, revision: int):
        self.key, self.value, self.revision = key, value, revision


class Bridge:
    """What Commits uses of the bridge here: whether routed frames of a key reach the node,
    and the bucket's states it applies."""
    kv = None
    bucket = "clasp-state"

    def __init__(self, routed: set[str]):
        self.routed = routed
        self.applied: list[bytes] = []

    def routed_here(self, key: str) -> bool:
        return key in self.routed

    def apply_bucket(self, body: bytes, only_newer: bool = False) -> bool:
        self.applied.append(body)
        return True


async def test_a_write_no_routed_frame_brings_is_applied_at_once():
    bridge = Bridge(routed=set())
    commits = Commits(None, bridge)
    commits.watched(Entry("/unsubscribed", b"state", 5))
    assert bridge.applied == [b"state"]
    assert commits.known["/unsubscribed"] == (5, False)
    assert not commits._behind(5)               # a PING barrier at 5 does not wait


async def test_a_write_of_a_subscribed_address_waits_for_its_routed_frame():
    bridge = Bridge(routed={"/sub"})
    commits = Commits(None, bridge)
    entry = Entry("/sub", b"state", 7)
    commits.watched(entry)
    assert bridge.applied == [] and commits._behind(7)
    assert commits.take("/sub", 7, True)        # the routed frame arrives
    assert not commits._behind(7)
    commits._overdue("/sub", entry)              # the grace timer: nothing left to read
    assert bridge.applied == []


async def test_an_older_bucket_revision_is_not_applied_until_the_bucket_is_new():
    bridge = Bridge(routed=set())
    commits = Commits(None, bridge)
    commits.watched(Entry("/x", b"six", 6))
    commits.watched(Entry("/x", b"three", 3))   # older than what the node has: skipped
    assert bridge.applied == [b"six"]
    commits.new_bucket()                        # the bucket was lost: its revisions start again
    commits.watched(Entry("/x", b"three", 3))
    assert bridge.applied == [b"six", b"three"]
