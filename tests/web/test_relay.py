"""Other nodes' keys in the browser: relayed by the home node, verified and pinned here.

A second real node (never peered with the first) stands for a member's or hub's node
elsewhere. The browser gets its descriptor through ``/nodes/{name}/descriptor`` on its
own origin, pins it, follows the operator's key rotation through the rotation
statement signed by the pinned key, and refuses a key that no statement links to its pin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from protocol.codec import decode, encode
from protocol.descriptor import build_descriptor
from protocol.keys import SigningKey
from tests.integration.harness import NodeProcess, init_node, run_cli, start_node

from .test_client import Member, add_member

LOOKUP = """async ([node, kid]) => {
  const { Session } = await import('/static/js/api.js');
  const { NodeKeys } = await import('/static/js/nodekeys.js');
  const { loadDeviceKeys } = await import('/static/js/keystore.js');
  const { getSetting, getPinned, pin } = await import('/static/js/store.js');
  const { codec } = { codec: await import('/static/js/codec.js') };
  const account = await getSetting('account');
  const device = await loadDeviceKeys(account.member);
  const keys = new NodeKeys(new Session({ member: account.member, node: account.node, device }));
  let key = null, error = null;
  try { key = await keys.lookup(node, kid, Date.now()); } catch (e) { error = e.code || String(e); }
  const pinned = await getPinned(node);
  return { found: key ? key.keyId : null, error, refused: keys.refused.get(node) ?? null,
           pinned: pinned ? codec.toHex(pinned) : null };
}"""
PIN = """async ([node, hex]) => {
  const { pin } = await import('/static/js/store.js');
  const { fromHex } = await import('/static/js/codec.js');
  await pin(node, fromHex(hex));
}"""


@pytest.fixture
def other_node(tmp_path: Path) -> Iterator[NodeProcess]:
    data, port = init_node(tmp_path / "other")
    node = start_node(data, "serve", "--data", str(data), port=port)
    try:
        yield node
    finally:
        node.kill()


def _descriptor(node: NodeProcess) -> tuple[bytes, dict[str, Any]]:
    status, data = node.get("/.well-known/peerforum")
    assert status == 200
    obj = decode(data)
    assert isinstance(obj, dict)
    return data, obj


def test_relayed_descriptor_is_pinned_rotated_and_guarded(
    browser: Browser, web_node: NodeProcess, other_node: NodeProcess
) -> None:
    m = Member(browser, web_node)
    try:
        m.enroll(add_member(web_node, "relay", "Relay Co"))
        name = other_node.name
        data, desc = _descriptor(other_node)

        # First use: fetched through the home node, verified here, pinned byte for byte.
        got = m.page.evaluate(LOOKUP, [name, desc["kid"]])
        assert got["found"] == desc["kid"] and got["pinned"] == data.hex(), got

        # The operator rotates the key; the browser believes the new one only through
        # the statement its pinned key signed (relayed with ?rotations=1).
        result = run_cli("key", "rotate", "--data", str(other_node.data), "--json")
        assert result.returncode == 0, result.stderr
        new_kid = result.json()["kid"]
        got = m.page.evaluate(LOOKUP, [name, new_kid])
        assert got["found"] == new_kid and got["refused"] is None, got
        assert got["pinned"] == _descriptor(other_node)[0].hex()

        # A browser that pinned a stranger's key for that name refuses the real one: no
        # rotation statement links them, so the pin stays and the key is not found.
        stranger = SigningKey(b"\x05" * 32)
        forged = build_descriptor(name=name, key=stranger, issued=desc["issued"],
                                  valid_until=desc["valid_until"],
                                  endpoints=desc["endpoints"])  # fmt: skip
        m.page.evaluate(PIN, [name, encode(forged.to_wire()).hex()])
        got = m.page.evaluate(LOOKUP, [name, new_kid])
        assert got["found"] is None and got["refused"], got
        assert got["pinned"] == encode(forged.to_wire()).hex()
        assert m.errors == []
    finally:
        m.context.close()
