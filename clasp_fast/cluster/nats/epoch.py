"""The bucket's epoch: which lifetime of the cluster's record a node's cache comes from.

The first node that opens the bucket creates the key ``epoch`` (a key no address maps
to: address keys start with ``/``) holding 16 random hex digits; every other node reads
it.  A node notes the epoch it caught up from, and checks it on every heartbeat
(presence.py).  If the bucket is gone, or its ``epoch`` key is gone or different, the
record the node's cache came from was lost (a JetStream store wiped, the bucket deleted
and created anew): the node recreates the bucket if it must, takes (or creates) the new
epoch, re-reads the bucket, and moves its replay horizon (owner and workers), so a
client that reconnects with SUBSCRIBE ``since`` gets whole snapshots instead of a replay
across the loss.  The epoch is in the log and in ``/metrics``
(``clasp_cluster_epoch_info``).
"""
from __future__ import annotations

import os

from nats.js.errors import KeyWrongLastSequenceError

KEY = "epoch"


async def read_or_create(kv) -> str:
    """The bucket's epoch; created if the bucket has none (the first creator wins)."""
    try:
        await kv.create(KEY, os.urandom(8).hex().encode())
    except KeyWrongLastSequenceError:
        pass                                # another node created it first
    return (await kv.get(KEY)).value.decode()
