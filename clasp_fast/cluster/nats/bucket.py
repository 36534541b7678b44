"""The cluster's params in a JetStream key-value bucket, created durable.

Key: ``subjects.key(address)``.  Value: the R_REPLICATE body of the param's last decided
SET as the owner sent it to its workers (origin, sequence, the bus state block: time,
expiry, TTL, writer, lock holder; then the ready SET frame with the CLASP revision and
the value bytes).  The bucket's own revision (a stream sequence) is not contiguous per
key; the CLASP revision travels in the frame.

Durability: file storage, and 3 replicas when the JetStream cluster has 3 servers or
more (a write is stored once a majority has it).  A single server is asked for 1 replica
and must run with ``sync_interval: always`` (docs/cluster.md): NATS' default fsync every
two minutes loses acknowledged writes on power loss.
"""
from __future__ import annotations

import asyncio
import logging

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError

log = logging.getLogger("clasp_fast.cluster.nats")

REPLICAS = 3


async def open_bucket(js, name: str, timeout: float = 30.0):
    """The bucket ``name``, created (file storage, 3 replicas, else 1) if it does not exist."""
    return await with_jetstream(lambda: _open(js, name), timeout)


async def with_jetstream(call, timeout: float = 30.0):
    """``await call()``, retried for up to ``timeout`` s while JetStream does not answer (a
    JetStream cluster that just started, or lost a server, elects leaders first); then
    RuntimeError naming the problem."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await call()
        except (asyncio.TimeoutError, APIError) as exc:
            if isinstance(exc, APIError) and exc.code not in (None, 503):
                raise
            if loop.time() > deadline:
                raise RuntimeError(f"JetStream did not answer within {timeout:.0f} s ({exc!r}): the NATS "
                                   f"servers of cluster.nats_url must run with JetStream enabled") from exc
            await asyncio.sleep(0.5)


async def _open(js, name: str):
    try:
        return await js.key_value(name)
    except (BucketNotFoundError, NotFoundError):
        pass
    for replicas in (REPLICAS, 1):
        try:
            kv = await js.create_key_value(KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE,
                                                          replicas=replicas))
            log.info("cluster: created bucket %s (file storage, %d replica%s)", name, replicas,
                     "" if replicas == 1 else "s")
            return kv
        except APIError as exc:
            if replicas == 1:
                raise
            log.info("cluster: bucket %s with %d replicas refused (%s); one server: 1 replica",
                     name, replicas, exc.description)
