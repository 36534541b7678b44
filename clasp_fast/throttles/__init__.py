"""Delivery throttles the router core applies (pure Python, rare paths only).

``gates``: per-subscription ``maxRate`` / ``epsilon``; ``gestures``: gesture
``move`` coalescing.  They call back into the router they are given (its
``clock``, ``call_later``, ``push_frame``, ``forward_publish``) and import
nothing of ours, so the native router can import them: arrows point
router -> throttles.
"""
