"""The Autobahn test cases, run by kosoku against an echo endpoint made of clasp-fast's edge.

kosoku (PyPI) runs Autobahn's own case files: one WebSocket connection per case to the
endpoint (``tests/deploy/echo_server.py``: the product's server, gate, picows settings,
``Edge`` and ``Connection``, delivering each complete message back instead of to the router).
Every case must end OK, NON-STRICT or INFORMATIONAL (kosoku's ``CaseResult.passed``).

Sections 1–7 (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing) run in
the default test run (about 250 cases, a few seconds).  Sections 12–13 (permessage-deflate)
run with ``--compression``: the echo endpoint's replies go out through the product's
compressor, so Autobahn's client checks our deflate output as well as our inflation.

``EDGE_PENDING`` lists the cases the edge fails on main today, each with what it does wrong;
each is its own strict xfail, so a fix shows up as an XPASS failure: then delete its line.
(7.1.2 is not strict: it fails only when both close frames arrive in one read, about 7 runs
in 8 here.)
"""
from __future__ import annotations

import asyncio
import fnmatch
import sys

import pytest

kosoku = pytest.importorskip("kosoku", reason="kosoku is in the test extra: pip install -e '.[test]'")

from tests.deploy.support import Service, free_port  # noqa: E402

SECTIONS_1_7 = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*"]
SECTIONS_12_13 = ["12.*", "13.*"]
RUN_TIMEOUT = 100.0
RUN_TIMEOUT_12_13 = 900.0       # 216 cases of 1000 messages up to 128 KiB: minutes, not seconds

# kosoku hands a text message that arrives uncompressed on a permessage-deflate connection
# to Autobahn's case code as str, whose SHA-1 check then raises this (Autobahn's own runner
# hands bytes).  The server may send any message uncompressed (RFC 7692 6) and does so below
# 128 bytes and when a message does not shrink: such cases are judged by this error alone
# (the echo arrived; kosoku could not hash it).  docs/deploy.md explains it.
KOSOKU_UNCOMPRESSED_TEXT = "Strings must be encoded before hashing"

# case -> what the edge does wrong (found by this test on main; the edge branch fixes them)
EDGE_PENDING = {
    "7.1.2": "two close frames in one read: picows parses the second (one frame of look-ahead) "
             "before the edge has answered the first, and fails it 1002; must answer 1000",
}


def run_cases(cases: list[str], *echo_args: str, timeout: float = RUN_TIMEOUT) -> dict:
    """Runs kosoku against a fresh echo endpoint; returns ``{case_id: CaseResult}``."""
    port = free_port()
    with Service("echo endpoint", [sys.executable, "-m", "tests.deploy.echo_server",
                                   "--port", str(port), *echo_args], port) as echo:

        async def run():
            try:
                return await asyncio.wait_for(
                    kosoku.run_fuzzingclient(f"ws://127.0.0.1:{port}", cases=cases,
                                             concurrency=2), timeout)
            except kosoku.FailureError as exc:     # some case did not pass: judged below
                return exc.results

        results = asyncio.run(run())
        assert echo.proc.poll() is None, "the echo endpoint died during the run:\n" + echo.log()
    return {r.case_id: r for r in results}


def describe(r) -> str:
    return (f"{r.case_id} {r.behavior.value}/{r.behavior_close.value}: {r.result} "
            f"{r.result_close} (server closed with {r.remote_close_code} "
            f"{r.remote_close_reason!r}) — {r.description}")


def check(results: dict, patterns: list[str], pending: dict) -> None:
    expected = [c for c in results if any(fnmatch.fnmatch(c, p) for p in patterns)]
    assert len(expected) > 0, "kosoku ran no cases"
    bad = [describe(results[c]) for c in expected if c not in pending and not results[c].passed]
    assert not bad, f"{len(bad)} Autobahn case(s) failed:\n" + "\n".join(bad)


@pytest.fixture(scope="module")
def sections_1_7() -> dict:
    results = run_cases(SECTIONS_1_7)
    assert len(results) >= 240, f"kosoku ran only {len(results)} cases of sections 1-7"
    return results


def test_autobahn_sections_1_to_7(sections_1_7):
    """Framing, pings, reserved bits, opcodes, fragmentation, UTF-8 and closing: every case
    OK, NON-STRICT or INFORMATIONAL (except the pending edge fixes, tested one by one below)."""
    check(sections_1_7, SECTIONS_1_7, EDGE_PENDING)


# fails only when both close frames arrive in one read: an XPASS there proves nothing
TIMING_DEPENDENT = {"7.1.2"}


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(strict=c not in TIMING_DEPENDENT, reason=why))
    for c, why in EDGE_PENDING.items()])
def test_autobahn_pending_edge_fix(sections_1_7, case):
    r = sections_1_7[case]
    assert r.passed, describe(r)


def test_autobahn_sections_12_13_compressed():
    """permessage-deflate: every case of sections 12 and 13 passes with compression on
    (offers with and without window bits and context takeover; messages inflated by the
    edge, echoed compressed)."""
    results = run_cases(SECTIONS_12_13, "--compression", "--max-message", "262144",
                        timeout=RUN_TIMEOUT_12_13)
    assert len(results) >= 200, f"kosoku ran only {len(results)} cases of sections 12-13"
    uncompressed_text = {c: "kosoku: uncompressed text reaches the case as str" for c, r in results.items()
                         if not r.passed and r.result == KOSOKU_UNCOMPRESSED_TEXT}
    check(results, SECTIONS_12_13, uncompressed_text)
    assert len(uncompressed_text) < len(results) // 4, "most cases hit kosoku's str error"
