"""Interop both ways: what ``clasp_fast.Clasp`` writes, the real ``clasp-to`` 4.2.0 (Python)
and ``@clasp-to/core`` 3.3.2 (JS, in Node) read, and the other way round.  All against one
clasp-fast process; the real clients are driven unmodified (tests/interop/conftest.py)."""
import asyncio

from clasp_fast import Clasp

from tests.interop.test_js_client import strict  # int, float and bool kept apart
from tests.support import wait_changed

T = 5.0

# what our client writes; each must reach the others as the same value and type
VALUES = [("zero", 0), ("false", False), ("empty", ""), ("int", 7), ("float", 1.5),
          ("neg", -3), ("text", "hi"), ("list", [1, "a", True]), ("map", {"k": 0.25}),
          ("null", None)]


async def test_what_our_client_sets_the_real_clients_read(shared_router, py_clients, js_clients):
    P = "/iox"
    py = await py_clients(shared_router.url)
    py.subscribe("all", f"{P}/**")
    await py.barrier()
    js = await js_clients(shared_router.url)
    await js.cmd("subscribe", label="all", pattern=f"{P}/**")
    await js.barrier()
    async with await Clasp.connect(shared_router.url, name="ours") as ours:
        for name, v in VALUES:
            assert await ours.set(f"{P}/{name}", v, confirm=True) == 1
        await ours.emit(f"{P}/cue", {"go": 1})
        await ours.bundle([{"set": (f"{P}/b", 2)}], confirm=True)
        n = len(VALUES) + 2
        await py.wait_for(lambda: len(py.calls("all")) >= n, T, "Python callbacks")
        await js.wait_for(lambda: len(js.calls("all")) >= n, T, "JS callbacks")
        expected = [(f"{P}/{name}", v) for name, v in VALUES] + [(f"{P}/cue", {"go": 1}),
                                                                  (f"{P}/b", 2)]
        # clasp-to keeps every type of a SET (int vs float too)
        assert [(a, strict(v)) for a, v in py.calls("all")] == [(a, strict(v)) for a, v in expected]
        # JS: the same values (JSON keeps 0, false, "" and null apart)
        assert js.calls("all") == expected
        jstypes = {e["address"]: e["jstype"] for e in js.of("sub")}
        assert jstypes[f"{P}/zero"] == "number" and jstypes[f"{P}/false"] == "boolean"
        assert jstypes[f"{P}/empty"] == "string" and jstypes[f"{P}/null"] == "null"
        # their GETs read what we wrote
        assert (await py.wire_get(f"{P}/float"))["value"] == 1.5
        assert (await js.cmd("get", address=f"{P}/int"))["value"] == 7
        # neither real client got anything it cannot decode (our ACKs went to us only)
        assert py.alive() and py.errors() == []
        assert js.of("warn") == [] and js.msgs("ERROR") == []


async def test_what_the_real_clients_set_our_client_reads(shared_router, py_clients, js_clients):
    P = "/ioy"
    async with await Clasp.connect(shared_router.url, name="ours") as ours:
        got = []
        changed = asyncio.Event()

        def cb(value, address):
            got.append((address, value))
            changed.set()
        await ours.subscribe(f"{P}/**", cb)
        py = await py_clients(shared_router.url)
        js = await js_clients(shared_router.url)
        await py.c.set(f"{P}/py/zero", 0)
        await py.c.set(f"{P}/py/false", False)
        await py.c.set(f"{P}/py/float", 2.5)
        await py.c.set(f"{P}/py/text", "")
        await py.barrier()
        await js.cmd("set", address=f"{P}/js/num", value=3)
        await js.cmd("set", address=f"{P}/js/list", value=[1, "x", False])
        await js.cmd("emit", address=f"{P}/js/cue", payload={"n": 1})
        await py.c.emit(f"{P}/py/cue", "go")
        await wait_changed(lambda: len(got) >= 8, changed, T, lambda: f"callbacks: {got}")
        by = dict(got)
        assert strict(by[f"{P}/py/zero"]) == strict(0)
        assert strict(by[f"{P}/py/false"]) == strict(False)
        assert strict(by[f"{P}/py/float"]) == strict(2.5)
        assert strict(by[f"{P}/py/text"]) == strict("")
        # @clasp-to/core sends every number as a float64: it arrives as a float
        assert strict(by[f"{P}/js/num"]) == strict(3.0)
        assert by[f"{P}/js/list"] == [1, "x", False]
        assert by[f"{P}/js/cue"] == {"n": 1} and by[f"{P}/py/cue"] == "go"
        assert strict(await ours.get(f"{P}/py/zero")) == strict(0)
        p = await ours.param(f"{P}/js/num")
        assert (p.value, p.revision, p.writer) == (3.0, 1, js.session)
        assert ours.cached(f"{P}/py/false") is False
