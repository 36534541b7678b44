"""Durable state with real processes: SIGKILL during QoS-commit SETs, restart on the same
file; TTLs across a restart; the start-up errors; the file's size under a long write load.
See docs/persistence.md."""
from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from clasp_fast.protocol import Ack, Error, Set, Snapshot, Ttl, TtlMode, decode_frame, encode_frame
from tests.integration.conftest import connect_hello, recv_msg
from tests.support import REPO, RouterProcess

QOS_CONFIRM, QOS_COMMIT = 1, 2


class Writer:
    """One client writing its own addresses, a window of SETs in flight at a time; keeps
    what it sent (per address, the value of each SET in order: revision r is the r-th SET
    on a fresh file) and the highest revision ACKed per address."""

    def __init__(self, ws, name: str, addresses: int, qos: int):
        self.ws, self.name, self.qos = ws, name, qos
        self.addresses = [f"/durable/{name}/{i}" for i in range(addresses)]
        self.sent: dict[str, list[float]] = {a: [] for a in self.addresses}
        self.acked: dict[str, int] = {}
        self.acks = 0

    async def run(self, total: int, window: int = 64) -> None:
        """Until ``total`` SETs are ACKed, or the connection drops (the router is killed)."""
        inflight = 0
        n = 0
        try:
            while self.acks < total:
                while inflight < window and n < total:
                    address = self.addresses[n % len(self.addresses)]
                    value = float(n) + random.random()
                    self.sent[address].append(value)
                    await self.ws.send(encode_frame(Set(address, value), qos=self.qos))
                    n += 1
                    inflight += 1
                msg = decode_frame(await asyncio.wait_for(self.ws.recv(), 10)).message
                if isinstance(msg, Ack):
                    self.acks += 1
                    inflight -= 1
                    self.acked[msg.address] = max(self.acked.get(msg.address, 0), msg.revision)
                elif isinstance(msg, Error):
                    raise AssertionError(f"{self.name}: {msg}")
        except Exception:       # the router was killed under us: stop writing
            return


async def state_of(url: str) -> dict[str, tuple]:
    """{address: (value, revision)} from a new client's HELLO snapshot (all its frames)."""
    ws, _, snapshot = await connect_hello(url)
    params = {p.address: (p.value, p.revision) for p in snapshot.params}
    try:
        while True:
            more = await recv_msg(ws, 0.5)
            if isinstance(more, Snapshot):
                params.update({p.address: (p.value, p.revision) for p in more.params})
    except (asyncio.TimeoutError, TimeoutError):
        pass
    await ws.close()
    return params


async def write_then_kill(rp: RouterProcess, qos: int, clients: int = 4, total: int = 3000,
                          kill_after: int = 10_000) -> list[Writer]:
    """``clients`` writers, ``total`` SETs each; SIGKILL to the whole router once
    ``kill_after`` SETs are ACKed in all."""
    writers = []
    for k in range(clients):
        ws, _, _ = await connect_hello(rp.url, name=f"w{k}")
        writers.append(Writer(ws, f"c{k}", 50, qos))
    tasks = [asyncio.create_task(w.run(total)) for w in writers]
    deadline = time.monotonic() + 120
    while sum(w.acks for w in writers) < kill_after and time.monotonic() < deadline \
            and not all(t.done() for t in tasks):
        await asyncio.sleep(0.005)
    rp.kill_group()
    await asyncio.wait(tasks, timeout=15)
    for w in writers:
        await w.ws.close()
    return writers


def losses(writers: list[Writer], state: dict) -> tuple[int, int, list[str]]:
    """(ACKed SETs, ACKed SETs missing after the restart, problems with what is there)."""
    acked = lost = 0
    problems = []
    for w in writers:
        for address, rev in w.acked.items():
            acked += rev
            have = state.get(address)
            if have is None:
                lost += rev
                continue
            value, revision = have
            lost += max(0, rev - revision)
            if revision > len(w.sent[address]) or w.sent[address][revision - 1] != value:
                problems.append(f"{address}: restored ({value}, rev {revision}) is not what was sent")
    return acked, lost, problems


@pytest.mark.parametrize("qos", [QOS_COMMIT, QOS_CONFIRM], ids=["commit", "confirm"])
async def test_sigkill_during_writes_then_restart_on_the_same_file(tmp_path, qos):
    db = str(tmp_path / "state.db")
    rp = RouterProcess(workers=2, state_file=db).start()
    try:
        writers = await write_then_kill(rp, qos)
    finally:
        rp.kill_group()
    acks = sum(w.acks for w in writers)
    assert acks >= 10_000, f"only {acks} SETs were ACKed before the kill"
    with RouterProcess(workers=2, state_file=db, port=rp.port) as again:
        views = [await state_of(again.url) for _ in range(6)]    # clients land on both workers
        state = views[0]
        assert all(v == state for v in views), "the workers restored different states"
    acked, lost, problems = losses(writers, state)
    print(f"\nQoS {qos}: {acks} SETs ACKed before SIGKILL (supervisor + 2 workers); "
          f"after the restart {lost} of them are missing")
    assert problems == []
    if qos == QOS_COMMIT:
        assert lost == 0


async def test_a_param_ttl_keeps_counting_down_across_a_restart(tmp_path):
    db = str(tmp_path / "state.db")
    args = ("--expiry-sweep-interval", "0.1")
    with RouterProcess(*args, state_file=db) as rp:
        ws, _, _ = await connect_hello(rp.url)
        await ws.send(encode_frame(Set("/ttl/short", 1.0, ttl=Ttl(TtlMode.SLIDING, 3)), qos=QOS_COMMIT))
        await ws.send(encode_frame(Set("/ttl/none", 2.0), qos=QOS_COMMIT))
        for _ in range(2):
            assert isinstance(await recv_msg(ws, 5), Ack)
        set_at = time.monotonic()
        await ws.close()
    with RouterProcess(*args, state_file=db) as rp:
        state = await state_of(rp.url)
        assert set(state) == {"/ttl/short", "/ttl/none"}, state
        await asyncio.sleep(max(0.0, set_at + 3.5 - time.monotonic()))
        state = await state_of(rp.url)
        assert set(state) == {"/ttl/none"}, "the TTL restarted instead of counting down"


def run_clasp(*args: str, timeout: float = 20.0):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1", "--port", "0",
                           "--persistence", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(r, *parts: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def test_a_corrupt_state_file_is_a_start_up_error(tmp_path):
    db = tmp_path / "state.db"
    db.write_bytes(os.urandom(8192))
    before = db.read_bytes()
    r = run_clasp("--state-file", str(db))
    assert_one_line_error(r, str(db), "damaged", "backup")
    assert db.read_bytes() == before


async def test_a_state_file_in_use_is_a_start_up_error(tmp_path):
    db = str(tmp_path / "state.db")
    with RouterProcess(workers=2, state_file=db) as rp:
        r = run_clasp("--state-file", db)
        assert_one_line_error(r, db, "in use by another clasp-fast", "--state-file")
        state = await state_of(rp.url)          # the first router is unharmed
        assert state == {}


def test_an_unwritable_state_file_is_a_start_up_error(tmp_path):
    (tmp_path / "afile").write_text("")
    db = str(tmp_path / "afile" / "state.db")
    r = run_clasp("--state-file", db)
    assert_one_line_error(r, db, "cannot be written", "--no-persistence")


async def test_the_file_stays_proportional_to_live_params_under_a_long_write_load(tmp_path):
    db = tmp_path / "state.db"
    with RouterProcess("--compact-wal-bytes", "262144", state_file=str(db)) as rp:
        ws, _, _ = await connect_hello(rp.url)
        w = Writer(ws, "load", 20, QOS_COMMIT)
        sizes = []
        for _ in range(5):
            w.acks = 0
            await w.run(4000, window=200)
            sizes.append(os.path.getsize(db) + os.path.getsize(str(db) + "-wal"))
        await ws.close()
    print(f"\nfile + WAL after each 4000 SETs to 20 params: {sizes}")
    assert max(sizes) < 1536 * 1024, sizes
    assert os.path.getsize(db) < 256 * 1024


async def test_a_reconnecting_client_gets_only_what_changed_since_it_last_saw(tmp_path):
    """Replay (docs/protocol.md): SUBSCRIBE with since = the newest write time it saw."""
    from clasp_fast.protocol import Subscribe, SubscribeOptions
    with RouterProcess(state_file=str(tmp_path / "state.db")) as rp:
        ws, _, _ = await connect_hello(rp.url, name="a")
        for address in ("/rp/a", "/rp/b"):
            await ws.send(encode_frame(Set(address, 1.0), qos=QOS_COMMIT))
            assert isinstance(await recv_msg(ws, 5), Ack)
        await ws.send(encode_frame(Subscribe(1, "/rp/**")))
        snap = await recv_msg(ws, 5)
        assert isinstance(snap, Snapshot)
        newest = max(p.timestamp for p in snap.params)
        await ws.close()                                   # the blip
        other, _, _ = await connect_hello(rp.url, name="b")
        await other.send(encode_frame(Set("/rp/b", 2.0), qos=QOS_COMMIT))
        await other.send(encode_frame(Set("/rp/c", 3.0), qos=QOS_COMMIT))
        for _ in range(2):
            assert isinstance(await recv_msg(other, 5), Ack)
        again, _, _ = await connect_hello(rp.url, name="a")
        await again.send(encode_frame(Subscribe(1, "/rp/**", options=SubscribeOptions(since=newest))))
        delta = await recv_msg(again, 5)
        assert isinstance(delta, Snapshot)
        assert sorted((p.address, p.value) for p in delta.params) == [("/rp/b", 2.0), ("/rp/c", 3.0)]
        await again.close()
        await other.close()


async def test_sigkill_of_the_owner_alone_keeps_every_commit_acked_set_on_disk(tmp_path):
    """Worker 0 dies mid-load; its replacement journals the merged state and releases the
    commit ACKs the other worker held; after a clean restart the file has all of them."""
    from tests.integration.workers_support import sigkill, wait_worker_pids
    db = str(tmp_path / "state.db")
    with RouterProcess(workers=2, state_file=db) as rp:
        pids = await wait_worker_pids(rp, 2)
        writers = []
        for k in range(12):                           # some land on each worker
            ws, _, _ = await connect_hello(rp.url, name=f"w{k}")
            writers.append(Writer(ws, f"o{k}", 20, QOS_COMMIT))
        tasks = [asyncio.create_task(w.run(1000, window=32)) for w in writers]
        deadline = time.monotonic() + 60
        while sum(w.acks for w in writers) < 3000 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        sigkill(pids[0])
        await asyncio.wait(tasks, timeout=60)
        for w in writers:
            await w.ws.close()
        assert rp.wait_for_log("worker 0 restarted and ready", 20), rp.log()
    acks = sum(w.acks for w in writers)
    with RouterProcess(workers=2, state_file=db) as again:
        state = await state_of(again.url)
    acked, lost, problems = losses(writers, state)
    survivors = sum(w.acks == 1000 for w in writers)
    print(f"\n{acks} commit ACKs around a SIGKILL of worker 0 ({survivors} clients of worker 1 "
          f"got all 1,000); {lost} missing after a restart")
    assert survivors > 0, "no client of worker 1 got its commit ACKs after the owner restarted"
    assert acks > 3000 and problems == [] and lost == 0
