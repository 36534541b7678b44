"""The errors the client raises: one ``ClaspError`` family, one class per ERROR code.

A router ERROR frame becomes an exception with ``code``, ``address`` and ``message``
(``error_for``); the client raises it from the call whose request the router refused.
Connection problems are ``ClaspError`` subclasses too, so ``except ClaspError`` catches
everything the client can raise.
"""
from __future__ import annotations

from typing import Optional


class ClaspError(Exception):
    """Something the router refused, or the connection failed.  ``code`` is the CLASP
    ERROR code (0 for client-side problems)."""

    code = 0

    def __init__(self, message: str, *, code: Optional[int] = None, address: Optional[str] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.address = address

    def __str__(self) -> str:
        where = f" ({self.address})" if self.address and self.address not in self.message else ""
        return f"{self.message}{where}" if not self.code else f"{self.code} {self.message}{where}"


class BadRequest(ClaspError):
    """400: the router could not decode or apply the frame."""
    code = 400


class InvalidAddress(ClaspError, ValueError):
    """2xx: the address or pattern is not valid (starts with ``/``, no empty segment)."""
    code = 202


class Unauthorized(ClaspError):
    """401 or 3xx: the token is missing or invalid, or its scope does not allow this."""
    code = 401


class Forbidden(ClaspError):
    """403: the router does not allow this action."""
    code = 403


class NotFound(ClaspError, LookupError):
    """404: there is no param at the address."""
    code = 404


class Conflict(ClaspError):
    """409: a conditional SET expected another revision; nothing was written."""
    code = 409


class Locked(ClaspError):
    """423: another session holds the lock on the param; nothing was written."""
    code = 423


class RateLimited(ClaspError):
    """429: too many messages per second, or too many subscriptions."""
    code = 429


class Unsupported(ClaspError):
    """501: the router does not support this message type."""
    code = 501


class Overloaded(ClaspError):
    """503: the router's send buffer for this session overflowed; messages were dropped
    (reported to ``on_error``).  With an address: that request was refused (e.g. a SET the
    cluster's bucket did not take; it fails the request)."""
    code = 503


class ConnectionFailed(ClaspError, ConnectionError):
    """The router could not be reached, refused the upgrade, or did not say WELCOME."""


class NotConnected(ClaspError, ConnectionError):
    """The client is closed, or disconnected with ``reconnect=False``."""


class ConnectionLost(ClaspError, ConnectionError):
    """The connection dropped before the router answered this request; it may or may
    not have been applied."""


class QueueFull(ClaspError):
    """Disconnected, and the bounded send queue (``queue_size``) is full: not sent."""


class RequestTimeout(ClaspError, TimeoutError):
    """The router did not answer within ``timeout`` seconds."""


_BY_CODE = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
            423: Locked, 429: RateLimited, 501: Unsupported, 503: Overloaded}

#: what each ERROR code means, in words (the command-line tools print these)
CODE_NAMES = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
              409: "conflict (stale revision)", 423: "locked by another session",
              429: "rate limited", 501: "not supported", 503: "router overloaded"}


def error_class(code: int) -> type[ClaspError]:
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls
    if 200 <= code < 300:
        return InvalidAddress
    if 300 <= code < 400:
        return Unauthorized
    return ClaspError


def error_for(code: int, message: str, address: Optional[str] = None) -> ClaspError:
    """The exception for one ERROR frame."""
    return error_class(code)(message, code=code, address=address)


def describe_code(code: int) -> str:
    """An ERROR code in words: ``409`` -> ``conflict (stale revision)``."""
    if code in CODE_NAMES:
        return CODE_NAMES[code]
    cls = error_class(code)
    return {InvalidAddress: "invalid address", Unauthorized: "unauthorized"}.get(cls, "error")
