"""Settings of the router core (what the sans-I/O router itself enforces).

Defaults follow PROTOCOL.md "Limits".  The command line and the config file
(``clasp_fast.config``) fill this in; tests build it directly.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RouterConfig:
    #: router name sent in WELCOME
    name: str = "clasp-fast"
    #: largest CLASP payload accepted, in bytes (a larger frame gets ERROR 400)
    max_frame_size: int = 65536
    #: routed messages a connection may have queued before new ones are dropped
    buffer_size: int = 1000
    #: SUBSCRIBE ids per session; beyond it ERROR 429
    max_subscriptions_per_session: int = 1000
    #: frames per second per session; 0 = no limit; beyond it ERROR 429 and the frame is dropped
    max_messages_per_second: int = 0
    #: seconds a param lives after its last write unless a SET gives a TTL; 0 = forever
    param_ttl: float = 3600.0
    #: at most one gesture `move` per this many ms per (session, address, gesture id)
    gesture_interval_ms: float = 16.0
    #: seconds between sweeps that remove expired params
    expiry_sweep_interval: float = 5.0
    #: seconds between two ERROR 503 (messages dropped) notices to one session
    overflow_notice_interval: float = 10.0

    def __post_init__(self) -> None:
        checks = [
            ("max_frame_size", 1 <= self.max_frame_size <= 65535 + 1, "an integer from 1 to 65536"),
            ("buffer_size", self.buffer_size >= 1, "a positive integer"),
            ("max_subscriptions_per_session", self.max_subscriptions_per_session >= 1,
             "a positive integer"),
            ("max_messages_per_second", self.max_messages_per_second >= 0, "0 (off) or a positive integer"),
            ("param_ttl", self.param_ttl >= 0, "0 (never expire) or a number of seconds"),
            ("gesture_interval_ms", self.gesture_interval_ms >= 0, "0 (off) or milliseconds"),
            ("expiry_sweep_interval", self.expiry_sweep_interval > 0, "a positive number of seconds"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ValueError(f"{key} = {getattr(self, key)!r} is invalid: expected {expected}")
