"""nginx and HAProxy, configured from examples/nginx.conf and examples/haproxy.cfg.

Each config is the example file with only what a test machine needs changed: the public
port (a free loopback port), the upstream port (the test's clasp-fast), the certificate
paths (a test-made certificate), the process and connection counts (for a small machine),
and for nginx its temp paths in a temp dir (and ``user root;`` when the tests run as root).  Every substitution must find its text in the
example, so an example that drifts from the tests fails loudly here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from tests.deploy.support import EXAMPLES, Service, free_port, require_binary

EXAMPLE_UPSTREAM = "127.0.0.1:7330"


def substitute(text: str, replacements: list[tuple[str, str]], source: str) -> str:
    for old, new in replacements:
        assert old in text, f"{source} no longer contains {old!r}: update tests/deploy/proxies.py"
        text = text.replace(old, new)
    return text


def nginx_config(tmp: Path, port: int, upstream_port: int, cert: Path, key: Path) -> Path:
    text = (EXAMPLES / "nginx.conf").read_text()
    temp_paths = "".join(f"    {kind}_temp_path {tmp}/{kind}_temp;\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = substitute(text, [
        ("worker_processes auto;", "worker_processes 2;"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        (f"server {EXAMPLE_UPSTREAM};", f"server 127.0.0.1:{upstream_port};"),
        ("/etc/ssl/certs/clasp.pem", str(cert)),
        ("/etc/ssl/private/clasp.key", str(key)),
        ("http {\n", "http {\n" + temp_paths + f"    access_log {tmp}/access.log;\n"),
    ], "examples/nginx.conf")
    if os.geteuid() == 0:
        text = "user root;\n" + text
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path


def nginx(tmp: Path, upstream_port: int, cert: Path, key: Path) -> Service:
    """nginx in the foreground (``daemon off``), its prefix, pid and logs in ``tmp``."""
    binary = require_binary("nginx")
    port = free_port()
    conf = nginx_config(tmp, port, upstream_port, cert, key)
    return Service("nginx", [binary, "-p", str(tmp), "-c", str(conf), "-e", "stderr",
                             "-g", f"daemon off; pid {tmp}/nginx.pid; error_log stderr warn;"],
                   port)


def haproxy_config(tmp: Path, port: int, upstream_port: int, pem: Path,
                   proxy_protocol: str = "", upstream_ca: Optional[Path] = None) -> Path:
    """``proxy_protocol``: "" (X-Forwarded-For, the example as it stands), "v2" (the example's
    commented send-proxy-v2 server line instead) or "v1" (that line with v1's send-proxy).
    ``upstream_ca``: HAProxy speaks TLS to clasp-fast too (``ssl verify required ca-file``,
    health checks included): with the PROXY protocol, its header goes before that TLS."""
    text = (EXAMPLES / "haproxy.cfg").read_text()
    xff_server = f"    server clasp1 {EXAMPLE_UPSTREAM} check\n"
    pp_server = f"    # server clasp1 {EXAMPLE_UPSTREAM} send-proxy-v2 check check-send-proxy\n"
    replacements = [
        ("maxconn 10000", "maxconn 1000"),      # the test machine's file-descriptor limit
        ("bind :443 ssl crt /etc/haproxy/certs/clasp.pem",
         f"bind 127.0.0.1:{port} ssl crt {pem}"),
    ]
    if proxy_protocol:      # the variant the example describes: its commented server line
        server = pp_server.replace("    # ", "    ", 1)
        if proxy_protocol == "v1":
            server = server.replace("send-proxy-v2", "send-proxy")
        if upstream_ca is not None:
            server = server.replace(" send-proxy", f" ssl verify required ca-file {upstream_ca} "
                                                   f"check-ssl send-proxy")
        replacements += [(xff_server, ""), (pp_server, server)]
    text = substitute(text, replacements, "examples/haproxy.cfg")
    text = text.replace(EXAMPLE_UPSTREAM, f"127.0.0.1:{upstream_port}")
    path = tmp / "haproxy.cfg"
    path.write_text(text)
    return path


def haproxy(tmp: Path, upstream_port: int, pem: Path, proxy_protocol: str = "",
            upstream_ca: Optional[Path] = None) -> Service:
    """HAProxy in the foreground (``-db``)."""
    binary = require_binary("haproxy")
    port = free_port()
    conf = haproxy_config(tmp, port, upstream_port, pem, proxy_protocol, upstream_ca)
    return Service("haproxy", [binary, "-db", "-f", str(conf)], port)
