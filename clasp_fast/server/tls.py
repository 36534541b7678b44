"""``wss://``: the server's TLS context, built from the settings and reloaded on SIGHUP.

TLS 1.2 at least, ALPN ``http/1.1`` (the upgrade is HTTP/1.1), optional client
certificates (``tls_ca`` + ``tls_client_auth``).  The same context serves every
connection of a process; a reload loads the new certificate into it, so new
handshakes get the new certificate while established connections keep theirs
(OpenSSL copies the certificate into each connection when it starts).
"""
from __future__ import annotations

import os
import ssl
from typing import Optional

CLIENT_AUTH = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class TLSError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names file and setting."""


def _check_readable(path: str, key: str) -> None:
    flag = "--" + key.replace("_", "-")
    if not path:
        raise TLSError(f"{key} is not set ({flag}): TLS needs a certificate and a key (PEM files)")
    if not os.path.exists(path):
        raise TLSError(f"{key} = {path!r} does not exist ({flag})")
    if not os.access(path, os.R_OK) or os.path.isdir(path):
        raise TLSError(f"{key} = {path!r} cannot be read ({flag}): check the path and its permissions")


def _load(ctx: ssl.SSLContext, config) -> None:
    _check_readable(config.tls_cert, "tls_cert")
    _check_readable(config.tls_key, "tls_key")
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise TLSError(f"tls_key = {config.tls_key!r} does not match tls_cert = {config.tls_cert!r} "
                           f"(--tls-key, --tls-cert): give the key the certificate was made for") from None
        raise TLSError(f"cannot load tls_cert = {config.tls_cert!r} with tls_key = {config.tls_key!r} "
                       f"(--tls-cert, --tls-key): {reason}; both must be PEM files") from None
    if config.tls_ca:
        _check_readable(config.tls_ca, "tls_ca")
        try:
            ctx.load_verify_locations(cafile=config.tls_ca)
        except ssl.SSLError as exc:
            raise TLSError(f"cannot load tls_ca = {config.tls_ca!r} (--tls-ca): {exc.reason or exc}; "
                           f"expected PEM CA certificates") from None


def make_context(config) -> Optional[ssl.SSLContext]:
    """The server context, or None when TLS is off.  Raises TLSError."""
    if not config.tls_enabled:
        return None
    if config.tls_client_auth != "none" and not config.tls_ca:
        raise TLSError(f"tls_client_auth = {config.tls_client_auth!r} needs tls_ca (--tls-ca): "
                       f"the CA certificates client certificates are checked against")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.verify_mode = CLIENT_AUTH[config.tls_client_auth]
    _load(ctx, config)
    return ctx


def reload(ctx: ssl.SSLContext, config) -> None:
    """Loads the certificate, key and CA again into ``ctx``.  Raises TLSError and then leaves
    ``ctx`` as it was: the files are tried on a scratch context first."""
    _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), config)
    _load(ctx, config)
