"""Connection limits: the interface, the refusal text, and the single-process table.

A low module: the edge (``server/gate.py``) admits through it and the shared-memory
table (``_native/shmlimits.pyx``, ``--workers N``) reuses its refusal text, so
neither imports the other.  ``LocalLimits`` serves ``--workers 1``.

``try_admit(ip)`` returns None (admitted, counted) or the reason for refusing;
``release(ip)`` gives the slot back.  ``clasp_fast._native.shmlimits.SharedLimits``
implements the same interface over shared memory for several workers.
"""
from __future__ import annotations

from typing import Optional


def refusal_text(kind: str, limit: int, ip: str) -> str:
    if kind == "total":
        return (f"connection limit reached: max_connections = {limit}; "
                f"try again later or raise --max-connections")
    return (f"connection limit reached for {ip}: max_connections_per_ip = {limit}; "
            f"close other connections or raise --max-connections-per-ip")


class LocalLimits:
    def __init__(self, max_connections: int = 10000, max_connections_per_ip: int = 100):
        self.max_total = max_connections
        self.max_per_ip = max_connections_per_ip
        self.total = 0
        self.per_ip: dict[str, int] = {}

    def try_admit(self, ip: str) -> Optional[str]:
        if self.max_total and self.total >= self.max_total:
            return refusal_text("total", self.max_total, ip)
        n = self.per_ip.get(ip, 0)
        if self.max_per_ip and n >= self.max_per_ip:
            return refusal_text("ip", self.max_per_ip, ip)
        self.total += 1
        self.per_ip[ip] = n + 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        n = self.per_ip.get(ip, 0) - 1
        if n > 0:
            self.per_ip[ip] = n
        else:
            self.per_ip.pop(ip, None)

    def count(self, ip: Optional[str] = None) -> int:
        return self.total if ip is None else self.per_ip.get(ip, 0)
