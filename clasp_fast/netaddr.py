"""Client addresses: which peers are trusted proxies, and the client IP behind them.

A low module (no imports from the rest of clasp_fast): the edge uses it to pick the
client IP, the config uses it to validate ``trusted_proxies``.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, Optional


def parse_networks(entries: Iterable[str]) -> list:
    """IP addresses or CIDR networks; raises ValueError naming the bad entry."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return networks


def is_local(ip: str) -> bool:
    """A loopback or private address: what a reverse proxy in front of us usually has."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_loopback or addr.is_private


class TrustedProxies:
    """Which peers may tell us the client address (``X-Forwarded-For``, PROXY protocol)."""

    __slots__ = ("networks",)

    def __init__(self, entries: Iterable[str] = ()):
        self.networks = parse_networks(entries)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, ip: str) -> bool:
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def client_ip(self, peer: str, forwarded_for: Optional[str]) -> str:
        """The right-most address of the ``X-Forwarded-For`` chain that is not a trusted proxy."""
        if not self.networks or not forwarded_for or not self.trusts(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer
