"""Settings of the router core (what the sans-I/O router itself enforces).

``RouterConfig`` is generated from the settings table (``clasp_fast/settings/table.py``,
rows of layer "router"): ``RouterConfig(name=..., max_frame_size=...)``; a value out of
range raises ``ConfigError`` (a ValueError) naming its key path, flag and variable.
"""
from ..settings.objects import RouterConfig

__all__ = ["RouterConfig"]
