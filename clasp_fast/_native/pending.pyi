"""Python-level API of clasp_fast._native.pending."""

class PendingQueue:
    def __len__(self) -> int: ...
