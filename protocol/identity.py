"""Names of nodes, members, devices and forums (specs/protocol.md §4.1, §6.1).

A node is named by its host, optionally with a port: ``acme.example``,
``127.0.0.1:8701``. A member is ``@handle:node``; a forum is ``!random:first-hub``. Names
are compared byte for byte after validation; the only normalization is that node names
must already be lower case.
"""

from __future__ import annotations

import re

from .errors import LocalProtocolError, RemoteProtocolError
from .keys import b64u

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|\[[0-9a-f:]+\])"
_NODE_RE = re.compile(rf"^{_HOST}(?::(?P<port>[1-9][0-9]{{0,4}}))?$")
_HANDLE_RE = re.compile(r"^[a-z0-9][a-z0-9._=-]{0,63}$")
_FORUM_RE = re.compile(r"^!([A-Za-z0-9_-]{22}):(.+)$")
MAX_NODE_NAME = 255
# Every event and entry names a few nodes (author, forum, hub), each checked by the regex
# below on every decode: a hub checks the same handful of names thousands of times a
# second. Names that passed are remembered (exact strings; a bounded set of successes).
_GOOD_NODES: set[str] = set()
_GOOD_NODES_MAX = 4096


def check_node_name(name: object) -> str:
    """Return ``name`` if it is a valid node name, else raise ``identity.bad_node_name``."""
    if type(name) is str and name in _GOOD_NODES:
        return name
    if not isinstance(name, str) or len(name) > MAX_NODE_NAME:
        raise RemoteProtocolError("identity.bad_node_name", f"bad node name {name!r:.80}")
    m = _NODE_RE.fullmatch(name)
    if m is None or (m.group("port") is not None and int(m.group("port")) > 65535):
        raise RemoteProtocolError("identity.bad_node_name", f"bad node name {name!r:.80}")
    if len(_GOOD_NODES) >= _GOOD_NODES_MAX:
        _GOOD_NODES.clear()
    _GOOD_NODES.add(name)
    return name


def member_id(handle: str, node: str) -> str:
    check_node_name(node)
    if not _HANDLE_RE.fullmatch(handle):
        raise RemoteProtocolError("identity.bad_member_id", f"bad handle {handle!r:.80}")
    return f"@{handle}:{node}"


def parse_member_id(mid: object) -> tuple[str, str]:
    """Split ``@handle:node`` into (handle, node), validating both."""
    if not isinstance(mid, str) or not mid.startswith("@") or ":" not in mid:
        raise RemoteProtocolError("identity.bad_member_id", f"bad member id {mid!r:.80}")
    handle, _, node = mid[1:].partition(":")
    if not _HANDLE_RE.fullmatch(handle):
        raise RemoteProtocolError("identity.bad_member_id", f"bad member id {mid!r:.80}")
    try:
        check_node_name(node)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError("identity.bad_member_id", f"bad member id {mid!r:.80}") from exc
    return handle, node


def node_of(mid: str) -> str:
    """The home node of a member id."""
    return parse_member_id(mid)[1]


def make_forum_id(random16: bytes, hub: str) -> str:
    """``"!" + b64u(16 random bytes) + ":" + hub`` (the first hub; the id never changes)."""
    if not isinstance(random16, bytes) or len(random16) != 16:
        raise LocalProtocolError("schema.bad_value", "forum id needs 16 random bytes")
    return f"!{b64u(random16)}:{check_node_name(hub)}"


def check_forum_id(forum: object) -> str:
    """Return ``forum`` if it is a well-formed forum id, else ``schema.bad_value``."""
    m = _FORUM_RE.fullmatch(forum) if isinstance(forum, str) else None
    if m is None:
        raise RemoteProtocolError("schema.bad_value", f"bad forum id {forum!r:.80}")
    try:
        check_node_name(m.group(2))
    except RemoteProtocolError as exc:
        raise RemoteProtocolError("schema.bad_value", f"bad forum id {forum!r:.80}") from exc
    assert isinstance(forum, str)
    return forum


def forum_origin(forum: str) -> str:
    """The node that created ``forum`` (its first hub)."""
    return check_forum_id(forum).split(":", 1)[1]
