"""What the clasp-fast under test can do yet, found by trying it (a real process per feature).

The settings table lists every key of issue 11, so ``clasp-fast --help`` shows
``--tls-cert`` before anything serves TLS: a flag is no evidence.  Each probe starts
clasp-fast with the feature's flags and checks the behaviour over a raw socket:

* ``tls``: ``--tls-cert/--tls-key`` with a throw-away certificate; GET /healthz over TLS
  is answered 200;
* ``proxy_protocol``: ``--proxy-protocol --trusted-proxies 127.0.0.1``; GET /healthz behind a
  PROXY v2 header is answered 200 (a router without it says 400 to the binary header);
* ``compression``: ``--compression``; an upgrade offering permessage-deflate is answered 101
  with permessage-deflate;
* ``allowed_origins``: ``--allowed-origins https://allowed.example``; an upgrade from
  another Origin is answered 403.

Tests marked ``@pytest.mark.needs("tls")`` (see conftest.py) skip, naming what is missing,
while a probe fails; each probe runs at most once per test session, and only when a test
that needs it runs.  The lead removes the marks once the features are merged.
"""
from __future__ import annotations

import base64
import functools
import os
import socket
import ssl
import struct
import tempfile
from pathlib import Path
from typing import Optional

from tests.support import RouterProcess

WHAT = {
    "tls": "wss:// served by clasp-fast itself (--tls-cert/--tls-key)",
    "proxy_protocol": "the PROXY protocol (--proxy-protocol)",
    "compression": "permessage-deflate (--compression)",
    "allowed_origins": "the Origin allow-list (--allowed-origins)",
}


def exchange(port: int, data: bytes, tls: Optional[ssl.SSLContext] = None,
             timeout: float = 3.0) -> bytes:
    """Sends ``data`` to 127.0.0.1:``port``; returns the response head (or what came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        sock.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        return got


def upgrade(extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: clasp\r\n{extra}\r\n").encode()


def proxy_v2_header(src: str, dst: str, sport: int, dport: int) -> bytes:
    addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", len(addr)) + addr


def _try(args: list[str], request, check) -> bool:
    rp = RouterProcess(*args, workers=1)
    try:
        rp.start(timeout=10)
    except RuntimeError:
        return False
    try:
        return check(request(rp.port))
    except (OSError, ssl.SSLError):
        return False
    finally:
        rp.kill()


def _tls() -> bool:
    import trustme

    with tempfile.TemporaryDirectory() as d:
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        cert, key = Path(d, "cert.pem"), Path(d, "key.pem")
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return _try(["--tls-cert", str(cert), "--tls-key", str(key)],
                    lambda port: exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ctx),
                    lambda head: head.startswith(b"HTTP/1.1 200"))


def _proxy_protocol() -> bool:
    return _try(["--proxy-protocol", "--trusted-proxies", "127.0.0.1"],
                lambda port: exchange(port, proxy_v2_header("127.0.0.9", "127.0.0.1", 40000, port)
                                      + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
                lambda head: head.startswith(b"HTTP/1.1 200"))


def _compression() -> bool:
    return _try(["--compression"],
                lambda port: exchange(port, upgrade("Sec-WebSocket-Extensions: permessage-deflate\r\n")),
                lambda head: head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" in head.lower())


def _allowed_origins() -> bool:
    return _try(["--allowed-origins", "https://allowed.example"],
                lambda port: exchange(port, upgrade("Origin: https://other.example\r\n")),
                lambda head: head.startswith(b"HTTP/1.1 403"))


PROBES = {"tls": _tls, "proxy_protocol": _proxy_protocol, "compression": _compression,
          "allowed_origins": _allowed_origins}


@functools.lru_cache(maxsize=None)
def capable(feature: str) -> bool:
    return PROBES[feature]()
