"""Every setting of clasp-fast, its default, and the command-line flag that sets it.

One table (``SETTINGS``) drives the argument parser, the validation messages
and docs/configuration.md, so the three cannot drift apart.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Optional

from .netaddr import parse_networks
from .router.config import RouterConfig


@dataclass
class Config:
    host: str = "0.0.0.0"
    port: int = 7330
    name: str = "clasp-fast"
    log_level: str = "info"
    workers: int = 1
    max_connections: int = 10000
    max_connections_per_ip: int = 100
    trusted_proxies: list[str] = field(default_factory=list)
    hello_timeout: float = 10.0
    ping_interval: float = 30.0
    pong_timeout: float = 10.0
    handshake_timeout: float = 5.0
    max_frame_size: int = 65536
    buffer_size: int = 1000
    max_subscriptions_per_session: int = 1000
    max_messages_per_second: int = 0
    param_ttl: float = 3600.0
    gesture_interval_ms: float = 16.0
    read_buffer_size: int = 2048
    metrics_port: int = 0
    tls_enabled: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_client_auth: str = "none"
    proxy_protocol: bool = False
    allowed_origins: list[str] = field(default_factory=list)

    def router_config(self) -> RouterConfig:
        return RouterConfig(
            name=self.name,
            max_frame_size=self.max_frame_size,
            buffer_size=self.buffer_size,
            max_subscriptions_per_session=self.max_subscriptions_per_session,
            max_messages_per_second=self.max_messages_per_second,
            param_ttl=self.param_ttl,
            gesture_interval_ms=self.gesture_interval_ms,
        )

    def validate(self) -> "Config":
        def bad(key: str, expected: str) -> ValueError:
            flag = "--" + key.replace("_", "-")
            return ValueError(f"{key} = {getattr(self, key)!r} is invalid ({flag}): expected {expected}")

        if not 0 <= self.port <= 65535:
            raise bad("port", "a TCP port from 0 to 65535")
        if not 0 <= self.metrics_port <= 65535 - self.workers:
            raise bad("metrics_port", "0 (off) or a TCP port (worker i uses metrics_port + i)")
        if self.workers < 1:
            raise bad("workers", "a positive number of worker processes")
        if self.max_connections < 0:
            raise bad("max_connections", "0 (unlimited) or a positive integer")
        if self.max_connections_per_ip < 0:
            raise bad("max_connections_per_ip", "0 (unlimited) or a positive integer")
        for key in ("hello_timeout", "pong_timeout", "handshake_timeout"):
            if getattr(self, key) <= 0:
                raise bad(key, "a positive number of seconds")
        if self.ping_interval < 0:
            raise bad("ping_interval", "0 (no pings) or a positive number of seconds")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise bad("log_level", "one of debug, info, warning, error")
        if self.read_buffer_size < 2048:
            raise bad("read_buffer_size", "at least 2048 bytes")
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise bad("trusted_proxies", f"IP addresses or CIDR networks ({exc})") from None
        if self.tls_cert or self.tls_key:
            self.tls_enabled = True     # giving the files turns TLS on
        if self.tls_client_auth not in ("none", "optional", "required"):
            raise bad("tls_client_auth", "one of none, optional, required")
        if self.proxy_protocol and not self.trusted_proxies:
            raise bad("proxy_protocol", "false unless trusted_proxies (--trusted-proxies) names the "
                                        "proxies that send the PROXY header")
        if self.tls_enabled and self.proxy_protocol:
            raise bad("proxy_protocol", "false when tls_enabled is true (PROXY protocol in front of "
                                        "TLS is not supported; let the proxy terminate TLS)")
        self.router_config()        # raises with the key name if a router setting is off
        return self


# (key, help) in the order --help shows them
SETTINGS = [
    ("host", "address to listen on"),
    ("port", "TCP port for WebSocket clients and HTTP probes"),
    ("name", "router name sent to clients in WELCOME"),
    ("log_level", "debug, info, warning or error"),
    ("workers", "worker processes sharing the port (SO_REUSEPORT)"),
    ("max_connections", "connections in total, all workers together; 0 = unlimited"),
    ("max_connections_per_ip", "connections per client IP; 0 = unlimited"),
    ("trusted_proxies", "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed"),
    ("hello_timeout", "seconds a new connection has to send HELLO"),
    ("ping_interval", "seconds of silence before the router pings a client; 0 = never"),
    ("pong_timeout", "seconds a client has to answer a ping"),
    ("handshake_timeout", "seconds a TCP connection has to complete the HTTP upgrade"),
    ("max_frame_size", "largest CLASP payload in bytes (WebSocket messages up to this + 12)"),
    ("buffer_size", "routed messages queued per connection before new ones are dropped"),
    ("max_subscriptions_per_session", "subscriptions per session"),
    ("max_messages_per_second", "frames per second per session; 0 = unlimited"),
    ("param_ttl", "seconds a param lives after its last write; 0 = forever"),
    ("gesture_interval_ms", "minimum ms between two gesture moves of one gesture; 0 = no throttle"),
    ("read_buffer_size", "initial per-connection read buffer in bytes (memory per idle connection)"),
    ("metrics_port", "port for Prometheus metrics (GET /metrics); 0 = off; worker i uses port + i"),
    ("tls_enabled", "serve wss:// (TLS) on the port; on when tls_cert/tls_key are given"),
    ("tls_cert", "TLS certificate chain (PEM file); SIGHUP reloads it"),
    ("tls_key", "TLS private key (PEM file)"),
    ("tls_ca", "CA certificates (PEM file) that client certificates are checked against"),
    ("tls_client_auth", "client certificates: none, optional or required (needs tls_ca)"),
    ("proxy_protocol", "expect a PROXY protocol v1/v2 header from trusted_proxies (client IP)"),
    ("allowed_origins", "comma-separated Origin values allowed to upgrade; empty = any"),
]


LIST_SETTINGS = ("trusted_proxies", "allowed_origins")     # comma-separated on the command line
BOOL_SETTINGS = ("tls_enabled", "proxy_protocol")


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    p = argparse.ArgumentParser(
        prog="clasp-fast",
        description="A fast CLASP router (WebSocket, binary v3 frames).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    types = {f.name: f.type for f in fields(Config)}
    for key, help_text in SETTINGS:
        flag = "--" + key.replace("_", "-")
        default = getattr(defaults, key)
        if key in LIST_SETTINGS:
            p.add_argument(flag, default="", help=help_text)
        elif key in BOOL_SETTINGS:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            kind = {"int": int, "float": float, "str": str}[types[key] if isinstance(types[key], str)
                                                             else types[key].__name__]
            p.add_argument(flag, type=kind, default=default, help=help_text)
    return p


def from_args(argv: Optional[list[str]] = None) -> Config:
    ns = build_parser().parse_args(argv)
    values = vars(ns)
    for key in LIST_SETTINGS:
        values[key] = [p.strip() for p in values[key].split(",") if p.strip()]
    cfg = Config(**values)
    return cfg.validate()
