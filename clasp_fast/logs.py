"""Logging set-up: text lines (default) or one JSON object a line (``logging.format: json``).

A worker of ``--workers N`` tags its lines with its index (``w3`` in text, ``"worker": 3``
in JSON).  Client-caused problems (bad frames, oversize messages, protocol errors) are
answered on the wire (ERROR, close codes) and counted in the metrics, never logged at
ERROR: the router's log is for the operator.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Optional

import orjson

TEXT = "%(asctime)s %(levelname)s {worker}%(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message[, worker, exc]."""

    def __init__(self, worker: Optional[int] = None):
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if self.worker is not None:
            out["worker"] = self.worker
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def formatter(fmt: str, worker: Optional[int] = None) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(worker)
    return logging.Formatter(TEXT.format(worker=f"w{worker} " if worker is not None else ""))


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def tag_worker(index: int, fmt: str) -> None:
    """In a worker process: its index on every line."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(fmt, index))
