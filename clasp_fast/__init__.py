"""clasp-fast: a fast CLASP router (picows + uvloop + a Cython hot path), and its client.

``from clasp_fast import Clasp`` is the Python client (clasp_fast/client).
"""
__version__ = "0.1.0"


def __getattr__(name):
    # the client is imported on first use, so starting the router does not load it
    if name in ("Clasp", "ClaspError"):
        from . import client
        return getattr(client, name)
    raise AttributeError(f"module 'clasp_fast' has no attribute {name!r}")
