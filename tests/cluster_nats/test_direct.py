"""direct.py against a real nats-server: plain-function subscriptions get every message
synchronously, in the order the server sent them across subscriptions; messages with
headers and ordinary subscriptions keep nats-py's path; an unsubscribed one gets nothing."""
import asyncio

import nats

from clasp_fast.cluster.nats import direct
from clasp_fast.cluster.nats.direct import DirectClient


async def test_direct_subscriptions_get_messages_in_socket_order(nats_server):
    direct.check()                          # the installed nats-py is one that works
    got = []
    nc = DirectClient()
    await nc.connect(nats_server.url)
    pub = await nats.connect(nats_server.url)
    try:
        a = await nc.subscribe_direct("t.a", lambda data, subject: got.append((subject, data)))
        await nc.subscribe_direct("t.*", lambda data, subject: got.append((b"*" + subject, data)))
        queued = []

        async def ordinary(msg):
            queued.append(msg.data)
        await nc.subscribe("t.c", cb=ordinary)
        await nc.flush()
        for i in range(300):
            await pub.publish("t.a" if i % 2 else "t.b", b"%d" % i)
        await pub.publish("t.b", b"with-headers", headers={"k": "v"})   # nats-py's own path
        await pub.publish("t.c", b"ordinary")
        await pub.flush()
        for _ in range(100):
            if len(got) >= 451 and queued:
                break
            await asyncio.sleep(0.02)
        # each message once per matching subscription, in the order it was published
        expected = []
        for i in range(300):
            if i % 2:
                expected += [(b"t.a", b"%d" % i), (b"*t.a", b"%d" % i)]
            else:
                expected.append((b"*t.b", b"%d" % i))
        expected.append((b"*t.c", b"ordinary"))     # (with headers: not here, nats-py's queue)
        assert got == expected
        assert queued == [b"ordinary"]
        assert nc.stats["in_msgs"] >= 451
        await a.unsubscribe()
        await nc.flush()
        await pub.publish("t.a", b"after")
        await pub.flush()
        await asyncio.sleep(0.2)
        assert got[-1] == (b"*t.a", b"after")       # only the subscription still there
        assert (b"t.a", b"after") not in got
    finally:
        await pub.close()
        await nc.close()


async def test_a_failing_function_does_not_stop_the_connection(nats_server):
    got = []

    def fn(data, subject):
        if data == b"boom":
            raise ValueError("boom")
        got.append(data)
    nc = DirectClient()
    await nc.connect(nats_server.url)
    try:
        await nc.subscribe_direct("t.x", fn)
        await nc.flush()
        for data in (b"1", b"boom", b"2"):
            await nc.publish("t.x", data)      # (no_echo is off: the client's own messages)
        await nc.flush()
        for _ in range(50):
            if len(got) == 2:
                break
            await asyncio.sleep(0.02)
        assert got == [b"1", b"2"]
        assert nc.is_connected
    finally:
        await nc.close()


async def test_publish_now_keeps_order_with_nats_pys_own_buffer(nats_server):
    got = []
    sub = await nats.connect(nats_server.url)
    nc = DirectClient()
    await nc.connect(nats_server.url)
    try:
        async def on(msg):
            got.append(msg.data)
        await sub.subscribe("t.o", cb=on)
        await sub.flush()
        sent = 0
        for i in range(2000):
            if i % 100 == 50:                   # something of nats-py's own in its buffer
                await nc.publish("t.o", b"%d" % i)
            else:
                assert nc.publish_now("t.o", b"%d" % i)
            sent += 1
        await nc.flush()
        for _ in range(100):
            if len(got) == sent:
                break
            await asyncio.sleep(0.02)
        assert got == [b"%d" % i for i in range(2000)]
        assert nc.stats["out_msgs"] >= 2000
    finally:
        await nc.close()
        await sub.close()
    assert not nc.publish_now("t.o", b"closed")     # not connected: the caller awaits publish()
