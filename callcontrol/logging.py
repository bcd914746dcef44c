"""structlog set-up: JSON lines on stderr, call id bound per call task through contextvars."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("password", "secret", "token", "authorization")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never let a secret-looking field reach the log."""
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "***"
    return event


def configure_logging(level: str = "info") -> None:
    """Configure structlog for JSON output at ``level``."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A structlog logger carrying ``component=name``."""
    return structlog.get_logger(component=name)
