"""The flat ``Config`` every layer above the core reads (``config.host``, ``config.port``).

Generated from the settings table; see ``clasp_fast.settings``.
"""
from .settings.objects import Config

__all__ = ["Config"]
