"""SETs per second one Python client can send, and one can receive: ``clasp_fast.Clasp``
against ``clasp-to`` 4.2.0, both against the same clasp-fast router.

    python -m bench.client_throughput [--n 50000] [--port 7391]

* send: the client under test sends N fire-and-forget SETs in a loop (``await set``), then
  one request whose answer proves the router has applied all of them (ours: a confirmed SET;
  clasp-to: a GET of a fresh address).  Rate = N / that time.
* receive: the client under test subscribes, then blocks its event loop while a separate
  process (our client) sends N SETs and gets the ACK of a last one: all N are then waiting
  in the socket and the router's buffer (the router runs with a large ``--buffer-size`` so
  that nothing is dropped).  Rate = N / (last callback - unblocking), and N / the CPU time
  the process used meanwhile ("receive-cpu": what the client could take if the router
  delivered faster; the wall-clock rate can be bounded by the router's own sending).

Prints one line per measurement and a JSON summary.  One run, one machine: the figures
move with whatever else the machine does.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

from bench.procs import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_router(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "clasp_fast", "--host", "127.0.0.1",
                             "--port", str(port), "--buffer-size", "10000000",
                             "--log-level", "warning"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "listening on" in line:
            return proc
    raise RuntimeError("clasp-fast did not start")


# --- the two clients behind one small interface ------------------------------------

async def ours_connect(url):
    from clasp_fast import Clasp
    return await Clasp.connect(url, name="bench ours", reconnect=False)


async def clasp_to_connect(url):
    from clasp import Clasp
    c = Clasp(url, name="bench clasp-to", reconnect=False)
    await c.connect()
    return c


async def ours_barrier(c, address):
    await c.set(address, 1, confirm=True)


async def clasp_to_barrier(c, address):
    await c.set(address, 1)
    await c.get(address, timeout=120)       # not cached: a GET on the wire, answered in order


IMPLS = {"clasp_fast": (ours_connect, ours_barrier), "clasp-to": (clasp_to_connect, clasp_to_barrier)}


async def measure_send(impl: str, url: str, n: int) -> float:
    connect, barrier = IMPLS[impl]
    c = await connect(url)
    prefix = f"/bench/tx/{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    for i in range(n):
        await c.set(f"{prefix}/{i % 100}", i)
    await barrier(c, f"{prefix}/end")
    dt = time.perf_counter() - t0
    await c.close()
    return n / dt


async def measure_receive(impl: str, url: str, n: int) -> tuple[float, float]:
    connect, barrier = IMPLS[impl]
    c = await connect(url)
    prefix = f"/bench/rx/{uuid.uuid4().hex[:8]}"
    done = asyncio.Event()
    last = 0.0
    count = 0

    def cb(value, address):
        nonlocal last, count
        count += 1
        if count == n:
            last = time.perf_counter()
            done.set()
    c.subscribe(f"{prefix}/*", cb)
    await barrier(c, "/bench/ready")          # the subscription is in place
    # blocking on purpose: this loop reads nothing until the sender is done
    subprocess.run([sys.executable, "-m", __spec__.name, "--sender", url, prefix, str(n)],
                   cwd=REPO, check=True, timeout=300)
    first = time.perf_counter()
    cpu = time.process_time()
    try:
        await asyncio.wait_for(done.wait(), max(60.0, n / 2000))
        cpu = time.process_time() - cpu
    finally:
        await c.close()
    return n / (last - first), n / cpu


async def sender(url: str, prefix: str, n: int) -> None:
    c = await ours_connect(url)
    for i in range(n):
        await c.set(f"{prefix}/{i % 100}", i)
    await c.set(f"{prefix}-end", 1, confirm=True)
    await c.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50000, help="SETs per measurement")
    p.add_argument("--port", type=int, default=0, help="router port (default: a free one)")
    p.add_argument("--sender", nargs=3, metavar=("URL", "PREFIX", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import uvloop
    if args.sender:
        uvloop.run(sender(args.sender[0], args.sender[1], int(args.sender[2])))
        return 0
    port = args.port or free_port()
    router = start_router(port)
    url = f"ws://127.0.0.1:{port}"
    results = {}
    try:
        for impl in IMPLS:
            rates = {"send": uvloop.run(measure_send(impl, url, args.n))}
            rates["receive"], rates["receive-cpu"] = uvloop.run(measure_receive(impl, url, args.n))
            for what, rate in rates.items():
                results[f"{what}/{impl}"] = round(rate)
                print(f"{what:12} {impl:11} {rate:12,.0f} SETs/s", flush=True)
    finally:
        router.terminate()
        router.wait(10)
    for what in ("send", "receive", "receive-cpu"):
        ratio = results[f"{what}/clasp_fast"] / results[f"{what}/clasp-to"]
        results[f"{what}/ratio"] = round(ratio, 1)
        print(f"{what:12} ratio       {ratio:12.1f}x")
    print(json.dumps({"n": args.n, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
