"""The members' web client end to end: real node, real Chromium, a CLI-library member.

Alice and Carol use the browser (two contexts: two devices, two IndexedDBs); Bob uses the
member library (cli/member), so the browser and the Python client must agree on every
byte. Alice enrolls with her one-time code, creates a forum, invites Bob and Carol; Bob
accepts through the library and Carol in her browser, where she reads the charter and
pledge; Alice's browser commits the admission epoch on its own (a client duty). Bob
reads Alice's post, Alice's browser shows Bob's. Alice then removes Carol: her browser
re-keys, and a post written afterwards does not open in Carol's browser — not even with
its ciphertext handed to it. Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from cli.member import MemberClient, actions
from cli.member.charter import pledge_hash
from tests.integration.harness import NodeProcess, run_cli

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
FORUM_NAME = "Peers of the north"
BOB_TEXT = "bob-web-marker: we lost our biggest customer this week"
ALICE_TEXT = "alice-web-marker: I am weighing a merger offer"
AFTER_TEXT = "after-removal-marker: Carol must not read this"
TIMEOUT = 15_000


def wait_until(check: Any, what: str, timeout_s: float = TIMEOUT / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def vote(client: MemberClient, forum: str, kind: str, subject: str, yes: bool,
         reason: str = "") -> None:  # fmt: skip
    """A library member's vote on the open motion of ``kind`` about ``subject``."""
    motion = next(m for m in client.view(forum).motions.values()
                  if m.kind == kind and m.subject == subject and m.status != "carried")  # fmt: skip
    actions.vote(client, forum, motion.id, yes, reason)


def add_member(node: NodeProcess, handle: str, org: str) -> str:
    result = run_cli("member", "add", handle, "--org", org, "--data", str(node.data), "--json")
    assert result.returncode == 0, result.stderr
    return str(result.json()["enrollment_code"])


class Member:
    """One browser member: a context of its own (its own IndexedDB, so its own device)."""

    def __init__(self, browser: Browser, node: NodeProcess, **context_args: Any) -> None:
        self.node = node
        self.context: BrowserContext = browser.new_context(**context_args)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.handle = ""
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # A removed member's node answers 403 by design, and a test clicking faster than
        # any member meets the node's rate limit (429), which api.js waits out; any other
        # failed load is a bug.
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     and "status of 403" not in m.text and "status of 429" not in m.text
                     else None)  # fmt: skip
        self.page.set_default_timeout(TIMEOUT)

    def go(self, url: str) -> None:
        """Load ``url`` afresh (a same-hash goto would not even fire hashchange)."""
        if self.page.url == url:
            self.page.reload()
        else:
            self.page.goto(url)

    def open(self, hash_: str = "") -> None:
        self.go(f"{self.node.url}/{hash_}")
        self.page.wait_for_function("() => document.documentElement.dataset.ready === '1'")

    def enroll(self, code: str) -> None:
        self.handle = code.split(".")[0]
        self.open()
        self.page.get_by_label("One-time code").fill(code)
        self.page.get_by_role("button", name="Enroll").click()
        expect(self.page.get_by_role("heading", name="Your forums")).to_be_visible()

    def forum_tab(self, forum: str, tab: str) -> None:
        self.go(f"{self.node.url}/#/forum/{forum.replace('!', '%21').replace(':', '%3A')}/{tab}")
        self.page.wait_for_selector(".screen.forum, .screen h2, main > .error")
        failed = self.page.locator("main > .error")
        assert failed.count() == 0, failed.inner_text()

    def motion(self, subject: str, kind: str = "nominate") -> Any:
        return self.page.locator(f'li.motion[data-kind="{kind}"][data-subject="{subject}"]')

    def nominate(self, candidate: str) -> None:
        self.page.get_by_label("Member id").fill(candidate)
        self.page.get_by_role("button", name="Nominate").click()
        expect(self.motion(candidate)).to_be_visible()

    def vote(self, subject: str, answer: str, reason: str = "", kind: str = "nominate") -> None:
        card = self.motion(subject, kind)
        if reason:
            card.get_by_label("Reason (optional)").fill(reason)
        card.get_by_role("button", name=f"Vote {answer}").click()
        expect(card.locator(".votes")).to_contain_text(f"@{self.handle} {answer}")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def members(browser: Browser, web_node: NodeProcess) -> Any:
    made: list[Member] = []

    def make(**kw: Any) -> Member:
        m = Member(browser, web_node, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.context.close()


def test_browser_and_cli_members_share_a_forum(
    members: Any, web_node: NodeProcess, tmp_path: Path
) -> None:
    node = web_node
    alice, carol = members(viewport={"width": 1100, "height": 900}), members()
    alice_code, carol_code = add_member(node, "alice", "Acme"), add_member(node, "carol", "Initech")
    bob = MemberClient.enroll(tmp_path / "bob", node.url, add_member(node, "bob", "Globex"))

    # Enrollment: keys made in the browser, the code spent with a proof of possession.
    alice.open()
    alice.shot("enroll")
    alice.enroll(alice_code)
    carol.enroll(carol_code)
    alice.page.get_by_role("link", name="My devices").click()
    expect(alice.page.get_by_role("heading", name="My devices")).to_be_visible()
    expect(alice.page.locator(".fp")).to_have_count(1)
    alice.shot("devices")

    # A forum: its name only in the sealed charter.
    alice.page.get_by_role("link", name="Forums").click()
    alice.page.get_by_label("Forum name").fill(FORUM_NAME)
    alice.page.get_by_role("button", name="Create forum").click()
    expect(alice.page.get_by_role("heading", name=FORUM_NAME)).to_be_visible()
    forum = alice.page.locator(".screen.forum").get_attribute("data-forum")
    assert forum and forum.endswith(":" + node.name)

    # Admission by motion: Alice nominates Bob (her browser checks his attestation and
    # seals his intake), votes yes, and her page's duty invites him with the charter and
    # pledge; the library accepts (checking the pledge the browser sealed).
    alice.forum_tab(forum, "admission")
    alice.nominate(bob.member)
    alice.vote(bob.member, "yes", "knows our industry")
    wait_until(lambda: any(i["forum"] == forum for i in bob.invites()), "Bob's invitation")
    alice.shot("admission")
    bob.accept(forum)
    alice.forum_tab(forum, "members")
    expect(alice.page.locator('[data-member^="@bob:"] .tag').first).to_have_text("active")

    # Carol: a browser voter and a library voter (unanimous, quorum 2/3 of 2).
    carol_id = f"@carol:{node.name}"
    alice.forum_tab(forum, "admission")
    alice.nominate(carol_id)
    alice.vote(carol_id, "yes")
    expect(alice.motion(carol_id).locator(".tally")).to_contain_text("1 yes")
    vote(bob, forum, "nominate", carol_id, True, "a good peer")
    expect(alice.motion(carol_id).locator(".tally")).to_contain_text("passed")
    carol.open("#/forums")
    expect(carol.page.locator(".invite")).to_contain_text(FORUM_NAME)
    expect(carol.page.locator(".pledge")).to_contain_text("confidential")
    carol.shot("invitation")
    carol.page.get_by_role("button", name="Accept and sign the pledge").click()
    expect(carol.page.get_by_role("status").filter(has_text="Accepted")).to_be_visible()

    # Alice's open page wakes on the accept and commits the admission epoch (a duty).
    alice.forum_tab(forum, "members")
    expect(alice.page.locator('[data-member^="@carol:"] .tag').first).to_have_text("active")
    state = bob.reported_state(forum)
    assert {m["member"] for m in state["members"] if m["status"] == "active"} == {
        f"@alice:{node.name}",
        bob.member,
        carol_id,
    }
    alice.shot("members")

    # Dave works at Acme, like Alice: the conflict check blocks him though the vote passed.
    dave = MemberClient.enroll(tmp_path / "dave", node.url, add_member(node, "dave", "Acme")).member
    alice.forum_tab(forum, "admission")
    alice.nominate(dave)
    card = alice.motion(dave)
    expect(card.locator(".conflicts")).to_contain_text("already in the forum from Acme")
    alice.vote(dave, "yes")
    vote(bob, forum, "nominate", dave, True)
    expect(card.locator(".tally")).to_contain_text("passed")
    expect(card).to_contain_text("Blocked by the conflict check")
    assert bob.sync(forum)["blocked"][0]["subject"] == dave
    assert dave not in bob.view(forum).invitations
    alice.shot("conflict")

    # An invitation that names no passing nomination: Frank accepts it, but no member's
    # client seals an epoch to him — Alice's browser refuses and says why.
    frank = MemberClient.enroll(tmp_path / "frank", node.url, add_member(node, "frank", "Vandelay"))
    charter = bob.view(forum).charter
    bob.issue_invite(forum, frank.member, {"forum_name": FORUM_NAME, "charter": charter,
                                          "pledge": charter["pledge"], "note": "",
                                          "pledge_hash": pledge_hash(charter)})  # fmt: skip
    frank.accept(forum)
    alice.forum_tab(forum, "admission")
    expect(alice.page.locator("#refused")).to_contain_text("names no nomination")
    assert frank.member not in {m["member"] for m in bob.reported_state(forum)["members"]
                               if m["status"] == "active"}  # fmt: skip
    # Both directions: the browser opens the library's post, the library the browser's.
    bob.post(forum, BOB_TEXT)
    alice.forum_tab(forum, "stream")
    expect(alice.page.locator("#posts")).to_contain_text(BOB_TEXT)
    alice.page.get_by_label("Write to the forum").fill(ALICE_TEXT)
    alice.page.get_by_role("button", name="Post", exact=True).click()

    expect(alice.page.locator("#posts")).to_contain_text(ALICE_TEXT)
    alice.shot("stream")
    read = bob.read(forum)
    texts = [e["body"].get("text") for e in read["entries"] if e["type"] == "post" and "body" in e]
    assert texts == [BOB_TEXT, ALICE_TEXT]
    carol.forum_tab(forum, "stream")
    expect(carol.page.locator("#posts")).to_contain_text(ALICE_TEXT)

    # Removal by motion: 2/3 of the members other than Carol; Alice's browser and Bob's
    # library vote, and a client carries it out with a new epoch sealed past Carol.
    alice.forum_tab(forum, "members")
    alice.page.get_by_text("Propose a removal").click()
    alice.page.get_by_label("Member", exact=True).select_option(carol_id)
    alice.page.get_by_label("Reason").fill("stopped attending")
    alice.page.get_by_role("button", name="Propose removal").click()
    alice.forum_tab(forum, "admission")
    alice.vote(carol_id, "yes", kind="remove")
    vote(bob, forum, "remove", carol_id, True, "agreed")
    alice.forum_tab(forum, "members")
    expect(alice.page.locator('[data-member^="@carol:"] .tag').first).to_have_text("removed")
    alice.forum_tab(forum, "notices")
    expect(alice.page.locator("#notices")).to_contain_text("removed @carol")
    alice.shot("notices")
    alice.forum_tab(forum, "stream")
    alice.page.get_by_label("Write to the forum").fill(AFTER_TEXT)
    alice.page.get_by_role("button", name="Post", exact=True).click()
    expect(alice.page.locator("#posts")).to_contain_text(AFTER_TEXT)
    assert any(e.get("body", {}).get("text") == AFTER_TEXT for e in bob.read(forum)["entries"])

    carol.forum_tab(forum, "stream")
    expect(carol.page.get_by_role("alert").first).to_contain_text("no longer a member")
    carol.shot("removed")
    last = bob.session.call(
        "GET", f"/forums/{forum.replace('!', '%21').replace(':', '%3A')}/entries?from=1&limit=500"
    )
    opened = carol.page.evaluate(
        """async ([forum, entries]) => {
             const { unb64u } = await import('/static/js/api.js');
             const { entryFromBytes } = await import('/static/js/log.js');
             const { epochSecrets } = await import('/static/js/store.js');
             const { ForumClient } = await import('/static/js/forum.js');
             const { loadDeviceKeys } = await import('/static/js/keystore.js');
             const me = '@carol:' + location.host;
             const device = await loadDeviceKeys(me);
             const client = new ForumClient({
               session: { member: me, node: location.host }, device, keys: null });
             const secrets = await epochSecrets(me, forum);
             const out = [];
             for (const e of entries) {
               const entry = await entryFromBytes(unb64u(e));
               if (entry.signedEvent.type !== 'post') continue;
               const item = await client.item(entry, secrets);
               out.push({ epoch: item.epoch, text: item.body ? item.body.text : null });
             }
             return { held: [...secrets.keys()].sort(), posts: out };
           }""",
        [forum, last["entries"]],
    )
    posts = opened["posts"]
    assert [p["text"] for p in posts] == [BOB_TEXT, ALICE_TEXT, None], opened
    assert posts[-1]["epoch"] not in opened["held"] and posts[0]["epoch"] in opened["held"]

    # Phone width: nothing wider than the screen.
    phone = alice.context.new_page()
    phone.set_viewport_size({"width": 375, "height": 812})
    phone.goto(f"{node.url}/#/forum/{forum.replace('!', '%21').replace(':', '%3A')}/stream")
    expect(phone.locator("#posts")).to_contain_text(AFTER_TEXT, timeout=TIMEOUT)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot(path=str(ARTIFACTS / "stream-375.png"), full_page=True)
    phone.close()

    assert alice.errors == [] and carol.errors == []


def test_keyboard_only(members: Any, web_node: NodeProcess) -> None:
    """Enroll, create a forum and post with the keyboard alone, focus always visible."""
    m = members()
    m.open()
    # A key goes to the page only once the browser gave it focus: under load a new tab
    # may not have it yet when the screen is ready (the Tab then moved nothing).
    m.page.bring_to_front()
    m.page.wait_for_function("document.hasFocus()")
    m.page.keyboard.press("Tab")
    assert m.page.evaluate("document.activeElement.labels[0].textContent") == "One-time code"
    m.page.keyboard.type(add_member(web_node, "dora", "Umbrella"))
    m.page.keyboard.press("Enter")
    expect(m.page.get_by_role("heading", name="Your forums")).to_be_visible()
    m.page.get_by_label("Forum name").focus()
    m.page.keyboard.type("Keyboard forum")
    m.page.keyboard.press("Enter")
    expect(m.page.get_by_role("heading", name="Keyboard forum")).to_be_visible()
    # Tab from the heading through the tabs to the compose box: every stop is reachable.
    stops = []
    for _ in range(20):
        m.page.keyboard.press("Tab")
        stops.append(
            m.page.evaluate(
                "(() => { const e = document.activeElement; "
                "return e.labels?.[0]?.textContent || e.textContent.trim(); })()"
            )
        )
        outline = m.page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", stops[-1]
        if stops[-1] == "Write to the forum":
            break
    assert {"Stream", "Members", "Meetings", "Health"} <= set(stops), stops
    assert stops[-1] == "Write to the forum", stops
    m.page.keyboard.type("typed without a mouse")
    m.page.keyboard.press("Tab")
    assert m.page.evaluate("document.activeElement.textContent") == "Post"
    m.page.keyboard.press("Enter")
    expect(m.page.locator("#posts")).to_contain_text("typed without a mouse")
    assert re.search(r"#/forum/", m.page.url)
    assert m.errors == []


def test_cadence_and_accountability_screens(members: Any, web_node: NodeProcess) -> None:
    """A moderator schedules a meeting and every area takes an entry; bodies as cli/member's."""
    m = members(viewport={"width": 1100, "height": 900})
    m.enroll(add_member(web_node, "erin", "Hooli"))
    m.page.get_by_label("Forum name").fill("Cadence forum")
    m.page.get_by_role("button", name="Create forum").click()
    expect(m.page.get_by_role("heading", name="Cadence forum")).to_be_visible()
    forum = m.page.locator(".screen.forum").get_attribute("data-forum")
    assert forum

    m.forum_tab(forum, "meetings")
    m.page.get_by_text("Schedule a meeting").click()
    m.page.get_by_label("Date").fill("2031-03-14")
    m.page.get_by_role("button", name="Schedule").click()
    expect(m.page.locator(".region")).to_contain_text("Confidentiality reminder")
    m.page.get_by_role("group", name="RSVP for 2031-03-14").get_by_role(
        "button", name="yes"
    ).click()
    expect(m.page.locator(".region")).to_contain_text("@erin yes")
    # Two absences reach the charter's threshold (2): the moderator is alerted.
    for day in ("2031-03-14", "2031-04-14"):
        if day != "2031-03-14":  # the schedule form is still open (forms are static)
            m.page.get_by_label("Date").fill(day)
            m.page.get_by_role("button", name="Schedule").click()
        att = m.page.get_by_role("form", name=f"Record attendance for {day}")
        att.get_by_label("Status").select_option("absent")
        att.get_by_role("button", name="Record").click()
        expect(m.page.locator(".region")).to_contain_text("Attendance: @erin absent")
    expect(m.page.locator("#attendance-alerts")).to_contain_text("missed 2 meeting(s)")
    m.shot("meetings")
    # The calendar file is made in the browser: titles and times, no content.
    with m.page.expect_download() as dl:
        m.page.get_by_role("button", name="Download calendar (.ics)").click()
    ics = Path(dl.value.path()).read_text()
    assert ics.startswith("BEGIN:VCALENDAR") and ics.count("BEGIN:VEVENT") == 2, ics
    assert "DTSTART;TZID=" in ics and "Cadence forum: Forum meeting" in ics

    m.forum_tab(forum, "stream")
    m.page.get_by_text("Bring a dilemma").click()
    for label, text in (("The issue", "hire a COO?"), ("Why it matters", "growth"),
                        ("The decision", "this quarter"), ("The ask", "experience")):  # fmt: skip
        m.page.get_by_label(label).fill(text)
    m.page.get_by_role("button", name="Present dilemma").click()
    m.page.get_by_role("group", name="Rate the responses to hire a COO?").get_by_role(
        "button", name="Helpful", exact=True
    ).click()
    expect(m.page.locator(".region")).to_contain_text("found it helpful")

    m.forum_tab(forum, "commitments")
    m.page.get_by_label("I commit to").fill("call two customers")
    m.page.get_by_role("button", name="Commit").click()
    m.page.get_by_role("button", name="Mark done").click()
    expect(m.page.locator(".region .tag")).to_have_text("done")
    m.shot("commitments")

    m.forum_tab(forum, "parking")
    m.page.get_by_role("textbox", name="Topic").fill("succession planning")
    m.page.get_by_role("button", name="Park topic").click()
    expect(m.page.locator(".region")).to_contain_text("succession planning")
    row = m.page.get_by_role("group", name="Score succession planning")
    row.get_by_label("Importance").fill("5")
    row.get_by_label("Urgency").fill("4")
    row.get_by_role("button", name="Vote").click()
    expect(m.page.locator("#parking .score")).to_contain_text("importance 5.0 × urgency 4.0")
    m.shot("parking")
    m.page.get_by_role("button", name="Close succession planning").click()
    expect(m.page.locator(".region")).to_contain_text("The parking lot is empty")

    m.forum_tab(forum, "resources")
    m.page.get_by_role("textbox", name="Title").fill("A good book")
    m.page.get_by_role("button", name="Share").click()
    expect(m.page.locator(".region")).to_contain_text("A good book")

    m.forum_tab(forum, "health")
    m.page.get_by_label("How valuable is the forum to you (1-10)?").fill("8")
    m.page.get_by_role("button", name="Answer").click()
    # One answer is never shown: results need five.
    expect(m.page.locator(".region")).to_contain_text("1 answer(s). Results appear from 5 answers")
    expect(m.page.locator("#health-alerts")).to_contain_text("@erin")
    m.shot("health")
    assert m.errors == []
