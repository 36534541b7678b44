"""The core's side of a NATS node's compare-and-set (Router.commit, docs/cluster.md): the
owner decides with its one decision (apply_set) but sends nothing until the bucket took it.
A recorder stands where clasp_fast/cluster/nats/commit.py stands; the bucket's answers are
played by calling the router's commit API (decide, commit_store, commit_emit, commit_error)
the way commit.py does."""
from __future__ import annotations

from clasp_fast.protocol import encode_payload
from clasp_fast.protocol import messages as M

from tests.unit.test_router_support import Net, frames_of


class Recorder:
    """Router.commit: keeps what the router hands over."""

    def __init__(self):
        self.requests: list[tuple] = []
        self.pings: list = []
        self.after: list = []

    def submit(self, local, origin, seq, writer, payload, qos, address):
        self.requests.append((address, (local, origin, seq, writer, payload, qos)))
        return 0

    def ping(self, session):
        self.pings.append(session)

    def then(self, fn, *args):
        self.after.append((fn, args))

    def later(self, link, kind, body):
        return False


def committing(net: Net) -> Recorder:
    net.router.commit = recorder = Recorder()
    return recorder


def accept(net: Net, outcomes: list, requests: list, bucket_revision: int = 1) -> None:
    """The bucket took the group: store its last decision, then answer each in order."""
    final = [o for o in outcomes if type(o) is bytes][-1]
    position = net.router.commit_store(final, max(r[5] for r in requests))
    for request, outcome in zip(requests, outcomes):
        if type(outcome) is bytes:
            net.router.commit_emit(outcome, request[0], request[5], position, bucket_revision)
        else:
            net.router.commit_error(*request[:3], *outcome)


def test_a_set_is_decided_but_not_sent_until_the_bucket_took_it():
    net = Net()
    writer, watcher = net.connect("writer"), net.connect("watcher")
    net.subscribe(watcher, "/c/**")
    net.set(writer, "/c/x", 1, qos=1)
    frames_of(writer), frames_of(watcher)
    recorder = committing(net)
    net.set(writer, "/c/x", 2, qos=1)
    assert frames_of(writer) == [] and frames_of(watcher) == []
    (address, request), = recorder.requests
    assert address == b"/c/x"
    outcomes = net.router.decide(address, [request])
    assert [type(o) for o in outcomes] == [bytes]
    # deciding left the state as it was: nobody reads an uncommitted write
    assert net.router.param_state("/c/x") == (1, None)
    assert net.router.get("/c/x").value == 1
    accept(net, outcomes, [request])
    assert net.router.get("/c/x").value == 2
    assert [(f.message.address, f.message.revision) for f in frames_of(writer)] == [("/c/x", 2)]
    assert [(f.message.value, f.message.revision) for f in frames_of(watcher)] == [(2, 2)]


def test_a_group_gets_contiguous_revisions_and_one_state():
    net = Net()
    writer, watcher = net.connect("writer"), net.connect("watcher")
    net.subscribe(watcher, "/g/x")
    recorder = committing(net)
    for value in (1, 2, 3):
        net.set(writer, "/g/x", value, qos=1)
    requests = [r for _, r in recorder.requests]
    outcomes = net.router.decide(b"/g/x", requests)
    assert net.router.param_state("/g/x") == (0, None)
    accept(net, outcomes, requests)
    assert [(f.message.value, f.message.revision) for f in frames_of(watcher)] == [(1, 1), (2, 2), (3, 3)]
    assert [f.message.revision for f in frames_of(writer)] == [1, 2, 3]
    assert net.router.param_state("/g/x") == (3, None)


def test_decided_again_against_another_nodes_state():
    """A refused compare-and-set: another node's state comes in, the same request decided
    again is now stale (409) or locked (423), with the one decision of the core."""
    net = Net()
    mine, theirs = net.connect("mine"), net.connect("theirs")
    net.set(mine, "/r/x", 0)
    recorder = committing(net)
    net.set(mine, "/r/x", 1, revision=1, qos=1)          # expects revision 1
    net.set(theirs, "/r/x", 9, lock=True)               # "the other node" locks it first
    (_, conditional), (_, locking) = recorder.requests
    won = net.router.decide(b"/r/x", [locking])
    accept(net, won, [locking])
    assert net.router.param_state("/r/x") == (2, theirs.id)
    (refused,) = net.router.decide(b"/r/x", [conditional])
    assert refused[0] == 409 and "expected revision 1 but the current revision is 2" in refused[1]
    unconditional = conditional[:4] + (encode_payload(M.Set("/r/x", 5)),) + conditional[5:]
    (locked,) = net.router.decide(b"/r/x", [unconditional])
    assert locked[0] == 423
    net.router.commit_error(*conditional[:3], *refused)
    assert [(f.message.code, f.message.address) for f in frames_of(mine)] == [(409, "/r/x")]
    assert net.router.param_state("/r/x") == (2, theirs.id)


def test_a_session_waits_for_its_set_at_the_bucket():
    """What a session sends after a SET still at the bucket (a PUBLISH, a GET) runs only
    once that SET is answered: its own order holds."""
    net = Net()
    writer, watcher = net.connect("writer"), net.connect("watcher")
    net.subscribe(watcher, "/w/**")
    recorder = committing(net)
    net.set(writer, "/w/p", 1, qos=1)
    net.send(writer, M.Publish("/w/e", value=2))
    net.send(writer, M.Get("/w/p"))
    assert frames_of(watcher) == [] and frames_of(writer) == []
    requests = [r for _, r in recorder.requests]
    accept(net, net.router.decide(b"/w/p", requests), requests)
    assert [type(f.message) for f in frames_of(watcher)] == [M.Set, M.Publish]
    assert [type(f.message) for f in frames_of(writer)] == [M.Ack, M.Snapshot]


def test_ping_waits_for_the_cluster_barrier():
    net = Net()
    s = net.connect()
    recorder = committing(net)
    net.send(s, M.Ping())
    net.send(s, M.Get("/nothing"))
    assert frames_of(s) == [] and recorder.pings == [s]
    net.router.pong(s)
    assert [type(f.message) for f in frames_of(s)] == [M.Pong, M.Error]

