"""The errors of the CLASP codec (raised by ``clasp_fast._native.wire`` and ``legacy``)."""


class DecodeError(ValueError):
    """A frame or payload that does not follow the CLASP wire format.

    The router answers it with ERROR 400 carrying this text."""


class EncodeError(ValueError):
    """A message that cannot be put on the wire (too large, unsupported value, ...)."""
