"""Reading request bodies: size first, then content type, then strict parsing."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from protocol.codec import decode
from protocol.errors import RemoteProtocolError

from .context import CTX
from .errors import MSGPACK


async def read_body(request: web.Request, content_type: str) -> bytes:
    if request.content_type != content_type:
        raise RemoteProtocolError("api.unsupported_media", f"send {content_type}")
    limit = request.app[CTX].config.limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RemoteProtocolError("api.too_large", f"body larger than {limit} bytes")
    body = await request.read()  # bounded by the app's client_max_size
    if len(body) > limit:
        raise RemoteProtocolError("api.too_large", f"body larger than {limit} bytes")
    return body


async def read_json(request: web.Request) -> dict[str, Any]:
    """A JSON object body (an empty body reads as ``{}``)."""
    body = await read_body(request, "application/json") if request.body_exists else b""
    return parse_json(body)


def parse_json(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body`` (``{}`` when empty), or ``api.bad_request``."""
    if not body:
        return {}
    try:
        value = json.loads(body)
    except RecursionError as exc:  # "[[[[..." within the size limit: the stack, not a 500
        raise RemoteProtocolError("api.bad_request", "body is nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError("api.bad_request", "body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise RemoteProtocolError("api.bad_request", "body must be a JSON object")
    return value


async def read_msgpack(request: web.Request) -> Any:
    """A canonical msgpack body (federation routes)."""
    return decode(await read_body(request, MSGPACK))


def json_field(body: dict[str, Any], name: str, typ: type, required: bool = True) -> Any:
    if name not in body:
        if required:
            raise RemoteProtocolError("api.bad_request", f"missing field {name!r}")
        return None
    value = body[name]
    if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
        raise RemoteProtocolError("api.bad_request", f"field {name!r} has the wrong type")
    return value
