"""The web inspector (GET /, docs/operations.md "Inspector") in a real headless Chromium.

clasp-fast ``--workers 2`` serves the page; the page runs the vendored, unmodified
``@clasp-to/core`` and connects back to the router that served it.  A SET made from
Python (the real ``clasp-to`` client) appears in the page's param tree, a value set with
the page's form reaches a Python subscriber, and the page shows the router's figures from
``/status``: over ``ws://`` and over ``wss://`` (clasp-fast's own TLS).

With ``CLASP_FAST_SCREENSHOT=<file.png>`` the ws test also saves a screenshot of the page
(how docs/inspector.png was made).
"""
from __future__ import annotations

import asyncio
import base64
import os
import time

import pytest

from tests.deploy.chromium import Chromium
from tests.deploy.test_browser import spki_hash


@pytest.fixture
async def chromium(tls):
    browser = await Chromium(
        f"--ignore-certificate-errors-spki-list={spki_hash(tls.cert.read_bytes())}").start()
    try:
        yield browser
    finally:
        await browser.close()


async def until(browser: Chromium, expression: str, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await browser.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({expression}); page log:\n"
                                 + browser.page_log())
        await asyncio.sleep(0.1)


async def inspector_exchange(browser: Chromium, py_clients, page_url: str, ws_url: str,
                             screenshot: str = "") -> None:
    await browser.open(page_url, ready="window.inspectorReady === true && inspector.connected === true")
    await browser.send("Emulation.setDeviceMetricsOverride", width=1180, height=600,
                       deviceScaleFactor=1, mobile=False)
    py = await py_clients(ws_url)
    py.subscribe("py", "/insp/from-page/*")
    await py.barrier()
    # Python → page: the SET shows in the param tree with its value and revision
    await py.c.set("/insp/from-python/level", 0.5)
    await py.c.set("/insp/from-python/level", 0.75)
    await until(browser, "document.querySelector('#params tbody').innerText"
                         ".includes('/insp/from-python/level')", "the Python SET in the page")
    await until(browser, "inspector.params.get('/insp/from-python/level').value === 0.75 && "
                         "inspector.params.get('/insp/from-python/level').revision === 2",
                "value 0.75 at revision 2")
    await until(browser, "!!inspector.params.get('/insp/from-python/level').writer",
                "the writer of the param (from a GET)")
    # page → Python: the page's SET form
    await browser.evaluate("document.getElementById('set-address').value = '/insp/from-page/x';"
                           "document.getElementById('set-value').value = '42';"
                           "document.querySelector('#set button').click(); true")
    await py.wait_for(lambda: py.calls("py"), what="the page's SET")
    assert py.calls("py") == [("/insp/from-page/x", 42)]
    # the router's figures from /status
    status = await until(browser, "inspector.status && inspector.status.workers_up === 2 && "
                                  "inspector.status.totals.sessions >= 2 && inspector.status",
                         "/status in the page, with the page's and Python's sessions")
    assert status["workers"] == 2 and status["totals"]["params"] >= 2
    await until(browser, "document.getElementById('workers').tBodies[0].rows.length === 2",
                "the per-worker table")
    if screenshot:
        for i, (address, value) in enumerate([("/stage/light/1/intensity", 0.8),
                                              ("/stage/light/2/color", "#ff8800"),
                                              ("/mixer/channel/1/fader", -6.5),
                                              ("/mixer/channel/2/mute", True),
                                              ("/show/scene", "Act 2"),
                                              ("/mixer/channel/1/fader", -3.0)]):
            await py.c.set(address, value)
        await until(browser, "inspector.params.size >= 7", "the screenshot's params")
        await asyncio.sleep(2.5)                 # two /status polls: rates shown
        shot = await browser.send("Page.captureScreenshot", format="png")
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


async def test_inspector_over_ws(chromium, router_process, py_clients):
    router = router_process(workers=2)
    page = f"http://127.0.0.1:{router.port}/"
    await inspector_exchange(chromium, py_clients, page, router.url,
                             screenshot=os.environ.get("CLASP_FAST_SCREENSHOT", ""))


async def test_inspector_over_wss(chromium, router_process, py_clients, trust_test_ca):
    router = router_process("--tls-cert", str(trust_test_ca.cert), "--tls-key", str(trust_test_ca.key),
                            workers=2)
    page = f"https://127.0.0.1:{router.port}/"
    await inspector_exchange(chromium, py_clients, page, router.url.replace("ws://", "wss://"))


def test_vendored_client_is_the_npm_package_unchanged(node_env):
    """clasp_fast/ui/vendor/ holds the npm packages' files byte for byte (scripts/vendor_ui.py),
    at the versions tests/interop/js pins."""
    from pathlib import Path

    from tests.deploy.chromium import NODE_MODULES

    vendor = Path(__file__).resolve().parents[2] / "clasp_fast" / "ui" / "vendor"
    assert (vendor / "clasp-core" / "index.mjs").read_bytes() == \
        (NODE_MODULES / "@clasp-to" / "core" / "dist" / "index.mjs").read_bytes()
    esm = NODE_MODULES / "@msgpack" / "msgpack" / "dist.esm"
    for f in esm.rglob("*.mjs"):
        assert (vendor / "msgpack" / f.relative_to(esm)).read_bytes() == f.read_bytes(), f
    assert (vendor / "clasp-core" / "LICENSE").exists() and (vendor / "msgpack" / "LICENSE").exists()
