"""``clasp_fast.Clasp`` against a real clasp-fast process: every verb, exact value types,
typed errors, and the one-write-per-tick batching."""
import asyncio

import pytest

import clasp_fast.client.client as client_module
from clasp_fast import Clasp
from clasp_fast.client import (ClaspClient, ClaspError, Conflict, InvalidAddress, Locked,
                               NotConnected, NotFound, error_for)
from clasp_fast.client.errors import (BadRequest, Forbidden, RateLimited, Unauthorized,
                                      describe_code)
from clasp_fast.protocol import Phase, Publish, Set, SignalType, TypeMask

from tests.interop.test_js_client import strict  # int, float and bool kept apart
from tests.support import wait_changed

T = 5.0


class Calls:
    """Records subscription callbacks ``(address, value)`` and lets a test wait for them."""

    def __init__(self):
        self.items = []
        self.changed = asyncio.Event()

    def __call__(self, value, address):
        self.items.append((address, value))
        self.changed.set()

    async def wait(self, n, timeout=T):
        await wait_changed(lambda: len(self.items) >= n, self.changed, timeout,
                           lambda: f"expected {n} callbacks, got {self.items}")
        return self.items


VALUES = [0, 1, -7, 2**40, 0.0, 1.5, -2.25, False, True, "", "text", None, b"\x00\x01",
          [1, 2.0, "x"], {"a": 1, "b": [False, 0.5]}]


async def test_connect_session_time_and_context_manager(shared_router):
    async with await Clasp.connect(shared_router.url, name="console") as c:
        assert c.connected and len(c.session_id) == 36
        assert abs(c.time() - asyncio.get_running_loop().time() * 0) > 0   # router µs clock
        import time
        assert abs(c.time() - time.time() * 1e6) < 5e6
    assert not c.connected
    # the clasp-to way: make, then connect
    c2 = Clasp(shared_router.url)
    await c2.connect()
    assert c2.connected
    await c2.close()
    async with Clasp(shared_router.url) as c3:          # async with connects too
        assert c3.connected
    assert ClaspClient is Clasp


async def test_set_get_subscribe_keep_exact_types(shared_router, clients):
    a = await clients(shared_router.url, name="a")
    b = await clients(shared_router.url, name="b")
    calls = Calls()
    await b.subscribe("/vt/**", calls)
    for i, v in enumerate(VALUES):
        await a.set(f"/vt/{i}", v)
    got = await calls.wait(len(VALUES))
    assert [(addr, strict(v)) for addr, v in got] == [(f"/vt/{i}", strict(v)) for i, v in enumerate(VALUES)]
    for i, v in enumerate(VALUES):
        assert strict(await a.get(f"/vt/{i}")) == strict(v)
        assert strict(b.cached(f"/vt/{i}")) == strict(v)
        assert b.revision(f"/vt/{i}") == 1


async def test_confirmed_and_conditional_set_return_revisions(shared_router, clients):
    a = await clients(shared_router.url)
    assert await a.set("/cs/x", 1, confirm=True) == 1
    assert await a.set("/cs/x", 2, confirm=True) == 2
    assert await a.set("/cs/x", 3, revision=2) == 3
    with pytest.raises(Conflict) as info:
        await a.set("/cs/x", 4, revision=2)
    assert info.value.code == 409 and info.value.address == "/cs/x"
    assert "expected revision 2" in info.value.message
    assert await a.get("/cs/x") == 3
    p = await a.param("/cs/x")
    assert (p.value, p.revision, p.writer) == (3, 3, a.session_id)


async def test_errors_are_matched_to_their_requests_in_order(shared_router, clients):
    await _errors_in_order(await clients(shared_router.url))


async def test_errors_are_matched_to_their_requests_on_several_workers(router_process, clients):
    router = router_process(workers=3)
    for _ in range(3):          # connections land on different workers (SO_REUSEPORT)
        await _errors_in_order(await clients(router.url))


async def _errors_in_order(a):
    """A fire-and-forget SET that fails, a conditional SET that fails, a GET that fails and a
    SET that succeeds, all in one write: each answer reaches the right place."""
    errors = []
    a.on_error(errors.append)
    rev = await a.set("/em/x", 1, confirm=True)
    await a.set("bad-address", 1)
    conflict = asyncio.ensure_future(a.set("/em/x", 2, revision=rev + 9))
    missing = asyncio.ensure_future(a.get("/em/none"))
    ok = asyncio.ensure_future(a.set("/em/x", 5, confirm=True))
    with pytest.raises(Conflict):
        await conflict
    with pytest.raises(NotFound) as nf:
        await missing
    assert nf.value.address == "/em/none" and isinstance(nf.value, LookupError)
    assert await ok == rev + 1
    await a.ping()
    assert [(type(e), e.code, e.address) for e in errors] == [(InvalidAddress, 202, "bad-address")]


async def test_locks(shared_router, clients):
    a = await clients(shared_router.url, name="holder")
    b = await clients(shared_router.url, name="other")
    await a.set("/lk/x", 0.5, confirm=True)
    assert await a.lock("/lk/x") == 2                      # the current value, kept
    assert await a.get("/lk/x") == 0.5
    with pytest.raises(Locked) as info:
        await b.set("/lk/x", 1.0, confirm=True)
    assert info.value.code == 423 and info.value.address == "/lk/x"
    with pytest.raises(Locked):
        await b.unlock("/lk/x", 1.0)
    assert await a.set("/lk/x", 0.75, confirm=True) == 3   # the holder writes
    assert await a.unlock("/lk/x", 0.8) == 4
    assert await b.set("/lk/x", 1.0, confirm=True) == 5


async def test_unsubscribe_decorator_and_watch(shared_router, clients):
    a = await clients(shared_router.url)
    b = await clients(shared_router.url)
    calls = Calls()
    seen = []

    @b.on("/us/*/level")
    def level(value, address):
        seen.append((address, value))

    unsub = b.subscribe("/us/**", calls)
    await unsub
    await b.subscribe("/us/1/level", None)          # any number of overlapping subscriptions
    await a.set("/us/1/level", 1)
    await calls.wait(1)
    unsub()
    await a.set("/us/1/level", 2)
    await b.ping()
    await a.ping()
    await b.ping()
    assert calls.items == [("/us/1/level", 1)]
    assert seen == [("/us/1/level", 1), ("/us/1/level", 2)]

    got = []

    async def watcher():
        async for address, value in b.watch("/wt/**"):
            got.append((address, value))
            if len(got) == 2:
                return
    task = asyncio.ensure_future(watcher())
    await asyncio.sleep(0)
    await b.ping()
    await a.set("/wt/a", 0)
    await a.emit("/wt/e", "")
    await asyncio.wait_for(task, T)
    assert [(x, strict(v)) for x, v in got] == [("/wt/a", strict(0)), ("/wt/e", strict(""))]


async def test_emit_stream_gesture_bundle(shared_router, clients):
    a = await clients(shared_router.url)
    b = await clients(shared_router.url, record=True)
    calls = Calls()
    await b.subscribe("/pb/**", calls)
    await a.emit("/pb/cue", {"go": 1})
    await a.emit("/pb/zero", 0)
    await a.stream("/pb/level", 0.25)
    await a.gesture("/pb/touch", 7, "start", {"x": 1})
    await a.gesture("/pb/touch", 7, Phase.END, {"x": 2})
    await a.timeline("/pb/tl", [{"time": 0, "value": 1}])
    assert await a.bundle([{"set": ("/pb/s", 3)}, {"emit": ("/pb/go", False)}], confirm=True) == 1
    got = await calls.wait(8)
    assert [(x, strict(v)) for x, v in got] == [
        ("/pb/cue", strict({"go": 1})), ("/pb/zero", strict(0)), ("/pb/level", strict(0.25)),
        ("/pb/touch", strict({"x": 1})), ("/pb/touch", strict({"x": 2})), ("/pb/tl", strict(None)),
        ("/pb/s", strict(3)), ("/pb/go", strict(False))]
    pubs = [m for m in b.drain() if isinstance(m, Publish)]
    assert [(m.signal, m.phase, m.id) for m in pubs if m.address == "/pb/touch"] == [
        (SignalType.GESTURE, Phase.START, 7), (SignalType.GESTURE, Phase.END, 7)]
    assert all(m.timestamp for m in pubs if m.address != "/pb/go")
    assert [m.signal for m in pubs if m.address == "/pb/tl"] == [SignalType.TIMELINE]
    # a confirmed emit waits until the router took it; a bad one raises
    await a.emit("/pb/cue", 1, confirm=True)
    with pytest.raises(InvalidAddress):
        await a.emit("no/slash", 1, confirm=True)
    # the PING behind a refused PUBLISH is still answered: the next request is not confused
    bad = asyncio.ensure_future(a.emit("no/slash", 1, confirm=True))
    good = asyncio.ensure_future(a.set("/pb/after", 1, confirm=True))
    with pytest.raises(InvalidAddress):
        await bad
    assert await good == 1
    # a bundle that fails applies nothing and raises the ERROR naming the address
    with pytest.raises(ClaspError) as info:
        await a.bundle([{"set": ("/pb/t", 1)}, {"set": ("bad", 2)}], confirm=True)
    assert info.value.address == "bad"
    with pytest.raises(NotFound):
        await a.get("/pb/t")


async def test_type_mask_and_subscription_snapshot(shared_router, clients):
    a = await clients(shared_router.url)
    await a.set("/tm/p", 1.0, confirm=True)
    b = await clients(shared_router.url)
    params, events = Calls(), Calls()
    await b.subscribe("/tm/**", params, types=TypeMask.PARAM)
    await b.subscribe("/tm/**", events, types=TypeMask.EVENT)
    assert await params.wait(1) == [("/tm/p", 1.0)]          # the current value, from the snapshot
    await a.emit("/tm/e", 2)
    await a.set("/tm/p", 3, confirm=True)
    await params.wait(2)
    await events.wait(1)
    assert params.items == [("/tm/p", 1.0), ("/tm/p", 3)]
    assert events.items == [("/tm/e", 2)]
    snap = await b.snapshot("/tm/**")
    assert [(p.address, p.value, p.revision) for p in snap] == [("/tm/p", 3, 2)]


async def test_query_and_invalid_patterns(shared_router, clients):
    a = await clients(shared_router.url)
    await a.set("/qy/a", 1, confirm=True)
    found = await a.query("/qy/**")
    assert [s.address for s in found] == ["/qy/a"]
    with pytest.raises(InvalidAddress):
        a.subscribe("no-slash", print)
    with pytest.raises(TypeError, match="unknown subscribe option"):
        a.subscribe("/x", print, maxrate=3)


async def test_many_sets_in_one_iteration_leave_in_one_write(shared_router, clients, monkeypatch):
    a = await clients(shared_router.url)
    b = await clients(shared_router.url)
    calls = Calls()
    await b.subscribe("/bt/*", calls)
    writes = []
    real = client_module.masked_frames

    def counting(frames, key):
        writes.append(len(frames))
        return real(frames, key)
    monkeypatch.setattr(client_module, "masked_frames", counting)
    for i in range(500):
        await a.set(f"/bt/{i % 10}", i)
    await a.emit("/bt/e", 1)
    assert writes == []                 # nothing written yet: the write happens at the tick end
    await asyncio.sleep(0)
    assert writes == [501]
    await calls.wait(501)
    assert calls.items[-2:] == [("/bt/9", 499), ("/bt/e", 1)]


async def test_undecodable_frames_are_skipped_and_low_level_api(shared_router, clients):
    a = await clients(shared_router.url, record=True)
    a._on_frame(b"\x53\x01\x00\x01\x7f")        # an unknown message type: logged, skipped
    a._on_frame(b"garbage")
    await a.subscribe("/ll/*")
    a.send(Set("/ll/x", 1))
    msg = await a.next(Set)
    assert (msg.address, msg.value, msg.revision) == ("/ll/x", 1, 1)
    assert a.connected and await a.get("/ll/x") == 1


async def test_closed_client_raises_not_connected(shared_router):
    a = await Clasp.connect(shared_router.url)
    await a.close()
    with pytest.raises(NotConnected):
        await a.set("/nc/x", 1)
    with pytest.raises(NotConnected):
        await a.get("/nc/x")


def test_error_classes_by_code():
    assert isinstance(error_for(409, "m", "/a"), Conflict)
    assert isinstance(error_for(423, "m"), Locked)
    assert isinstance(error_for(404, "m"), NotFound)
    assert isinstance(error_for(403, "m"), Forbidden)
    assert isinstance(error_for(401, "m"), Unauthorized)
    assert isinstance(error_for(301, "m"), Unauthorized)
    assert isinstance(error_for(429, "m"), RateLimited)
    assert isinstance(error_for(400, "m"), BadRequest)
    assert isinstance(error_for(202, "m"), InvalidAddress)
    e = error_for(599, "odd", "/x")
    assert type(e) is ClaspError and (e.code, e.address, e.message) == (599, "/x", "odd")
    assert describe_code(423) == "locked by another session"
    assert describe_code(301) == "unauthorized"
