"""A real browser: headless Chromium runs the real ``@clasp-to/core`` ES module.

The test serves a page (tests/deploy/browser/index.html) that imports the package's
``dist/index.mjs`` (``@msgpack/msgpack`` through an import map), drives it over the
DevTools protocol, and checks both directions against a real Python client (``clasp-to``)
with clasp-fast ``--workers 2``: the Python subscriber sees the browser's SET, the browser's
subscription sees Python's.

* ``ws://`` straight to clasp-fast;
* ``wss://`` through nginx (examples/nginx.conf) with a test-made certificate: the browser
  trusts exactly that key (``--ignore-certificate-errors-spki-list``, honoured only with a
  ``--user-data-dir``; no blanket ``--ignore-certificate-errors``);
* ``wss://`` straight to clasp-fast once it has ``--tls-cert``;
* the Origin allow-list seen from a real browser, once clasp-fast has ``--allowed-origins``.
"""
from __future__ import annotations

import base64
import hashlib

import pytest

from tests.deploy import proxies
from tests.deploy.chromium import Chromium, JSError, PageServer


def spki_hash(cert_pem: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of a certificate: what Chromium's
    --ignore-certificate-errors-spki-list takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
async def browser(node_env, tls):
    """Headless Chromium that trusts the test certificate's key, with the test page served."""
    with PageServer() as pages:
        chromium = await Chromium(
            f"--ignore-certificate-errors-spki-list={spki_hash(tls.cert.read_bytes())}").start()
        try:
            await chromium.open(pages.url)
            yield chromium
        finally:
            await chromium.close()


async def browser_and_python_exchange(browser, py_clients, browser_url: str, python_url: str):
    info = await browser.evaluate(f"clasp.connect({browser_url!r})")
    assert info["session"] and info["protocol"] == "clasp", info
    py = await py_clients(python_url)
    py.subscribe("py", "/browser/from-chromium/*")
    await py.barrier()
    assert await browser.evaluate("clasp.subscribe('/browser/from-python/*')")
    assert await browser.evaluate("clasp.set('/browser/from-chromium/level', 42)")
    await py.wait_for(lambda: py.calls("py"), what="the browser's SET")
    assert py.calls("py") == [("/browser/from-chromium/level", 42)]
    # the browser's SUBSCRIBE went out before its SET, which Python has seen: it is in place
    await py.c.set("/browser/from-python/text", "hello, browser")
    seen = await browser.evaluate("clasp.waitSeen(1, 5000)")
    assert seen == [["/browser/from-python/text", "hello, browser"]]
    ua = await browser.evaluate("navigator.userAgent")
    assert "Chrome/" in ua, ua


async def test_chromium_ws(browser, router_process, py_clients):
    router = router_process(workers=2)
    await browser_and_python_exchange(browser, py_clients, router.url, router.url)


async def test_chromium_wss_through_nginx(browser, router_process, py_clients, trust_test_ca, tmp_path):
    router = router_process("--trusted-proxies", "127.0.0.1", workers=2)
    with proxies.nginx(tmp_path, router.port, trust_test_ca.cert, trust_test_ca.key) as nginx:
        url = f"wss://127.0.0.1:{nginx.port}"
        await browser_and_python_exchange(browser, py_clients, url, url)


async def test_chromium_wss(browser, router_process, py_clients, trust_test_ca):
    router = router_process("--tls-cert", str(trust_test_ca.cert), "--tls-key", str(trust_test_ca.key),
                            workers=2)
    url = router.url.replace("ws://", "wss://")
    await browser_and_python_exchange(browser, py_clients, url, url)


async def test_chromium_origin_allow_list(browser, router_process, py_clients):
    """A browser sends its page's Origin: a router that allows only another origin refuses
    the upgrade (the page sees the connection fail); allowing the page's origin lets it in."""
    page_origin = await browser.evaluate("location.origin")
    other = router_process("--allowed-origins", "https://clasp.example.org", workers=2)
    with pytest.raises(JSError, match="WebSocket"):
        await browser.evaluate(f"clasp.connect({other.url!r})")
    allowed = router_process("--allowed-origins", page_origin, workers=2)
    await browser_and_python_exchange(browser, py_clients, allowed.url, allowed.url)
