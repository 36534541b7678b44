"""The state owner's journal wired to its router and event loop.

At start-up (before the port accepts) ``restore`` loads the journal into the router:
values, revisions, writers and expiry deadlines (remaining TTLs), never locks.  ``start``
then makes the journal the I/O of the router's journal endpoint: the router appends one
record per decided SET there, the edge hands the tick's records to the journal's writer
thread in one call, and each durable notice goes back to the router, which releases the
QoS-commit ACKs waiting for it (here and, over the bus, on the other workers).
"""
from __future__ import annotations

import asyncio
import logging

from .journal import Journal

log = logging.getLogger("clasp_fast.state")


class OwnerJournal:
    def __init__(self, config, router, *, lock: bool = False):
        self.router = router
        self.journal = Journal(config.state_file, router.journal_durable,
                               loop=asyncio.get_running_loop(),
                               commit_interval=config.commit_interval_ms / 1000.0,
                               lazy_interval=config.lazy_commit_ms / 1000.0,
                               compact_wal_bytes=config.compact_wal_bytes, lock=lock)

    def restore(self) -> int:
        """Loads the journal into the router; returns how many params it restored."""
        records = self.journal.load()
        for body in records:
            self.router.restore_param(body)
        log.info("state file %s: restored %d param(s)", self.journal.path, len(records))
        return len(records)

    def start(self) -> None:
        self.journal.start()
        self.router.attach_journal(self.journal)

    def close(self) -> None:
        """After the server stopped: the last records are written, the file checkpointed."""
        self.router.flush_journal()
        self.journal.close()
