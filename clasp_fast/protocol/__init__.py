"""The CLASP wire layer's Python surface: message objects, and bytes <-> messages.

The message dataclasses live in ``clasp_fast.messages`` (imports nothing of
ours); the codec is native (``clasp_fast._native.wire``, which imports the
messages).  This package re-exports both, for the router's rare-message paths,
the client, the benchmarks and the tests.  Arrows: protocol -> wire -> messages.

>>> from clasp_fast.protocol import encode_frame, decode_frame, Set
>>> frame = encode_frame(Set("/lumen/opacity", 0.75))
>>> decode_frame(frame).message
Set(address='/lumen/opacity', value=0.75, revision=None, lock=False, unlock=False, ttl=None)
"""
from .. import messages  # noqa: F401
from .._native.wire import (  # noqa: F401
    DecodeError,
    EncodeError,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_payload,
    encode_set_frame,
    peek,
    splice_revision,
    value_code,
    ws_frame,
    ws_payload_start,
    ws_unframe,
)
from ..messages import *  # noqa: F401,F403
from ..messages import NO_VALUE, legacy  # noqa: F401
