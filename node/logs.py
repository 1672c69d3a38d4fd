"""Structured logs: one JSON object per line on stderr.

Every line has ``ts`` (ISO 8601 UTC), ``level``, ``event`` (a stable dotted name such as
``http.request`` or ``node.started``) and, inside a request, ``request_id`` and ``peer``
from context variables set by the middleware. Extra fields are passed as keywords.

The node's operator (an employer) reads these logs, so they must never hold tokens,
keys or content: fields whose names suggest a secret are dropped here, and callers log
ids, codes and sizes, never bodies.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import traceback
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pf_request_id", default=None
)
peer_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("pf_peer", default=None)

_SECRET_HINTS = ("token", "secret", "seed", "password", "passphrase", "private", "authorization")
_FIELDS_ATTR = "pf_fields"


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in _SECRET_HINTS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        rid = request_id_var.get()
        if rid is not None:
            line["request_id"] = rid
        peer = peer_var.get()
        if peer is not None:
            line["peer"] = peer
        for key, value in getattr(record, _FIELDS_ATTR, {}).items():
            if not _is_secret(key):
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            # Frames only: an exception's message may quote the data being processed.
            exc = record.exc_info[1]
            line["exception"] = type(exc).__name__
            line["traceback"] = self.formatStack(_frames(exc))
        return json.dumps(line, default=str, ensure_ascii=False)


def _frames(exc: BaseException) -> str:
    return "".join(traceback.format_tb(exc.__traceback__))


def configure_logging(level: str = "info", stream: Any = None) -> None:
    """Route the root logger (and aiohttp's) to JSON lines on ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's own access log duplicates ours and logs raw paths: silence it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (secret-looking names are dropped)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS_ATTR: fields})


def log_exception(logger: logging.Logger, event: str, exc: BaseException, **fields: Any) -> None:
    logger.error(event, exc_info=(type(exc), exc, exc.__traceback__), extra={_FIELDS_ATTR: fields})
