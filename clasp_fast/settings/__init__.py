"""Settings of clasp-fast: one table (``table.py``) and what is generated from it.

- ``table.py``: the rows (name, key path, kind, default, help) and cross-setting rules
- ``setting.py``: one row, its flag, variable and messages; ``kinds.py``: value kinds
- ``objects.py``: ``Config`` (flat, every setting) and ``RouterConfig`` (the core's)
- ``loader.py``: defaults < file < CLASP_FAST_* variables < flags; ``yaml_file.py``,
  ``flags.py``: the file and the command line; ``bind_address.py``: the address probe
- ``render.py``: settings as YAML; ``generate.py``: docs/configuration.md,
  examples/clasp.yaml and ``objects.pyi`` (``stub.py``), rewritten by
  ``python -m clasp_fast.settings.generate``
"""
from .errors import ConfigError
from .objects import Config, RouterConfig
from .table import BY_NAME, RULES, SETTINGS

__all__ = ["BY_NAME", "RULES", "SETTINGS", "Config", "ConfigError", "RouterConfig"]
