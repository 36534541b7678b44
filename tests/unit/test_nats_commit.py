"""commit.py's compare-and-set while the bucket's stream has no leader (an election after
a NATS server died), without NATS: JetStream answers "no responders" (the write reached no
stream, so it was not stored), and the write is tried again at once rather than read back
(each read-back of a leaderless stream waited out nats-py's 5 s timeout, so a SET was
refused although the new leader was there within COMMIT_WAIT); past COMMIT_WAIT the SET is
refused with ERROR 503."""
from __future__ import annotations

import asyncio
import types

from nats.js.errors import NoStreamResponseError

from clasp_fast.cluster.nats import commit
from clasp_fast.cluster.nats.commit import Commits


class Kv:
    """The bucket: ``update`` gives the next of ``answers`` (a revision, or raises it)."""

    def __init__(self, answers: list):
        self.answers, self.writes, self.reads = answers, 0, 0
        self.bodies: list[bytes] = []

    async def update(self, key: str, body: bytes, last: int) -> int:
        self.writes += 1
        self.bodies.append(body)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def get(self, key: str):
        self.reads += 1
        raise AssertionError("a write that reached no stream is not read back")


class Router:
    """What Commits uses of the router: each SET decided as its payload, the answers kept."""

    def __init__(self):
        self.answers: list[tuple] = []
        self.fast: dict[bytes, bool] = {}

    def set_fast(self, address: bytes, fast: bool) -> None:
        self.fast[address] = fast

    def hold_answers(self, origin: int, delta: int) -> None:
        pass

    def decide(self, address: bytes, requests: list) -> list:
        return [request[4] for request in requests]

    def commit_store(self, body: bytes, qos: int) -> int:
        return 0

    def commit_emit(self, body, local, qos, position, revision) -> None:
        self.answers.append(("ACK", body, revision))

    def commit_error(self, local, origin, seq, code, message, address) -> None:
        self.answers.append(("ERROR", code, message))


def committing(monkeypatch, answers: list) -> tuple[Commits, Router, Kv]:
    monkeypatch.setattr(commit, "NO_LEADER_RETRY", 0.001)
    monkeypatch.setattr(commit, "bus", types.SimpleNamespace(replicate_holder=lambda body: b""))
    kv = Kv(answers)
    router = Router()
    return Commits(router, types.SimpleNamespace(kv=kv, bucket="clasp-state", up=True, write_behind=0.05)), router, kv


async def answered(router: Router, timeout: float = 5.0) -> list:
    deadline = asyncio.get_running_loop().time() + timeout
    while not router.answers:
        assert asyncio.get_running_loop().time() < deadline, "the SET got no answer"
        await asyncio.sleep(0.001)
    return router.answers


async def test_a_write_no_stream_took_is_written_again_without_a_read_back(monkeypatch):
    commits, router, kv = committing(monkeypatch, [NoStreamResponseError(), NoStreamResponseError(), 7])
    commits.submit(None, 1, 1, b"w", b"state", 1, b"/x")
    assert await answered(router) == [("ACK", b"state", 7)]
    assert (kv.writes, kv.reads) == (3, 0)
    assert commits.known["/x"] == (7, False)
    await asyncio.sleep(0.01)
    assert router.fast == {b"/x": True}         # its write is the bucket's last: fast SETs from now


async def test_a_stream_without_a_leader_for_commit_wait_refuses_the_set_with_503(monkeypatch):
    commits, router, kv = committing(monkeypatch, [NoStreamResponseError()])
    monkeypatch.setattr(commit, "COMMIT_WAIT", 0.05)
    commits.submit(None, 1, 1, b"w", b"state", 1, b"/x")
    (kind, code, message), = await answered(router)
    assert (kind, code) == ("ERROR", 503) and "did not take it" in message, message
    assert kv.writes > 1 and kv.reads == 0 and "/x" not in commits.known
    await asyncio.sleep(0.01)
    assert router.fast == {b"/x": False}        # not written: its SETs keep waiting for the bucket


class Entry:
    def __init__(self, value: bytes, revision: int):
        self.value, self.revision = value, revision


async def test_a_refused_fast_state_is_written_again_above_the_other_nodes_state(monkeypatch):
    """A fast state the bucket refuses (another node wrote the param since): the other
    state is read, and this node's newest fast state is written on top of it with a CLASP
    revision above both, then stored and sent out (commit_store, commit_emit); the PING
    barrier's count of fast states is settled; the param is fast again afterwards."""
    from nats.js.errors import KeyWrongLastSequenceError
    commits, router, kv = committing(monkeypatch, [KeyWrongLastSequenceError(), 12])
    commits.write_behind = 0.001
    # bodies here are b"<value>:<CLASP revision>"
    monkeypatch.setattr(commit, "bus", types.SimpleNamespace(
        replicate_holder=lambda body: b"",
        replicate_revision=lambda body: int(body.split(b":")[1]),
        replicate_with_revision=lambda body, revision: body.split(b":")[0] + b":%d" % revision))

    async def get(key):
        return Entry(b"theirs:9", 11)
    kv.get = get
    stored = []
    router.commit_store = lambda body, qos: stored.append(body) or 0
    router.param_state = lambda address: (7, None)          # this node's fast SETs reached 7
    commits.known["/x"] = (5, False)
    commits.fast_state(b"/x", b"ours:7")
    assert await answered(router) == [("ACK", b"ours:10", 12)]  # emitted: above 9 (theirs) and 7
    assert stored == [b"ours:10"]
    assert kv.writes == 2 and commits.known["/x"] == (12, False)
    assert commits.fast_refused == 1 and commits.writes == {"decided": 0, "fast": 1}
    await asyncio.sleep(0.01)
    assert commits.fast_numbers == {} and router.fast == {b"/x": True}


async def test_a_fast_state_no_stream_took_is_written_again_without_a_read_back(monkeypatch):
    commits, router, kv = committing(monkeypatch, [NoStreamResponseError(), NoStreamResponseError(), 4])
    commits.write_behind = 0.001
    commits.fast_state(b"/x", b"state")
    deadline = asyncio.get_running_loop().time() + 5
    while commits.fast_numbers:
        assert asyncio.get_running_loop().time() < deadline, "the fast state was never written"
        await asyncio.sleep(0.001)
    assert (kv.writes, kv.reads) == (3, 0)
    assert commits.known["/x"] == (4, False) and commits.writes["fast"] == 1


async def test_fast_states_wait_write_behind_and_join_one_write(monkeypatch):
    """cluster.write_behind_ms: the fast states of an address within it are one write, of
    the newest; a PING (hurry) writes at once."""
    commits, router, kv = committing(monkeypatch, [4, 5])
    commits.write_behind = 0.3
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(5):
        commits.fast_state(b"/x", b"state%d" % n)
        await asyncio.sleep(0.01)
    assert kv.writes == 0                   # still inside the write-behind time
    while commits.fast_numbers:
        assert loop.time() - start < 5, "the fast state was never written"
        await asyncio.sleep(0.005)
    assert loop.time() - start >= 0.3
    assert kv.writes == 1 and kv.bodies[-1] == b"state4"
    commits.fast_state(b"/x", b"state5")
    commits.hurry.set()                     # a PING on the node: no waiting
    written = loop.time()
    while commits.fast_numbers:
        await asyncio.sleep(0.005)
    assert loop.time() - written < 0.3 and kv.writes == 2
