"""docs/protocol.md "Slow consumers": a subscriber that stops reading loses messages (ERROR 503 tells it),
keeps per-connection order, and slows nobody else down."""
from __future__ import annotations

import asyncio
import time

from clasp_fast.protocol import Error, Get, Set, Snapshot, Subscribe, encode_frame

from tests.integration.conftest import RawWS, connect_hello, error_of, recv_msg

N = 20_000
# ~430-byte SETs: 20,000 of them are 8.6 MB, more than the kernel buffers between the router and a
# stalled reader (the router's socket send buffer autotunes up to tcp_wmem max = 4 MB here)
PAD = "p" * 400


async def test_stalled_subscriber_drops_with_one_503_in_order_publisher_unblocked(router_process):
    rp = router_process("--buffer-size", "100")

    # the slow subscriber: small receive buffer, HELLO + SUBSCRIBE, then it stops reading
    slow = await RawWS.open("127.0.0.1", rp.port, rcvbuf=4096)
    await slow.hello("slowpoke")
    slow.send_binary(encode_frame(Subscribe(1, "/flood/**")))
    slow.send_binary(encode_frame(Get("/flood/none")))
    assert error_of(await slow.recv_msg()).code == 404
    slow.writer.transport.pause_reading()          # stop reading: the kernel buffers fill up

    pub, _, _ = await connect_hello(rp.url, "publisher")
    third, _, _ = await connect_hello(rp.url, "bystander")
    try:
        # the publisher is never blocked: 20,000 SETs go out quickly ...
        t0 = time.monotonic()
        for i in range(N):
            await pub.send(encode_frame(Set("/flood/x", [i, PAD])))
        # ... and have all been applied (a GET is answered after them, in order)
        await pub.send(encode_frame(Get("/flood/x")))
        snap = await recv_msg(pub, 10.0)
        publish_time = time.monotonic() - t0
        assert isinstance(snap, Snapshot) and snap.params[0].value == [N - 1, PAD], snap
        assert snap.params[0].revision == N
        assert publish_time < 5.0, f"publishing {N} SETs took {publish_time:.2f} s"

        # a third client is answered promptly while the subscriber is still stalled
        t1 = time.monotonic()
        await third.send(encode_frame(Get("/flood/x")))
        snap3 = await recv_msg(third, 2.0)
        assert isinstance(snap3, Snapshot) and snap3.params[0].revision == N
        assert time.monotonic() - t1 < 0.5

        # the subscriber resumes reading and takes whatever it gets
        slow.writer.transport.resume_reading()
        values, errors = [], []
        while True:
            try:
                msg = await slow.recv_msg(1.0)
            except asyncio.TimeoutError:
                break
            if isinstance(msg, Set):
                values.append(msg.value[0])
            elif isinstance(msg, Error):
                errors.append(msg)
            else:
                raise AssertionError(f"unexpected {msg!r}")
            assert time.monotonic() - t0 < 9.5, "still receiving after 9.5 s"

        overflow = [e for e in errors if e.code == 503]
        assert len(overflow) == 1 and len(errors) == 1, errors
        assert "buffer" in overflow[0].message and "dropped" in overflow[0].message, overflow[0]
        assert 0 < len(values) < N, f"received {len(values)} of {N}"
        assert all(a < b for a, b in zip(values, values[1:])), "per-connection order broken"
        assert values[0] == 0                       # nothing was lost before the buffer filled

        # once it has caught up, the subscriber is served again
        await pub.send(encode_frame(Set("/flood/x", [N, PAD])))
        msg = await slow.recv_msg(2.0)
        assert isinstance(msg, Set) and msg.value == [N, PAD] and msg.revision == N + 1, msg
    finally:
        slow.close()
        await pub.close()
        await third.close()
