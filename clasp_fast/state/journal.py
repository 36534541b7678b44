"""The state journal: the owner's params in an SQLite file, written off the event loop.

One ``Journal`` per router process that owns the state (worker 0).  The event loop hands
it, once per loop tick, the records of the SETs decided in that tick (``write``: one
``bytes`` holding any number of bus records, ``u32 length, u8 kind, body``, whose body is
a whole param as the bus's R_SYNC_PARAM carries it: see _native/bus.pxd).  To the router the
journal is the I/O of an endpoint, like a bus link's transport.  A writer thread with its own
connection drains them in group commits: everything queued goes into one transaction, one
upsert per address (several SETs of one address in a commit cost one row).  The writer
gathers records for ``lazy_interval`` after the first one, or only ``commit_interval``
once the router calls ``hurry()`` (a QoS-commit ACK waits for the next commit).  Commits are ``synchronous=FULL`` (the WAL is fsync'ed at every commit: a
transaction that committed survives a power cut).  After each commit the writer calls
``on_durable(position)`` on the event loop: the first ``position`` records written
since the journal opened are on disk.

The file holds one row per live param (the upsert replaces the previous row: that is
the compaction); the write-ahead log is folded back into the file and truncated when it
passes ``compact_wal_bytes``, and rows whose param has expired are deleted at each such
checkpoint.  ``load`` reads the rows back at start-up (records of params not yet
expired, oldest first).

Errors a user must act on (a file that is not a clasp-fast state file, one that another
clasp-fast has open, one that cannot be written) are ``JournalError`` with a one-line
message naming the file and the fix.  The lock is an ``fcntl.flock`` on a sidecar file
(``<file>-lock``) held by the process that opened the journal (and its forked workers).
"""
from __future__ import annotations

import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from .._native.bus import sync_param_rows

log = logging.getLogger("clasp_fast.state")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS params (
    address    BLOB PRIMARY KEY,   -- the param's address (UTF-8)
    revision   INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,   -- wall-clock µs at which it expires; 0 = never
    record     BLOB NOT NULL       -- revision, state, address and value as on the bus (R_SYNC_PARAM)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""
_UPSERT = ("INSERT INTO params(address, revision, expires_us, record) VALUES (?, ?, ?, ?) "
           "ON CONFLICT(address) DO UPDATE SET revision = excluded.revision, "
           "expires_us = excluded.expires_us, record = excluded.record "
           "WHERE excluded.revision >= params.revision")
_STOP = object()


class JournalError(Exception):
    """The state file cannot be used; the message names the file and the fix."""


class StateLock:
    """An exclusive ``flock`` on ``<file>-lock`` (the pid of the holder written in it)."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + "-lock")
        self.fd: Optional[int] = None

    def acquire(self, db: Path) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _unwritable(db, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JournalError(
                f"state file {db} is in use by another clasp-fast (pid {holder}); give this "
                f"router its own file (--state-file) or stop the other one") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _unwritable(db: Path, exc: Exception) -> JournalError:
    reason = (exc.strerror or exc) if isinstance(exc, OSError) else exc
    return JournalError(f"state file {db} cannot be written ({reason}); make its directory "
                        f"writable, give another path (--state-file) or run with --no-persistence")


def _corrupt(db: Path, exc: Exception) -> JournalError:
    return JournalError(f"state file {db} is not a clasp-fast state file or is damaged ({exc}); "
                        f"move it away (the router then starts empty) or restore it from a backup")


def open_database(db: Path) -> sqlite3.Connection:
    """A connection to ``db`` in WAL mode with the schema in place, or JournalError."""
    if db.is_dir():
        raise _unwritable(db, IsADirectoryError("it is a directory"))
    try:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _unwritable(db, exc) from None
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {row[0]}, this clasp-fast reads {SCHEMA_VERSION}")
        conn.execute("SELECT count(*) FROM params").fetchone()
    except sqlite3.OperationalError as exc:
        conn.close()
        text = str(exc)
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            raise _unwritable(db, exc) from None
        raise _corrupt(db, exc) from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _corrupt(db, exc) from None
    return conn


def claim(path: str) -> StateLock:
    """Start-up (before the workers fork): locks the file for this clasp-fast and checks
    that it opens, is ours and can be written.  Returns the held lock (the process keeps
    it, and its forked workers share it); raises JournalError."""
    db = Path(path)
    lock = StateLock(db)
    lock.acquire(db)
    try:
        open_database(db).close()
    except JournalError:
        lock.release()
        raise
    return lock


class Journal:
    """The owner's journal (see the module docstring).

    ``on_durable(position)`` is called on ``loop`` (``call_soon_threadsafe``) after each
    commit, or directly from the writer thread when ``loop`` is None (tests).  ``lock``:
    take the file's lock here (False when the process already holds it: ``claim``)."""

    def __init__(self, path: str, on_durable: Callable[[int], None], *, loop=None,
                 commit_interval: float = 0.002, lazy_interval: float = 0.05,
                 compact_wal_bytes: int = 16 << 20,
                 wall_us: Callable[[], int] = lambda: time.time_ns() // 1000, lock: bool = True):
        self.path = Path(path)
        self.on_durable = on_durable
        self.loop = loop
        self.commit_interval = commit_interval
        self.lazy_interval = lazy_interval
        self.compact_wal_bytes = compact_wal_bytes
        self.wall_us = wall_us
        self.lock = StateLock(self.path) if lock else None
        if self.lock is not None:
            self.lock.acquire(self.path)
        try:
            self.conn = open_database(self.path)
        except JournalError:
            self.release_lock()
            raise
        self.conn.execute(f"PRAGMA journal_size_limit={int(compact_wal_bytes)}")
        self.durable = 0             # records committed
        self.commits = 0
        self.failure: Optional[BaseException] = None
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._hurry = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- start-up ----------------------------------------------------------------------

    def load(self) -> list[bytes]:
        """The records of the params that have not expired, in revision order."""
        now = self.wall_us()
        rows = self.conn.execute(
            "SELECT record FROM params WHERE expires_us = 0 OR expires_us > ? ORDER BY revision",
            (now,)).fetchall()
        return [r[0] for r in rows]

    def start(self) -> "Journal":
        """Starts the writer thread (after ``load``)."""
        self._thread = threading.Thread(target=self._run, name="clasp-journal", daemon=True)
        self._thread.start()
        return self

    # --- the event loop's side ------------------------------------------------------------

    def write(self, batch: bytes) -> None:
        """Queues a batch of records for the writer (the router's journal endpoint flushes
        here once per loop tick)."""
        if self.failure is not None:
            raise JournalError(f"state file {self.path}: the journal writer failed: {self.failure}")
        self._queue.put(batch)

    def is_closing(self) -> bool:
        return self.failure is not None

    def hurry(self) -> None:
        """Someone waits for the next commit (a QoS-commit ACK): gather only
        ``commit_interval`` more, not ``lazy_interval``."""
        self._hurry.set()

    def close(self, timeout: float = 10.0) -> None:
        """Commits what is queued, checkpoints the WAL into the file, closes, unlocks."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._hurry.set()
            self._thread.join(timeout)
            self._thread = None
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()
        except sqlite3.Error as exc:
            log.error("state file %s: closing: %s", self.path, exc)
        self.release_lock()

    def release_lock(self) -> None:
        if self.lock is not None:
            self.lock.release()

    # --- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batches = [item]
                if self._hurry.wait(self.lazy_interval) and self.commit_interval > 0:
                    time.sleep(self.commit_interval)
                self._hurry.clear()         # a hurry() from now on is for the next commit
                stop = self._drain(batches)
                self._commit(batches)
                if stop:
                    return
        except BaseException as exc:       # noqa: BLE001 - reported on the loop, never lost
            self.failure = exc
            log.error("state file %s: journal writer stopped: %s; QoS-commit SETs will not be "
                      "acknowledged", self.path, exc)

    def _drain(self, batches: list) -> bool:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batches.append(item)

    def _commit(self, batches: list) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        rows: dict = {}
        count = sum(sync_param_rows(batch, rows) for batch in batches)
        conn.executemany(_UPSERT, rows.values())
        conn.execute("COMMIT")
        self.commits += 1
        self.durable = position = self.durable + count
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.on_durable, position)
        else:
            self.on_durable(position)
        if self._wal_size() > self.compact_wal_bytes:
            self.compact()

    def _wal_size(self) -> int:
        try:
            return os.stat(str(self.path) + "-wal").st_size
        except OSError:
            return 0

    def compact(self) -> None:
        """Deletes expired params and folds the WAL into the file, truncating it (writer
        thread, or any thread once the writer stopped)."""
        self.conn.execute("DELETE FROM params WHERE expires_us != 0 AND expires_us <= ?",
                          (self.wall_us(),))
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
