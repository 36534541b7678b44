"""Is the bind address one of this machine's?  Probe it before serving.

Binding the address with port 0 tells "no such address here" (EADDRNOTAVAIL, or a name
that does not resolve) apart from "the port is busy", which the listen reports later.
"""
from __future__ import annotations

import errno
import socket

from .errors import ConfigError
from .table import BY_NAME


def check_bind_address(host: str, source: str) -> None:
    row = BY_NAME["host"]
    where = f"{row.key} = {host!r} from {source} (flag {row.flag}, env {row.env})"
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"{where}: cannot resolve it ({exc.strerror}); give an IP address "
                          "of this machine, 0.0.0.0 or ::") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(addr[:1] + (0,) + tuple(addr[2:]))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"{where}: this machine has no such address; give an address "
                                  "of one of its interfaces, 0.0.0.0 (all IPv4) or :: (all IPv6)") from None
            raise ConfigError(f"{where}: cannot bind it: {exc.strerror or exc}") from None
