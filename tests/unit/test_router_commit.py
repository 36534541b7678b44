"""The core's side of a NATS node's compare-and-set (Router.commit, docs/cluster.md): the
owner decides with its one decision (apply_set) but sends nothing until the bucket took it.
A recorder stands where clasp_fast/cluster/nats/commit.py stands; the bucket's answers are
played by calling the router's commit API (decide, commit_store, commit_emit, commit_error)
the way commit.py does."""
from __future__ import annotations

from clasp_fast._native import bus
from clasp_fast.protocol import decode_frame, encode_frame, encode_payload
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



# --- fast SETs (a node that wrote the param last sends its plain fire-and-forget SETs at once)

def fast_node(net: Net, address: str) -> Recorder:
    """A NATS node whose state of ``address`` is its own last bucket write."""
    recorder = committing(net)
    net.router.fast_sets = True
    net.router.set_fast(address.encode(), True)
    return recorder


def test_a_plain_fire_set_of_a_fast_param_goes_out_at_once():
    net = Net()
    writer, watcher = net.connect("writer"), net.connect("watcher")
    net.subscribe(watcher, "/f/**")
    net.set(writer, "/f/x", 1)
    frames_of(watcher)
    recorder = fast_node(net, "/f/x")
    net.set(writer, "/f/x", 2)
    assert recorder.requests == []
    [got] = frames_of(watcher)
    assert (got.message.value, got.message.revision) == (2, 2)


def test_sets_that_need_the_bucket_first_are_not_fast():
    """A SET with an answer (QoS confirm), a conditional or locking SET, a SET of a param not
    marked fast, and every SET while NATS is away wait for the bucket."""
    net = Net()
    writer, watcher = net.connect("writer"), net.connect("watcher")
    net.subscribe(watcher, "/f/**")
    for address in ("/f/a", "/f/b", "/f/c", "/f/d", "/f/e"):
        net.set(writer, address, 1)
    frames_of(watcher)
    recorder = fast_node(net, "/f/a")
    for address in ("/f/b", "/f/c", "/f/d"):
        net.router.set_fast(address.encode(), True)
    net.set(writer, "/f/a", 2, qos=1)
    net.set(writer, "/f/b", 2, revision=1)
    net.set(writer, "/f/c", 2, lock=True)
    net.set(writer, "/f/e", 2)                      # not marked fast
    net.router.fast_sets = False
    net.set(writer, "/f/d", 2)                      # NATS away
    assert [address for address, _ in recorder.requests] == [b"/f/a", b"/f/b", b"/f/c", b"/f/e", b"/f/d"]
    assert frames_of(watcher) == []


def test_replicate_revision_read_and_replaced():
    net = Net()
    committing(net)
    for ttl in (None, M.Ttl(M.TtlMode.SLIDING, 30)):
        payload = encode_payload(M.Set("/r/x", 5, ttl=ttl))
        [body] = net.router.decide(b"/r/x", [(None, 0, 0, b"w", payload, 0)])
        assert bus.replicate_revision(body) == 1
        again = bus.replicate_with_revision(body, 1234)
        assert bus.replicate_revision(again) == 1234 and len(again) == len(body)
        frame = bus.replicate_frame(again)
        msg = decode_frame(frame[2:]).message
        assert (msg.address, msg.value, msg.revision) == ("/r/x", 5, 1234)
        assert msg.ttl == ttl


def test_route_runs_cuts_the_records_of_a_tick_into_runs_of_one_address():
    net = Net()
    committing(net)

    def state(address, value):
        [body] = net.router.decide(address.encode(), [(None, 0, 0, b"w", encode_payload(M.Set(address, value)), 0)])
        return body

    fast_a, fast_b = state("/a", 1), state("/b", 2)
    committed_a = fast_a[:1] + (9).to_bytes(8, "big") + fast_a[9:]       # bucket revision 9
    pub = encode_frame(M.Publish("/b", 3))
    pub = bytes((0x82, len(pub))) + pub
    records = [bus.record(bus.REPLICATE, fast_a), bus.record(bus.REPLICATE, committed_a),
               bus.record(bus.DONE, bus.done(1)),                         # ends a run, left out
               bus.record(bus.REPLICATE, fast_b), bus.record(bus.PUBLISH, pub),
               bus.record(bus.HOLDER, bus.holder("/b", "", 0)), bus.record(bus.PUBLISH, pub)]
    data = b"".join(records)
    runs = bus.route_runs(data)
    sizes = [len(r) for r in records]
    at = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    assert runs == [[b"/a", at[0], at[2], fast_a, 0], [b"/b", at[3], at[7], fast_b, 1]]
    assert bus.route_runs(data[:-3]) == runs[:1] + [[b"/b", at[3], at[6], fast_b, 1]]   # a cut record


def test_param_replicates_give_each_live_param_as_a_decided_set():
    """What a node writes into a bucket made anew: for every param, an R_REPLICATE body whose
    SET frame carries its value, revision and TTL (and no lock or unlock flag)."""
    net = Net()
    writer = net.connect("writer")
    net.set(writer, "/w/i", 7)
    net.set(writer, "/w/i", 8)
    net.set(writer, "/w/s", "text", ttl=M.Ttl(M.TtlMode.SLIDING, 30))
    net.set(writer, "/w/b", b"\x00\x01", lock=True)
    got = {}
    for address, body in net.router.param_replicates():
        frame = bus.replicate_frame(body)
        got[address] = decode_frame(frame[2:]).message
        assert bus.replicate_revision(body) == got[address].revision
    assert sorted(got) == ["/w/b", "/w/i", "/w/s"]
    assert (got["/w/i"].value, got["/w/i"].revision, got["/w/i"].ttl) == (8, 2, None)
    assert (got["/w/s"].value, got["/w/s"].ttl) == ("text", M.Ttl(M.TtlMode.SLIDING, 30))
    assert got["/w/b"].value == b"\x00\x01" and not got["/w/b"].lock
    assert bus.replicate_holder(dict(net.router.param_replicates())["/w/b"])    # the lock is in the state
