"""Request middleware, outermost first: context (request id, access log, metrics),
errors (node/errors.py), body size, address rate limit.

Per-peer and per-member limits need to know who is asking, which only the handler
learns (after checking an envelope signature or a session), so handlers call
``enforce_rate(request, "peer", name)`` themselves.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from typing import Any

from aiohttp import web

from protocol.errors import RemoteProtocolError

from .context import CTX
from .errors import RateLimitedError, error_response, route_name
from .logs import log_event, peer_var, request_id_var

log = logging.getLogger("peerforum.http")

# Health checks and the local admin API are not rate limited: monitoring must always get
# through, and the admin API is already loopback-only with a token.
_UNLIMITED_PREFIXES = ("/healthz", "/metrics", "/admin/")
# Members' devices and peers call these thousands of times a second under load: a line
# per answered request there is noise and CPU (the request counters in /metrics count
# them), so they log at DEBUG. Refusals and errors (status >= 400) log at INFO on every
# path, and admin and page requests keep one line each.
_QUIET_PREFIXES = ("/_pf/client/v1/", "/_pf/v1/")

# A request id must be unique in this node's logs, not secret: a random prefix per
# process and a counter, instead of a getrandom syscall per request.
_RID_PREFIX = secrets.token_hex(4)
_rid_counter = itertools.count(1)


def next_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter) & 0xFFFFFFFF:08x}"


@web.middleware
async def context_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    rid = next_request_id()
    rid_token = request_id_var.set(rid)
    peer_token = peer_var.set(None)
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:  # redirects pass through the error middleware
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_name(request)
        metrics = request.app[CTX].metrics
        metrics.requests.inc(route=route, status=str(status))
        metrics.request_seconds.inc(elapsed, route=route)
        quiet = status < 400 and request.path.startswith(_QUIET_PREFIXES)
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):
            log_event(
                log,
                level,
                "http.request",
                method=request.method,
                route=route,
                status=status,
                ms=round(elapsed * 1000, 2),
                remote=request.remote,
            )
        peer_var.reset(peer_token)
        request_id_var.reset(rid_token)


@web.middleware
async def limits_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    ctx = request.app[CTX]
    # Refuse an announced oversize body before reading a byte of it; aiohttp's
    # client_max_size catches bodies without Content-Length as they are read.
    declared = request.content_length
    if declared is not None and declared > ctx.config.limits.max_body_bytes:
        raise RemoteProtocolError(
            "api.too_large", f"body of {declared} bytes > {ctx.config.limits.max_body_bytes}"
        )
    if not request.path.startswith(_UNLIMITED_PREFIXES):
        enforce_rate(request, "ip", request.remote or "unknown")
    response: web.StreamResponse = await handler(request)
    return response


def enforce_rate(
    request: web.Request, kind: str, key: str, cost: float = 1.0, need: float | None = None
) -> None:
    """Spend ``cost`` tokens of ``key``'s ``kind`` bucket or raise api.rate_limited.
    ``need``: tokens that must be there (default ``cost``; see ``TokenBucket.take``)."""
    ctx = request.app[CTX]
    decision = ctx.rate_limits.take(kind, key, time.monotonic(), cost, need)
    if not decision.allowed:
        ctx.metrics.rate_limited.inc(kind=kind)
        raise RateLimitedError(decision.retry_after_s, f"too many requests ({kind})")


__all__ = ["context_middleware", "enforce_rate", "error_response", "limits_middleware"]
