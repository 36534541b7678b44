"""Python-level API of clasp_fast._native.connection: the picows I/O edge."""
from typing import Any, Callable, Optional

from .outbox import Session
from .router import Router

class Connection:
    session: Session                    # read-only
    transport: Any                      # read-only
    closing: bool                       # read-only
    peer_port: int
    def close(self, code: int, reason: str = ...) -> None: ...
    @property
    def peer(self) -> Any: ...

class Edge:
    router: Router                      # read-only
    tick: int                           # read-only
    connections: set[Connection]        # read-only
    max_message: int                    # read-only
    sample_mask: int                    # time 1 frame in sample_mask + 1 (0: none)
    on_sample: Optional[Callable[[float], Any]]   # gets each timed frame's seconds
    def __init__(self, router: Router, loop: Any, *, max_frame_size: int = ..., hello_timeout: float = ...,
                 ping_interval: float = ..., pong_timeout: float = ...) -> None: ...
    def schedule_flush(self) -> None: ...
    def flush(self) -> None: ...
    def arm_timer(self, deadline: float) -> None: ...
    def sweep(self) -> None: ...
    def close_all(self, code: int, reason: str) -> None: ...
    def stop(self) -> None: ...
