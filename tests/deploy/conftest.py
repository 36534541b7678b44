"""Fixtures of the deployment tests: a test-made certificate authority, and the real clients.

``tls`` is a CA made by ``trustme`` with a server certificate for ``127.0.0.1`` and
``localhost``, written to files: ``ca`` (the CA certificate), ``cert`` (the chain),
``key``, and ``pem`` (chain + key in one file, as HAProxy wants).  ``trust_test_ca``
makes the real clients trust it: Python's default SSL context reads ``SSL_CERT_FILE``,
Node reads ``NODE_EXTRA_CA_CERTS`` at start-up.

The real-client fixtures (``py_clients``, ``js_clients``, ``node_env``) are the interop
tests' own (tests/interop/conftest.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop.conftest import js_clients, node_env, py_clients  # noqa: F401  (fixtures)


@dataclass
class CertFiles:
    ca: Path
    cert: Path
    key: Path
    pem: Path


@pytest.fixture(scope="session")
def tls(tmp_path_factory) -> CertFiles:
    trustme = pytest.importorskip("trustme", reason="trustme is in the test extra")
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = CertFiles(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key", pem=d / "haproxy.pem")
    ca.cert_pem.write_to_path(str(paths.ca))
    server.private_key_pem.write_to_path(str(paths.key))
    with open(paths.cert, "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    paths.pem.write_bytes(paths.cert.read_bytes() + paths.key.read_bytes())
    return paths


@pytest.fixture
def trust_test_ca(tls, monkeypatch) -> CertFiles:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(tls.ca))
    return tls
