"""The report: machine facts, the targets table, one table per kind of scenario,
the generator's CPU next to the router's, as Markdown, JSON and a PNG plot."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Optional

from . import _loadgen, procs
from .profiles import DESCRIPTIONS, SCENARIOS

FLOW_SCENARIOS = ["throughput", "fanout", "fanin", "state", "events", "metrics"]

# (scenario key, text of the target, how it is judged)
TARGETS = [
    ("throughput", "throughput 1 → 1", "≥ 500,000 msg/s delivered, no loss"),
    ("fanout", "fanout 1 → 100", "≥ 5,000,000 deliveries/s, no loss, per-subscriber order kept"),
    ("latency", "latency at 50k msg/s", "p50 ≤ 80 µs, p99 ≤ 400 µs"),
    ("latency", "highest rate with p99 ≤ 1 ms", "≥ 300,000 msg/s"),
    ("connect", "connect storm 1,000/s", "p99 ≤ 2.5 ms to WELCOME"),
    ("memory", "memory", "≤ 10 KB RSS per idle connection at 10,000 connections"),
    ("workers", "two workers, clients split across them",
     "CPU per delivered message ≤ 1.3× the one-worker figure"),
    ("throughput", "vs the ceiling server with per-tick writes",
     "≥ 0.8× on throughput, ≥ 0.5× on fanout"),
    ("metrics", "metrics on vs off, fan-out 1 → 100", "≤ 3% fewer deliveries/s"),
    ("durable", "persistence cost at QoS fire (issue 13)", "≤ 20% of SET throughput"),
    ("durable", "durable QoS-commit SETs (issue 13)", "≥ 50,000/s with group commit"),
    ("nodes", "two nodes through NATS: fan-out 1 → 100 (issue 17)", "≥ 0.5× the one-node deliveries/s"),
    ("nodes", "two nodes through NATS: SET latency (issue 17)", "p99 ≤ 2 ms at 10,000 SET/s"),
]


# --- machine facts ----------------------------------------------------------------------

def machine_facts() -> dict:
    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    commit = ""
    if procs.PACKAGE == "bench":            # run from a checkout: name the commit too
        try:
            root = str(procs.PACKAGE_ROOT)
            commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, timeout=5).stdout.strip()
            dirty = subprocess.run(["git", "-C", root, "status", "--porcelain"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            if commit and dirty:
                commit += " (with uncommitted changes)"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "picows": version("picows"),
        "uvloop": version("uvloop"),
        "cython": _loadgen.cython_version(),     # the Cython that compiled the bench
        "clasp_fast": version("clasp-fast"),
        "matplotlib": version("matplotlib"),
        "clasp_fast_commit": commit,
        "fd_limit": _fd_limit(),
        "hostname": platform.node(),
    }


def _fd_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- helpers ----------------------------------------------------------------------------

def rate_text(v) -> str:
    """A rate for people: 1.91M, 324k, 950 (– for none)."""
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def _us(ns) -> str:
    return "–" if ns is None else f"{ns / 1000:,.0f} µs"


def _pct(v) -> str:
    return "–" if v is None else f"{v:.0f}%"


def _other(r) -> str:
    a, b = r.get("other_router_cpu_pct"), r.get("other_gen_cpu_pct")
    if a is None and b is None:
        return "–"
    return f"{_pct(a)} / {_pct(b)}"


def summarize_med(vals) -> float:
    vals = sorted(v for v in vals if v is not None)
    return vals[len(vals) // 2] if vals else float("nan")


def _find(results, scenario, target, variant=None) -> Optional[dict]:
    for r in results:
        if r.get("scenario") == scenario and r.get("target") == target and \
                (variant is None or r.get("variant") == variant):
            return r
    return None


def _table_section(L: list, rows: list, title: str, columns: list, key_cells, cells) -> None:
    """A ``## title`` section with one table row per result (``cells(r)``); a failed result
    gets its ``key_cells(r)`` and the error."""
    if not rows:
        return
    L += [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        if _ok(r):
            row = cells(r)
        else:
            row = key_cells(r) + [f"failed: {r['error'][:80]}"]
            row += [""] * (len(columns) - len(row))
        L.append("| " + " | ".join(str(c) for c in row) + " |")
    L.append("")


def _ok(r) -> bool:
    return r is not None and "error" not in r


def _mmm(r, fmt=rate_text) -> str:
    if r is None:
        return "not run"
    if "error" in r:
        return "failed"
    if r.get("median") is None:
        return "–"
    if r.get("min") == r.get("max"):
        return fmt(r["median"])
    return f"{fmt(r['median'])} ({fmt(r['min'])}–{fmt(r['max'])})"


def limit(r) -> str:
    """What most likely limited a throughput measurement."""
    rc, gc = r.get("router_cpu_pct") or 0, r.get("gen_cpu_pct") or 0
    orr, og = r.get("other_router_cpu_pct") or 0, r.get("other_gen_cpu_pct") or 0
    if rc >= 90 and rc >= gc:
        return "router CPU"
    if gc >= 90:
        return "generator CPU"
    if orr >= 15 or og >= 15:
        return "other processes (busy machine)"
    return "round trips (in-flight window, wake-ups)"


# --- the targets table ------------------------------------------------------------------

def evaluate_targets(results: list[dict], main: str = "clasp-fast") -> list[dict]:
    rows = []

    def add(what, target, measured, met):
        rows.append({"scenario": what, "target": target, "measured": measured,
                     "status": "not measured" if met is None else ("met" if met else "missed")})

    r = _find(results, "throughput", main)
    if _ok(r) and r.get("median") is not None:
        add("throughput 1 → 1", TARGETS[0][2],
            f"{r['median']:,.0f} msg/s delivered, loss {r['loss']}",
            r["median"] >= 500_000 and r["loss"] == 0)
    else:
        add("throughput 1 → 1", TARGETS[0][2], "–", None)

    r = _find(results, "fanout", main, "1 → 100")
    if _ok(r) and r.get("median") is not None:
        add("fanout 1 → 100", TARGETS[1][2],
            f"{r['median']:,.0f} deliveries/s, loss {r['loss']}, out of order {r['out_of_order']}",
            r["median"] >= 5_000_000 and r["loss"] == 0 and r["out_of_order"] == 0)
    else:
        add("fanout 1 → 100", TARGETS[1][2], "–", None)

    r = _find(results, "latency", main, "50,000 msg/s")
    if _ok(r) and r.get("p50_ns") is not None:
        add("latency at 50k msg/s", TARGETS[2][2],
            f"p50 {_us(r['p50_ns'])}, p99 {_us(r['p99_ns'])}",
            r["p50_ns"] <= 80_000 and r["p99_ns"] <= 400_000)
    else:
        add("latency at 50k msg/s", TARGETS[2][2], "–", None)

    r = _find(results, "latency", main, "highest rate with p99 ≤ 1 ms")
    if _ok(r):
        v = r.get("median")
        capped_low = r.get("capped") and v is not None and v < 300_000
        add("highest rate with p99 ≤ 1 ms", TARGETS[3][2],
            "none passed" if v is None else f"{v:,} msg/s" + (" (the search's cap)" if r.get("capped") else ""),
            None if capped_low else (v is not None and v >= 300_000))
    else:
        add("highest rate with p99 ≤ 1 ms", TARGETS[3][2], "–", None)

    r = _find(results, "connect", main)
    if _ok(r) and r.get("p99_ms", {}).get("median") is not None:
        add("connect storm 1,000/s", TARGETS[4][2],
            f"p50 {r['p50_ms']['median']:.2f} ms, p99 {r['p99_ms']['median']:.2f} ms, "
            f"failures {r['failures']}",
            r["p99_ms"]["median"] <= 2.5 and r["failures"] == 0)
    else:
        add("connect storm 1,000/s", TARGETS[4][2], "–", None)

    r = _find(results, "memory", main, "10,000 idle connections")
    if _ok(r) and r.get("median") is not None:
        add("memory", TARGETS[5][2], f"{r['median']:,.0f} bytes per connection",
            r["median"] <= 10_000)
    else:
        rs = [x for x in results if x.get("scenario") == "memory" and x.get("target") == main and _ok(x)]
        add("memory", TARGETS[5][2],
            "; ".join(f"{x['median']:,.0f} bytes per connection at {x['connections']:,}" for x in rs)
            + (" (10,000 not run)" if rs else "–"), None)

    w1 = next((x for x in results if x.get("scenario") == "workers" and x.get("workers") == 1), None)
    w2 = next((x for x in results if x.get("scenario") == "workers" and x.get("workers") == 2), None)
    if _ok(w1) and _ok(w2) and w1["router_cpu_us_per_delivery"]["median"] and \
            w2["router_cpu_us_per_delivery"]["median"]:
        a = w1["router_cpu_us_per_delivery"]["median"]
        b = w2["router_cpu_us_per_delivery"]["median"]
        ok_loss = w2["loss"] == 0 and w1["loss"] == 0
        add("two workers", TARGETS[6][2],
            f"{a * 1000:.0f} ns → {b * 1000:.0f} ns CPU per delivery = {b / a:.2f}×"
            + ("" if ok_loss else f" (loss {w1['loss']} / {w2['loss']})"),
            b / a <= 1.3)
    else:
        add("two workers", TARGETS[6][2], "–", None)

    t_main = _find(results, "throughput", main)
    t_ceil = _find(results, "throughput", "ceiling-tick")
    f_main = _find(results, "fanout", main, "1 → 100")
    f_ceil = _find(results, "fanout", "ceiling-tick", "1 → 100")
    parts, met = [], None
    if _ok(t_main) and _ok(t_ceil) and t_ceil.get("median"):
        x = t_main["median"] / t_ceil["median"]
        parts.append(f"throughput {x:.2f}×")
        met = x >= 0.8
    if _ok(f_main) and _ok(f_ceil) and f_ceil.get("median"):
        y = f_main["median"] / f_ceil["median"]
        parts.append(f"fanout {y:.2f}×")
        met = (met if met is not None else True) and y >= 0.5
        if len(parts) < 2:
            met = None
    elif parts:
        met = None
    add("vs ceiling (per-tick writes)", TARGETS[7][2], ", ".join(parts) or "–", met)

    m_off = _find(results, "metrics", main, "1 → 100")
    m_on = _find(results, "metrics", main + "+metrics", "1 → 100")
    if _ok(m_off) and _ok(m_on) and m_off.get("median") and m_on.get("median") is not None:
        cost = 1 - m_on["median"] / m_off["median"]
        add("metrics on vs off", TARGETS[8][2],
            f"{m_off['median']:,.0f} → {m_on['median']:,.0f} deliveries/s = {cost * 100:+.1f}% cost",
            cost <= 0.03)
    else:
        add("metrics on vs off", TARGETS[8][2], "–", None)
    off = _find(results, "durable", main, "persistence off, QoS fire")
    on = _find(results, "durable", main, "persistence on, QoS fire")
    if _ok(off) and _ok(on) and off.get("median"):
        cost = 1 - on["median"] / off["median"]
        add("persistence cost at QoS fire", TARGETS[9][2],
            f"{rate_text(off['median'])} → {rate_text(on['median'])} SET/s = {cost * 100:.0f}% less",
            cost <= 0.20)
    else:
        add("persistence cost at QoS fire", TARGETS[9][2], "–", None)
    r = _find(results, "durable", main, "persistence on, QoS commit")
    if _ok(r) and r.get("median") is not None:
        add("durable QoS-commit SETs", TARGETS[10][2],
            f"{r['median']:,.0f} SET/s, p99 {r['p99_ms']:.2f} ms", r["median"] >= 50_000)
    else:
        add("durable QoS-commit SETs", TARGETS[10][2], "–", None)
    node_rows = [x for x in results if x.get("scenario") == "nodes" and _ok(x)]
    one = next((x for x in node_rows if x.get("nodes") == 1 and x.get("metric") != "latency"), None)
    two = next((x for x in node_rows if x.get("nodes") == 2 and x.get("metric") != "latency"), None)
    if one and two and one.get("median") and two.get("median") is not None:
        x = two["median"] / one["median"]
        add("two nodes: fan-out 1 → 100", TARGETS[11][2],
            f"{rate_text(two['median'])} vs {rate_text(one['median'])} deliveries/s = {x:.2f}×, "
            f"loss {two['loss']}", x >= 0.5 and two["loss"] == 0)
    else:
        add("two nodes: fan-out 1 → 100", TARGETS[11][2], "–", None)
    lat = next((x for x in node_rows if x.get("nodes") == 2 and x.get("metric") == "latency"), None)
    if lat and lat.get("p99_ns") is not None:
        at_rate = lat.get("rate") == 10_000
        add("two nodes: SET latency", TARGETS[12][2],
            f"p50 {_us(lat['p50_ns'])}, p99 {_us(lat['p99_ns'])} at {lat.get('rate', 0):,} SET/s, "
            f"lost {lat['lost']}" + ("" if at_rate else " (not the target's rate)"),
            (lat["p99_ns"] <= 2_000_000 and lat["lost"] == 0) if at_rate else None)
    else:
        add("two nodes: SET latency", TARGETS[12][2], "–", None)
    return rows


# --- Markdown ---------------------------------------------------------------------------

def markdown(data: dict) -> str:
    meta, results = data["meta"], data["results"]
    targets_run = data["targets_run"]
    main = "clasp-fast"
    L = []
    L.append("# clasp-fast benchmark report")
    L.append("")
    L.append(f"- date: {meta['date']}  ·  profile: **{meta['profile']}**  ·  command: "
             f"`{meta['command']}`  ·  wall time {meta.get('elapsed_s', 0):.0f} s")
    m = meta["machine"]
    L.append(f"- machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, kernel "
             f"{m['kernel']}, fd limit {m['fd_limit']}")
    L.append(f"- software: Python {m['python']}, picows {m['picows']}, uvloop {m['uvloop']}, "
             f"Cython {m['cython']}, clasp-fast {m['clasp_fast']}"
             + (f" (commit {m['clasp_fast_commit']})" if m.get("clasp_fast_commit") else ""))
    L.append(f"- pinning: {meta['pinning']}")
    la = meta.get("loadavg_start"), meta.get("loadavg_end")
    L.append(f"- load average at start / end: {la[0]} / {la[1]} (other work on the machine "
             f"makes every number noisier)")
    if meta.get("interrupted"):
        L.append("- **interrupted**: the run was stopped early; missing rows were not measured")
    L.append("")
    L.append("Targets under test: " + "; ".join(f"**{t['name']}** = {t['description']}"
                                               for t in targets_run))
    L.append("")

    L.append("## Targets (issues 4, 13, 17)")
    L.append("")
    L.append("| scenario | target | measured (clasp-fast, medians) | status |")
    L.append("|---|---|---|---|")
    for row in data["targets"]:
        mark = {"met": "✅ met", "missed": "❌ missed", "not measured": "– not measured"}[row["status"]]
        L.append(f"| {row['scenario']} | {row['target']} | {row['measured']} | {mark} |")
    L.append("")

    # throughput-style
    names = [t["name"] for t in targets_run if t["name"] != "clasp-fast-2w"]
    flow_rows = [r for r in results if r.get("scenario") in FLOW_SCENARIOS]
    if flow_rows or any(s in data["scenarios_run"] for s in FLOW_SCENARIOS):
        L.append("## Throughput scenarios")
        L.append("")
        L.append("Deliveries per second (messages received by all subscribers together), median of "
                 "the repeats with (min–max). `÷ ceiling` = clasp-fast divided by the per-tick "
                 "ceiling server. Loss and order are summed over all repeats; CPU is the share of "
                 "one core during the measurement window (clasp-fast's row); *other load* is the "
                 "most that other processes on the machine took from the router's / the "
                 "generator's core in any repeat (/proc/stat minus our processes) — when it is not "
                 "near 0 the numbers are disturbed.")
        L.append("")
        hdr = "| scenario | variant | " + " | ".join(names) + " | ÷ ceiling-tick | loss | out of order | router CPU | generator CPU | other load (router / gen core) | limited by |"
        L.append(hdr)
        L.append("|" + "---|" * (hdr.count("|") - 1))
        variants = []
        for r in flow_rows:
            key = (r["scenario"], r["variant"])
            if key not in variants:
                variants.append(key)
        for sc, var in variants:
            cells = [_mmm(_find(results, sc, n, var)) for n in names]
            mr = _find(results, sc, main, var)
            cr = _find(results, sc, "ceiling-tick", var)
            ratio = (f"{mr['median'] / cr['median']:.2f}×" if _ok(mr) and _ok(cr) and cr.get("median")
                     and mr.get("median") else "–")
            if _ok(mr):
                tail = (f"{mr['loss']} | {mr['out_of_order']} | {_pct(mr['router_cpu_pct'])} | "
                        f"{_pct(mr['gen_cpu_pct'])} | {_other(mr)} | {limit(mr)}")
            else:
                tail = "– | – | – | – | – | –"
            L.append(f"| {sc} | {var} | " + " | ".join(cells) + f" | {ratio} | {tail} |")
        L.append("")
        L.append("Server CPU per delivery (ns; all server processes, median of the repeats) — "
                 "the efficiency comparison that does not depend on where the pipeline stalls:")
        L.append("")
        L.append("| scenario | variant | " + " | ".join(names) + " | clasp-fast ÷ ceiling-tick |")
        L.append("|---|---|" + "---|" * (len(names) + 1))
        for sc, var in variants:
            cells = []
            for n in names:
                r = _find(results, sc, n, var)
                v = r["router_cpu_us_per_delivery"]["median"] if _ok(r) else None
                cells.append("–" if v is None else f"{v * 1000:.0f}")
            mr, cr = _find(results, sc, main, var), _find(results, sc, "ceiling-tick", var)
            a = mr["router_cpu_us_per_delivery"]["median"] if _ok(mr) else None
            b = cr["router_cpu_us_per_delivery"]["median"] if _ok(cr) else None
            L.append(f"| {sc} | {var} | " + " | ".join(cells) +
                     f" | {f'{a / b:.2f}×' if a and b else '–'} |")
        L.append("")
        others = [r for r in flow_rows if r["target"] != main and _ok(r)]
        if others:
            L.append("Baselines and peers, loss / out of order / router CPU / generator CPU:")
            L.append("")
            for r in others:
                L.append(f"- {r['scenario']} {r['variant']} on {r['target']}: loss {r['loss']}, "
                         f"out of order {r['out_of_order']}, router CPU {_pct(r['router_cpu_pct'])}, "
                         f"generator CPU {_pct(r['gen_cpu_pct'])}")
            L.append("")

    # latency
    lat = [r for r in results if r.get("scenario") == "latency"]
    if lat or "latency" in data["scenarios_run"]:
        L.append("## Latency (publish → delivery, from the scheduled send time)")
        L.append("")
        L.append("| target | rate | p50 | p90 | p99 | p99.9 | max | samples | lost | router CPU | generator CPU | other load |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in lat:
            if "rate" not in r:
                continue
            if not _ok(r):
                L.append(f"| {r['target']} | {r['variant']} | failed | | | | | | | | | |")
                continue
            L.append(f"| {r['target']} | {r['rate']:,} msg/s | {_us(r['p50_ns'])} | {_us(r['p90_ns'])} | "
                     f"{_us(r['p99_ns'])} | {_us(r['p999_ns'])} | {_us(r['max_ns'])} | {r['samples']:,} | "
                     f"{r['lost']} | {_pct(r['router_cpu_pct'])} | {_pct(r['gen_cpu_pct'])} | {_other(r)} |")
        L.append("")
        for r in lat:
            if r.get("variant") == "highest rate with p99 ≤ 1 ms":
                steps = ", ".join(f"{s['rate']:,}: p99 {_us(s['p99_ns'])}{'' if s['pass'] else ' ✗'}"
                                  f" (other load {_other(s)})" for s in r.get("steps", []))
                v = r.get("median")
                L.append(f"- **{r['target']}** highest rate with p99 ≤ 1 ms: "
                         f"**{'none' if v is None else f'{v:,} msg/s'}**"
                         f"{' (the search cap; it may go higher)' if r.get('capped') else ''} — steps: {steps}")
            elif "error" in r:
                L.append(f"- **{r['target']}** latency failed: {r['error']}")
        L.append("")

    # connect
    con = [r for r in results if r.get("scenario") == "connect"]
    if con:
        L.append("## Connection storm (TCP connect → WELCOME)")
        L.append("")
        L.append("| target | rate | connections | p50 | p90 | p99 | max | failures | router CPU | generator CPU | other load |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in con:
            if not _ok(r):
                L.append(f"| {r['target']} | {r['variant']} | failed: {r['error'][:80]} | | | | | | | | |")
                continue
            n = r["repeats"][0]["count"]

            def ms(key):
                return f"{r[key]['median']:.2f} ms" if r[key]["median"] is not None else "–"
            L.append(f"| {r['target']} | {r['variant']} | {n:,} × {len(r['repeats'])} | {ms('p50_ms')} | "
                     f"{ms('p90_ms')} | {ms('p99_ms')} | {ms('max_ms')} | {r['failures']} | "
                     f"{_pct(r['router_cpu_pct'])} | {_pct(r['gen_cpu_pct'])} | {_other(r)} |")
        L.append("")
        L.append("Where the time goes (median over storms of each phase's p50 / p99): TCP connect, "
                 "upgrade request → 101, HELLO → WELCOME.")
        L.append("")
        for r in con:
            if not _ok(r) or not r["repeats"][0].get("phases"):
                continue
            parts = []
            for ph in ("tcp_connect", "upgrade", "hello_to_welcome"):
                p50 = summarize_med([x["phases"][ph]["p50_ms"] for x in r["repeats"]])
                p99 = summarize_med([x["phases"][ph]["p99_ms"] for x in r["repeats"]])
                parts.append(f"{ph.replace('_', ' ')} {p50:.2f} / {p99:.2f} ms")
            L.append(f"- {r['target']}: " + ", ".join(parts))
        L.append("")

    # memory
    _table_section(
        L, [r for r in results if r.get("scenario") == "memory"], "Memory per idle connection (router RSS)",
        ["target", "connections", "bytes per connection", "RSS before → after (all server processes)"],
        lambda r: [r["target"], r["variant"]],
        lambda r: [r["target"], f"{r['connections']:,}", _mmm(r, lambda v: f"{v:,.0f}"),
                   f"{r['rss_before_kb']:,} kB → {r['rss_after_kb']:,} kB"])

    # deployment variants, each next to its plain counterpart (bench/edge_variants.py)
    ev = [r for r in results if r.get("scenario") in ("tls_fanout", "deflate_fanout")]
    if ev:
        L.append("## wss:// and permessage-deflate fan-out, next to plain (target ≥ 0.5×)")
        L.append("")
        L.append("| scenario | variant | target | deliveries/s | × plain | loss | router CPU | compressions per message |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in ev:
            if not _ok(r):
                L.append(f"| {r['scenario']} | {r['variant']} | {r['target']} | failed: {r['error'][:80]} | | | | |")
                continue
            ratio = f"{r['ratio_to_plain']:.2f}×" if "ratio_to_plain" in r else "(plain)"
            cpm = f"{r['compressions_per_message']:.3f}" if "compressions_per_message" in r else "–"
            L.append(f"| {r['scenario']} | {r['variant']} | {r['target']} | {_mmm(r)} | {ratio} | "
                     f"{r.get('loss', '–')} | {_pct(r.get('router_cpu_pct'))} | {cpm} |")
        L.append("")

    # workers
    wk = [r for r in results if r.get("scenario") == "workers"]
    if wk:
        L.append("## Workers (fan-out, all router processes' CPU: supervisor + workers)")
        L.append("")
        L.append("| workers | deliveries/s | router CPU | router ns per delivery | loss | out of order | connections per process |")
        L.append("|---|---|---|---|---|---|---|")
        for r in wk:
            if not _ok(r):
                L.append(f"| {r.get('workers')} | failed: {r['error'][:80]} | | | | | |")
                continue
            ns = r["router_cpu_us_per_delivery"]
            split = r.get("connections_per_process")
            L.append(f"| {r['workers']} | {_mmm(r)} | {_pct(r['router_cpu_pct'])} | "
                     f"{_mmm(ns, lambda v: f'{v * 1000:.0f}')} | {r['loss']} | {r['out_of_order']} | "
                     f"{', '.join(f'pid {k}: {v}' for k, v in split.items()) if split else 'one process'} |")
        L.append("")

    # nodes
    _table_section(
        L, [r for r in results if r.get("scenario") == "nodes" and r.get("metric") != "latency"],
        "Two nodes through NATS (fan-out, publisher on one node, subscribers on the other)",
        ["nodes", "variant", "deliveries/s", "router CPU (all nodes)", "loss", "out of order"],
        lambda r: [r.get("nodes", "?"), r.get("variant")],
        lambda r: [r["nodes"], r["variant"], _mmm(r), _pct(r["router_cpu_pct"]), r["loss"], r["out_of_order"]])
    _table_section(
        L, [r for r in results if r.get("scenario") == "nodes" and r.get("metric") == "latency"],
        "SET latency across two nodes (publisher on one node, subscriber on the other)",
        ["nodes", "rate", "p50", "p99", "p99.9", "lost"],
        lambda r: [r.get("nodes", "?"), r.get("variant")],
        lambda r: [r["nodes"], r["variant"], _us(r["p50_ns"]), _us(r["p99_ns"]), _us(r["p999_ns"]), r["lost"]])

    # durable
    dur = [r for r in results if r.get("scenario") == "durable"]
    if dur:
        L.append("## Persistence (SET/s answered, and send → answer latency)")
        L.append("")
        L.append("The answer is the writer's own echo at QoS fire and its ACK at QoS commit (with "
                 "persistence on, sent once the SET's transaction is on disk). Generator: "
                 "bench/durable.py in the bench process, not pinned.")
        L.append("")
        L.append("| target | variant | SET/s | p50 | p99 |")
        L.append("|---|---|---|---|---|")
        for r in dur:
            if not _ok(r):
                L.append(f"| {r['target']} | {r['variant']} | failed: {r['error'][:80]} | | |")
                continue
            L.append(f"| {r['target']} | {r['variant']} | {_mmm(r)} | {r['p50_ms']:.2f} ms | "
                     f"{r['p99_ms']:.2f} ms |")
        L.append("")

    from .auth import markdown as auth_markdown
    L += auth_markdown(results, _mmm)

    # generator vs router
    L.append("## Is the generator the bottleneck?")
    L.append("")
    L.append("CPU share of one core during the measurement windows (utime+stime from /proc/<pid>/stat; "
             "router = every process of the server, generator = every load-generator process). "
             "The router and the generator each have a core of their own. A router near 100% with "
             "the generator below it means the router is the limit; the ceiling rows show what the "
             "same generator reaches against a server that does no CLASP work.")
    L.append("")
    L.append("| scenario | target | deliveries/s | router CPU | generator CPU | other load (router / gen core) | limited by |")
    L.append("|---|---|---|---|---|---|---|")
    for r in results:
        if _ok(r) and r.get("router_cpu_pct") is not None and r.get("scenario") in FLOW_SCENARIOS + ["workers"]:
            L.append(f"| {r['scenario']} {r['variant']} | {r['target']} | {rate_text(r.get('median'))} | "
                     f"{_pct(r['router_cpu_pct'])} | {_pct(r['gen_cpu_pct'])} | {_other(r)} | {limit(r)} |")
    L.append("")

    skipped = [s for s in SCENARIOS if s not in data["scenarios_run"]]
    L.append("## Scenarios")
    L.append("")
    for s in SCENARIOS:
        state = "run" if s in data["scenarios_run"] else "not run (excluded by --only/--skip or the profile)"
        L.append(f"- `{s}`: {DESCRIPTIONS[s]} — {state}")
    L.append("")
    errs = [r for r in results if "error" in r]
    if errs or data.get("notes"):
        L.append("## Errors and notes")
        L.append("")
        for r in errs:
            L.append(f"- {r.get('scenario')} {r.get('variant', '')} on {r.get('target')}: "
                     f"{r['error'].splitlines()[0][:300]}")
        for n in data.get("notes", []):
            L.append(f"- {n}")
        L.append("")
    if skipped:
        pass
    L.append(f"Raw numbers (every repeat, histograms' percentiles, CPU): `{data.get('json_name', 'the JSON file')}`.")
    L.append("")
    return "\n".join(L)


# --- the plot ---------------------------------------------------------------------------

def plot(data: dict, path: Path) -> Optional[str]:
    """Writes the PNG; returns None, or why it was skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("matplotlib is not installed, so no plot was drawn: `pip install matplotlib` "
                "(or `pip install -e '.[bench]'`) and run again")
    results = data["results"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    # throughput-style bars
    ax = axes[0]
    variants = []
    for r in results:
        if r.get("scenario") in FLOW_SCENARIOS and _ok(r):
            key = (r["scenario"], r["variant"])
            if key not in variants:
                variants.append(key)
    names = [t["name"] for t in data["targets_run"] if t["name"] != "clasp-fast-2w"]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for j, (sc, var) in enumerate(variants):
            r = _find(results, sc, name, var)
            if _ok(r) and r.get("median"):
                xs.append(j + i * width)
                ys.append(r["median"])
                lo.append(r["median"] - r["min"])
                hi.append(r["max"] - r["median"])
        if xs:
            ax.bar(xs, ys, width, yerr=[lo, hi], label=name, capsize=2)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(variants))])
    ax.set_xticklabels([f"{sc}\n{var.split(', ')[0]}" for sc, var in variants], fontsize=7,
                       rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("deliveries / s (median, min–max)")
    ax.set_title("Throughput scenarios")
    if variants:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    # latency lines
    ax = axes[1]
    for name in [t["name"] for t in data["targets_run"]]:
        pts = sorted((r["rate"], r) for r in results
                     if r.get("scenario") == "latency" and r.get("target") == name and "rate" in r and _ok(r))
        if not pts:
            continue
        steps = []
        for r in results:
            if r.get("scenario") == "latency" and r.get("target") == name and r.get("steps"):
                steps = [(s["rate"], s) for s in r["steps"] if s.get("p99_ns")]
        rates = [p[0] for p in pts]
        for key, style in (("p50_ns", "-o"), ("p99_ns", "-s"), ("p999_ns", ":^")):
            ax.plot(rates, [p[1][key] / 1000 if p[1][key] else None for p in pts], style,
                    label=f"{name} {key[:-3]}")
        if steps:
            steps.sort()
            ax.plot([s[0] for s in steps], [s[1]["p99_ns"] / 1000 for s in steps], "x--",
                    label=f"{name} p99 (search)", alpha=0.6)
    ax.axhline(1000, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (msg/s)")
    ax.set_ylabel("latency (µs)")
    ax.set_title("Publish → delivery latency")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(f"clasp-fast bench ({data['meta']['profile']}, {data['meta']['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write(data: dict, out_dir: Path, stamp: str, want_plot: bool = True) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"bench-{stamp}"
    paths = {"json": base.with_suffix(".json"), "md": base.with_suffix(".md"),
             "png": base.with_suffix(".png")}
    data["json_name"] = paths["json"].name
    notes = data.setdefault("notes", [])
    if want_plot:
        why = plot(data, paths["png"])
        if why:
            notes.append(why)
            paths.pop("png")
    else:
        notes.append("plot skipped (--no-plot)")
        paths.pop("png")
    paths["json"].write_text(json.dumps(data, indent=1, default=str))
    paths["md"].write_text(markdown(data))
    for kind, p in paths.items():
        latest = out_dir / f"latest.{kind}"
        try:
            latest.write_bytes(p.read_bytes())
        except OSError:
            pass
    return paths
