"""Interop: the real Python client (``clasp-to==4.2.0``, unmodified) against clasp-fast.

clasp-fast runs as a separate process (``shared_router`` for the module, one fresh
``router_process`` where a test needs its own); the clients run in the pytest process and
talk to it over real loopback sockets.  ``PyClient`` (conftest) only *observes* what the
client's own decoder produced.  Each test uses its own address prefix.

What a Python client cannot do through its public API (send a SET with an expected
revision, a lock or an unlock) is built with clasp-fast's codec and sent through the real
client's own websocket (``c._ws.send``), QoS 0 like everything the Python client sends.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest
from clasp.client import ClaspError

from clasp_fast.protocol import Set, encode_frame

T = 5.0  # seconds: bound for any single wait


def is_uuid4(s: str) -> bool:
    try:
        return uuid.UUID(s).version == 4 and str(uuid.UUID(s)) == s
    except (ValueError, TypeError):
        return False


# ----------------------------------------------------------------------------- connect

async def test_connect_welcome_snapshot_and_subprotocol(shared_router, py_clients):
    a = await py_clients(shared_router.url, name="interop py A")
    b = await py_clients(shared_router.url, name="interop py B")
    for c in (a, b):
        assert c.c.connected is True
        assert is_uuid4(c.session), c.session
        # the client offered the `clasp` subprotocol; the router echoed it
        assert c.c._ws.subprotocol == "clasp"
        # WELCOME time is server µs since the epoch: the client's clock offset is tiny
        assert abs(c.c._server_time_offset) < 2_000_000, c.c._server_time_offset
        await c.barrier()
        # after WELCOME the router sends exactly one SNAPSHOT (this router holds little
        # state), then nothing but the PONG we asked for
        assert [m["type"] for m in c.msgs] == ["SNAPSHOT", "PONG"], c.msgs
        assert c.alive()
    assert a.session != b.session


# ----------------------------------------------------------------------------- SET / GET

async def test_set_on_one_client_get_on_another(shared_router, py_clients):
    P = "/pyget"
    getter = await py_clients(shared_router.url)
    setter = await py_clients(shared_router.url)
    await setter.c.set(f"{P}/int", 42)
    await setter.c.set(f"{P}/float", 2.5)
    await setter.barrier()  # both SETs applied
    assert getter.c.cached(f"{P}/int") is None  # not subscribed: get() must go to the router

    v = await getter.c.get(f"{P}/int", timeout=T)
    assert v == 42 and type(v) is int
    v = await getter.c.get(f"{P}/float", timeout=T)
    assert v == 2.5 and type(v) is float
    snaps = [m for m in getter.of("SNAPSHOT") if any(p["address"].startswith(P) for p in m["params"])]
    assert len(snaps) == 2
    (p1,), (p2,) = snaps[0]["params"], snaps[1]["params"]
    assert (p1["address"], p1["value"], p1["revision"], p1["writer"]) == (f"{P}/int", 42, 1, setter.session)
    assert (p2["address"], p2["value"], p2["revision"], p2["writer"]) == (f"{P}/float", 2.5, 1, setter.session)
    assert abs(p1["timestamp"] - time.time() * 1e6) < 5e6  # server µs

    # GET of an address nobody wrote: ERROR 404 naming it (the client's get() times out)
    with pytest.raises(ClaspError):
        await getter.c.get(f"{P}/missing", timeout=0.5)
    (err,) = getter.errors(f"{P}/missing")
    assert err["code"] == 404
    assert getter.alive() and setter.alive()


# ----------------------------------------------------------------------------- wildcards

async def test_wildcard_subscriptions(shared_router, py_clients):
    P = "/pyw"
    writer = await py_clients(shared_router.url)
    star = await py_clients(shared_router.url)
    globstar = await py_clients(shared_router.url)
    mid = await py_clients(shared_router.url)
    overlap = await py_clients(shared_router.url)
    star.subscribe("s", f"{P}/a/*")
    globstar.subscribe("g", f"{P}/a/**")
    mid.subscribe("m", f"{P}/a/**/z")
    for pat in (f"{P}/a/*", f"{P}/a/**", f"{P}/a/**/z"):
        overlap.subscribe(pat, pat)
    for c in (star, globstar, mid, overlap):
        await c.barrier()  # the SUBSCRIBEs are in place

    addresses = [f"{P}/a", f"{P}/a/b", f"{P}/a/b/c", f"{P}/a/z", f"{P}/a/b/z", f"{P}/a/b/c/z",
                 f"{P}/a/b/z/q", f"{P}/ab/x", f"{P}/b/a/x", f"{P}/a/b/zz", f"{P}/a/zz"]
    for i, addr in enumerate(addresses):
        await writer.c.set(addr, i)
    await writer.barrier()  # all applied and routed
    for c in (star, globstar, mid, overlap):
        await c.barrier()  # all routed messages received

    exp_star = [f"{P}/a/b", f"{P}/a/z", f"{P}/a/zz"]
    exp_glob = [f"{P}/a", f"{P}/a/b", f"{P}/a/b/c", f"{P}/a/z", f"{P}/a/b/z", f"{P}/a/b/c/z",
                f"{P}/a/b/z/q", f"{P}/a/b/zz", f"{P}/a/zz"]
    exp_mid = [f"{P}/a/z", f"{P}/a/b/z", f"{P}/a/b/c/z"]  # `**` = zero or more segments

    def wire(c):  # what the router sent: (address, value, revision), in order
        return [(m["address"], m["value"], m["revision"]) for m in c.sets(prefix=P + "/")]

    def expect(addrs):
        return [(a, addresses.index(a), 1) for a in addrs]

    assert wire(star) == expect(exp_star)
    assert wire(globstar) == expect(exp_glob)
    assert wire(mid) == expect(exp_mid)
    # overlapping subscriptions: each SET reaches the session once
    assert wire(overlap) == expect(exp_glob)
    assert f"{P}/a/b/c" not in [a for a, _, _ in wire(star)]  # `*` is one segment only
    # and the client's callbacks fire for exactly those
    assert star.calls("s") == [(a, addresses.index(a)) for a in exp_star]
    assert globstar.calls("g") == [(a, addresses.index(a)) for a in exp_glob]
    assert mid.calls("m") == [(a, addresses.index(a)) for a in exp_mid]
    # the writer did not subscribe: it got nothing
    assert writer.sets() == []
    for c in (writer, star, globstar, mid, overlap):
        assert c.errors() == [] and c.alive()


# ----------------------------------------------------------------------------- echo rules

async def test_publish_not_echoed_set_echoed(shared_router, py_clients):
    P = "/pyecho"
    sender = await py_clients(shared_router.url)
    receiver = await py_clients(shared_router.url)
    sender.subscribe("s", f"{P}/**")
    receiver.subscribe("r", f"{P}/**")
    await sender.barrier()
    await receiver.barrier()

    await sender.c.emit(f"{P}/cue", {"cue": "intro", "n": 3})
    await sender.c.stream(f"{P}/level", 0.5)
    await sender.c.gesture(f"{P}/touch", 7, "start", {"x": 0.25, "y": 0.5})
    await sender.c.gesture(f"{P}/touch", 7, "move", {"x": 0.3, "y": 0.6})
    await sender.c.gesture(f"{P}/touch", 7, "end", {"x": 0.4, "y": 0.7})
    await sender.c.set(f"{P}/param", 3)
    await receiver.wait_for(lambda: receiver.sets(f"{P}/param"), T, "the SET")
    await sender.barrier()
    await receiver.barrier()

    pubs = [(m["address"], m["signal"], m["value"], m["id"], m["phase"]) for m in receiver.of("PUBLISH")]
    assert pubs == [
        (f"{P}/cue", "event", {"cue": "intro", "n": 3}, None, "start"),
        (f"{P}/level", "stream", 0.5, None, "start"),
        (f"{P}/touch", "gesture", {"x": 0.25, "y": 0.5}, 7, "start"),
        (f"{P}/touch", "gesture", {"x": 0.3, "y": 0.6}, 7, "move"),
        (f"{P}/touch", "gesture", {"x": 0.4, "y": 0.7}, 7, "end"),
    ]
    now_us = time.time() * 1e6
    for m in receiver.of("PUBLISH"):
        assert abs(m["timestamp"] - now_us) < 5e6  # the sender's server-time stamp kept
    assert [(m["address"], m["value"], m["revision"]) for m in receiver.sets()] == [(f"{P}/param", 3, 1)]
    assert receiver.calls("r") == [
        (f"{P}/cue", {"cue": "intro", "n": 3}), (f"{P}/level", 0.5),
        (f"{P}/touch", {"x": 0.25, "y": 0.5}), (f"{P}/touch", {"x": 0.3, "y": 0.6}),
        (f"{P}/touch", {"x": 0.4, "y": 0.7}), (f"{P}/param", 3)]

    # the sender, subscribed to the same pattern, gets nothing of its own PUBLISHes...
    assert sender.of("PUBLISH") == []
    # ...but its SET is echoed, with the new revision
    assert [(m["address"], m["value"], m["revision"]) for m in sender.sets()] == [(f"{P}/param", 3, 1)]
    assert sender.calls("s") == [(f"{P}/param", 3)]
    assert sender.alive() and receiver.alive()


# ----------------------------------------------------------------------------- no ACK

async def test_python_client_gets_no_ack_and_survives_1000_own_sets(shared_router, py_clients):
    """The Python client dies on a binary ACK; it sends QoS 0, so it must never get one."""
    addr = "/pyack/n"
    c = await py_clients(shared_router.url)
    other = await py_clients(shared_router.url)
    c.subscribe("n", addr)
    await c.barrier()
    for i in range(1, 1001):
        await c.c.set(addr, i)
    await c.wait_for(lambda: len(c.sets(addr)) >= 1000, T, "1000 echoes")
    await c.barrier()
    assert [(m["value"], m["revision"]) for m in c.sets(addr)] == [(i, i) for i in range(1, 1001)]
    assert c.calls("n")[-1] == (addr, 1000)
    assert c.alive(), "the receive loop died (a binary ACK?)"

    # later values still arrive: its own and (once its own is in) another client's.  The two
    # clients' SETs are only ordered if the second is sent after the first took effect: with
    # several workers they may reach the state owner over different links; with several
    # nodes (docs/cluster.md) a fire-and-forget SET is in the cluster once its writer's PING
    # is answered.
    await c.c.set(addr, 1001)
    await c.wait_for(lambda: len(c.sets(addr)) >= 1001, T, "1001")
    await c.barrier()
    await other.c.set(addr, 1002)
    await c.wait_for(lambda: len(c.sets(addr)) >= 1002, T, "1001 and 1002")
    await c.barrier()
    assert [(m["value"], m["revision"]) for m in c.sets(addr)[-2:]] == [(1001, 1001), (1002, 1002)]
    assert c.calls("n")[-2:] == [(addr, 1001), (addr, 1002)]
    assert len(c.calls("n")) == 1002
    kinds = {m["type"] for m in c.msgs}
    assert kinds == {"SNAPSHOT", "SET", "PONG"}, kinds  # no ACK, no ERROR, nothing else
    assert c.alive() and other.alive()


# ----------------------------------------------------------------------------- values

VALUES = {
    "int": 42, "neg": -7, "zero": 0, "big": 2**53 - 1, "float": 2.5, "float_whole": 3.0,
    "str": "héllo ✓", "empty": "", "true": True, "false": False, "null": None,
    "list": [1, 2.5, "x", True, None, [2, {"k": "v"}]],
    "dict": {"a": 1, "b": 2.5, "c": {"d": [1, 2]}, "e": None, "f": b"\x01"},
    "bytes": b"\x00\x01\xfe\xffbin", "empty_bytes": b"",
}


def strict(v):
    """Equality that keeps int, float and bool apart."""
    if isinstance(v, list):
        return ("list", [strict(x) for x in v])
    if isinstance(v, dict):
        return ("dict", sorted((k, strict(x)) for k, x in v.items()))
    return (type(v).__name__, v)


async def test_values_keep_their_types_between_python_clients(shared_router, py_clients):
    P = "/pyval"
    writer = await py_clients(shared_router.url)
    reader = await py_clients(shared_router.url)
    getter = await py_clients(shared_router.url)
    reader.subscribe("v", f"{P}/*")
    await reader.barrier()
    for k, v in VALUES.items():
        await writer.c.set(f"{P}/{k}", v)
    await reader.wait_for(lambda: len(reader.calls("v")) >= len(VALUES), T, "all values")
    await reader.barrier()
    got = reader.calls("v")
    assert [a for a, _ in got] == [f"{P}/{k}" for k in VALUES]
    for (addr, value), (k, v) in zip(got, VALUES.items()):
        assert strict(value) == strict(v), (k, value, v)
    # the same through GET (a SNAPSHOT on the wire)
    for k, v in VALUES.items():
        p = await getter.wire_get(f"{P}/{k}")
        assert strict(p["value"]) == strict(v), (k, p["value"], v)
        assert p["revision"] == 1 and p["writer"] == writer.session
    assert type((await getter.wire_get(f"{P}/int"))["value"]) is int
    assert type((await getter.wire_get(f"{P}/float_whole"))["value"]) is float


# ----------------------------------------------------------------------------- bundle, query

async def test_bundle_messagepack(shared_router, py_clients):
    """Python sends BUNDLE as MessagePack (version bits 1); applied, broadcast piecewise."""
    P = "/pybundle"
    sender = await py_clients(shared_router.url)
    receiver = await py_clients(shared_router.url)
    sender.subscribe("s", f"{P}/**")
    receiver.subscribe("r", f"{P}/**")
    await sender.barrier()
    await receiver.barrier()

    await sender.c.bundle([{"set": [f"{P}/x", 1]}, {"set": [f"{P}/y", 2.5]},
                           {"emit": [f"{P}/go", {"cue": 1}]}, {"set": [f"{P}/x", 2]}])
    await receiver.wait_for(lambda: len(receiver.calls("r")) >= 4, T, "the bundle")
    await receiver.barrier()
    await sender.barrier()
    assert [(m["address"], m["value"], m["revision"]) for m in receiver.sets()] == [
        (f"{P}/x", 1, 1), (f"{P}/y", 2.5, 1), (f"{P}/x", 2, 2)]
    assert type(receiver.sets()[0]["value"]) is int and type(receiver.sets()[1]["value"]) is float
    assert [(m["address"], m["signal"], m["value"]) for m in receiver.of("PUBLISH")] == [
        (f"{P}/go", "event", {"cue": 1})]
    # the sender gets its SETs echoed, not its PUBLISH, and no ACK (it would kill the client)
    assert [(m["address"], m["value"], m["revision"]) for m in sender.sets()] == [
        (f"{P}/x", 1, 1), (f"{P}/y", 2.5, 1), (f"{P}/x", 2, 2)]
    assert sender.of("PUBLISH") == [] and sender.errors() == []
    assert sender.alive() and receiver.alive()

    # all-or-nothing: one bad address and nothing is applied; one ERROR names it
    await sender.c.bundle([{"set": [f"{P}/x", 99]}, {"set": ["no-slash", 1]}, {"set": [f"{P}/z", 1]}])
    await sender.wait_for(lambda: sender.errors(), T, "the bundle ERROR")
    await sender.barrier()
    await receiver.barrier()
    (err,) = sender.errors()
    assert err["code"] == 202 and err["address"] == "no-slash", err
    assert len(receiver.sets()) == 3 and len(sender.sets()) == 3  # nothing new broadcast
    assert (await receiver.wire_get(f"{P}/x"))["value"] == 2
    assert await receiver.wire_get(f"{P}/z") is None
    assert sender.alive() and receiver.alive()

    # a timestamp in the future: executed then, not before
    t_sent = time.monotonic()
    await sender.c.bundle([{"set": [f"{P}/later", 5]}], at=sender.c.time() + 400_000)
    await receiver.wait_for(lambda: receiver.sets(f"{P}/later"), T, "the scheduled bundle")
    elapsed = time.monotonic() - t_sent
    assert 0.3 <= elapsed < 2.0, elapsed
    assert [(m["value"], m["revision"]) for m in receiver.sets(f"{P}/later")] == [(5, 1)]


async def test_query_signals_messagepack(shared_router, py_clients):
    P = "/pyquery"
    c = await py_clients(shared_router.url)
    for addr, v in ((f"{P}/a/1", 1), (f"{P}/a/2", 0.5), (f"{P}/a/deep/3", "s"), (f"{P}/b/1", 1)):
        await c.c.set(addr, v)
    await c.barrier()
    signals = await asyncio.wait_for(c.c.query_signals(f"{P}/a/**"), T)
    assert sorted(s["address"] for s in signals) == [f"{P}/a/1", f"{P}/a/2", f"{P}/a/deep/3"]
    assert {s["type"] for s in signals} == {"param"}
    signals = await asyncio.wait_for(c.c.query_signals(f"{P}/*/1"), T)
    assert sorted(s["address"] for s in signals) == [f"{P}/a/1", f"{P}/b/1"]
    assert await asyncio.wait_for(c.c.query_signals(f"{P}/none/**"), T) == []
    assert len(c.of("RESULT")) == 3 and c.errors() == [] and c.alive()


# ----------------------------------------------------------------------------- revisions, locks

async def test_conditional_set_race_between_python_clients(shared_router, py_clients):
    addr = "/pyrace/x"
    a = await py_clients(shared_router.url)
    b = await py_clients(shared_router.url)
    for c in (a, b):
        c.subscribe("x", addr)
        await c.barrier()
    await a.c.set(addr, 0)
    for c in (a, b):
        await c.wait_for(lambda c=c: c.sets(addr), T, "rev 1")

    rounds, wins = 20, {"a": 0, "b": 0}
    rng = random.Random(7)
    for r in range(1, rounds + 1):
        cur = r  # revision before this round: exactly one write per round
        va, vb = 1000 + r, 2000 + r

        async def send(c, v):
            await asyncio.sleep(rng.random() * 0.002)
            await c.send_raw(encode_frame(Set(addr, v, revision=cur)))

        await asyncio.gather(send(a, va), send(b, vb))
        for c in (a, b):
            await c.wait_for(lambda c=c: len(c.sets(addr)) >= r + 1, T, f"round {r} SET")
        await a.wait_for(lambda: len(a.errors(addr)) + len(b.errors(addr)) >= r, T, f"round {r} 409")
        await a.barrier()
        await b.barrier()
        for c in (a, b):
            last = c.sets(addr)[-1]
            assert last["revision"] == cur + 1
            assert len(c.sets(addr)) == r + 1  # exactly one winner per round
        winner_value = a.sets(addr)[-1]["value"]
        assert b.sets(addr)[-1]["value"] == winner_value
        assert winner_value in (va, vb)
        wins["a" if winner_value == va else "b"] += 1
        assert (len(a.errors(addr)), len(b.errors(addr))) == (r - wins["a"], r - wins["b"])

    for c in (a, b):
        assert all(e["code"] == 409 and e["address"] == addr for e in c.errors())
    assert wins["a"] + wins["b"] == rounds
    final = await a.wire_get(addr)
    assert final["revision"] == rounds + 1
    assert final["value"] == a.sets(addr)[-1]["value"]
    winner = a if final["value"] == 1000 + rounds else b
    assert final["writer"] == winner.session
    assert a.alive() and b.alive()


async def test_lock_blocks_others_and_is_released_on_disconnect(router_process, py_clients):
    router = router_process()
    addr = "/pylock/x"
    holder = await py_clients(router.url)
    other = await py_clients(router.url)
    watcher = await py_clients(router.url)
    watcher.subscribe("w", addr)
    await watcher.barrier()

    await holder.send_raw(encode_frame(Set(addr, 1, lock=True)))
    await watcher.wait_for(lambda: watcher.sets(addr), T, "the locking SET")
    assert [(m["value"], m["revision"], m["lock"]) for m in watcher.sets(addr)] == [(1, 1, True)]

    # another session: plain SET, SET with unlock, SET with the right expected revision: all 423
    await other.c.set(addr, 2)
    await other.send_raw(encode_frame(Set(addr, 3, unlock=True)))
    await other.send_raw(encode_frame(Set(addr, 4, revision=1)))
    await other.wait_for(lambda: len(other.errors()) >= 3, T, "three 423s")
    await other.barrier()
    assert [(e["code"], e["address"]) for e in other.errors()] == [(423, addr)] * 3
    p = await other.wire_get(addr)
    assert (p["value"], p["revision"], p["writer"]) == (1, 1, holder.session)

    # the holder keeps writing
    await holder.c.set(addr, 5)
    await watcher.wait_for(lambda: len(watcher.sets(addr)) >= 2, T, "holder's write")
    assert (watcher.sets(addr)[-1]["value"], watcher.sets(addr)[-1]["revision"]) == (5, 2)

    # holder disconnects: lock released, the other can write
    await holder.close()
    await asyncio.sleep(0.2)
    await other.c.set(addr, 6)
    await watcher.wait_for(lambda: len(watcher.sets(addr)) >= 3, T, "other's write")
    await other.barrier()
    assert (watcher.sets(addr)[-1]["value"], watcher.sets(addr)[-1]["revision"]) == (6, 3)
    assert len(other.errors()) == 3
    p = await other.wire_get(addr)
    assert (p["value"], p["revision"], p["writer"]) == (6, 3, other.session)
    assert other.alive() and watcher.alive()


async def test_lock_holder_unlock_releases(shared_router, py_clients):
    addr = "/pyunlock/x"
    holder = await py_clients(shared_router.url)
    other = await py_clients(shared_router.url)
    await holder.send_raw(encode_frame(Set(addr, 1, lock=True)))
    await holder.barrier()
    await other.c.set(addr, 2)
    await other.wait_for(lambda: other.errors(), T, "423")
    await holder.send_raw(encode_frame(Set(addr, 3, unlock=True)))  # writes 3 and unlocks
    await holder.barrier()
    await other.c.set(addr, 4)
    await other.barrier()
    assert [(e["code"], e["address"]) for e in other.errors()] == [(423, addr)]
    p = await other.wire_get(addr)
    assert (p["value"], p["revision"], p["writer"]) == (4, 3, other.session)
    assert holder.errors() == [] and holder.alive() and other.alive()


async def test_control_a_binary_ack_would_kill_the_python_client(shared_router, py_clients):
    """Control for the no-ACK tests: a SET sent with QoS 1 (not something the Python client
    ever does) earns a binary ACK, and the real client's receive loop dies on it, which
    ``alive()`` detects.  So ``alive()`` after 1,000 QoS-0 SETs means no ACK came."""
    addr = "/pyackctl/x"
    c = await py_clients(shared_router.url)
    watcher = await py_clients(shared_router.url)
    c.subscribe("x", addr)
    watcher.subscribe("x", addr)
    await c.barrier()
    await watcher.barrier()
    await c.send_raw(encode_frame(Set(addr, 1), qos=1))
    await c.wait_for(lambda: not c.alive(), T, "the client to die on the ACK")
    assert "0x50" in str(c._errors[0])  # ClaspError: Unknown message type: 0x50
    await watcher.wait_for(lambda: watcher.sets(addr), T, "the SET")
    await c.c.set(addr, 2)  # the socket still sends, but nothing is received any more
    await watcher.wait_for(lambda: len(watcher.sets(addr)) >= 2, T, "the second SET")
    await asyncio.sleep(0.1)
    assert [m["value"] for m in c.sets(addr)] == [1]  # echo of the first only (before the ACK)
