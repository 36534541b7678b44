"""Reconnect: the router process is stopped and started again on the same port while a
``Clasp`` client is connected; the client reconnects with backoff, resubscribes, rebuilds
its cache from the new router's state and sends what was queued meanwhile."""
import asyncio

import pytest

from clasp_fast import Clasp
from clasp_fast.client import ConnectionFailed, NotConnected, NotFound, QueueFull

from tests.support import free_port, wait_changed

T = 10.0


async def until(pred, what, timeout=T):
    changed = asyncio.Event()

    async def poke():
        while True:
            await asyncio.sleep(0.05)
            changed.set()
    task = asyncio.ensure_future(poke())
    try:
        return await wait_changed(pred, changed, timeout, lambda: f"timed out waiting for {what}")
    finally:
        task.cancel()


async def test_reconnect_resubscribes_and_sees_the_new_state(router_process):
    port = free_port()
    first = router_process(port=port)
    a = await Clasp.connect(first.url, name="survivor", reconnect_delay=0.05,
                            max_reconnect_delay=0.5, queue_size=3)
    events = []
    a.on_connect(lambda: events.append("connect"))
    a.on_disconnect(lambda reason: events.append(("disconnect", reason)))
    got = []
    a.subscribe("/rc/**", lambda value, address: got.append((address, value)))
    await a.set("/rc/old", 1, confirm=True)
    assert a.cached("/rc/old") == 1
    old_session = a.session_id

    assert first.stop() == 0
    await until(lambda: not a.connected, "the client to notice the disconnect")
    assert events == [("disconnect", "closed with code 1001")]
    # while disconnected: fire-and-forget sends are queued, up to queue_size
    await a.set("/rc/queued", 0)
    await a.emit("/rc/ev", "x")
    await a.set("/rc/queued", False)
    with pytest.raises(QueueFull, match="queue_size"):
        await a.set("/rc/overflow", 1)

    second = router_process(port=port)
    async with await Clasp.connect(second.url, name="other") as b:
        await b.set("/rc/new", 5, confirm=True)     # state the new router has
        await until(lambda: a.connected, "the client to reconnect")
        assert events[-1] == "connect" and a.session_id != old_session
        # resubscribed: the subscription's snapshot brought the new state to the callback
        await until(lambda: ("/rc/new", 5) in got, "the resubscription snapshot")
        # the cache is the new router's state: /rc/old is gone, the queued SETs arrived
        await a.ping()
        assert a.cached("/rc/old") is None
        assert await b.get("/rc/queued") is False
        assert await b.snapshot("/rc/**") and await a.get("/rc/new") == 5
        with pytest.raises(NotFound):
            await b.get("/rc/overflow")
        # and live updates flow to the resubscribed callback
        await b.set("/rc/new", 6, confirm=True)
        await until(lambda: ("/rc/new", 6) in got, "a live SET after the reconnect")
    await a.close()


async def test_requests_wait_for_the_reconnect(router_process):
    port = free_port()
    first = router_process(port=port)
    a = await Clasp.connect(first.url, reconnect_delay=0.05, max_reconnect_delay=0.3)
    assert first.stop() == 0
    await until(lambda: not a.connected, "the disconnect")
    pending = asyncio.ensure_future(a.set("/rw/x", 1, confirm=True, timeout=15))
    await asyncio.sleep(0.3)
    assert not pending.done()
    router_process(port=port)
    assert await asyncio.wait_for(pending, 15) == 1
    await a.close()


async def test_without_reconnect_a_lost_connection_is_final(router_process):
    router = router_process()
    lost = []
    a = await Clasp.connect(router.url, reconnect=False)
    a.on_disconnect(lost.append)
    assert router.stop() == 0
    await until(lambda: not a.connected, "the disconnect")
    assert lost == ["closed with code 1001"]
    with pytest.raises(NotConnected, match="reconnect is off"):
        await a.set("/x", 1)
    await a.close()


async def test_unreachable_router_raises_connection_failed():
    port = free_port()
    with pytest.raises(ConnectionFailed, match=f"cannot reach the router at ws://127.0.0.1:{port}"):
        await Clasp.connect(f"ws://127.0.0.1:{port}", timeout=3)
    # a port that answers but is not a WebSocket server
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectionFailed):
            await Clasp.connect(f"ws://127.0.0.1:{port}", timeout=3)
    finally:
        server.close()

