"""clasp-fast: a fast CLASP router (picows + uvloop + a Cython hot path)."""
__version__ = "0.1.0"
