"""The CLASP wire layer: bytes in, message objects out, and back.

The implementation is native (``clasp_fast._native.wire``); this package is its
Python surface, shared by the router's rare-message paths, the client, the
benchmarks and the tests.

>>> from clasp_fast.protocol import encode_frame, decode_frame, Set
>>> frame = encode_frame(Set("/lumen/opacity", 0.75))
>>> decode_frame(frame).message
Set(address='/lumen/opacity', value=0.75, revision=None, lock=False, unlock=False, ttl=None)
"""
from .._native.wire import (  # noqa: F401
    DecodeError,
    EncodeError,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_payload,
    peek,
    splice_revision,
    value_code,
    ws_frame,
    ws_unframe,
)
from .messages import *  # noqa: F401,F403
from .messages import NO_VALUE  # noqa: F401
