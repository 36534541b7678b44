"""Python-level API of clasp_fast._native.client_inbox."""
from typing import Any, Callable, Optional

from picows import WSListener

from .patterns import Trie

def deliver(callback: Callable[[Any, str], Any], value: Any, address: str, client: Any) -> None: ...

class Route:
    key: bytes
    address: str

class Inbox:
    values: dict[str, Any]
    revisions: dict[str, int]
    trie: Trie
    native: bool
    def __init__(self, client: Any, trie: Trie, native: bool = True) -> None: ...
    def route(self, address: str) -> Route: ...
    def apply_set(self, address: str, value: Any, revision: Optional[int]) -> None: ...
    def apply_publish(self, address: str, value: Any, signal: int) -> None: ...
    def receive(self, frame: bytes) -> bool: ...

class Listener(WSListener):
    def __init__(self, client: Any, inbox: Inbox) -> None: ...
