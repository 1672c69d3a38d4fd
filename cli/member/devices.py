"""A member's further devices: enrolled from a device already trusted, then told to
every forum with a ``device.add`` event and a new epoch (removal likewise).

A new device makes its own keys; nothing secret crosses between devices. It writes a
*request* — its public keys and a ``device`` proof signed with its new key — that the
member carries to an enrolled device (``peerforum client device add REQUEST``). That
device registers it with the home node (``POST /devices``), checks the attestation the
node signs under the node key it pinned, and signs ``device.add`` in each forum: only an
existing device of the member may (protocol §7.3), so a node cannot add one by itself.
Each forum then needs a new epoch (``epoch_required``), which the same client commits,
so the new device reads from that epoch on — never earlier. Removing a device is the
mirror image: ``device.remove`` in each forum, a new epoch without it, then the node
revokes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.directory import device_message
from protocol.codec import decode
from protocol.descriptor import KeySet, verify_attestation
from protocol.identity import node_of
from protocol.keys import b64u, key_id, unb64u

from .api import MemberApiError, node_name_of
from .api import quote as q
from .profile import Profile

if TYPE_CHECKING:
    from .client import MemberClient


def request_device(
    profile_dir: Path | str, node_url: str, member: str,
    rng: Callable[[int], bytes] = os.urandom,
) -> dict[str, str]:  # fmt: skip
    """On the new device: its keys (in a new profile) and the request to carry over."""
    node = node_name_of(node_url)
    if node_of(member) != node:
        raise MemberApiError("api.bad_request", f"{member} is not a member of {node}")
    profile = Profile(Path(profile_dir))
    sign, agree = profile.create_device(rng)
    proof = sign.sign(device_message(member=member, node=node, sign=sign.verify_key.raw,
                                     agree=agree.public.raw))  # fmt: skip
    profile.save_settings(node_url=node_url.rstrip("/"), node=node, member=member,
                          kid=sign.key_id, token=None)  # fmt: skip
    return {"member": member, "sign": b64u(sign.verify_key.raw),
            "agree": b64u(agree.public.raw), "proof": b64u(proof)}  # fmt: skip


def _forums(client: MemberClient) -> list[str]:
    return [f["forum"] for f in client.forums() if f.get("as") == "member"]


def add_device(client: MemberClient, request: dict[str, Any]) -> dict[str, Any]:
    """On an enrolled device: register the requested device, then add it to each forum
    (``device.add`` with the node's new attestation) and commit each forum's epoch."""
    if request.get("member") != client.member:
        raise MemberApiError("api.bad_request", "the request is for another member")
    answer = client.session.call("POST", "/devices", {
        "device": {"sign": request["sign"], "agree": request["agree"]},
        "proof": request["proof"],
    })  # fmt: skip
    att_map = decode(unb64u(answer["attestation"]))
    assert isinstance(att_map, dict)
    key = client.keys(client.node, str(att_map.get("kid")), int(att_map.get("ts", 0)))
    if key is None:
        raise MemberApiError("sig.unknown_key", "no pinned key for our own node")
    att = verify_attestation(att_map, expected_node=client.node, keys=KeySet((key,)))
    new_kid = key_id(unb64u(request["sign"]))
    if att.member != client.member or new_kid not in {d.device_id for d in att.devices}:
        raise MemberApiError("attestation.invalid", "the node attested other devices")
    forums = []
    for forum in _forums(client):
        state, _ = client.verified(forum)
        ev = client._event(forum, "device.add", state.epoch, {"attestation": att_map})
        client.submit(ev)
        forums.append({"forum": forum, "event": b64u(ev.event_id),
                       "epoch": client.sync(forum)["epoch"]})  # fmt: skip
    return {"kid": new_kid, "forums": forums}


def remove_device(client: MemberClient, kid: str) -> dict[str, Any]:
    """Take device ``kid`` out of every forum (new epochs without it), then revoke it."""
    if kid == client.sign_key.key_id:
        raise MemberApiError("api.conflict", "remove this device from another one of yours")
    forums = []
    for forum in _forums(client):
        state, _ = client.verified(forum)
        if kid not in state.members[client.member].devices:
            continue
        ev = client._event(forum, "device.remove", state.epoch, {"device": kid})
        client.submit(ev)
        forums.append({"forum": forum, "event": b64u(ev.event_id),
                       "epoch": client.sync(forum)["epoch"]})  # fmt: skip
    client.session.call("DELETE", f"/devices/{q(kid)}")
    return {"kid": kid, "forums": forums}
