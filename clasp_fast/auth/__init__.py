"""Token authentication: the tokens file (``tokens.py``), scopes and the decisions made
from them (``scopes.py``), the ``clasp-fast token`` command (``command.py``)."""
