"""A forum across two nodes: a browser member on node A, a CLI-library member on node B.

Two real node processes, peered both ways by their operators (``peerforum peer add URL
--yes``, as tests/integration does). Alice enrolls in Chromium on A and creates a forum
there (A is its hub). Bob is a member of B and uses the member library (cli/member), whose
client talks only to B. Alice's browser nominates Bob — checking the attestation B signed
under B's key, which the browser can only get through its own node's relay and pins — and
votes; her page's duty invites him with the charter and pledge sealed to his device; Bob's
node learns of the invitation by federation, Bob accepts (checking the pledge), and Alice's
page commits the admission epoch sealed to his device, whose attestation it verified under
the pinned key of B. Each reads the other's post decrypted: the browser shows Bob's,
forwarded from B to the hub; Bob's library reads Alice's from B's replica.

Then Alice moves to remove Bob and her vote carries it (2/3 of the members other than
Bob); her browser carries out the removal and re-keys to herself alone. The remote member
is the removed side because it proves the most: Bob still holds every epoch secret he was
ever sealed, on his own device, and his node still holds the log up to his removal; a post
Alice writes afterwards, its ciphertext handed straight to Bob's library, does not open
with any of them, and his node now refuses him the forum.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from cli.member import MemberApiError, MemberClient
from cli.member.sealing import readable
from protocol.keys import unb64u
from protocol.log import Entry
from tests.integration.federation_kit import TEST_LIMITS
from tests.integration.harness import NodeProcess, init_node, run_cli, start_node

from .test_client import Member, add_member, vote, wait_until

FORUM_NAME = "Two-node circle"
BOB_TEXT = "bob-on-b-marker: our supplier in the north went under"
ALICE_TEXT = "alice-on-a-marker: the board wants a second plant"
AFTER_TEXT = "after-bob-removal-marker: Bob must not read this"


def _start(root: Path) -> NodeProcess:
    data, port = init_node(root)
    config = data / "config.toml"
    # Both nodes share 127.0.0.1 and a test acts faster than people: limits for tests.
    config.write_text(config.read_text().replace("[limits]\n", TEST_LIMITS, 1))
    return start_node(data, "serve", "--data", str(data), port=port)


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    started: list[NodeProcess] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            started += pool.map(_start, [tmp_path / "a", tmp_path / "b"])
        a, b = started

        def peer(pair: tuple[NodeProcess, NodeProcess]) -> None:
            me, other = pair
            result = run_cli("peer", "add", other.url, "--yes", "--data", str(me.data), "--json")
            assert result.returncode == 0, result.stderr
            assert result.json()["peer"]["status"] == "approved", result.stdout

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(peer, [(a, b), (b, a)]))
        yield a, b
    finally:
        for node in started:
            node.kill()


def test_browser_on_a_and_cli_member_on_b_share_a_forum(
    browser: Browser, two_nodes: tuple[NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    a, b = two_nodes
    alice = Member(browser, a, viewport={"width": 1100, "height": 900})
    seen: dict[str, str] = {}
    try:
        _flow(alice, a, b, tmp_path, seen)
    except Exception:
        if "forum" in seen:
            _dump_hub_log(alice, seen["forum"])
        raise
    finally:
        alice.context.close()


def _dump_hub_log(alice: Member, forum: str) -> None:
    """On failure: the hub's log as Alice's page gets it (types, authors, cleartext fields)."""
    for data in alice.page.evaluate(HUB_ENTRIES, forum):
        e = Entry.from_bytes(unb64u(data))
        ev = e.signed_event
        clear = {k: v for k, v in ev.body.items() if k in ("subject", "admit", "candidate")}
        print(f"hub log {e.seq} {ev.type} {ev.author} epoch={ev.epoch} {clear}")


HUB_ENTRIES = """async (forum) => {
  const { Session } = await import('/static/js/api.js');
  const { loadDeviceKeys } = await import('/static/js/keystore.js');
  const { getSetting } = await import('/static/js/store.js');
  const account = await getSetting('account');
  const device = await loadDeviceKeys(account.member);
  const s = new Session({ member: account.member, node: account.node, device });
  return (await s.entries(forum, { from: 1, limit: 500 })).entries;
}"""


def _flow(alice: Member, a: NodeProcess, b: NodeProcess, tmp_path: Path,
          seen: dict[str, str]) -> None:  # fmt: skip
    bob = MemberClient.enroll(tmp_path / "bob", b.url, add_member(b, "bob", "Globex"))
    dan = MemberClient.enroll(tmp_path / "dan", b.url, add_member(b, "dan", "Initech"))
    assert bob.node == dan.node == b.name
    alice.enroll(add_member(a, "alice", "Acme"))
    alice.page.get_by_label("Forum name").fill(FORUM_NAME)
    alice.page.get_by_role("button", name="Create forum").click()
    expect(alice.page.get_by_role("heading", name=FORUM_NAME)).to_be_visible()
    forum = alice.page.locator(".screen.forum").get_attribute("data-forum")
    assert forum and forum.endswith(":" + a.name)
    seen["forum"] = forum

    # Nominations of members of another node: the browser checks B's attestations under
    # B's key, relayed by A and pinned here on first use (byte for byte what B signed).
    alice.forum_tab(forum, "admission")
    alice.nominate(bob.member)
    pinned = alice.page.evaluate(
        """async (node) => {
             const { getPinned } = await import('/static/js/store.js');
             const { toHex } = await import('/static/js/codec.js');
             const bytes = await getPinned(node);
             return bytes ? toHex(bytes) : null;
           }""",
        b.name,
    )
    status, b_descriptor = b.get("/.well-known/peerforum")
    assert status == 200 and pinned == b_descriptor.hex()
    alice.vote(bob.member, "yes", "runs the largest plant in the region")
    expect(alice.motion(bob.member).locator(".tally")).to_contain_text("passed")

    # The duty invites him; B learns of it by federation and Bob's library opens the
    # charter and pledge the browser sealed to his device, then accepts. Alice's open
    # page wakes on the accept (forwarded from B to the hub) and commits the admission
    # epoch, sealed to his device as B attested it.
    admitted(alice, forum, bob)

    # Dan, also of B: nominated in the browser, voted in by Alice's browser and Bob's
    # library (unanimous, quorum 2/3 of 2), so the invitation is sealed to both of them.
    alice.forum_tab(forum, "admission")
    alice.nominate(dan.member)
    alice.vote(dan.member, "yes")
    wait_until(lambda: any(m.kind == "nominate" and m.subject == dan.member
                           for m in bob.view(forum).motions.values()),
               "Dan's nomination at B")  # fmt: skip
    vote(bob, forum, "nominate", dan.member, True, "a good peer")
    expect(alice.motion(dan.member).locator(".tally")).to_contain_text("passed")
    admitted(alice, forum, dan)
    expect(alice.page.locator(f'[data-member="{bob.member}"]')).to_contain_text("Globex")
    alice.shot("two-nodes-members")

    # Both directions: Bob's post (written at B, sequenced by the hub A) opens in the
    # browser; Alice's browser post opens in Bob's library from B's replica.
    bob.post(forum, BOB_TEXT)
    alice.forum_tab(forum, "stream")
    expect(alice.page.locator("#posts")).to_contain_text(BOB_TEXT)
    alice.page.get_by_label("Write to the forum").fill(ALICE_TEXT)
    alice.page.get_by_role("button", name="Post", exact=True).click()
    expect(alice.page.locator("#posts")).to_contain_text(ALICE_TEXT)
    alice.shot("two-nodes-stream")
    wait_until(lambda: texts(bob.read(forum)) == [BOB_TEXT, ALICE_TEXT], "Alice's post at B")

    # Removal by motion: 2/3 of the members other than Bob — Alice's browser and Dan's
    # library; her browser carries it out and re-keys to Alice and Dan.
    alice.forum_tab(forum, "members")
    alice.page.get_by_text("Propose a removal").click()
    alice.page.get_by_label("Member", exact=True).select_option(bob.member)
    alice.page.get_by_label("Reason").fill("left the company")
    alice.page.get_by_role("button", name="Propose removal").click()
    alice.forum_tab(forum, "admission")
    alice.vote(bob.member, "yes", kind="remove")
    wait_until(lambda: any(m.kind == "remove" and len(m.votes) == 1
                           for m in dan.view(forum).motions.values()),
               "the removal motion and Alice's vote at B")  # fmt: skip
    vote(dan, forum, "remove", bob.member, True, "agreed")
    alice.forum_tab(forum, "members")
    expect(alice.page.locator(f'[data-member="{bob.member}"] .tag').first).to_have_text("removed")
    alice.forum_tab(forum, "stream")
    alice.page.get_by_label("Write to the forum").fill(AFTER_TEXT)
    alice.page.get_by_role("button", name="Post", exact=True).click()
    expect(alice.page.locator("#posts")).to_contain_text(AFTER_TEXT)
    alice.forum_tab(forum, "notices")
    expect(alice.page.locator("#notices")).to_contain_text("removed @bob")
    alice.shot("two-nodes-removed")

    # Dan, on Bob's own node, reads the later post; Bob's device holds every secret it
    # was ever sealed, and with B's ciphertext in hand none of them opens that post.
    wait_until(lambda: AFTER_TEXT in texts(dan.read(forum)), "the later post read by Dan at B")
    _, at_b = dan.entries(forum)
    posts = [readable(bob.profile, e) for e in at_b if e.signed_event.type == "post"]
    assert [p.get("body", {}).get("text") for p in posts] == [BOB_TEXT, ALICE_TEXT, None]
    assert posts[-1]["unreadable"] and bob.profile.epoch_secret(forum, posts[-1]["epoch"]) is None
    assert bob.profile.epoch_secret(forum, posts[0]["epoch"]) is not None
    with pytest.raises(MemberApiError) as refused:  # and his node closes the forum to him
        bob.read(forum)
    assert refused.value.code == "api.forbidden"
    assert alice.errors == []


def admitted(alice: Member, forum: str, m: MemberClient) -> None:
    """``m`` (a library member of B) accepts the browser's invitation; the browser's duty
    admits them, and B's replica lists them active."""
    wait_until(lambda: any(i["forum"] == forum for i in m.invites()), f"{m.member}'s invitation")
    assert "confidential" in m.accept(forum)["pledge"]
    alice.forum_tab(forum, "members")
    expect(alice.page.locator(f'[data-member="{m.member}"] .tag').first).to_have_text("active")

    def active_at_b() -> bool:
        members = m.reported_state(forum)["members"]
        return m.member in {x["member"] for x in members if x["status"] == "active"}

    wait_until(active_at_b, f"{m.member} active at B")


def texts(read: dict[str, Any]) -> list[str]:
    return [e["body"]["text"] for e in read["entries"] if e["type"] == "post" and "body" in e]
