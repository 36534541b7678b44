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
    write_behind = 0.05

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


class StreamInfo:
    def __init__(self, last_seq: int):
        self.state = type("State", (), {"last_seq": last_seq})()


class Stream:
    """What a PING barrier asks of JetStream: the bucket's stream (sequence -> key, value),
    its last sequence, and its next message from a sequence on."""

    def __init__(self, bucket: str, messages: dict[int, tuple[str, bytes]]):
        self.prefix, self.messages = f"$KV.{bucket}.", messages

    async def stream_info(self, stream: str):
        return StreamInfo(max(self.messages))

    async def get_msg(self, stream: str, seq: int, subject: str, next: bool):
        from nats.js.errors import NotFoundError
        assert next and subject == self.prefix + ">"
        after = [s for s in sorted(self.messages) if s >= seq]
        if not after:
            raise NotFoundError
        key, value = self.messages[after[0]]
        return type("Msg", (), {"seq": after[0], "subject": self.prefix + key, "data": value})()


class WatchingBridge(Bridge):
    """The bridge's side of the watch: its entries go to Commits.watched (bridge.watched)."""
    up = True

    def __init__(self, routed: set[str], stream: Stream):
        super().__init__(routed)
        self.js = stream
        self.commits = None

    def watched(self, entry) -> None:
        if entry.value and entry.key.startswith("/"):
            self.commits.watched(entry)
        else:
            self.commits.seen(entry.revision)


async def test_a_ping_barrier_reads_what_a_stalled_watch_did_not_show(monkeypatch):
    """The watch's consumer lived on a NATS server that died: nats-py re-creates it only
    after two missed heartbeats (10 s).  A PING barrier that sees no progress for
    BARRIER_READ s reads the writes after the last one the watch showed from the bucket's
    stream, so its PONG still follows every write the bucket held (the ACKed SETs of the
    NATS-server-killed test were missing on the other node)."""
    from clasp_fast.cluster.nats import commit
    monkeypatch.setattr(commit, "BARRIER_READ", 0.01)
    stream = Stream("clasp-state", {1: ("epoch", b"e"), 2: ("/a", b"old"), 4: ("/a", b"new"),
                                    5: ("/b", b"b")})          # 3: an older write of /a, gone
    bridge = WatchingBridge(set(), stream)
    commits = bridge.commits = Commits(None, bridge)
    commits.watched(Entry("/a", b"old", 2))     # the watch showed up to 2, then stalled
    await commits.barrier()
    assert bridge.applied == [b"old", b"new", b"b"]
    assert commits.known == {"/a": (4, False), "/b": (5, False)}
    assert not commits._behind(5) and commits.applied_seq == 5
