"""Structured events: JSON lines with high-cardinality context, for reconstructing what happened.

keel is a library first, so it never configures logging on import: events go to the standard
``keel.*`` loggers, silent until an application (or the CLI's ``--debug``/``--log-json``) attaches a
handler. Every event carries host, pid and the user; callers bind the rest (table, version, ...).
"""

from __future__ import annotations

import logging
import os
import socket
import sys

import structlog

__all__ = ["configure_logging", "get_logger"]

_STATIC = {"host": socket.gethostname(), "pid": os.getpid()}


def _static_context(_logger: object, _name: str, event: dict) -> dict:
    event.setdefault("host", _STATIC["host"])
    event["pid"] = os.getpid()
    return event


def get_logger(name: str, **context: object) -> structlog.stdlib.BoundLogger:
    """A logger whose events render as one JSON object per line, with ``context`` bound."""
    logger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _static_context,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger.bind(**context) if context else logger


def configure_logging(level: int | str = logging.INFO) -> None:
    """Send keel's events to stderr as JSON lines (the CLI calls this for --debug)."""
    root = logging.getLogger("keel")
    root.setLevel(level)
    if not any(getattr(h, "_keel", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._keel = True  # type: ignore[attr-defined]
        root.addHandler(handler)
