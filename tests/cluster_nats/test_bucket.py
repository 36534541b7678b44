"""The state bucket against real nats-servers: durable creation, compare-and-set across
two clients (two nodes), and an acknowledged write surviving the loss of one of three
servers.  Bounded: every NATS call has a timeout."""
import asyncio

import nats
import pytest
from nats.js.api import StorageType

from clasp_fast.cluster.nats.bucket import Stale, compare_and_set, open_bucket, read
from clasp_fast.cluster.nats.entry import Entry


def entry(rev: int, value: bytes, writer: bytes = b"w", holder: bytes = b"") -> Entry:
    return Entry(rev, 1_000_000 * rev, 0.0, writer, holder, 0x0A, value)


async def connect(urls: str):
    return await nats.connect(urls.split(","), connect_timeout=2, max_reconnect_attempts=20,
                              reconnect_time_wait=0.2)


def test_entry_round_trip():
    e = Entry(7, 123, 2.5, b"session-1", b"session-2", 0x0C, b"\x00\x01value")
    assert Entry.decode(e.encode()) == e


async def test_compare_and_set_single_winner(nats_server):
    a, b = await connect(nats_server.url), await connect(nats_server.url)
    try:
        kv_a = await open_bucket(a.jetstream(), "clasp-state", replicas=1)
        kv_b = await open_bucket(b.jetstream(), "clasp-state", replicas=1)
        status = await kv_a.status()
        assert status.stream_info.config.storage == StorageType.FILE
        first = await compare_and_set(kv_a, "/mixer/fader", entry(1, b"a1"), last=0)
        with pytest.raises(Stale):      # b decided against "no key": stale
            await compare_and_set(kv_b, "/mixer/fader", entry(1, b"b1"), last=0)
        got = await read(kv_b, "/mixer/fader")
        assert got is not None and got[0] == first and got[1].value == b"a1"
        second = await compare_and_set(kv_b, "/mixer/fader", entry(2, b"b2"), last=got[0])
        with pytest.raises(Stale):      # a still holds the first bucket revision
            await compare_and_set(kv_a, "/mixer/fader", entry(2, b"a2"), last=first)
        rev, e = await read(kv_a, "/mixer/fader")
        assert (rev, e.revision, e.value) == (second, 2, b"b2")
    finally:
        await a.close()
        await b.close()


async def test_acked_write_survives_a_server_kill(nats_cluster):
    nc = await connect(nats_cluster.urls)
    try:
        js = nc.jetstream()
        for _ in range(100):        # the JetStream cluster elects its meta leader first
            try:
                kv = await open_bucket(js, "clasp-state", replicas=3)
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the 3-server JetStream cluster did not become ready in 10 s")
        assert (await kv.status()).stream_info.config.num_replicas == 3
        acked = {}
        for i in range(20):
            acked[f"/k/{i}"] = await compare_and_set(kv, f"/k/{i}", entry(1, b"v%d" % i), last=0)
        nats_cluster.servers[0].kill()
        nats_cluster.servers[1].kill()
        nats_cluster.servers[1].start()   # two of three up again: a majority, with one fresh restart
        for _ in range(100):
            try:
                got = {a: await read(kv, a) for a in acked}
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the bucket was not readable within 10 s of the server kill")
        assert {a: g[0] for a, g in got.items()} == acked
        assert all(g[1].value == b"v%d" % i for i, g in enumerate(got.values()))
    finally:
        await nc.close()
