"""The one error type of the settings layer: a message a user can act on.

A ``ConfigError`` is one line that names where the value came from (file and line,
environment variable or flag), the key path, the value and what is allowed.  The
command line prints it and exits 2; it is a ``ValueError`` so code that builds a
config object directly (tests, embedders) can catch it as such.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot be used; ``str()`` is the whole one-line message."""
