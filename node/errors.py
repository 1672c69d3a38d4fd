"""The one place where failures become HTTP responses.

Handlers raise ``ProtocolError(code)``; this middleware answers with the status that
``protocol.errors.CODES`` gives the code and a body ``{"error": code, "message": ...,
"request_id": ...}`` — JSON, or canonical msgpack on federation routes (peers speak
msgpack). aiohttp's own HTTP exceptions (no route, body too large) are translated to
codes too, so every error a client sees has a code. Anything else is a bug: it is
logged with its traceback under the request id and answered as ``api.internal`` with
a fixed message, so no exception text (which may quote content) ever leaves the node.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from protocol.codec import encode
from protocol.errors import CODES, ProtocolError, RemoteProtocolError

from .context import CTX
from .identity import FEDERATION_PREFIX
from .logs import log_event, log_exception, request_id_var

MSGPACK = "application/vnd.peerforum+msgpack"
log = logging.getLogger("peerforum.http")

# aiohttp exceptions raised before or around a handler, by status.
_STATUS_CODES = {
    400: "api.bad_request",
    401: "api.unauthorized",
    403: "api.forbidden",
    404: "api.not_found",
    405: "api.bad_request",
    409: "api.conflict",
    413: "api.too_large",
    415: "api.unsupported_media",
    429: "api.rate_limited",
    503: "api.unavailable",
}


class RateLimitedError(RemoteProtocolError):
    """api.rate_limited with the seconds after which a retry may succeed."""

    def __init__(self, retry_after_s: float, message: str = "") -> None:
        super().__init__("api.rate_limited", message)
        self.retry_after_s = retry_after_s


def wants_msgpack(request: web.BaseRequest) -> bool:
    return request.path.startswith(FEDERATION_PREFIX) or MSGPACK in request.headers.get(
        "Accept", ""
    )


def error_response(
    request: web.BaseRequest, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    status = CODES[code][0]
    ctx = request.app.get(CTX) if isinstance(request, web.Request) else None
    if ctx is not None:
        ctx.metrics.errors.inc(code=code)
    body: dict[str, Any] = {"error": code, "message": message}
    rid = request_id_var.get()
    if rid is not None:
        body["request_id"] = rid
    if wants_msgpack(request):
        return web.Response(status=status, body=encode(body), content_type=MSGPACK, headers=headers)
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


def _http_exception_code(exc: web.HTTPException) -> str:
    if exc.status in _STATUS_CODES:
        return _STATUS_CODES[exc.status]
    return "api.bad_request" if exc.status < 500 else "api.internal"


@dataclass(frozen=True)
class Refusal:
    """What a failure answers: a code, a message safe to send, and (for "not now") the
    seconds after which a retry may succeed."""

    code: str
    message: str
    retry_after_s: float | None = None


def refusal_of(request: web.BaseRequest, exc: Exception) -> Refusal:
    """The answer to a handler's failure (a protocol error, a database that cannot take
    writes now, or a bug — logged here with its traceback). The HTTP error middleware
    and the inbox socket (routes/federation.py) answer with it alike."""
    if isinstance(exc, ProtocolError):
        wait = exc.retry_after_s if isinstance(exc, RateLimitedError) else None
        return Refusal(exc.code, exc.message, wait)
    reason = storage_unavailable(exc)
    if reason is not None:  # not a bug: the operator's disk or another process
        log_event(log, logging.WARNING, "storage.unavailable", reason=reason,
                  route=route_name(request))  # fmt: skip
        return Refusal(
            "api.unavailable", f"the node's database is {reason}; try again later", 5.0
        )
    log_exception(log, "http.internal_error", exc, route=route_name(request))
    return Refusal("api.internal", _internal_message())


def _refused(request: web.Request, refusal: Refusal) -> web.Response:
    headers = None
    if refusal.retry_after_s is not None:
        headers = {"Retry-After": str(max(1, int(refusal.retry_after_s + 0.999)))}
    return error_response(request, refusal.code, refusal.message, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ProtocolError as exc:
        return _refused(request, refusal_of(request, exc))
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like are answers, not errors
            raise
        code = _http_exception_code(exc)
        if code == "api.internal":
            log_exception(log, "http.internal_error", exc, route=route_name(request))
            return error_response(request, code, _internal_message())
        # aiohttp's reasons are fixed phrases ("Not Found"), never request content.
        return error_response(request, code, exc.reason or CODES[code][1])
    except Exception as exc:
        return _refused(request, refusal_of(request, exc))


# SQLite result codes that mean "not now", not "a bug": another process holds the lock,
# the disk is full, or the disk refused the write. (Python 3.11 names them on the error.)
_UNAVAILABLE = {"SQLITE_BUSY": "locked by another process", "SQLITE_LOCKED": "locked",
                "SQLITE_FULL": "out of disk space", "SQLITE_IOERR": "failing to write"}  # fmt: skip


def storage_unavailable(exc: BaseException) -> str | None:
    """Why the database cannot take requests now, if that is what ``exc`` (or what it was
    raised from: the storage layer wraps driver errors) means; else None."""
    seen: BaseException | None = exc
    for _ in range(8):  # a cause chain is short; a cycle must not hang an error path
        if seen is None:
            return None
        if isinstance(seen, sqlite3.Error):
            name = getattr(seen, "sqlite_errorname", "") or ""
            for prefix, reason in _UNAVAILABLE.items():
                if name.startswith(prefix):
                    return reason
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return _UNAVAILABLE["SQLITE_FULL"]
        seen = seen.__cause__ or seen.__context__
    return None


def _internal_message() -> str:
    rid = request_id_var.get()
    suffix = f" (request id {rid})" if rid else ""
    return f"internal error; the operator can find it in the node's log{suffix}"


def route_name(request: web.BaseRequest) -> str:
    """The route template (``/admin/peers/{name}``), never the raw path with its ids."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    canonical: str = resource.canonical
    return canonical
