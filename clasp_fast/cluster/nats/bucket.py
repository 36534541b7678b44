"""The cluster's params in a JetStream key-value bucket: durable creation, compare-and-set.

The owner of each node decides a SET against its replica (locks, expected revisions,
the next CLASP revision: the router's one implementation of those rules) and then makes
it the cluster's decision with a compare-and-set on the key's bucket revision: the write
succeeds only if nobody wrote the key since the entry the owner decided against.  If
another node won, the CAS fails with ``Stale``; the watch brings the winner's entry into
the replica and the owner decides again (``docs/cluster.md``).

Durability: file storage; with 3 or more NATS servers the bucket has 3 replicas (a write
is acknowledged once a majority stored it), with one server the server must run
``sync_interval: always`` (the test configuration does): NATS' default fsync every two
minutes loses acknowledged writes on power loss.
"""
from __future__ import annotations

from typing import Optional

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError

from .entry import Entry
from .subjects import key


class Stale(Exception):
    """The key was written since the bucket revision the decision was made against."""


async def open_bucket(js, name: str, replicas: int):
    """The bucket ``name``, created durable if it does not exist yet."""
    try:
        return await js.key_value(name)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE,
                                                        replicas=replicas))


async def compare_and_set(kv, address: str, entry: Entry, last: int) -> int:
    """Stores ``entry`` if the key's bucket revision is still ``last`` (0: the key must not
    exist); returns the new bucket revision, or raises ``Stale``."""
    try:
        if last == 0:
            return await kv.create(key(address), entry.encode())
        return await kv.update(key(address), entry.encode(), last=last)
    except KeyWrongLastSequenceError as exc:
        raise Stale(address) from exc
    except Exception as exc:        # nats-py raises a generic APIError for "key exists" on create
        if getattr(exc, "err_code", None) == 10071:
            raise Stale(address) from exc
        raise


async def read(kv, address: str) -> Optional[tuple[int, Entry]]:
    """(bucket revision, entry) of ``address``, or None."""
    try:
        e = await kv.get(key(address))
    except Exception as exc:
        if type(exc).__name__ in ("KeyNotFoundError", "KeyDeletedError", "NotFoundError"):
            return None
        raise
    return e.revision, Entry.decode(e.value)
