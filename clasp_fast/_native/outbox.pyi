"""Python-level API of clasp_fast._native.outbox: endpoints and their output buffers."""
from typing import Any, Callable, Optional

from .clock import Clock

class Hub:
    clock: Clock                        # read-only
    on_dirty: Optional[Callable[[], Any]]
    on_pressure: Optional[Callable[["Endpoint"], Any]]
    dropped: int                        # read-only
    errors_sent: dict[int, int]         # read-only: ERROR code -> how many were sent
    def take_dirty(self) -> list["Endpoint"]: ...
    def sent_by_type(self) -> dict[int, int]: ...     # CLASP type -> messages queued for clients
    def count_error(self, code: int) -> None: ...
    conflated: int                      # read-only: waiting SETs replaced by newer ones
    queued: int                         # read-only: bytes queued on all endpoints
    def pending_output(self) -> int: ...
    session_tag: Optional[str]          # cluster mode: session ids start with the node's tag

class Endpoint:
    is_peer: bool                       # read-only
    paused: bool
    closed: bool
    io: Any
    sent: int                           # read-only
    dropped: int                        # read-only
    cursors: Optional[list]             # snapshots still being written
    shut: bool                          # a close was requested: nothing more is queued
    waiting_sets: int                   # read-only: SETs waiting for it to drain
    stalled: bool                       # read-only
    def take_output_raw(self) -> bytes: ...
    def take_output(self) -> list[bytes]: ...
    def refill(self) -> int: ...
    def request_close(self, code: int, reason: str) -> int: ...
    def stalled_too_long(self) -> bool: ...

class Session(Endpoint):
    id: str                             # read-only
    name: Optional[str]                 # read-only
    features: int                       # read-only
    welcomed: bool
    peer: Optional[str]                 # read-only
    close_request: Optional[tuple[int, str]]
    access: Optional[Any]               # token mode: an access.Access; None in open mode
    may_hold_locks: bool
    inflight: int
    inflight_bytes: int
    held: Optional[list[bytes]]
    on_released: Optional[Callable[[], Any]]
    received: int                       # read-only
    def __init__(self, hub: Hub, peer: Optional[str] = ...) -> None: ...
    def subscriptions(self) -> list: ...
    subscription_count: int             # read-only
    queued: int                         # read-only: bytes waiting for the next flush

class PeerLink(Endpoint):
    index: int                          # read-only
    bytes_sent: int                     # read-only: bus bytes queued for the other worker
    def __init__(self, hub: Hub, index: int) -> None: ...
    def send_record(self, kind: int, body: bytes = ...) -> None: ...
