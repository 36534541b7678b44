"""wss:// served by clasp-fast itself (``--tls-cert``/``--tls-key``), ``--workers 2``: the real
Python client (its default SSL context trusting a test-made CA through ``SSL_CERT_FILE``)
and the real JS client under Node (``NODE_EXTRA_CA_CERTS``) each see the other's SET.
"""
from __future__ import annotations


from tests.deploy.support import set_and_see


async def test_real_clients_over_wss(router_process, trust_test_ca, py_clients, js_clients):
    router = router_process("--tls-cert", str(trust_test_ca.cert), "--tls-key", str(trust_test_ca.key),
                            workers=2)
    await set_and_see(py_clients, js_clients, router.url.replace("ws://", "wss://"))
