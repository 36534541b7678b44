"""Compiled modules built from src_ext/clasp_fast/_native (see setup.py)."""
