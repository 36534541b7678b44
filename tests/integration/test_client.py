"""clasp_fast.client's low-level API (record=True, send/next) against a real clasp-fast process;
the verbs are covered in tests/client/."""
import pytest

from clasp_fast.client import ClaspClient, NotFound
from clasp_fast.protocol import Error, Publish, Set, SignalType


async def test_client_set_subscribe_get_publish(router_process):
    router = router_process()
    async with await ClaspClient.connect(router.url, name="a") as a, \
            await ClaspClient.connect(router.url, name="b", record=True) as b:
        assert a.welcome.session != b.welcome.session
        await b.subscribe("/mixer/**")
        await a.set("/mixer/1/fader", 0.5)
        msg = await b.next(Set)
        assert (msg.address, msg.value, msg.revision) == ("/mixer/1/fader", 0.5, 1)
        param = await b.param("/mixer/1/fader")
        assert (param.value, param.revision, param.writer) == (0.5, 1, a.welcome.session)
        await a.publish("/mixer/cue", {"go": 1}, SignalType.EVENT)
        ev = await b.next(Publish)
        assert (ev.address, ev.value) == ("/mixer/cue", {"go": 1})
        with pytest.raises(LookupError, match="no param at /nope"):
            await b.get("/nope")


async def test_client_sees_errors_and_closes_cleanly(router_process):
    router = router_process()
    async with await ClaspClient.connect(router.url, record=True) as a:
        a.send(Set("no-slash", 1))
        err = await a.next(Error)
        assert err.code == 202 and err.address == "no-slash"
        with pytest.raises(NotFound):
            await a.get("/none")
    assert not a.connected and a._closed_evt.is_set()
