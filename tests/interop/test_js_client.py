"""Interop: the real JS client (``@clasp-to/core@3.3.2``, unmodified, in Node) against
clasp-fast, alone and together with the real Python client (``clasp-to==4.2.0``).

clasp-fast runs as a separate process; every JS client runs in its own Node process
(``js/driver.js`` driven over stdin/stdout, or the one-shot ``js/connect.js`` and
``js/set_burst.js``), with ``globalThis.WebSocket = require('ws')`` or, where marked,
Node's built-in undici WebSocket (``node --experimental-websocket``).  ``reconnect: false``
everywhere.  SETs with an expected revision or a lock are encoded by the JS package's own
exported ``encodeMessage`` and sent through the client's own socket (``clasp.ws.send``).
"""
from __future__ import annotations

import asyncio
import random
import uuid

import pytest
import websockets

from clasp_fast.protocol import Set, encode_frame

from .conftest import node_binary, run_node_script

T = 5.0
IMPLS = ["ws", "undici"]


def is_uuid4(s: str) -> bool:
    try:
        return uuid.UUID(s).version == 4 and str(uuid.UUID(s)) == s
    except (ValueError, TypeError):
        return False


def strict(v):
    """Equality that keeps int, float and bool apart."""
    if isinstance(v, list):
        return ("list", [strict(x) for x in v])
    if isinstance(v, dict):
        return ("dict", sorted((k, strict(x)) for k, x in v.items()))
    return (type(v).__name__, v)


def js_sets(js, address=None, prefix=None):
    return [m for m in js.msgs("SET")
            if (address is None or m["address"] == address)
            and (prefix is None or m["address"].startswith(prefix))]


def js_errors(js, address=None):
    return [m for m in js.msgs("ERROR") if address is None or m.get("address") == address]


# ----------------------------------------------------------------------------- connect

@pytest.mark.parametrize("impl", IMPLS)
async def test_connect_subprotocol_welcome_echo_and_ack(shared_router, node_env, impl):
    node_args = ("--experimental-websocket",) if impl == "undici" else ()
    r = await run_node_script("connect.js", shared_router.url, f"/jsconnect/{impl}", impl,
                              node_args=node_args, timeout=10)
    assert r.get("fatal") is None, r
    assert r["impl"] == impl and r["wsClass"] == ("ws" if impl == "ws" else "builtin")
    assert r["connected"] is True
    assert r["protocol"] == "clasp"  # echoed: the JS client fails without it
    assert is_uuid4(r["session"]) and r["welcome"]["session"] == r["session"]
    assert r["welcome"]["version"] == 1 and r["welcome"]["name"] == "clasp-fast"
    assert abs(r["welcome"]["timeSkewMs"]) < 2000  # WELCOME time is µs since the epoch
    assert r["firstTypes"] == ["WELCOME", "SNAPSHOT"]
    assert r["echoes"] == [{"address": f"/jsconnect/{impl}", "value": 7}]
    assert r["acks"] == [{"address": f"/jsconnect/{impl}", "revision": 1}]
    assert r["warns"] == [] and r["errors"] == []
    assert r["connectedAfterClose"] is False


@pytest.mark.parametrize("impl", IMPLS)
async def test_control_js_client_fails_without_subprotocol_echo(node_env, impl):
    """Control for the test above: against a WebSocket server that does not echo `clasp`,
    the same script fails to connect.  (Not clasp-fast: a bare `websockets` server.)"""
    async def handler(ws):
        await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=None) as server:
        port = server.sockets[0].getsockname()[1]
        node_args = ("--experimental-websocket",) if impl == "undici" else ()
        proc = await asyncio.create_subprocess_exec(
            node_binary(), *node_args, str(node_env / "connect.js"), f"ws://127.0.0.1:{port}", "/x", impl,
            cwd=node_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert '"fatal"' in out.decode()


# ----------------------------------------------------------------------------- SET / GET

async def test_get_across_clients(shared_router, py_clients, js_clients):
    P = "/jsget"
    js = await js_clients(shared_router.url)
    py = await py_clients(shared_router.url)
    # Python SETs, JS GETs (JS is not subscribed and connected before the SETs: a wire GET)
    await py.c.set(f"{P}/py_int", 42)
    await py.c.set(f"{P}/py_float", 2.5)
    await py.barrier()
    assert (await js.cmd("cached", address=f"{P}/py_int"))["has"] is False
    r = await js.cmd("get", address=f"{P}/py_int")
    assert (r["value"], r["jstype"]) == (42, "number")
    r = await js.cmd("get", address=f"{P}/py_float")
    assert (r["value"], r["jstype"]) == (2.5, "number")
    snaps = [m for m in js.msgs("SNAPSHOT") if any(p["address"].startswith(P) for p in m["params"])]
    assert [[(p["address"], p["value"], p["revision"], p["writer"]) for p in s["params"]] for s in snaps] == [
        [(f"{P}/py_int", 42, 1, py.session)], [(f"{P}/py_float", 2.5, 1, py.session)]]

    # JS SETs, Python GETs (a JS number is an f64 on the wire: Python reads a float)
    await js.cmd("set", address=f"{P}/js_num", value=42)
    await js.cmd("set", address=f"{P}/js_str", value="hi")
    await js.barrier()
    assert py.c.cached(f"{P}/js_num") is None
    v = await py.c.get(f"{P}/js_num", timeout=T)
    assert v == 42.0 and type(v) is float
    assert await py.c.get(f"{P}/js_str", timeout=T) == "hi"
    assert js.acks() == [(f"{P}/js_num", 1), (f"{P}/js_str", 1)]
    assert py.alive() and js.of("warn") == []


# ----------------------------------------------------------------------------- wildcards

async def test_js_wildcard_subscriptions(shared_router, js_clients, py_clients):
    P = "/jsw"
    star = await js_clients(shared_router.url)
    glob = await js_clients(shared_router.url)
    mid = await js_clients(shared_router.url)
    writer = await js_clients(shared_router.url)
    pywriter = await py_clients(shared_router.url)
    await star.cmd("subscribe", label="s", pattern=f"{P}/a/*")
    await glob.cmd("subscribe", label="g", pattern=f"{P}/a/**")
    await mid.cmd("subscribe", label="m", pattern=f"{P}/a/**/z")
    for c in (star, glob, mid):
        await c.barrier()

    # addresses both clients' own matchers accept for the patterns they match (the JS
    # matcher's `**` needs at least one character, so no `/a` and no `/a/z` here)
    addresses = [f"{P}/a/b", f"{P}/a/b/c", f"{P}/a/b/z", f"{P}/a/b/c/z", f"{P}/a/b/z/q",
                 f"{P}/ab/x", f"{P}/b/a/x", f"{P}/a/b/zz", f"{P}/a/y"]
    for i, addr in enumerate(addresses):
        if i % 2:  # half from a Python client, half from a JS client
            await pywriter.c.set(addr, i)
        else:
            await writer.cmd("set", address=addr, value=i)
        await (pywriter if i % 2 else writer).barrier()  # keep the global order
    for c in (star, glob, mid):
        await c.barrier()

    exp = {
        "s": [f"{P}/a/b", f"{P}/a/y"],
        "g": [f"{P}/a/b", f"{P}/a/b/c", f"{P}/a/b/z", f"{P}/a/b/c/z", f"{P}/a/b/z/q",
              f"{P}/a/b/zz", f"{P}/a/y"],
        "m": [f"{P}/a/b/z", f"{P}/a/b/c/z"],
    }
    for c, label in ((star, "s"), (glob, "g"), (mid, "m")):
        assert [(m["address"], m["value"], m["revision"]) for m in js_sets(c, prefix=P + "/")] == [
            (a, addresses.index(a), 1) for a in exp[label]], label
        assert c.calls(label) == [(a, addresses.index(a)) for a in exp[label]], label
        assert js_errors(c) == [] and c.of("warn") == []
    assert f"{P}/a/b/c" not in [a for a, _ in star.calls("s")]
    assert js_sets(writer) == []  # not subscribed


# ----------------------------------------------------------------------------- echo rules

async def test_js_publish_not_echoed_set_echoed(shared_router, js_clients, py_clients):
    P = "/jsecho"
    sender = await js_clients(shared_router.url)
    jrecv = await js_clients(shared_router.url)
    precv = await py_clients(shared_router.url)
    for c in (sender, jrecv):
        await c.cmd("subscribe", label="x", pattern=f"{P}/**")
    precv.subscribe("x", f"{P}/**")
    for c in (sender, jrecv, precv):
        await c.barrier()

    await sender.cmd("emit", address=f"{P}/cue", payload={"cue": "intro"})
    await sender.cmd("stream", address=f"{P}/level", value=0.5)
    await sender.cmd("gesture", address=f"{P}/touch", gid=3, phase="start", payload={"x": 1.5})
    await sender.cmd("gesture", address=f"{P}/touch", gid=3, phase="move", payload={"x": 2.5})
    await sender.cmd("gesture", address=f"{P}/touch", gid=3, phase="end", payload={"x": 3.5})
    await sender.cmd("set", address=f"{P}/param", value=4)
    await precv.wait_for(lambda: precv.sets(f"{P}/param"), T, "the SET")
    await jrecv.wait_for(lambda: js_sets(jrecv, f"{P}/param"), T, "the SET")
    for c in (sender, jrecv, precv):
        await c.barrier()

    # the JS receiver: everything, in order (the client adds phase and gestureId to gestures)
    assert jrecv.calls("x") == [
        (f"{P}/cue", {"cue": "intro"}), (f"{P}/level", 0.5),
        (f"{P}/touch", {"x": 1.5, "phase": "start", "gestureId": 3}),
        (f"{P}/touch", {"x": 2.5, "phase": "move", "gestureId": 3}),
        (f"{P}/touch", {"x": 3.5, "phase": "end", "gestureId": 3}),
        (f"{P}/param", 4)]
    assert [(m["signal"], m.get("phase"), m.get("id")) for m in jrecv.msgs("PUBLISH")] == [
        ("event", "start", ...), ("stream", "start", ...), ("gesture", "start", 3),
        ("gesture", "move", 3), ("gesture", "end", 3)]
    # the Python receiver too (JS numbers arrive as floats)
    assert [(m["address"], m["signal"], m["value"], m["id"], m["phase"]) for m in precv.of("PUBLISH")] == [
        (f"{P}/cue", "event", {"cue": "intro"}, None, "start"),
        (f"{P}/level", "stream", 0.5, None, "start"),
        (f"{P}/touch", "gesture", {"x": 1.5}, 3, "start"),
        (f"{P}/touch", "gesture", {"x": 2.5}, 3, "move"),
        (f"{P}/touch", "gesture", {"x": 3.5}, 3, "end")]
    assert [(m["value"], m["revision"]) for m in precv.sets()] == [(4.0, 1)]
    assert type(precv.sets()[0]["value"]) is float

    # the sender: none of its own PUBLISHes, its SET echoed, an ACK for emit() and the SET
    assert sender.msgs("PUBLISH") == []
    assert sender.calls("x") == [(f"{P}/param", 4)]
    assert [(m["address"], m["value"], m["revision"]) for m in js_sets(sender)] == [(f"{P}/param", 4, 1)]
    # emit() sends QoS confirm: ACK{address} (no revision); stream() and gesture() send QoS 0
    assert sender.acks() == [(f"{P}/cue", ...), (f"{P}/param", 1)]
    for c in (sender, jrecv):
        assert js_errors(c) == [] and c.of("warn") == []
    assert precv.alive()


# ----------------------------------------------------------------------------- ACKs

async def test_js_set_and_bundle_get_acks(shared_router, js_clients):
    P = "/jsack"
    js = await js_clients(shared_router.url)
    await js.cmd("set", address=f"{P}/a", value=1)
    await js.cmd("set", address=f"{P}/b", value="x")
    await js.cmd("set", address=f"{P}/a", value=2)
    await js.wait_for(lambda: len(js.acks()) >= 3, T, "3 ACKs")
    assert js.acks() == [(f"{P}/a", 1), (f"{P}/b", 1), (f"{P}/a", 2)]

    # bundle: ACK{revision of the last SET}
    await js.cmd("bundle", items=[{"set": [f"{P}/a", 3]}, {"emit": [f"{P}/go", {"n": 1}]},
                                  {"set": [f"{P}/c", True]}, {"set": [f"{P}/a", 4]}])
    await js.wait_for(lambda: len(js.acks()) >= 4, T, "the bundle ACK")
    await js.barrier()
    addr, rev = js.acks()[3]
    assert rev == 4  # /P/a went 2 -> 3 -> 4 inside the bundle
    assert addr in (..., None)  # a bundle ACK names no address
    assert len(js.acks()) == 4
    assert js_errors(js) == [] and js.of("warn") == []
    # the bundle was applied
    py_like = await js.cmd("get", address=f"{P}/c")
    assert py_like["value"] is True


async def test_python_survives_1000_js_sets(shared_router, node_env, py_clients):
    """1,000 SETs from JS (each ACKed to JS) reach a Python subscriber, which never sees
    an ACK and keeps receiving afterwards."""
    addr = "/jsburst/n"
    py = await py_clients(shared_router.url)
    py.subscribe("n", addr)
    await py.barrier()
    r = await run_node_script("set_burst.js", shared_router.url, addr, "1000", timeout=15)
    assert r.get("fatal") is None, r
    assert r["acks"] == [[addr, i] for i in range(1, 1001)]
    assert r["warns"] == [] and r["errors"] == []
    await py.wait_for(lambda: len(py.sets(addr)) >= 1000, T, "1000 SETs")
    await py.barrier()
    assert [(m["value"], m["revision"]) for m in py.sets(addr)] == [(float(i), i) for i in range(1, 1001)]
    assert all(type(m["value"]) is float for m in py.sets(addr))
    assert py.calls("n")[-1] == (addr, 1000.0)
    # still alive: its own later SET comes back
    await py.c.set(addr, 1001)
    await py.wait_for(lambda: len(py.sets(addr)) >= 1001, T, "1001")
    assert (py.sets(addr)[-1]["value"], py.sets(addr)[-1]["revision"]) == (1001, 1001)
    assert {m["type"] for m in py.msgs} == {"SNAPSHOT", "SET", "PONG"}
    assert py.alive()


# ----------------------------------------------------------------------------- values

PY_VALUES = {  # name: (Python value, what JS reads back, its JS type)
    "int": (42, 42, "number"),
    "float": (2.5, 2.5, "number"),
    "big": (2**53 - 1, 2**53 - 1, "number"),
    "neg": (-7, -7, "number"),
    "str": ("héllo ✓", "héllo ✓", "string"),
    "empty": ("", "", "string"),
    "true": (True, True, "boolean"),
    "false": (False, False, "boolean"),
    "null": (None, None, "null"),
    "list": ([1, 2.5, "x", None, [True]], [1, 2.5, "x", None, [True]], "array"),
    "dict": ({"a": 1, "b": {"c": "d"}, "e": [1.5]}, {"a": 1, "b": {"c": "d"}, "e": [1.5]}, "object"),
    "bytes": (b"\x00\x01\xfe\xff", b"\x00\x01\xfe\xff", "Uint8Array"),
}

JS_VALUES = {  # name: (JS value, what Python reads back)
    "int": (42, 42.0),
    "float": (2.5, 2.5),
    "zero": (0, 0.0),
    "str": ("héllo ✓", "héllo ✓"),
    "true": (True, True),
    "false": (False, False),
    "null": (None, None),
    "list": ([1, "x", None, [2]], [1.0, "x", None, [2.0]]),
    "dict": ({"a": 1, "b": {"c": "d"}}, {"a": 1.0, "b": {"c": "d"}}),
    "bytes": (b"\x00\x01\xfe\xff", b"\x00\x01\xfe\xff"),
}


async def test_values_across_clients(shared_router, js_clients, py_clients):
    P = "/jsval"
    js = await js_clients(shared_router.url)
    py = await py_clients(shared_router.url)
    pyget = await py_clients(shared_router.url)
    await js.cmd("subscribe", label="py", pattern=f"{P}/py/*")
    await js.barrier()
    py.subscribe("js", f"{P}/js/*")
    py.subscribe("py", f"{P}/py/*")
    await py.barrier()

    # Python -> JS (and back to Python)
    for k, (v, _, _) in PY_VALUES.items():
        await py.c.set(f"{P}/py/{k}", v)
    await js.wait_for(lambda: len(js.calls("py")) >= len(PY_VALUES), T, "Python's values")
    await js.barrier()
    got = {e["address"].rsplit("/", 1)[1]: (e["value"], e["jstype"]) for e in js.of("sub")}
    assert list(got) == list(PY_VALUES)
    for k, (_, js_value, js_type) in PY_VALUES.items():
        assert got[k][1] == js_type, k
        assert strict(got[k][0]) == strict(js_value), (k, got[k][0])
    await py.wait_for(lambda: len(py.calls("py")) >= len(PY_VALUES), T, "echoes")
    for (addr, value), (k, (v, _, _)) in zip(py.calls("py"), PY_VALUES.items()):
        assert strict(value) == strict(v), (k, value)  # int stays int, float stays float
    r = await js.cmd("get", address=f"{P}/py/int")  # cached from the subscription
    assert (r["value"], r["jstype"]) == (42, "number")

    # JS -> Python: every JS number is an f64 on the wire and in the store
    for k, (v, _) in JS_VALUES.items():
        await js.cmd("set", address=f"{P}/js/{k}", value=v)
    await py.wait_for(lambda: len(py.calls("js")) >= len(JS_VALUES), T, "JS's values")
    await py.barrier()
    assert [a for a, _ in py.calls("js")] == [f"{P}/js/{k}" for k in JS_VALUES]
    for (addr, value), (k, (_, expect)) in zip(py.calls("js"), JS_VALUES.items()):
        assert strict(value) == strict(expect), (k, value, expect)
    for k, (_, expect) in JS_VALUES.items():  # the store agrees (GET on the wire)
        p = await pyget.wire_get(f"{P}/js/{k}")
        assert strict(p["value"]) == strict(expect), (k, p["value"])
        assert p["writer"] == js.session and p["revision"] == 1
    await js.wait_for(lambda: len(js.acks()) >= len(JS_VALUES), T, "ACKs")
    assert js.acks() == [(f"{P}/js/{k}", 1) for k in JS_VALUES]
    assert js_errors(js) == [] and js.of("warn") == []
    assert py.alive() and pyget.alive()


# ----------------------------------------------------------------------------- revisions, locks

async def test_conditional_set_race_python_vs_js(shared_router, js_clients, py_clients):
    addr = "/jsrace/x"
    js = await js_clients(shared_router.url)
    py = await py_clients(shared_router.url)
    await js.cmd("subscribe", label="x", pattern=addr)
    await js.barrier()
    py.subscribe("x", addr)
    await py.barrier()
    await py.c.set(addr, 0)
    await js.wait_for(lambda: js_sets(js, addr), T, "rev 1")

    rounds, wins = 20, {"py": 0, "js": 0}
    rng = random.Random(11)
    for r in range(1, rounds + 1):
        cur = r
        vp, vj = 1000 + r, 2000 + r

        async def send_py():
            await asyncio.sleep(rng.random() * 0.003)
            await py.send_raw(encode_frame(Set(addr, vp, revision=cur)))

        async def send_js():
            await js.cmd("raw", message={"type": "SET", "address": addr, "value": vj, "revision": cur})

        await asyncio.gather(send_py(), send_js())
        await py.wait_for(lambda: len(py.sets(addr)) >= r + 1, T, f"round {r}")
        await js.wait_for(lambda: len(js_sets(js, addr)) >= r + 1, T, f"round {r}")
        await py.wait_for(lambda: len(py.errors(addr)) + len(js_errors(js, addr)) >= r, T, f"round {r} 409")
        await py.barrier()
        await js.barrier()
        assert len(py.sets(addr)) == len(js_sets(js, addr)) == r + 1  # one winner per round
        p_last, j_last = py.sets(addr)[-1], js_sets(js, addr)[-1]
        assert p_last["revision"] == j_last["revision"] == cur + 1
        if p_last["value"] == vp:
            wins["py"] += 1
            assert type(p_last["value"]) is int and j_last["value"] == vp
        else:
            wins["js"] += 1
            assert p_last["value"] == float(vj) and type(p_last["value"]) is float
        assert (len(py.errors(addr)), len(js_errors(js, addr))) == (r - wins["py"], r - wins["js"])

    assert wins["py"] + wins["js"] == rounds
    assert all(e["code"] == 409 for e in py.errors()) and all(e["code"] == 409 for e in js_errors(js))
    # JS got an ACK for each win, with the new revision
    js_win_revs = [m["revision"] for m in js_sets(js, addr)[1:] if m["value"] >= 2000]
    assert [rev for a, rev in js.acks()] == js_win_revs
    if wins["js"] < rounds:
        err = (await js.cmd("lastError"))["error"]
        assert err["code"] == 409 and err["address"] == addr
    final = await py.wire_get(addr)
    assert final["revision"] == rounds + 1
    assert final["value"] == py.sets(addr)[-1]["value"]
    assert final["writer"] == (py.session if final["value"] == 1000 + rounds else js.session)
    assert py.alive() and js.of("warn") == []


async def test_js_lock_blocks_python_until_js_process_dies(router_process, js_clients, py_clients):
    router = router_process()
    addr = "/jslock/x"
    js = await js_clients(router.url)
    py = await py_clients(router.url)
    watcher = await py_clients(router.url)
    watcher.subscribe("w", addr)
    await watcher.barrier()

    await js.cmd("raw", message={"type": "SET", "address": addr, "value": 1, "lock": True})
    await js.wait_for(lambda: js.acks(), T, "the lock's ACK")
    assert js.acks() == [(addr, 1)]
    await py.c.set(addr, 2)
    await py.send_raw(encode_frame(Set(addr, 3, unlock=True)))
    await py.wait_for(lambda: len(py.errors()) >= 2, T, "two 423s")
    await py.barrier()
    assert [(e["code"], e["address"]) for e in py.errors()] == [(423, addr)] * 2
    p = await py.wire_get(addr)
    assert (p["value"], p["revision"], p["writer"]) == (1.0, 1, js.session)
    await watcher.barrier()
    assert [(m["value"], m["revision"], m["lock"]) for m in watcher.sets(addr)] == [(1.0, 1, True)]

    # the holder's process dies (no WebSocket close): the lock goes with its session
    assert await js.kill() == -9
    await asyncio.sleep(0.3)
    await py.c.set(addr, 4)
    await watcher.wait_for(lambda: len(watcher.sets(addr)) >= 2, T, "Python's write")
    await py.barrier()
    assert [(m["value"], m["revision"]) for m in watcher.sets(addr)] == [(1.0, 1), (4, 2)]
    assert len(py.errors()) == 2
    p = await py.wire_get(addr)
    assert (p["value"], p["revision"], p["writer"]) == (4, 2, py.session)
    assert py.alive() and watcher.alive()


async def test_python_lock_blocks_js_until_python_disconnects(shared_router, js_clients, py_clients):
    addr = "/jslock2/x"
    py = await py_clients(shared_router.url)
    js = await js_clients(shared_router.url)
    await py.send_raw(encode_frame(Set(addr, 1, lock=True)))
    await py.barrier()

    await js.cmd("set", address=addr, value=2)
    await js.wait_for(lambda: js_errors(js), T, "423")
    err = (await js.cmd("lastError"))["error"]
    assert (err["code"], err["address"]) == (423, addr)
    await js.cmd("clearError")
    await js.cmd("raw", message={"type": "SET", "address": addr, "value": 3, "unlock": True})
    await js.wait_for(lambda: len(js_errors(js)) >= 2, T, "second 423")
    err = (await js.cmd("lastError"))["error"]
    assert (err["code"], err["address"]) == (423, addr)
    await js.barrier()
    assert js.acks() == []  # nothing was written
    p = await py.wire_get(addr)
    assert (p["value"], p["revision"], p["writer"]) == (1, 1, py.session)

    await py.close()
    await asyncio.sleep(0.2)
    await js.cmd("set", address=addr, value=5)
    await js.wait_for(lambda: js.acks(), T, "ACK after the holder left")
    assert js.acks() == [(addr, 2)]
    assert len(js_errors(js)) == 2
    r = await js.cmd("get", address=addr)  # not cached (no subscription, no SET seen)
    assert r["value"] == 5
    assert js.of("warn") == []


# ----------------------------------------------------------------------------- both at once

@pytest.mark.parametrize("impl", IMPLS)
async def test_python_and_js_connected_at_once_see_each_other(shared_router, js_clients, py_clients, impl):
    P = f"/jsboth/{impl}"
    js = await js_clients(shared_router.url, impl=impl)
    py = await py_clients(shared_router.url)
    assert js.protocol == "clasp" and is_uuid4(js.session) and js.session != py.session
    await js.cmd("subscribe", label="all", pattern=f"{P}/**")
    await js.barrier()
    py.subscribe("all", f"{P}/**")
    await py.barrier()

    await py.c.set(f"{P}/p1", 1)
    await py.barrier()
    await js.cmd("set", address=f"{P}/j1", value=1.5)
    await js.barrier()
    await py.c.emit(f"{P}/pe", {"from": "py"})
    await py.barrier()
    await js.cmd("emit", address=f"{P}/je", payload={"from": "js"})
    await js.barrier()
    await py.c.set(f"{P}/j1", "py overwrote")
    await py.barrier()
    await js.cmd("set", address=f"{P}/p1", value=[1, 2])
    await js.barrier()
    await py.wait_for(lambda: len(py.calls("all")) >= 5, T, "5 callbacks")
    await js.wait_for(lambda: len(js.calls("all")) >= 5, T, "5 callbacks")
    await py.barrier()
    await js.barrier()

    # each sees both clients' SETs (its own echoed) and only the other's PUBLISH, in order
    assert py.calls("all") == [(f"{P}/p1", 1), (f"{P}/j1", 1.5), (f"{P}/je", {"from": "js"}),
                               (f"{P}/j1", "py overwrote"), (f"{P}/p1", [1.0, 2.0])]
    assert js.calls("all") == [(f"{P}/p1", 1), (f"{P}/j1", 1.5), (f"{P}/pe", {"from": "py"}),
                               (f"{P}/j1", "py overwrote"), (f"{P}/p1", [1, 2])]
    assert [(m["address"], m["revision"]) for m in py.sets()] == [
        (f"{P}/p1", 1), (f"{P}/j1", 1), (f"{P}/j1", 2), (f"{P}/p1", 2)]
    assert [(m["address"], m["revision"]) for m in js_sets(js, prefix=P)] == [
        (f"{P}/p1", 1), (f"{P}/j1", 1), (f"{P}/j1", 2), (f"{P}/p1", 2)]
    assert js.acks() == [(f"{P}/j1", 1), (f"{P}/je", ...), (f"{P}/p1", 2)]     # emit(): ACK{address}
    assert js_errors(js) == [] and js.of("warn") == [] and py.errors() == [] and py.alive()
