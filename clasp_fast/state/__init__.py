"""Durable state: the owner's SQLite journal of params (``journal.py``) and its wiring to
the router (``owner.py``).  See docs/persistence.md."""
from .journal import Journal, JournalError, claim

__all__ = ["Journal", "JournalError", "claim"]
