"""The bucket's epoch: the bucket is deleted under two running nodes; both find it lost,
recreate it with one new epoch (in /metrics), keep serving their params and write them
back into the new bucket (a node started afterwards has them), move their
replay horizon (a client that asks for what changed since before the loss gets the whole
snapshot), and write to the new bucket (also to addresses the old one had)."""
from __future__ import annotations

import asyncio
import re
import time

import nats

from clasp_fast.cluster.nats import subjects
from clasp_fast.protocol import Subscribe, SubscribeOptions, encode_frame
from tests.cluster_nats.nodes import start_node, two_nodes_two_clients
from tests.interop.conftest import PyClient
from tests.cluster_nats.test_faults import http_get

T = 10.0
TIMEOUT = ("--cluster-node-timeout", "1")


async def epoch_of(rp) -> str:
    text = (await http_get(rp, "/metrics"))[1]
    found = re.search(r'clasp_cluster_epoch_info\{epoch="([0-9a-f]*)"\}', text)
    assert found, text
    return found.group(1)


async def test_a_lost_bucket_gets_a_new_epoch(nats_server, router_process):
    metrics = ("--metrics-enabled", *TIMEOUT)
    a, b, pa, pb = await two_nodes_two_clients(router_process, nats_server.url, ("pa", "pb"), a=metrics,
                                               b=metrics)
    nc = await nats.connect(nats_server.url)
    try:
        old = await epoch_of(a)
        assert old and await epoch_of(b) == old
        for value in range(1, 6):               # the old bucket's revision of /ep/old: 6
            await pa.c.set("/ep/old", value)
        await pa.barrier()
        for _ in range(100):                    # node b has it (through the bucket feed)
            if await pb.wire_get("/ep/old") is not None:
                break
            await asyncio.sleep(0.05)
        since = time.time_ns() // 1000          # after the SET: a replay from here has nothing

        await nc.jetstream().delete_key_value("clasp-state")
        for rp in (a, b):
            assert rp.wait_for_log("lost and recreated", T), rp.log()
        new = await epoch_of(a)
        assert new != old and await epoch_of(b) == new
        kv = await nc.jetstream().key_value("clasp-state")
        assert (await kv.get("epoch")).value.decode() == new
        # the nodes write their params back into the new bucket: a node started afterwards
        # reads what was written before the loss
        for rp in (a, b):
            assert rp.wait_for_log("back into bucket", T), rp.log()
        c = start_node(router_process, nats_server.url, "c")
        reader = await PyClient(c.url, "pc").connect()
        try:
            got = await reader.wire_get("/ep/old")
            assert got is not None and (got["value"], got["revision"]) == (5, 5), got
        finally:
            await reader.close()

        # the params stay, and a replay across the loss is whole
        await pb.send_raw(encode_frame(Subscribe(90, "/ep/**", options=SubscribeOptions(since=since))))
        await pb.wait_for(lambda: any(p["address"] == "/ep/old" for m in pb.of("SNAPSHOT")
                                      for p in m["params"]), T, "the whole snapshot of /ep/**")
        # and the nodes write to the new bucket
        await pa.c.set("/ep/new", 2)
        await pa.barrier()
        for _ in range(100):
            try:
                entry = await kv.get(subjects.key("/ep/new"))
                break
            except Exception:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("/ep/new never reached the new bucket")
        assert entry.value
        # an address written before the loss too: its bucket revision in the new bucket is
        # below the old one (6), and node b still takes it (PING: the barrier)
        await pa.c.set("/ep/old", 30)
        await pa.barrier()
        await pb.barrier()
        got = await pb.wire_get("/ep/old")
        assert got is not None and got["value"] == 30, got
    finally:
        await nc.close()
        await pa.close()
        await pb.close()
