"""Token mode at run time: admitting a HELLO, re-reading the tokens file, the failed-HELLO
throttle.

One ``Guard`` per worker process, given to the router core (``Router.guard``; None in open
mode).  The core calls ``admit(token, peer, wall_s, mono_s)`` on HELLO (times are the core's
clock) and gets an ``Access`` (what the session may do) or None (ERROR 401, close 1008);
a refused HELLO counts against the client IP in the shared ``FailedHellos`` table, which the
handshake gate consults before the upgrade (``blocked_for``).  ``reload()`` (SIGHUP)
re-reads the file; the core then closes the sessions whose token is gone, changed or
expired (``Router.recheck_access``).  Nothing here logs a token: only token names.
"""
from __future__ import annotations

import logging
from typing import Optional

from .._native.access import Access
from .tokens import TokenEntry, Tokens, load_tokens

log = logging.getLogger("clasp_fast.auth")


def security_note(config) -> str:
    """What the start-up line says about security."""
    if config.security_mode != "token":
        return "security: open mode, any client may read and write every address"
    note = f"security: token mode, tokens from {config.auth_tokens}"
    if not config.tls_enabled:
        note += ("; WARNING: no TLS, tokens travel in clear text unless a TLS proxy is in "
                 "front (server.tls)")
    return note


def failed_hellos_table(config) -> "FailedHellos":
    """The failed-HELLO table for these settings (made before the workers fork)."""
    from .._native.shmlimits import FailedHellos     # (shmlimits imports the server package)
    return FailedHellos(config.max_failed_hellos, config.failed_hello_window, config.failed_hello_block)


class Guard:
    def __init__(self, path: str, failed_hellos: "FailedHellos", tokens: Optional[Tokens] = None):
        self.path = path
        self.failed_hellos = failed_hellos
        self.tokens = tokens if tokens is not None else load_tokens(path)

    @classmethod
    def from_config(cls, config, failed_hellos: Optional["FailedHellos"] = None) -> Optional["Guard"]:
        """The guard for token mode, None in open mode (TokenFileError if the file is bad)."""
        if config.security_mode != "token":
            return None
        return cls(config.auth_tokens, failed_hellos or failed_hellos_table(config))

    def admit(self, token: Optional[str], peer: Optional[str], wall_s: float,
              mono_s: float) -> tuple[Optional[Access], str]:
        """(Access, "") for a known, unexpired token; else (None, why) and the failure counted."""
        entry = self.tokens.find(token, wall_s)
        if entry is not None:
            log.debug("session from %s admitted with token %r", peer, entry.name)
            return Access(entry), ""
        why = "no token in HELLO" if not token else "unknown or expired token"
        if peer and self.failed_hellos.failed(peer, mono_s):
            log.warning("failed HELLOs from %s: refusing it for %g s", peer,
                        self.failed_hellos.blocked_for(peer, mono_s))
        log.info("HELLO from %s refused: %s", peer, why)
        return None, why

    def still_valid(self, entry: TokenEntry, wall_s: float) -> bool:
        return self.tokens.still_valid(entry, wall_s)

    def blocked_for(self, ip: str, mono_s: float) -> float:
        return self.failed_hellos.blocked_for(ip, mono_s)

    def reload(self) -> None:
        """Re-reads the tokens file (TokenFileError: the old tokens stay)."""
        self.tokens = load_tokens(self.path)
        log.info("tokens file %s re-read: %d token(s)", self.path, len(self.tokens.entries))
