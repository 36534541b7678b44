"""The controller side of every scenario.

A scenario run against one target: start the server (pinned to the router CPU),
start the generator processes (pinned to the generator CPU), wait until every
client is connected and subscribed, then for each repeat: warm up, measure for a
fixed time (CPU of the router's processes and of the generator's processes read
from /proc/<pid>/stat at both ends of the window), stop, drain, and count what was
lost.  Everything started is stopped in ``finally`` blocks.

Throughput-style scenarios share one mechanism (``run_flow``): publishers write
pre-masked blocks, gated so that at most ``window`` messages are in flight for the
slowest subscriber (``Σ sent − min received``, counters in a shared-memory Board),
because the router rightly drops messages for a subscriber whose buffer
(``buffer_size``, 1000 messages) overflows.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import select
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import procs
from .report import rate_text
from .targets import Server, Target

SOURCE_IPS = [f"127.0.0.{i}" for i in range(2, 202)]


class ScenarioError(RuntimeError):
    pass


# --- progress ---------------------------------------------------------------------------

class Progress:
    def __init__(self, stream=sys.stderr, quiet: bool = False):
        self.stream = stream
        self.tty = stream.isatty()
        self.t0 = time.monotonic()
        self.quiet = quiet
        self._live = False

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.t0:6.1f}s]"

    def line(self, msg: str) -> None:
        if self._live:
            self.stream.write("\r\033[K")
            self._live = False
        self.stream.write(f"{self._stamp()} {msg}\n")
        self.stream.flush()

    def live(self, msg: str) -> None:
        """A status line overwritten in place (a terminal), or dropped (a log)."""
        if self.quiet or not self.tty:
            return
        self.stream.write(f"\r\033[K{self._stamp()} {msg}")
        self.stream.flush()
        self._live = True

    def done_live(self) -> None:
        if self._live:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._live = False


# --- context ----------------------------------------------------------------------------

@dataclass
class Ctx:
    profile: dict
    router_cpus: Optional[list]
    gen_cpus: Optional[list]
    log_dir: Path
    progress: Progress
    results: list = field(default_factory=list)


# --- generator processes ----------------------------------------------------------------

class GenError(RuntimeError):
    pass


class GenProc:
    """One ``python -m <package>.gen`` process and its JSON-lines conversation."""

    def __init__(self, ctx: Ctx, name: str, spec: dict, pass_fds: tuple = ()):
        self.name = name
        self.spec = spec
        self.proc = procs.spawn([procs.python(), "-m", procs.module("gen"), json.dumps(spec)], name=name,
                                cpus=ctx.gen_cpus, log_path=ctx.log_dir / f"gen-{name}.log",
                                pipes=True, pass_fds=pass_fds, deathsig=9)
        self.buf = b""
        self.fd = self.proc.popen.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.info: dict = {}

    def _fail(self, what: str) -> GenError:
        return GenError(f"generator {self.name}: {what}\n{self.proc.log_tail(15)}")

    def read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"no answer within {timeout:.0f} s")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if r:
                try:
                    chunk = os.read(self.fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise self._fail(f"exited (code {self.proc.popen.wait(5)})")
                self.buf += chunk
            elif not self.proc.alive():
                raise self._fail(f"exited (code {self.proc.popen.returncode})")
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if msg.get("event") == "error":
            raise self._fail(msg.get("error", "error"))
        return msg

    def send(self, cmd: dict) -> None:
        try:
            self.proc.popen.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.popen.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._fail("stdin closed (it died)")

    def call(self, cmd: dict, timeout: float = 30.0) -> dict:
        self.send(cmd)
        return self.read(timeout)

    def close(self) -> None:
        if self.proc.alive():
            try:
                self.send({"cmd": "exit"})
                self.proc.popen.wait(3)
            except Exception:
                pass
        self.proc.stop(9, timeout=3)


def wait_ready(gens: list[GenProc], timeout: float) -> list[dict]:
    out = []
    for g in gens:
        g.info = g.read(timeout)
        out.append(g.info)
    return out


def call_all(gens: list[GenProc], cmd: dict, timeout: float = 30.0) -> list[dict]:
    for g in gens:
        g.send(cmd)
    return [g.read(timeout) for g in gens]


def close_all(gens: list[GenProc]) -> None:
    for g in gens:
        try:
            g.close()
        except Exception:
            pass


# --- measuring --------------------------------------------------------------------------

class Sampler:
    """CPU seconds of the server's processes and of the generator processes."""

    def __init__(self, server: Server, gens: list[GenProc], ctx: "Ctx" = None):
        self.server = server
        self.server_pids = server.pids()
        self.gen_pids = [g.proc.pid for g in gens]
        self.router_cpus = ctx.router_cpus if ctx is not None else None
        self.gen_cpus = ctx.gen_cpus if ctx is not None else None

    def snap(self) -> tuple:
        """(time, server CPU s, generator CPU s, busy s of the router cores, busy s of the
        generator cores, this controller's CPU s)."""
        t = time.monotonic()
        if self.server.target.kind == "peer":
            self.server_pids = self.server.pids()
        r = sum(procs.cpu_of(self.server_pids).values())
        g = sum(procs.cpu_of(self.gen_pids).values())
        return (t, r, g, procs.cpu_busy(self.router_cpus), procs.cpu_busy(self.gen_cpus),
                procs.self_cpu())

    def other_load(self, a: tuple, b: tuple) -> dict:
        """Share of the router's and the generator's cores that other processes took
        between two snapshots (a busy machine shows up here)."""
        dt = b[0] - a[0]
        if not self.router_cpus or dt <= 0:
            return {"other_router_cpu_pct": None, "other_gen_cpu_pct": None}
        ro = (b[3] - a[3]) - (b[1] - a[1])
        go = (b[4] - a[4]) - (b[2] - a[2]) - (b[5] - a[5])
        return {"other_router_cpu_pct": max(0.0, 100 * ro / dt / len(self.router_cpus)),
                "other_gen_cpu_pct": max(0.0, 100 * go / dt / len(self.gen_cpus))}


def summarize(values: list) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def percentiles(hist: dict, ps=(50, 90, 99, 99.9)) -> dict:
    from ._loadgen import bucket_upper
    items = sorted((int(k), v) for k, v in hist.items())
    total = sum(v for _, v in items)
    out = {}
    for p in ps:
        if total == 0:
            out[p] = None
            continue
        rank = max(1, math.ceil(p / 100.0 * total))
        acc = 0
        for b, v in items:
            acc += v
            if acc >= rank:
                out[p] = bucket_upper(b)
                break
    out["max"] = bucket_upper(items[-1][0]) if items else None
    out["count"] = total
    return out


def merge_hist(hists: list[dict]) -> dict:
    out: dict = {}
    for h in hists:
        for k, v in h.items():
            out[k] = out.get(k, 0) + v
    return out


def sleep_with_progress(ctx: Ctx, seconds: float, label: str, status=None) -> None:
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(left, 0.25))
        if status is not None:
            ctx.progress.live(f"{label}  {status()}")
        else:
            ctx.progress.live(f"{label}  {max(0.0, end - time.monotonic()):.1f}s left")


# --- calibration ------------------------------------------------------------------------

def calibrate(ctx: Ctx, target: Target, server: Server) -> dict:
    """Where the end of a value lands in a delivered SET and PUBLISH, for this router."""
    if target.tails is not None:
        return target.tails
    g = GenProc(ctx, f"calibrate-{target.name}", {"role": "calibrate", "url": server.url,
                                                 "ips": SOURCE_IPS[:4], "token": target.hello_token})
    try:
        info = wait_ready([g], 30)[0]
    finally:
        g.close()
    if info.get("set") is None or info.get("publish") is None:
        raise ScenarioError(f"{target.name}: calibration failed (a SET or PUBLISH was not "
                            f"delivered as expected): {info}")
    target.tails = {"set": info["set"], "publish": info["publish"]}
    ctx.progress.line(f"  calibrated {target.name}: bytes after the value in a delivered SET = "
                      f"{info['set']}, PUBLISH = {info['publish']}")
    return target.tails


# --- throughput-style scenarios ---------------------------------------------------------

@dataclass
class Flow:
    scenario: str
    variant: str
    subs: int
    patterns: list
    pubs: int = 1
    pub_procs: int = 1
    sub_procs: int = 1
    kind: str = "set"
    address: str = "/bench/x"
    addresses: int = 1
    block: int = 100
    window: int = 1000
    colocate: bool = True
    value_size: int = 32            # bytes of each SET's value (filler, then seq + stamp)
    deflate: bool = False           # subscribers offer permessage-deflate


def server_counters(target: Target) -> dict:
    """The server's Prometheus counters (``*_total``), when the target serves metrics."""
    if not target.metrics_port:
        return {}
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{target.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    from prometheus_client.parser import text_string_to_metric_families
    out: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:           # summed over labels (e.g. the workers)
            if sample.name.endswith("_total"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def sub_procs_for(n: int, per: int = 250) -> int:
    if n <= 10:
        return 1
    return max(2, min(8, math.ceil(n / per)))


def _split(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


class FlowRun:
    """One throughput-style measurement against one server: ``setup`` (server, generator
    processes, barrier), ``repeat`` (one warm-up + measurement + drain), ``finish``
    (summary), ``close`` (stop everything).  ``run_flows`` interleaves the repeats of
    several servers (A B C A B C ...), so slow drifts of a busy machine hit them alike."""

    def __init__(self, ctx: Ctx, target: Target, flow: Flow):
        self.ctx, self.target, self.flow = ctx, target, flow
        self.label = f"{flow.scenario} {flow.variant} / {target.name}"
        self.server: Optional[Server] = None
        self.gens: list[GenProc] = []
        self.sub_gens: list[GenProc] = []
        self.pub_gens: list[GenProc] = []
        self.efds: list[int] = []
        self.board_path = None
        self.board = None
        self.sampler = None
        self.repeats: list[dict] = []
        self.counters0: dict = {}
        self.result = {"scenario": flow.scenario, "variant": flow.variant, "target": target.name,
                       "metric": "deliveries/s", "config": flow.__dict__.copy()}

    @property
    def failed(self) -> bool:
        return "error" in self.result

    def fail(self, exc: BaseException) -> None:
        self.result["error"] = f"{type(exc).__name__}: {exc}"
        self.ctx.progress.line(f"{self.label}: FAILED: {self.result['error']}")
        self.close()

    def setup(self) -> None:
        self.ctx.progress.line(f"{self.label}: starting")
        try:
            self._setup()
        except Exception as exc:
            self.fail(exc)
        finally:
            self.ctx.progress.done_live()

    def _setup(self) -> None:
        ctx, target, flow = self.ctx, self.target, self.flow
        self.server = server = target.start(ctx.router_cpus, ctx.log_dir)
        tail = calibrate(ctx, target, server)[flow.kind]
        # the shared board
        from ._loadgen import Board, board_size
        shm_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, self.board_path = tempfile.mkstemp(prefix="clasp-bench-", dir=shm_dir)
        os.ftruncate(fd, board_size(flow.subs))
        self.mm = mmap.mmap(fd, board_size(flow.subs))
        os.close(fd)
        self.board = board = Board(self.mm, flow.subs, init=True)
        board.n_pubs = flow.pub_procs
        board.window = max(flow.block, flow.window - flow.block * (flow.pub_procs - 1))
        for i in range(flow.pub_procs):
            efd = os.eventfd(0, os.EFD_NONBLOCK)
            self.efds.append(efd)
            board.set_eventfd(i, efd)
        # the generator processes: subscribers split over sub_procs processes; publisher
        # process i shares process i with subscribers when there is one (fewer context
        # switches on the shared generator core)
        sub_specs, pub_specs = [], []
        slot = 0
        for i, n in enumerate(_split(flow.subs, flow.sub_procs)):
            sub_specs.append({"role": "subs", "n": n, "patterns": flow.patterns,
                              "slot_base": slot, "seq_offset": tail + 8, "stamp_offset": -1,
                              "max_pubs": flow.pubs, "deflate": flow.deflate})
            slot += n
        base = 0
        for i, n in enumerate(_split(flow.pubs, flow.pub_procs)):
            pub_specs.append({"role": "pubs", "n": n, "kind": flow.kind, "address": flow.address,
                              "addresses": flow.addresses, "block": flow.block, "pub_base": base,
                              "value_size": flow.value_size,
                              "pub_index": i, "eventfd": self.efds[i]})
            base += n
        layout = []
        for i in range(max(len(sub_specs), len(pub_specs))):
            parts = ([sub_specs[i]] if i < len(sub_specs) else []) + \
                    ([pub_specs[i]] if i < len(pub_specs) and flow.colocate else [])
            if parts:
                layout.append(parts)
        if not flow.colocate:
            layout += [[ps] for ps in pub_specs]
        for i, parts in enumerate(layout):
            off = (i * 37) % 200
            # (two nodes: the publishers on the other node than the subscribers)
            url = server.url if any(pt["role"] == "subs" for pt in parts) else getattr(server, "pub_url", server.url)
            spec = {"role": "multi", "parts": parts, "url": url, "board": self.board_path,
                    "board_subs": flow.subs, "ips": SOURCE_IPS[off:] + SOURCE_IPS[:off],
                    "setup_timeout": 120 + flow.subs / 20, "token": self.target.hello_token}
            g = GenProc(ctx, f"{flow.scenario}-{target.name}-{i}", spec, tuple(self.efds))
            self.gens.append(g)
            if any(pt["role"] == "subs" for pt in parts):
                self.sub_gens.append(g)
            if any(pt["role"] == "pubs" for pt in parts):
                self.pub_gens.append(g)
        wait_ready(self.gens, 150 + flow.subs / 20)
        # every process has mapped the board: the name can go (nothing left in /dev/shm even
        # if this controller is killed)
        os.unlink(self.board_path)
        self.board_path = None
        if target.kind == "clasp-fast" and target.workers > 1:
            split = procs.sockets_per_pid(server.port)
            self.result["connections_per_process"] = {str(k): v for k, v in sorted(split.items())}
        # barrier: every subscriber has received something, then nothing is in flight
        deadline = time.monotonic() + 30
        while min(board.recv()) < 1:
            if time.monotonic() > deadline:
                raise ScenarioError(f"{sum(1 for r in board.recv() if r < 1)} subscriber(s) "
                                    f"received nothing within 30 s")
            self.pub_gens[0].call({"cmd": "probe"})
            time.sleep(0.02)
        _quiesce(board)
        board.set_bases()
        self.counters0 = server_counters(target)
        self.sampler = Sampler(server, self.gens, ctx)

    def repeat(self, rep: int) -> None:
        if self.failed:
            return
        try:
            self.repeats.append(_flow_repeat(self.ctx, self.label, rep, self.board, self.sub_gens,
                                             self.pub_gens, self.sampler, self.server))
        except Exception as exc:
            self.fail(exc)
        finally:
            self.ctx.progress.done_live()

    def finish(self) -> dict:
        if self.failed:
            return self.result
        result = self.result
        try:
            result["repeats"] = self.repeats
            result.update(_flow_summary(self.repeats))
            stats = call_all(self.pub_gens, {"cmd": "pub_stats"})
            result["publisher_errors"] = sum(s["errors"] for s in stats)
            counters = server_counters(self.target)
            if counters and self.counters0:
                sent = max(1, self.board.sent())
                delta = {k: counters[k] - self.counters0.get(k, 0) for k in counters}
                result["server_counters"] = delta
                result["compressions_per_message"] = delta.get("clasp_deflate_compressions_total", 0) / sent
            samples = [e for s in stats for e in s.get("error_samples", [])]
            if samples:
                result["publisher_error_samples"] = samples[:5]
            self.ctx.progress.line(
                f"{self.label}: {rate_text(result['median'])} deliveries/s "
                f"(min {rate_text(result['min'])}, max {rate_text(result['max'])}), "
                f"loss {result['loss']}, out of order {result['out_of_order']}, "
                f"router CPU {result['router_cpu_pct']:.0f}%, generator CPU "
                f"{result['gen_cpu_pct']:.0f}%{_other_text(result)}")
        except Exception as exc:
            self.fail(exc)
        return result

    def close(self) -> None:
        close_all(self.gens)
        self.gens = []
        if self.server is not None:
            self.server.stop()
            self.server = None
        for efd in self.efds:
            try:
                os.close(efd)
            except OSError:
                pass
        self.efds = []
        if self.board_path:
            try:
                os.unlink(self.board_path)
            except OSError:
                pass
            self.board_path = None


def run_flows(ctx: Ctx, pairs: list) -> list[dict]:
    """Runs [(target, flow), ...]: every setup, then the repeats interleaved across targets."""
    runs = [FlowRun(ctx, t, f) for t, f in pairs]
    try:
        for r in runs:
            r.setup()
        for rep in range(ctx.profile["repeats"]):
            for r in runs:
                r.repeat(rep)
        return [r.finish() for r in runs]
    finally:
        for r in runs:
            r.close()


def run_flow(ctx: Ctx, target: Target, flow: Flow) -> dict:
    return run_flows(ctx, [(target, flow)])[0]


def _quiesce(board, quiet: float = 0.15, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last = board.recv_total()
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = board.recv_total()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def _flow_repeat(ctx, label, rep, board, sub_gens, pub_gens, sampler, server) -> dict:
    p = ctx.profile
    n_rep = p["repeats"]
    st0 = call_all(sub_gens, {"cmd": "stats"})
    s_base = board.sent()
    r_base = board.recv()
    board.stop = False
    call_all(pub_gens, {"cmd": "run"})
    t_run = time.monotonic()

    def status():
        dt = time.monotonic() - t_run
        return f"{rate_text(board.recv_total() / max(dt, 1e-6))} deliveries/s so far"
    sleep_with_progress(ctx, p["warmup"], f"{label} rep {rep + 1}/{n_rep} warm-up", status)
    a = sampler.snap()
    ra, sa = board.recv_total(), board.sent()

    def status2():
        dt = time.monotonic() - a[0]
        return f"{rate_text((board.recv_total() - ra) / max(dt, 1e-6))} deliveries/s"
    sleep_with_progress(ctx, p["duration"], f"{label} rep {rep + 1}/{n_rep} measuring", status2)
    b = sampler.snap()
    rb, sb = board.recv_total(), board.sent()
    board.stop = True
    board.poke_all()
    pub_stats = call_all(pub_gens, {"cmd": "stop"})
    # drain: until every subscriber has everything, or nothing moves for 1.5 s
    sent = board.sent() - s_base
    deadline = time.monotonic() + 15
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        recv = board.recv()
        if all(r - r0 >= sent for r, r0 in zip(recv, r_base)):
            break
        tot = sum(recv)
        if tot != last:
            last, since = tot, time.monotonic()
        elif time.monotonic() - since > 1.5:
            break
        time.sleep(0.01)
    recv = board.recv()
    loss = sum(max(0, sent - (r - r0)) for r, r0 in zip(recv, r_base))
    st1 = call_all(sub_gens, {"cmd": "stats"})
    dt = b[0] - a[0]
    deliveries = rb - ra
    out = {
        "deliveries_per_s": deliveries / dt,
        "messages_per_s": (sb - sa) / dt,
        "seconds": dt,
        "sent": sent,
        "loss": loss,
        "out_of_order": sum(s["out_of_order"] for s in st1) - sum(s["out_of_order"] for s in st0),
        "gaps": sum(s["gaps"] for s in st1) - sum(s["gaps"] for s in st0),
        "errors": sum(s["errors"] for s in st1) - sum(s["errors"] for s in st0),
        "disconnected": sum(s["disconnected"] for s in st1),
        "router_cpu_pct": 100.0 * (b[1] - a[1]) / dt,
        "gen_cpu_pct": 100.0 * (b[2] - a[2]) / dt,
        "router_cpu_us_per_delivery": 1e6 * (b[1] - a[1]) / deliveries if deliveries else None,
        **sampler.other_load(a, b),
        "publisher_waits": sum(s.get("waits", 0) for s in pub_stats),
        "publisher_writes": sum(s.get("writes", 0) for s in pub_stats),
    }
    samples = [e for s in st1 for e in s.get("error_samples", [])]
    if samples:
        out["error_samples"] = samples[:3]
    if not server.alive():
        raise ScenarioError(f"{label}: the server died\n{server.proc.log_tail()}")
    return out


def _flow_summary(repeats: list[dict]) -> dict:
    d = summarize([r["deliveries_per_s"] for r in repeats])
    m = summarize([r["messages_per_s"] for r in repeats])
    return {
        "median": d["median"], "min": d["min"], "max": d["max"],
        "messages_per_s": m,
        "loss": sum(r["loss"] for r in repeats),
        "out_of_order": sum(r["out_of_order"] for r in repeats),
        "gaps": sum(r["gaps"] for r in repeats),
        "errors": sum(r["errors"] for r in repeats),
        "router_cpu_pct": statistics.median(r["router_cpu_pct"] for r in repeats),
        "gen_cpu_pct": statistics.median(r["gen_cpu_pct"] for r in repeats),
        "router_cpu_us_per_delivery": summarize([r["router_cpu_us_per_delivery"] for r in repeats]),
        **_other_summary(repeats),
    }


def _other_text(r: dict) -> str:
    a, b = r.get("other_router_cpu_pct"), r.get("other_gen_cpu_pct")
    if a is None:
        return ""
    return f", other load {a:.0f}% / {b:.0f}%"


def _other_summary(reps: list[dict]) -> dict:
    out = {}
    for key in ("other_router_cpu_pct", "other_gen_cpu_pct"):
        vals = [r.get(key) for r in reps if r.get(key) is not None]
        out[key] = max(vals) if vals else None
    return out


# --- the scenarios ----------------------------------------------------------------------

def throughput_flows(ctx: Ctx) -> list[Flow]:
    c = ctx.profile["throughput"]
    return [Flow("throughput", "1 → 1", subs=1, patterns=["/bench/**"], address="/bench/tp/x",
                 block=c["block"], window=ctx.profile["window"])]


def fanout_flows(ctx: Ctx) -> list[Flow]:
    c = ctx.profile["fanout"]
    return [Flow("fanout", f"1 → {n}", subs=n, patterns=["/bench/**", "/bench/fan/*"],
                 sub_procs=sub_procs_for(n, c.get("procs_per", 250)), address="/bench/fan/x",
                 block=c["block"], window=ctx.profile["window"]) for n in c["subs"]]


def fanin_flows(ctx: Ctx) -> list[Flow]:
    c = ctx.profile["fanin"]
    n = c["pubs"]
    return [Flow("fanin", f"{n} → 1", subs=1, patterns=["/**"], pubs=n, pub_procs=c["pub_procs"],
                 address="/fanin/{p:03d}/x", block=c["block"], window=ctx.profile["window"])]


def state_flows(ctx: Ctx) -> list[Flow]:
    c = ctx.profile["state"]
    n = c["addresses"]
    patterns = ["/state/**", "/state/*/v", "/**", "/state/**/v", "/st*/*/v"]
    return [Flow("state", f"{n:,} addresses, {c['subs']} wildcard subs", subs=c["subs"],
                 patterns=patterns, sub_procs=1, address="/state/{i:06d}/v", addresses=n,
                 block=c["block"], window=ctx.profile["window"])]


def events_flows(ctx: Ctx) -> list[Flow]:
    c = ctx.profile["events"]
    n = c["subs"]
    return [Flow("events", f"PUBLISH 1 → {n}", subs=n, patterns=["/ev/**"], sub_procs=1,
                 kind="publish", address="/ev/pad/hit", block=c["block"],
                 window=ctx.profile["window"])]


FLOW_SCENARIOS = {"throughput": throughput_flows, "fanout": fanout_flows, "fanin": fanin_flows,
                  "state": state_flows, "events": events_flows}


def flows_scenario(ctx: Ctx, scenario: str, targets_for) -> list[dict]:
    """Every flow of ``scenario``, each against ``targets_for(flow)`` (interleaved)."""
    out = []
    for flow in FLOW_SCENARIOS[scenario](ctx):
        out += run_flows(ctx, [(t, flow) for t in targets_for(flow)])
    return out


def workers(ctx: Ctx, make_target) -> list[dict]:
    c = ctx.profile["workers"]
    pairs = []
    for w in c["workers"]:
        pairs.append((make_target(w), Flow(
            "workers", f"1 → {c['subs']}, {w} worker{'s' if w > 1 else ''}", subs=c["subs"],
            patterns=["/bench/**"], sub_procs=sub_procs_for(c["subs"]), address="/bench/fan/x",
            block=c["block"], window=ctx.profile["window"])))
    out = run_flows(ctx, pairs)
    for (t, _), r in zip(pairs, out):
        r["workers"] = t.workers
    return out


def nodes(ctx: Ctx, one_node: Target, two_nodes: Target) -> list[dict]:
    """Fan-out 1 → N with the publisher and the subscribers on different nodes (NATS
    between them) against the same on one node (each node ``--workers 2``)."""
    c = ctx.profile["nodes"]
    flow = Flow("nodes", f"1 → {c['subs']}", subs=c["subs"], patterns=["/bench/**"],
                sub_procs=sub_procs_for(c["subs"]), address="/bench/fan/x", block=c["block"],
                window=ctx.profile["window"], colocate=False)
    out = run_flows(ctx, [(one_node, flow), (two_nodes, flow)])
    for t, r in zip((one_node, two_nodes), out):
        r["nodes"] = 2 if t is two_nodes else 1
    # SET latency, publisher on one node and subscriber on the other, at a fixed rate
    lat = latency(ctx, [(one_node, [c["set_rate"]], False), (two_nodes, [c["set_rate"]], False)])
    for r in lat:
        r["scenario"], r["nodes"] = "nodes", 2 if r["target"] == two_nodes.name else 1
    return out + lat


def metrics(ctx: Ctx, off: "Target", on: "Target") -> list[dict]:
    """The same fan-out against clasp-fast with metrics off and on, repeats interleaved:
    the cost of the counters' reading side and of the sampled latency timing."""
    c = ctx.profile["metrics"]
    n = c["subs"]
    out = []
    for target in (off, on):
        out.append((target, Flow("metrics", f"1 → {n}", subs=n, patterns=["/bench/**"],
                                 sub_procs=sub_procs_for(n), address="/bench/fan/x",
                                 block=c["block"], window=ctx.profile["window"])))
    return run_flows(ctx, out)


def auth(ctx: Ctx, target: Target) -> list[dict]:
    """Token mode vs open mode: fan-out and SET throughput (bench/auth.py)."""
    from . import auth as scenario
    return scenario.run(ctx, target)


# --- latency ----------------------------------------------------------------------------

def latency(ctx: Ctx, plans: list) -> list[dict]:
    """``plans``: [(target, rates or None, search?)].  Every server is started first; each
    rate is then measured on every server in turn (repeats interleaved), and the search
    runs last, server by server."""
    c = ctx.profile["latency"]
    runs = []
    out = []
    try:
        for target, rates, search in plans:
            run = {"target": target, "rates": list(rates or c["rates"]), "search": search,
                   "label": f"latency / {target.name}", "server": None, "g": None, "reps": {}}
            runs.append(run)
            ctx.progress.line(f"{run['label']}: starting")
            try:
                run["server"] = server = target.start(ctx.router_cpus, ctx.log_dir)
                tail = calibrate(ctx, target, server)["set"]
                run["g"] = g = GenProc(ctx, f"latency-{target.name}", {
                    "role": "latency", "url": server.url, "pub_url": getattr(server, "pub_url", server.url),
                    "pattern": "/lat/**", "address": "/lat/x",
                    "stamp_offset": tail, "seq_offset": tail + 8, "ips": SOURCE_IPS[:2]})
                wait_ready([g], 30)
                run["sampler"] = Sampler(server, [g], ctx)
            except Exception as exc:
                run["error"] = f"{type(exc).__name__}: {exc}"
                ctx.progress.line(f"{run['label']}: FAILED: {run['error']}")
        all_rates = sorted({r for run in runs for r in run["rates"]})
        for rate in all_rates:
            for rep in range(c["repeats"]):
                for run in runs:
                    if "error" in run or rate not in run["rates"]:
                        continue
                    ctx.progress.live(f"{run['label']}: {rate:,} msg/s, repeat {rep + 1}/{c['repeats']}")
                    try:
                        run["reps"].setdefault(rate, []).append(
                            _latency_step(run["g"], run["sampler"], rate, c["warmup"], c["duration"]))
                    except Exception as exc:
                        run["error"] = f"{type(exc).__name__}: {exc}"
                        ctx.progress.line(f"{run['label']}: FAILED: {run['error']}")
            for run in runs:
                reps = run["reps"].get(rate)
                if not reps or "error" in run:
                    continue
                r = _latency_result(run["target"], f"{rate:,} msg/s", rate, reps)
                out.append(r)
                ctx.progress.line(f"{run['label']} {rate:,} msg/s: p50 {_us(r['p50_ns'])}, p99 "
                                  f"{_us(r['p99_ns'])}, p99.9 {_us(r['p999_ns'])}, lost {r['lost']}"
                                  f"{_other_text(r)}")
        for run in runs:
            if "error" not in run and run["search"] and c.get("search"):
                try:
                    out.append(_latency_search(ctx, run["label"], run["target"], run["g"],
                                               run["sampler"], c["search"]))
                except Exception as exc:
                    run["error"] = f"{type(exc).__name__}: {exc}"
                    ctx.progress.line(f"{run['label']}: FAILED: {run['error']}")
        for run in runs:
            if "error" in run:
                out.append({"scenario": "latency", "variant": "-", "target": run["target"].name,
                            "error": run["error"]})
    finally:
        ctx.progress.done_live()
        for run in runs:
            if run.get("g") is not None:
                run["g"].close()
            if run.get("server") is not None:
                run["server"].stop()
    return out


def _latency_step(g: GenProc, sampler: Sampler, rate: int, warmup: float, duration: float) -> dict:
    a = sampler.snap()
    r = g.call({"cmd": "measure", "rate": rate, "warmup": warmup, "duration": duration},
                timeout=warmup + duration + 30)
    b = sampler.snap()
    dt = b[0] - a[0]
    pct = percentiles(r["hist"])
    r.update({"p50_ns": pct[50], "p90_ns": pct[90], "p99_ns": pct[99], "p999_ns": pct[99.9],
              "max_ns": pct["max"], "router_cpu_pct": 100 * (b[1] - a[1]) / dt,
              "gen_cpu_pct": 100 * (b[2] - a[2]) / dt, **sampler.other_load(a, b)})
    return r


def _latency_result(target: Target, variant: str, rate: int, reps: list[dict]) -> dict:
    merged = percentiles(merge_hist([r["hist"] for r in reps]))
    res = {"scenario": "latency", "variant": variant, "target": target.name, "rate": rate,
           "metric": "latency", "p50_ns": merged[50], "p90_ns": merged[90], "p99_ns": merged[99],
           "p999_ns": merged[99.9], "max_ns": merged["max"], "samples": merged["count"],
           "lost": sum(r["lost"] for r in reps), "out_of_order": sum(r["out_of_order"] for r in reps),
           "achieved_rate": summarize([r["achieved"] for r in reps]),
           "router_cpu_pct": statistics.median(r["router_cpu_pct"] for r in reps),
           "gen_cpu_pct": statistics.median(r["gen_cpu_pct"] for r in reps),
           **_other_summary(reps),
           "repeats": [{k: v for k, v in r.items() if k != "hist"} for r in reps]}
    for key in ("p50_ns", "p99_ns"):
        res[key.replace("_ns", "_range_ns")] = summarize([r[key] for r in reps])
    return res


def _latency_search(ctx, label, target, g, sampler, s) -> dict:
    limit = s["p99_ns"]
    steps = []

    def ok(rate) -> bool:
        ctx.progress.live(f"{label}: search, trying {rate:,} msg/s")
        r = _latency_step(g, sampler, rate, s["warmup"], s["duration"])
        good = (r["p99_ns"] is not None and r["p99_ns"] <= limit and r["lost"] == 0
                and r["achieved"] >= 0.97 * rate)
        steps.append({"rate": rate, "p50_ns": r["p50_ns"], "p99_ns": r["p99_ns"], "lost": r["lost"],
                      "achieved": r["achieved"], "pass": good, "router_cpu_pct": r["router_cpu_pct"],
                      "gen_cpu_pct": r["gen_cpu_pct"],
                      "other_router_cpu_pct": r.get("other_router_cpu_pct"),
                      "other_gen_cpu_pct": r.get("other_gen_cpu_pct")})
        ctx.progress.line(f"{label}: search {rate:,} msg/s: p99 {_us(r['p99_ns'])}, lost {r['lost']} "
                          f"-> {'pass' if good else 'fail'}{_other_text(r)}")
        return good

    best, fail = None, None
    rate = s["start"]
    while rate <= s["max"]:
        if ok(rate):
            best = rate
            rate = int(rate * s["factor"])
        else:
            fail = rate
            break
    if best is None:                      # even the start failed: walk down (to s["min"])
        rate = int(s["start"] / s["factor"])
        while rate >= s.get("min", 10_000):
            if ok(rate):
                best = rate
                break
            fail = rate
            rate = int(rate / s["factor"])
    if best is not None and fail is not None:
        lo, hi = best, fail
        for _ in range(s.get("bisect", 0)):
            mid = (lo + hi) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid
        best = lo
    return {"scenario": "latency", "variant": "highest rate with p99 ≤ 1 ms", "target": target.name,
            "metric": "msg/s", "median": best, "min": best, "max": best, "steps": steps,
            "capped": fail is None}


def _us(ns) -> str:
    return "-" if ns is None else f"{ns / 1000:.0f} µs"


# --- connection storm -------------------------------------------------------------------

def connect(ctx: Ctx, target: Target) -> list[dict]:
    c = ctx.profile["connect"]
    label = f"connect / {target.name}"
    ctx.progress.line(f"{label}: starting")
    server = g = None
    res = {"scenario": "connect", "variant": f"{c['rate']:,} conn/s", "target": target.name,
           "metric": "ms to WELCOME"}
    try:
        server = target.start(ctx.router_cpus, ctx.log_dir)
        count = max(1, int(c["rate"] * c["seconds"]))
        g = GenProc(ctx, f"connect-{target.name}", {"role": "storm", "url": server.url,
                                                    "ips": SOURCE_IPS})
        wait_ready([g], 30)
        sampler = Sampler(server, [g], ctx)
        reps = []
        for rep in range(c["repeats"]):
            ctx.progress.live(f"{label}: storm {rep + 1}/{c['repeats']}, {count} connections")
            a = sampler.snap()
            r = g.call({"cmd": "storm", "rate": c["rate"], "count": count},
                       timeout=c["seconds"] + 60)
            b = sampler.snap()
            lat = sorted(r.pop("latencies_ns"))
            sched = sorted(r.pop("sched_latencies_ns"))
            r.update(_pcts_ms(lat))
            r["from_schedule"] = _pcts_ms(sched)
            # where the time goes: TCP connect, upgrade (request → 101), HELLO → WELCOME
            r["phases"] = {k: _pcts_ms(sorted(v)) for k, v in r.pop("phases_ns", {}).items()}
            r["router_cpu_pct"] = 100 * (b[1] - a[1]) / (b[0] - a[0])
            r["gen_cpu_pct"] = 100 * (b[2] - a[2]) / (b[0] - a[0])
            r.update(sampler.other_load(a, b))
            reps.append(r)
            g.call({"cmd": "close_all"})
            time.sleep(0.3)
        res["repeats"] = reps
        for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            res[key] = summarize([r[key] for r in reps])
        res["median"], res["min"], res["max"] = (res["p99_ms"]["median"], res["p99_ms"]["min"],
                                                 res["p99_ms"]["max"])
        res["failures"] = sum(r["failures"] for r in reps)
        res["router_cpu_pct"] = statistics.median(r["router_cpu_pct"] for r in reps)
        res["gen_cpu_pct"] = statistics.median(r["gen_cpu_pct"] for r in reps)
        res.update(_other_summary(reps))
        ctx.progress.line(f"{label}: p50 {res['p50_ms']['median']:.2f} ms, p99 "
                          f"{res['p99_ms']['median']:.2f} ms, failures {res['failures']}{_other_text(res)}")
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        ctx.progress.line(f"{label}: FAILED: {res['error']}")
    finally:
        ctx.progress.done_live()
        if g is not None:
            g.close()
        if server is not None:
            server.stop()
    return [res]


def _pcts_ms(lat: list) -> dict:
    if not lat:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}

    def q(p):
        return lat[min(len(lat) - 1, max(0, math.ceil(p / 100 * len(lat)) - 1))] / 1e6
    return {"p50_ms": q(50), "p90_ms": q(90), "p99_ms": q(99), "max_ms": lat[-1] / 1e6}


# --- memory -----------------------------------------------------------------------------

def memory(ctx: Ctx, target: Target) -> list[dict]:
    c = ctx.profile["memory"]
    out = []
    for n in c["counts"]:
        label = f"memory {n:,} connections / {target.name}"
        ctx.progress.line(f"{label}: starting")
        res = {"scenario": "memory", "variant": f"{n:,} idle connections", "target": target.name,
               "metric": "bytes/connection", "connections": n}
        reps = []
        try:
            for rep in range(c["repeats"]):
                reps.append(_memory_once(ctx, target, n, c, label))
            res["repeats"] = reps
            s = summarize([r["bytes_per_connection"] for r in reps])
            res.update(s)
            res["rss_before_kb"] = reps[-1]["rss_before_kb"]
            res["rss_after_kb"] = reps[-1]["rss_after_kb"]
            res["failures"] = sum(r["failures"] for r in reps)
            ctx.progress.line(f"{label}: {s['median']:,.0f} bytes per connection "
                              f"(RSS {res['rss_before_kb']:,} → {res['rss_after_kb']:,} kB)")
        except Exception as exc:
            res["error"] = f"{type(exc).__name__}: {exc}"
            ctx.progress.line(f"{label}: FAILED: {res['error']}")
        out.append(res)
    return out


def _memory_once(ctx, target, n, c, label) -> dict:
    server = None
    gens = []
    try:
        server = target.start(ctx.router_cpus, ctx.log_dir)
        time.sleep(c["settle"])
        before = sum(procs.rss_kb(p) for p in server.pids())
        k = max(1, math.ceil(n / c["per_proc"]))
        for i, m in enumerate(_split(n, k)):
            ips = SOURCE_IPS[(i * 50) % 200:] + SOURCE_IPS[:(i * 50) % 200]
            gens.append(GenProc(ctx, f"memory-{target.name}-{i}", {
                "role": "idle", "url": server.url, "n": m, "ips": ips, "concurrency": 100,
                "read_buffer": 2048, "setup_timeout": 300}))
        ctx.progress.live(f"{label}: opening {n:,} connections in {k} process(es)")
        infos = wait_ready(gens, 300)
        opened = sum(i["open"] for i in infos)
        failures = sum(i["failures"] for i in infos)
        time.sleep(c["settle"])
        after = sum(procs.rss_kb(p) for p in server.pids())
        if opened == 0:
            raise ScenarioError(f"no connection opened: {infos[0].get('failure_samples')}")
        return {"opened": opened, "failures": failures, "rss_before_kb": before, "rss_after_kb": after,
                "bytes_per_connection": (after - before) * 1024 / opened,
                "failure_samples": [s for i in infos for s in i.get("failure_samples", [])][:3]}
    finally:
        ctx.progress.done_live()
        close_all(gens)
        if server is not None:
            server.stop()


# --- durable: persistence off vs on -------------------------------------------------------

def durable(ctx: Ctx, target: Target) -> list[dict]:
    """The same SET load (bench/durable.py) against ``target`` with --no-persistence and with a
    state file, at QoS fire and QoS commit; repeats interleaved between the two servers."""
    import uvloop

    from . import durable as drive
    from .targets import clasp_fast

    c = ctx.profile["durable"]
    state_file = ctx.log_dir / "durable-state.db"
    variants = {"persistence off": ["--no-persistence"], "persistence on": ["--persistence", "--state-file", str(state_file)]}
    out = []
    for name, args in variants.items():
        t = clasp_fast(target.workers, [*target.extra_args, *args])
        t.name = target.name
        label = f"durable / {name}"
        ctx.progress.line(f"{label}: starting")
        server = None
        try:
            server = t.start(ctx.router_cpus, ctx.log_dir)
            for qos in (0, 2):
                reps = [uvloop.run(drive.measure(server.url, qos, clients=c["clients"], window=c["window"],
                                                 block=c["block"], addresses=c["addresses"],
                                                 warmup=c["warmup"], duration=c["duration"]))
                        for _ in range(c["repeats"])]
                rates = [r["rate"] for r in reps]
                res = {"scenario": "durable", "target": target.name,
                       "variant": f"{name}, QoS {reps[0]['qos']}", "persistence": name.endswith("on"),
                       "qos": reps[0]["qos"], "median": statistics.median(rates), "min": min(rates),
                       "max": max(rates), "p99_ms": statistics.median(r["p99_ms"] for r in reps),
                       "p50_ms": statistics.median(r["p50_ms"] for r in reps), "repeats": reps}
                ctx.progress.line(f"{label}, QoS {res['qos']}: {rate_text(res['median'])} SET/s, "
                                  f"p99 {res['p99_ms']:.2f} ms")
                out.append(res)
        except Exception as exc:
            out.append({"scenario": "durable", "target": target.name, "variant": name,
                        "error": f"{type(exc).__name__}: {exc}"})
        finally:
            if server is not None:
                server.stop()
    return out
