"""Scenarios of the deployment features, each measured next to its plain counterpart in the
same run (their repeats interleaved, so a busy machine hits both alike):

* ``tls_fanout``: fan-out 1 → N over ``wss://`` against the same over ``ws://`` (target:
  at least half the plain rate);
* ``deflate_fanout``: fan-out 1 → N of compressible values (512 bytes) to subscribers that
  negotiated permessage-deflate, against plain subscribers of the same values (target: at
  least half); the server's ``clasp_deflate_compressions_total`` shows one compression per
  broadcast (``compressions_per_message`` in the result);
* ``tls_memory``: router RSS per idle ``wss://`` connection (target: 16 KB at 10,000),
  next to the same over ``ws://``.

The TLS server gets a throw-away self-signed certificate made with the ``openssl`` command.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from . import targets
from .scenarios import Ctx, Flow, memory, run_flows, sub_procs_for


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "bench-cert.pem", directory / "bench-key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
    return cert, key


def tls_target(ctx: Ctx, router_args: list) -> targets.Target:
    cert, key = self_signed(ctx.log_dir)
    return targets.clasp_fast(1, [*router_args, "--tls-cert", str(cert), "--tls-key", str(key)],
                              name="clasp-fast-wss", scheme="wss")


def _fanout_flow(ctx: Ctx, scenario: str, variant: str, n: int, **kw) -> Flow:
    c = ctx.profile["fanout"]
    return Flow(scenario, variant, subs=n, patterns=["/bench/**", "/bench/fan/*"],
                sub_procs=sub_procs_for(n, c.get("procs_per", 250)), address="/bench/fan/x",
                block=c["block"], window=ctx.profile["window"], **kw)


def _ratios(results: list[dict], ctx: Ctx, what: str) -> list[dict]:
    """Adds ``ratio_to_plain`` (median / plain median) to the variant's result."""
    plain, variant = results
    if "median" in plain and "median" in variant and plain["median"]:
        variant["ratio_to_plain"] = variant["median"] / plain["median"]
        ctx.progress.line(f"{what}: {variant['ratio_to_plain']:.2f}× the plain fan-out")
    return results


def tls_fanout(ctx: Ctx, router_args: list) -> list[dict]:
    out = []
    for n in ctx.profile["edge"]["fanout_subs"]:
        plain = targets.clasp_fast(1, router_args, name="clasp-fast-ws")
        out += _ratios(run_flows(ctx, [
            (plain, _fanout_flow(ctx, "tls_fanout", f"1 → {n} ws://", n)),
            (tls_target(ctx, router_args), _fanout_flow(ctx, "tls_fanout", f"1 → {n} wss://", n)),
        ]), ctx, f"wss:// fan-out 1 → {n}")
    return out


def deflate_fanout(ctx: Ctx, router_args: list) -> list[dict]:
    out = []
    size = ctx.profile["edge"]["value_size"]
    for n in ctx.profile["edge"]["fanout_subs"]:
        plain = targets.clasp_fast(1, router_args, name="clasp-fast-plain", metrics=True)
        deflate = targets.clasp_fast(1, [*router_args, "--compression"], name="clasp-fast-deflate",
                                     metrics=True)
        results = _ratios(run_flows(ctx, [
            (plain, _fanout_flow(ctx, "deflate_fanout", f"1 → {n} plain, {size}-byte values", n,
                                 value_size=size)),
            (deflate, _fanout_flow(ctx, "deflate_fanout", f"1 → {n} permessage-deflate, "
                                   f"{size}-byte values", n, value_size=size, deflate=True)),
        ]), ctx, f"compressed fan-out 1 → {n}")
        r = results[1]
        if "compressions_per_message" in r:
            ctx.progress.line(f"compressed fan-out 1 → {n}: {r['compressions_per_message']:.3f} "
                              f"compressions per published message")
        out += results
    return out


def tls_memory(ctx: Ctx, router_args: list) -> list[dict]:
    plain = targets.clasp_fast(1, router_args, name="clasp-fast-ws")
    return memory(ctx, plain) + memory(ctx, tls_target(ctx, router_args))


SCENARIOS = {"tls_fanout": tls_fanout, "deflate_fanout": deflate_fanout, "tls_memory": tls_memory}
