"""The state bucket against real nats-servers: created durable (file storage; 3 replicas
on the 3-server cluster), compare-and-set semantics between two clients (what a SET's
decision across nodes rests on), and acknowledged writes surviving the loss of servers
of the cluster.  Bounded: retries are counted."""
import asyncio

import nats
import pytest
from nats.js.api import StorageType
from nats.js.errors import KeyWrongLastSequenceError

from clasp_fast.cluster.nats.bucket import open_bucket


async def connect(urls: str):
    return await nats.connect(urls.split(","), connect_timeout=2, max_reconnect_attempts=20,
                              reconnect_time_wait=0.2)


async def test_compare_and_set_single_winner(nats_server):
    a, b = await connect(nats_server.url), await connect(nats_server.url)
    try:
        kv_a = await open_bucket(a.jetstream(), "clasp-state")
        kv_b = await open_bucket(b.jetstream(), "clasp-state")
        config = (await kv_a.status()).stream_info.config
        assert (config.storage, config.num_replicas) == (StorageType.FILE, 1)
        first = await kv_a.create("k", b"a1")
        with pytest.raises(Exception):          # b decided against "no key yet"
            await kv_b.create("k", b"b1")
        second = await kv_b.update("k", b"b2", last=first)
        with pytest.raises(KeyWrongLastSequenceError):   # a decided against the first revision
            await kv_a.update("k", b"a2", last=first)
        e = await kv_a.get("k")
        assert (e.revision, e.value) == (second, b"b2")
    finally:
        await a.close()
        await b.close()


async def test_acked_writes_survive_server_kills(nats_cluster):
    nc = await connect(nats_cluster.urls)
    try:
        js = nc.jetstream()
        for _ in range(100):        # the JetStream cluster elects its meta leader first
            try:
                kv = await open_bucket(js, "clasp-state")
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the 3-server JetStream cluster did not become ready in 10 s")
        assert (await kv.status()).stream_info.config.num_replicas == 3
        acked = {f"k{i}": await kv.put(f"k{i}", b"v%d" % i) for i in range(20)}
        nats_cluster.servers[0].kill()
        nats_cluster.servers[1].kill()
        nats_cluster.servers[1].start()   # two of three up again, one of them restarted
        for _ in range(100):
            try:
                got = {k: await kv.get(k) for k in acked}
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the bucket was not readable within 10 s of the server kills")
        assert {k: e.revision for k, e in got.items()} == acked
        assert [e.value for e in got.values()] == [b"v%d" % i for i in range(20)]
    finally:
        await nc.close()
