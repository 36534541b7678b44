"""The ``auth`` scenario: token mode against open mode in one run (issue 14).

The flows of ``fanout`` (SET 1 → 100) and ``throughput`` (SET 1 → 1) run against two
clasp-fast servers, one in open mode and one in token mode, their repeats interleaved
(open, token, open, token, ...) so a busy machine disturbs both alike.  In token mode every
generator connection sends HELLO with a token whose scopes are ``write:/bench/**`` and
``read:/bench/**``: not everything, so each SET takes the cached per-(session, address)
write decision and each SUBSCRIBE the whole-pattern read check, as a real deployment
would.  The report shows token ÷ open per flow (the target: within 5%).
"""
from __future__ import annotations

from clasp_fast.auth.tokens import new_token, token_line

from .targets import Target, clasp_fast

SCOPES = ["write:/bench/**", "read:/bench/**"]


def run(ctx, target: Target) -> list[dict]:
    from .scenarios import Flow, run_flows, sub_procs_for

    c = ctx.profile["auth"]
    token = new_token()
    path = ctx.log_dir / "bench-tokens.txt"
    path.write_text(token_line("bench", token, SCOPES, None) + "\n")
    open_t = clasp_fast(target.workers, target.extra_args)
    open_t.name = "clasp-fast open"
    token_t = clasp_fast(target.workers, [*target.extra_args, "--auth-tokens", str(path)])
    token_t.name = "clasp-fast token"
    token_t.hello_token = token
    flows = [
        Flow("auth", f"SET 1 → {c['subs']}", subs=c["subs"], patterns=["/bench/**", "/bench/fan/*"],
             sub_procs=sub_procs_for(c["subs"]), address="/bench/fan/x", block=c["fan_block"],
             window=ctx.profile["window"]),
        Flow("auth", "SET 1 → 1", subs=1, patterns=["/bench/**"], address="/bench/tp/x",
             block=c["block"], window=ctx.profile["window"]),
    ]
    out = []
    for flow in flows:
        out += run_flows(ctx, [(open_t, flow), (token_t, flow)])
    return out


def markdown(results: list[dict], mmm) -> list[str]:
    """The report's section: open vs token per flow, and token ÷ open."""
    rows = [r for r in results if r.get("scenario") == "auth"]
    if not rows:
        return []
    L = ["## Token mode vs open mode", "",
         "Deliveries per second, median (min–max) of the interleaved repeats; the token's scopes "
         f"are {', '.join(SCOPES)} (bench/auth.py). Target: token ÷ open ≥ 0.95.", "",
         "| flow | open | token | token ÷ open |", "|---|---|---|---|"]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        pair = {r["target"]: r for r in rows if r["variant"] == variant}
        o, t = pair.get("clasp-fast open"), pair.get("clasp-fast token")
        ratio = (f"{t['median'] / o['median']:.3f}" if o and t and o.get("median") and t.get("median")
                 else "–")
        L.append(f"| {variant} | {mmm(o) if o else '–'} | {mmm(t) if t else '–'} | {ratio} |")
    L.append("")
    return L
