"""Several clasp-fast nodes acting as one router through NATS (docs/cluster.md).

Imported only when ``cluster.nats_url`` is set: a standalone router never imports
``nats``.  One idea per file: ``subjects`` maps CLASP addresses and patterns to NATS
subjects and JetStream key-value keys (and back).
"""
