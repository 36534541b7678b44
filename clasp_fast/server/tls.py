"""``wss://``: the server's TLS context, built from the settings and reloaded on SIGHUP.

TLS 1.2 at least, ALPN ``http/1.1`` (the upgrade is HTTP/1.1), optional client
certificates (``tls_ca`` + ``tls_client_auth``), AES-128-GCM preferred.  The same context
serves every connection of a process; a reload loads the new certificate into it, so new
handshakes get the new certificate while established connections keep theirs
(OpenSSL copies the certificate into each connection when it starts).

The connections themselves run over ``_native/tlsstream.pyx`` (``TLSStream``), a lean
TLS layer on uvloop's TCP transport that uses this context's OpenSSL ``SSL_CTX``; when it
cannot (``lean_tls`` says why) the server falls back to uvloop's own TLS.
"""
from __future__ import annotations

import logging
import os
import ssl
from typing import Optional

from .._native import tlsstream
from ..settings.table import BY_NAME

CLIENT_AUTH = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

# TLS 1.2: the ssl module's default list, with the AES-128-GCM suites moved first (by
# default the server picks AES-256-GCM, which costs 14 AES rounds per block against 10)
TLS12_CIPHERS = ("@SECLEVEL=2:ECDH+AESGCM+AES128:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:"
                 "!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM")


log = logging.getLogger("clasp_fast.server")


class TLSError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names file and setting."""


def _named(name: str, path) -> str:
    """``server.tls.cert = 'x.pem' (flag --tls-cert)``: the setting as the user wrote it."""
    row = BY_NAME[name]
    return f"{row.key} = {path!r} (flag {row.flag})"


def _check_readable(path: Optional[str], name: str) -> None:
    if not path:
        raise TLSError(f"{_named(name, path)} is not set: TLS needs a certificate and a key (PEM files)")
    if not os.path.exists(path):
        raise TLSError(f"{_named(name, path)}: no such file")
    if not os.access(path, os.R_OK) or os.path.isdir(path):
        raise TLSError(f"{_named(name, path)}: cannot be read; check the path and its permissions")


def _load(ctx: ssl.SSLContext, config) -> None:
    _check_readable(config.tls_cert, "tls_cert")
    _check_readable(config.tls_key, "tls_key")
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise TLSError(f"{_named('tls_key', config.tls_key)} does not match "
                           f"{_named('tls_cert', config.tls_cert)}: give the key the certificate "
                           f"was made for") from None
        raise TLSError(f"cannot load {_named('tls_cert', config.tls_cert)} with "
                       f"{_named('tls_key', config.tls_key)}: {reason}; both must be PEM files") from None
    if config.tls_ca:
        _check_readable(config.tls_ca, "tls_ca")
        try:
            ctx.load_verify_locations(cafile=config.tls_ca)
        except ssl.SSLError as exc:
            raise TLSError(f"cannot load {_named('tls_ca', config.tls_ca)}: {exc.reason or exc}; "
                           f"expected PEM CA certificates") from None


def make_context(config) -> Optional[ssl.SSLContext]:
    """The server context, or None when TLS is off.  Raises TLSError.  (The settings' rules
    have already checked the combinations: cert and key given, a CA for client_auth.)"""
    if not config.tls_enabled:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.set_ciphers(TLS12_CIPHERS)
    if tlsstream.unusable(ctx) is None:
        tlsstream.prefer_aes128(ctx)            # TLS 1.3 suites: no ssl module API for these
    ctx.verify_mode = CLIENT_AUTH[config.tls_client_auth]
    _load(ctx, config)
    return ctx


def lean_tls(ctx: ssl.SSLContext) -> bool:
    """Whether connections can use ``TLSStream``; logs why not when they cannot."""
    reason = tlsstream.unusable(ctx)
    if reason is not None:
        log.warning("wss:// runs over uvloop's TLS (more memory and CPU per connection): %s", reason)
    return reason is None


def reload(ctx: ssl.SSLContext, config) -> None:
    """Loads the certificate, key and CA again into ``ctx``.  Raises TLSError and then leaves
    ``ctx`` as it was: the files are tried on a scratch context first."""
    _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), config)
    _load(ctx, config)
