"""``--workers N``: fan-out across workers keeps every publisher's order (DESIGN.md "Several
workers": the owner, worker 0, sequences every PUBLISH and SET; each worker-to-worker link
is FIFO).

32 clients land on workers by the kernel's SO_REUSEPORT hashing (the debug log says which),
each subscribes to ``/t/**`` and sends 200 sequenced messages; every client must receive
every other client's messages, each publisher's in order, with no gap and no duplicate.

``--buffer-size 20000``: a client receives at most 32 x 200 routed messages in all, so no
message can be dropped for a slow reader (that is tests/integration/test_slow_consumer.py's
subject, not this one's); any gap here is a routing fault.
"""
from __future__ import annotations

import asyncio
import collections
import time

import pytest

from clasp_fast.protocol import Ack, Error, Publish, Set, SignalType, Subscribe

from tests.integration.workers_support import ConnLog, close_all, open_clients, spread, start_cluster

CLIENTS = 32
PER_CLIENT = 200
CHUNK = 25


async def _send_sequence(c, index: int, kind: str) -> None:
    for start in range(1, PER_CLIENT + 1, CHUNK):
        for seq in range(start, min(start + CHUNK, PER_CLIENT + 1)):
            if kind == "publish":
                c.send(Publish(f"/t/{index}", signal=SignalType.EVENT, value=[index, seq]))
            else:
                c.send(Set(f"/t/{index}", seq))
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("kind", ["publish", "set"])
@pytest.mark.parametrize("workers", [4, 8])
async def test_every_client_gets_every_publishers_messages_in_order(router_process, workers, kind):
    rp = start_cluster(router_process, workers, "--buffer-size", "20000")
    log = ConnLog(rp)
    clients = await open_clients(rp, log, CLIENTS, prefix="c")
    try:
        placed = [(i, c.worker) for i, c in enumerate(clients)]
        print(f"\n{workers} workers, {CLIENTS} clients: {spread(placed)}")
        distinct = {c.worker for c in clients}
        assert len(distinct) >= (3 if workers == 8 else 2), spread(placed)

        for c in clients:
            c.send(Subscribe(1, "/t/**"), qos=1)
        for c in clients:
            await c.wait_for(lambda c=c: any(type(m) is Ack and m.address == "/t/**" for m in c.msgs),
                             5.0, "ACK of SUBSCRIBE /t/**")
        marks = [len(c.msgs) for c in clients]

        t0 = time.monotonic()
        await asyncio.gather(*(_send_sequence(c, i, kind) for i, c in enumerate(clients)))
        kind_type = Publish if kind == "publish" else Set
        # publishers never get their own PUBLISH back; every writer gets its own SET back
        expected = (CLIENTS - 1 if kind == "publish" else CLIENTS) * PER_CLIENT

        def count(c, mark):
            return sum(1 for m in c.msgs[mark:] if type(m) is kind_type)
        for c, mark in zip(clients, marks):
            await c.wait_for(lambda c=c, mark=mark: count(c, mark) >= expected, 30.0,
                             f"{expected} {kind.upper()}s")
        elapsed = time.monotonic() - t0
        # anything still on its way (duplicates) is in by the time the PONG comes back
        await asyncio.gather(*(c.barrier() for c in clients))
        print(f"{CLIENTS} x {PER_CLIENT} {kind.upper()}s delivered to {CLIENTS} clients in {elapsed:.2f} s")

        for r, (c, mark) in enumerate(zip(clients, marks)):
            got = c.msgs[mark:]
            errors = [m for m in got if type(m) is Error]
            assert not errors, f"client {r} (worker {c.worker}) got errors: {errors[:3]}"
            per_sender = collections.defaultdict(list)
            if kind == "publish":
                for m in got:
                    if type(m) is Publish:
                        sender, seq = m.value
                        assert m.address == f"/t/{sender}", m
                        per_sender[sender].append(seq)
                assert r not in per_sender, \
                    f"client {r} (worker {c.worker}) got {len(per_sender[r])} of its own PUBLISHes back"
                senders = set(range(CLIENTS)) - {r}
            else:
                for m in got:
                    if type(m) is Set:
                        sender = int(m.address.rsplit("/", 1)[1])
                        assert m.revision == m.value, f"client {r}: {m} (revision must follow the seq)"
                        per_sender[sender].append(m.value)
                senders = set(range(CLIENTS))
            assert set(per_sender) == senders, \
                f"client {r} (worker {c.worker}) heard from {sorted(per_sender)}"
            for s in sorted(senders):
                seqs = per_sender[s]
                if seqs != list(range(1, PER_CLIENT + 1)):
                    dups = [q for q, k in collections.Counter(seqs).items() if k > 1]
                    missing = sorted(set(range(1, PER_CLIENT + 1)) - set(seqs))
                    out_of_order = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a]
                    raise AssertionError(
                        f"client {r} (worker {c.worker}) from client {s} (worker {clients[s].worker}): "
                        f"{len(seqs)} messages, missing {missing[:10]}, duplicates {dups[:10]}, "
                        f"out of order {out_of_order[:5]}")
    finally:
        await close_all(clients)
