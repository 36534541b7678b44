"""Durable state: the owner's SQLite journal (``journal.py``) of param records
(``records.py``).  See docs/persistence.md."""
from .journal import Journal, JournalError, claim

__all__ = ["Journal", "JournalError", "claim"]
