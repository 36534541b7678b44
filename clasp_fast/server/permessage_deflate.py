"""permessage-deflate negotiation (RFC 7692 5 and 7.1): which offer to accept, and the answer.

The client lists its offers in ``Sec-WebSocket-Extensions`` (RFC 6455 9.1: comma-separated
extensions, each with ``;``-separated parameters whose values are tokens or quoted strings;
the header may be repeated).  The first ``permessage-deflate`` offer this server can honour
is accepted; an offer that is malformed or asks for something we do not do is declined and
the next one tried; with none left the connection is served uncompressed (never refused).

What the server agrees to:

* ``server_no_context_takeover``, always, even when not asked: every outgoing message is
  compressed on its own, so one broadcast's compressed frame is the same for all of its
  receivers and is built once (``_native/deflate.pyx``);
* ``server_max_window_bits=N``: honoured for N = 9..15 (messages are compressed with that
  window; one compressor per window size in use).  N = 8 is declined: zlib's raw deflate
  cannot produce an 8-bit window;
* ``client_no_context_takeover``: agreed when offered (the connection's inflater is then
  reset after each message);
* ``client_max_window_bits`` (with or without a value): accepted and not answered, which
  leaves the client's window as it offered; the server inflates with a 15-bit window, which
  reads any smaller one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf"\s*({_TOKEN})\s*(?:=\s*(?:({_TOKEN})|\"((?:[^\"\\]|\\.)*)\"))?\s*$")
_BITS = re.compile(r"(?:[89]|1[0-5])$")         # RFC 7692 7.1.2: 1*DIGIT in 8..15, no leading 0


@dataclass(frozen=True)
class Agreement:
    server_bits: int                    # window the server compresses with
    client_no_context_takeover: bool
    response: str                       # the Sec-WebSocket-Extensions answer


def _split(text: str, sep: str) -> Optional[list[str]]:
    """``text`` split at ``sep`` outside quoted strings; None if a quote is left open."""
    parts, cur, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if quoted:
        return None
    parts.append("".join(cur))
    return parts


def _params(items: list[str]) -> Optional[dict]:
    """{name: value or None} of one offer's parameters; None if malformed or repeated."""
    out: dict = {}
    for item in items:
        m = _PARAM.match(item)
        if m is None:
            return None
        name = m.group(1).lower()
        if name in out:
            return None                 # RFC 7692 7: a parameter at most once
        value = m.group(2) if m.group(2) is not None else m.group(3)
        if value is not None and m.group(3) is not None:
            value = re.sub(r"\\(.)", r"\1", value)
        out[name] = value
    return out


def _accept(params: dict) -> Optional[Agreement]:
    server_bits = 15
    answer = ["permessage-deflate", "server_no_context_takeover"]
    client_reset = False
    for name, value in params.items():
        if name == "server_no_context_takeover" or name == "client_no_context_takeover":
            if value is not None:
                return None
            if name == "client_no_context_takeover":
                client_reset = True
        elif name == "server_max_window_bits":
            if value is None or not _BITS.match(value):
                return None
            server_bits = int(value)
            if server_bits == 8:
                return None             # zlib's raw deflate has no 8-bit window
            answer.append(f"server_max_window_bits={server_bits}")
        elif name == "client_max_window_bits":
            if value is not None and not _BITS.match(value):
                return None
        else:
            return None                 # an unknown parameter: decline this offer
    if client_reset:
        answer.append("client_no_context_takeover")
    return Agreement(server_bits, client_reset, "; ".join(answer))


def negotiate(headers: Iterable[str]) -> Optional[Agreement]:
    """The agreement for the ``Sec-WebSocket-Extensions`` header values, or None (plain)."""
    for header in headers:
        offers = _split(header, ",")
        if offers is None:
            return None                 # an unterminated quote: the whole header is unreadable
        for offer in offers:
            items = _split(offer, ";")
            if not items or items[0].strip().lower() != "permessage-deflate":
                continue
            params = _params(items[1:])
            if params is not None:
                agreement = _accept(params)
                if agreement is not None:
                    return agreement
    return None
