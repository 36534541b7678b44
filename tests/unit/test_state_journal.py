"""The state journal alone (clasp_fast.state): group commits, durability notices,
restore, compaction, TTLs and the start-up errors.  No router, no event loop."""
from __future__ import annotations

import os
import threading

import pytest

from clasp_fast._native import bus
from clasp_fast.state.journal import Journal, JournalError, claim

F64 = bytes((0x0B,))          # a value's type byte; the journal never looks at it


def value(i: int) -> bytes:
    return F64 + i.to_bytes(8, "big")


def key_of(body: bytes) -> tuple:
    """(address, revision, expires µs) of one record, as the journal reads it."""
    rows: dict = {}
    bus.sync_param_rows(bus.record(bus.SYNC_PARAM, body), rows)
    return next(iter(rows.values()))[:3]


class Notices:
    """on_durable positions, in the order the writer reported them."""

    def __init__(self):
        self.positions: list[int] = []
        self.changed = threading.Condition()

    def __call__(self, position: int) -> None:
        with self.changed:
            self.positions.append(position)
            self.changed.notify_all()

    def wait_for(self, position: int, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.positions and self.positions[-1] >= position,
                                         timeout), f"never durable up to {position}: {self.positions}"


def open_journal(path, notices=None, **kw) -> Journal:
    return Journal(str(path), notices or Notices(), commit_interval=0, lazy_interval=0, **kw)


class Writer:
    """Writes records the way the router's journal endpoint does; counts them."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.count = 0

    def __call__(self, items) -> int:
        records = [bus.sync_param(rev, a, value(rev), **kw) for a, rev, kw in items]
        self.journal.write(b"".join(bus.record(bus.SYNC_PARAM, r) for r in records))
        self.count += len(records)
        return self.count


def check(path: str) -> None:
    claim(path).release()


def test_durable_notices_come_in_order_and_cover_every_append(tmp_path):
    notices = Notices()
    j = open_journal(tmp_path / "s.db", notices).start()
    write = Writer(j)
    last = 0
    for rev in range(1, 501):
        last = write([(f"/a/{rev % 7}", rev, {})])
    notices.wait_for(last)
    j.close()
    assert notices.positions == sorted(notices.positions)
    assert len(set(notices.positions)) == len(notices.positions)
    assert notices.positions[-1] == 500
    assert j.commits < 500 or len(notices.positions) == j.commits    # one notice per commit


def test_a_notice_means_the_rows_are_committed(tmp_path):
    """Another connection reads every record reported durable at the moment of the notice."""
    import sqlite3
    seen = []
    db = tmp_path / "s.db"

    def on_durable(position):
        with sqlite3.connect(db) as c:
            seen.append((position, c.execute("SELECT max(revision) FROM params").fetchone()[0]))

    j = Journal(str(db), on_durable, commit_interval=0).start()

    write = Writer(j)
    for rev in range(1, 201):
        write([("/x", rev, {})])
    j.close()
    assert seen and all(rev >= position for position, rev in seen)


def write_then_close(db, *batches, **kw) -> None:
    """Opens a journal on ``db``, writes each batch of (address, revision, fields), closes."""
    j = open_journal(db, **kw).start()
    write = Writer(j)
    for items in batches:
        write(items)
    j.close()


def restored(db, **kw) -> dict:
    """{address: (revision, expires µs)} of what a new journal on ``db`` loads."""
    j = open_journal(db, **kw)
    try:
        return {a: (rev, exp) for a, rev, exp in map(key_of, j.load())}
    finally:
        j.close()


def test_restore_gives_the_latest_record_per_address(tmp_path):
    db = tmp_path / "s.db"
    write_then_close(db, [("/a", 1, {}), ("/b", 1, {}), ("/a", 2, {"writer": "s1"})],
                     [("/a", 3, {"writer": "s2"})])
    assert {a: rev for a, (rev, _) in restored(db).items()} == {b"/a": 3, b"/b": 1}


def test_an_older_revision_never_replaces_a_newer_one(tmp_path):
    db = tmp_path / "s.db"
    write_then_close(db, [("/a", 5, {})], [("/a", 4, {})])
    assert restored(db)[b"/a"][0] == 5


def test_expired_params_are_not_restored_and_the_rest_keep_their_deadline(tmp_path):
    db = tmp_path / "s.db"
    now = [1_000_000_000]
    write_then_close(db, [("/short", 1, {"expires_us": now[0] + 2_000_000}),
                          ("/long", 1, {"expires_us": now[0] + 60_000_000}),
                          ("/forever", 1, {})], wall_us=lambda: now[0])
    now[0] += 5_000_000                   # 5 s later: /short is gone, /long has 55 s left
    rows = {a: exp for a, (_, exp) in restored(db, wall_us=lambda: now[0]).items()}
    assert set(rows) == {b"/long", b"/forever"}
    assert rows[b"/long"] - now[0] == 55_000_000
    assert rows[b"/forever"] == 0


def test_compaction_bounds_the_file_under_a_long_write_load(tmp_path):
    """200,000 SETs to 100 addresses: the file and its WAL stay small (one row per param)."""
    db = tmp_path / "s.db"
    notices = Notices()
    j = open_journal(db, notices, compact_wal_bytes=256 * 1024).start()
    write = Writer(j)
    last = 0
    sizes = []
    for batch in range(400):
        last = write([(f"/p/{i}", batch + 1, {}) for i in range(500 // 5)] * 5)
        if batch % 50 == 49:
            notices.wait_for(last)
            sizes.append(os.path.getsize(db) + os.path.getsize(str(db) + "-wal"))
    j.close()
    assert last == 200_000
    assert max(sizes) < 2 * 1024 * 1024, sizes
    assert os.path.getsize(db) < 256 * 1024
    assert len(restored(db)) == 100


def test_compaction_deletes_expired_rows(tmp_path):
    db = tmp_path / "s.db"
    now = [1_000_000_000]
    write_then_close(db, [(f"/t/{i}", 1, {"expires_us": now[0] + 1}) for i in range(50)]
                     + [("/keep", 1, {})], wall_us=lambda: now[0])
    now[0] += 10
    j2 = open_journal(db, wall_us=lambda: now[0])
    j2.compact()
    count = j2.conn.execute("SELECT count(*) FROM params").fetchone()[0]
    j2.close()
    assert count == 1


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    db = tmp_path / "s.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError) as err:
        check(str(db))
    assert str(db) in str(err.value) and "not a clasp-fast state file or is damaged" in str(err.value)
    assert db.read_bytes() == b"this is not sqlite" * 100          # untouched


def test_another_sqlite_database_is_refused(tmp_path):
    import sqlite3
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value)")
        c.execute("INSERT INTO meta VALUES ('schema', 99)")
    with pytest.raises(JournalError, match="schema version 99"):
        check(str(db))


def test_a_file_in_use_is_a_clear_error(tmp_path):
    db = tmp_path / "s.db"
    j = open_journal(db)
    with pytest.raises(JournalError) as err:
        check(str(db))
    assert f"in use by another clasp-fast (pid {os.getpid()})" in str(err.value)
    j.close()
    check(str(db))                                                     # free again


def test_an_unwritable_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    db = tmp_path / "file" / "s.db"                                    # parent is not a directory
    with pytest.raises(JournalError) as err:
        check(str(db))
    assert "cannot be written" in str(err.value) and "--state-file" in str(err.value)
    with pytest.raises(JournalError, match="cannot be written"):
        check(str(tmp_path))                                           # a directory


def test_the_writer_takes_its_time_unless_hurried(tmp_path):
    notices = Notices()
    j = Journal(str(tmp_path / "s.db"), notices, commit_interval=0, lazy_interval=30.0).start()
    Writer(j)([("/lazy", 1, {})])
    with notices.changed:
        assert not notices.changed.wait_for(lambda: notices.positions, 0.3)
    j.hurry()
    notices.wait_for(1, timeout=5)
    j.close()
