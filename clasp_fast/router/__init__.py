"""The router core, sans I/O (see docs/architecture.md): the one import path for
``Router`` and its config, clocks and endpoints.

``Router`` takes "session S sent these bytes" and queues the bytes each
receiver must get; it never touches a socket, so it can be driven directly::

    from clasp_fast.router import Router, RouterConfig
    from clasp_fast.protocol import Hello, Set, Subscribe, encode_frame, decode_frame

    r = Router(RouterConfig(name="test"))       # clock: a ManualClock in tests
    a, b = r.open_session(), r.open_session()
    for s in (a, b):
        r.receive(s, encode_frame(Hello("x")))
    r.receive(b, encode_frame(Subscribe(1, "/mixer/**")))
    r.receive(a, encode_frame(Set("/mixer/1", 0.5)))
    [decode_frame(f).message for f in b.take_output()]   # WELCOME, SNAPSHOT, SET(rev 1)
"""
from .._native.clock import Clock, ManualClock  # noqa: F401
from .._native.outbox import Endpoint, PeerLink, Session  # noqa: F401
from .._native.router import Router  # noqa: F401
from .config import RouterConfig  # noqa: F401
