"""The I/O edge: TCP accept and HTTP probes (gate.py), picows WebSockets and the
per-tick flush (_native/connection.pyx), server lifecycle (app.py)."""
from .app import ClaspServer  # noqa: F401
