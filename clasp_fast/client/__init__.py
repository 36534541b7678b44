"""The clasp-fast Python client and command-line tools.

>>> from clasp_fast import Clasp
>>> client = await Clasp.connect("ws://localhost:7330", name="console")   # doctest: +SKIP

``Clasp`` (client.py) speaks the verbs of ``clasp-to`` plus confirmed/conditional SETs,
locks, typed errors (errors.py) and ``watch()``; ``commands.py`` is ``clasp-fast sub|set|
get|pub|snapshot``.  ``ClaspClient`` is the same class under its old name.
"""
from .client import Clasp, Subscription, insecure_ssl_context
from .errors import (BadRequest, ClaspError, Conflict, ConnectionFailed, ConnectionLost,
                     Forbidden, InvalidAddress, Locked, NotConnected, NotFound, Overloaded,
                     QueueFull, RateLimited, RequestTimeout, Unauthorized, Unsupported,
                     error_for)

ClaspClient = Clasp

__all__ = ["Clasp", "ClaspClient", "Subscription", "insecure_ssl_context", "ClaspError",
           "BadRequest", "InvalidAddress", "Unauthorized", "Forbidden", "NotFound", "Conflict",
           "Locked", "RateLimited", "Unsupported", "Overloaded", "ConnectionFailed",
           "ConnectionLost", "NotConnected", "QueueFull", "RequestTimeout", "error_for"]
