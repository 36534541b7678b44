"""``python -m bench`` / ``clasp-fast-bench``: run the benchmark suite, write the report.

    python -m bench                 # the full run (≈ 11 minutes)
    python -m bench --quick         # every scenario, smaller and shorter (< 2 minutes)
    python -m bench --smoke         # the test suite's: a few tiny scenarios (< 30 s)
    python -m bench --only latency,connect --peer 'other-router --port {port}'

Reports go to ./bench-results/ in the current directory (or --out DIR).  See
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import shlex
import sys
import time
from pathlib import Path


def _native_ready() -> None:
    """The native modules (clasp-fast's and the load generator's) import, or: when this is the
    repository's ``bench`` over a checkout that was installed with ``pip install .`` (not -e),
    run the installed ``clasp_fast_bench`` instead (``-P``: not this checkout's clasp_fast);
    otherwise one line saying what to do, exit 2."""
    try:
        import clasp_fast._native.router  # noqa: F401
        from . import _loadgen  # noqa: F401
        return
    except ImportError:
        pass
    here = Path(__file__).resolve().parent
    spec = importlib.util.find_spec("clasp_fast_bench") if __package__ == "bench" else None
    installed = spec is not None and spec.origin and Path(spec.origin).resolve().parent != here
    if installed and not sys.flags.safe_path and sys.version_info >= (3, 11):
        os.execv(sys.executable, [sys.executable, "-P", "-m", "clasp_fast_bench", *sys.argv[1:]])
    print(f"the native extensions are not built in {here.parent}: run `pip install -e .` there "
          f"(or `pip install .`, then `clasp-fast-bench` from any other directory)", file=sys.stderr)
    sys.exit(2)


_native_ready()

from . import edge_variants, procs, report, scenarios, targets  # noqa: E402  (after the check above)
from .profiles import DESCRIPTIONS, PROFILES, SCENARIOS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="clasp-fast-bench" if procs.PACKAGE != "bench" else "python -m bench",
        description="clasp-fast benchmark suite: throughput, fan-out, fan-in, state, events, "
                    "latency, connection storm, memory and workers, against clasp-fast, a "
                    "ceiling server and optionally another CLASP router.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Scenarios: " + ", ".join(SCENARIOS))
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller counts, shorter runs (< 2 minutes)")
    size.add_argument("--smoke", action="store_true",
                      help="tiny run used by the test suite (throughput, fanout, latency; < 30 s)")
    ap.add_argument("--only", default="", help="comma-separated scenarios to run")
    ap.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    ap.add_argument("--peer", default="", metavar="'COMMAND {port}'",
                    help="also run every scenario (but workers) against the CLASP router this shell "
                         "command starts; {port} is replaced by a free port ({host} by 127.0.0.1)")
    ap.add_argument("--peer-name", default="peer", help="name of the peer in the report")
    ap.add_argument("--no-baselines", action="store_true", help="do not run the ceiling servers")
    ap.add_argument("--baseline-scenarios", default="",
                    help="comma-separated scenarios both ceiling servers run, at full size "
                         "(default: the profile's choice)")
    ap.add_argument("--router-args", default="",
                    help="extra clasp-fast arguments, e.g. '--buffer-size 2000'")
    ap.add_argument("--repeats", type=int, help="repeats per measurement (default: the profile's)")
    ap.add_argument("--duration", type=float, help="seconds measured per repeat")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per repeat")
    ap.add_argument("--window", type=int,
                    help="messages in flight per subscriber (default 1000 = clasp-fast's buffer_size; "
                         "more and the router rightly drops for a momentarily slow subscriber)")
    ap.add_argument("--router-cpu", default="1", help="CPU(s) the server is pinned to (taskset list)")
    ap.add_argument("--gen-cpu", default="0", help="CPU(s) the load generator is pinned to")
    ap.add_argument("--no-pin", action="store_true", help="do not pin anything")
    ap.add_argument("--out", default="bench-results",
                    help="directory for the report (Markdown, JSON, PNG) and logs "
                         "(default: ./bench-results in the current directory)")
    ap.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    return ap


def _cpus(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    profile_name = "smoke" if args.smoke else ("quick" if args.quick else "full")
    profile = copy.deepcopy(PROFILES[profile_name])
    for key in ("repeats", "duration", "warmup", "window"):
        if getattr(args, key) is not None:
            profile[key] = getattr(args, key)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or profile.get("smoke_only") or SCENARIOS
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = [s for s in list(only) + list(skip) if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    to_run = [s for s in SCENARIOS if s in only and s not in skip]
    if args.baseline_scenarios:
        profile["baselines"] = {s.strip(): ["tick", "send"] for s in args.baseline_scenarios.split(",")
                                if s.strip() and s.strip() != "workers"}
        profile["baseline_sizes"] = {"latency_search": True}
    if args.no_baselines:
        profile["baselines"] = {}

    # pinning: router on one core, generator (and this controller) on the other
    n_cpu = procs.cpu_count()
    if args.no_pin or n_cpu < 2:
        router_cpus = gen_cpus = None
        pinning = "none" + (" (fewer than 2 CPUs)" if n_cpu < 2 and not args.no_pin else "")
    else:
        router_cpus, gen_cpus = _cpus(args.router_cpu), _cpus(args.gen_cpu)
        os.sched_setaffinity(0, set(gen_cpus))
        pinning = f"router on CPU {args.router_cpu}, load generator and controller on CPU {args.gen_cpu}"

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out).resolve()     # the servers run in another directory
    log_dir = out_dir / f"logs-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs.install_handlers()
    progress = scenarios.Progress()
    ctx = scenarios.Ctx(profile, router_cpus, gen_cpus, log_dir, progress)

    main_t = targets.clasp_fast(1, shlex.split(args.router_args))
    baselines = {"tick": targets.ceiling("tick"), "send": targets.ceiling("send")}
    peer = targets.peer(args.peer, args.peer_name) if args.peer else None
    modes_used = {m for sc, ms in profile["baselines"].items() if sc in to_run for m in ms}
    targets_run = [main_t] + [baselines[m] for m in ("tick", "send") if m in modes_used] + \
        ([peer] if peer else [])

    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "profile": profile_name,
            "command": " ".join([build_parser().prog] + [shlex.quote(a) for a in (argv or sys.argv[1:])]),
            "machine": report.machine_facts(), "pinning": pinning, "loadavg_start": procs.loadavg()}
    progress.line(f"clasp-fast bench, profile {profile_name}: {', '.join(to_run)}; {pinning}; "
                  f"logs in {log_dir}")
    t0 = time.monotonic()
    results: list = []
    interrupted = False
    try:
        for sc in to_run:
            if sc == "workers":
                w_targets = {}

                def make(w):
                    w_targets[w] = targets.clasp_fast(w, shlex.split(args.router_args))
                    if main_t.tails is not None:
                        w_targets[w].tails = main_t.tails
                    return w_targets[w]
                results += scenarios.workers(ctx, make)
                continue
            if sc == "metrics":
                on = targets.clasp_fast(1, shlex.split(args.router_args) + ["--metrics-enabled"],
                                        name="clasp-fast+metrics")
                on.tails = main_t.tails
                results += scenarios.metrics(ctx, main_t, on)
                continue
            if sc in edge_variants.SCENARIOS:
                results += edge_variants.SCENARIOS[sc](ctx, shlex.split(args.router_args))
                continue
            sizes = profile.get("baseline_sizes", {})
            modes = profile["baselines"].get(sc, [])
            if sc in scenarios.FLOW_SCENARIOS:
                def targets_for(flow, sc=sc, modes=modes, sizes=sizes):
                    ts = [main_t]
                    for mode in modes:
                        if sc == "fanout" and sizes.get("fanout") and flow.subs not in sizes["fanout"]:
                            continue
                        ts.append(baselines[mode])
                    return ts + ([peer] if peer is not None else [])
                results += scenarios.flows_scenario(ctx, sc, targets_for)
            elif sc == "latency":
                plans = [(main_t, None, True)]
                plans += [(baselines[m], sizes.get("latency_rates"), sizes.get("latency_search", True))
                          for m in modes]
                if peer is not None:
                    plans.append((peer, None, True))
                results += scenarios.latency(ctx, plans)
            else:
                fn = getattr(scenarios, sc)
                for t in [main_t] + [baselines[m] for m in modes] + ([peer] if peer else []):
                    results += fn(ctx, t)
    except KeyboardInterrupt:
        interrupted = True
        progress.line("interrupted: stopping every process and writing what was measured")
    finally:
        procs.cleanup()

    meta["elapsed_s"] = time.monotonic() - t0
    meta["loadavg_end"] = procs.loadavg()
    meta["interrupted"] = interrupted
    meta["spawned_pids"] = list(procs.spawned)
    meta["left_running"] = [p for p in procs.spawned if procs.pid_alive(p)]
    data = {"meta": meta, "profile": profile, "scenarios_run": to_run,
            "scenarios": {s: {"description": DESCRIPTIONS[s], "run": s in to_run} for s in SCENARIOS},
            "targets_run": [{"name": t.name, "description": t.description} for t in targets_run],
            "results": results, "notes": []}
    data["targets"] = report.evaluate_targets(results)
    paths = report.write(data, out_dir, stamp, want_plot=not args.no_plot)
    for note in data["notes"]:
        progress.line(f"note: {note}")
    progress.line("report: " + ", ".join(str(p) for p in paths.values()))
    md = report.markdown(data)
    head, _, rest = md.partition("## Targets (issue 4)")
    print((head + "## Targets (issue 4)" + rest.split("\n## ", 1)[0]).rstrip())
    if interrupted:
        return 130
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
