"""A member's further devices added from the browser, as cli/member/devices.py does.

The new browser makes its own keys and shows a request (public keys and a ``device``
proof, the JSON ``peerforum client device request`` writes); an enrolled device adds it:
``POST /devices``, the node's new attestation checked under the pinned node key,
``device.add`` in each forum and the epoch it makes due. Nothing secret crosses between
devices, so the new one reads from that epoch on and never earlier. Both directions of
the CLI interplay too: the member library adds a browser's request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from cli.member import MemberClient
from cli.member.devices import add_device
from tests.integration.harness import NodeProcess

from .test_client import Member, add_member, members, wait_until  # noqa: F401 (a fixture)

BEFORE = "before-device-marker: written before the second device existed"
SECOND = "second-device-marker: written on the new browser"
LATER = "later-marker: written by the library after the browser was added"


def request_device(m: Member, member: str) -> dict[str, Any]:
    """On a browser with no account: make its keys and return the request it shows."""
    m.open()
    m.page.get_by_label("Your member id").fill(member)
    m.page.get_by_role("button", name="Make a device request").click()
    text = m.page.get_by_label("Device request").input_value()
    request: dict[str, Any] = json.loads(text)
    assert set(request) == {"member", "sign", "agree", "proof"} and request["member"] == member
    return request


def finish(m: Member) -> None:
    m.page.get_by_role("button", name="This device was added").click()
    expect(m.page.get_by_role("heading", name="Your forums")).to_be_visible()


def test_a_browser_adds_a_browser_device(members: Any, web_node: NodeProcess) -> None:  # noqa: F811
    first, second = members(viewport={"width": 1100, "height": 900}), members()
    first.enroll(add_member(web_node, "gail", "Initrode"))
    member = f"@gail:{web_node.name}"
    first.page.get_by_label("Forum name").fill("Devices forum")
    first.page.get_by_role("button", name="Create forum").click()
    expect(first.page.get_by_role("heading", name="Devices forum")).to_be_visible()
    forum = first.page.locator(".screen.forum").get_attribute("data-forum")
    assert forum
    first.page.get_by_label("Write to the forum").fill(BEFORE)
    first.page.get_by_role("button", name="Post", exact=True).click()
    expect(first.page.locator("#posts")).to_contain_text(BEFORE)

    request = request_device(second, member)
    # Not added yet: the new browser cannot open a session and says so.
    second.page.get_by_role("button", name="This device was added").click()
    expect(second.page.get_by_role("alert").filter(has_text="not added yet")).to_be_visible()
    assert all("status of 401" in e for e in second.errors), second.errors  # that refusal
    second.errors.clear()

    first.page.get_by_role("link", name="My devices").click()
    first.page.get_by_label("Device request").fill(json.dumps(request))
    first.page.get_by_role("button", name="Add device").click()
    expect(first.page.get_by_role("status").filter(has_text="Added")).to_contain_text("re-keyed")
    expect(first.page.locator(".list li")).to_have_count(2)
    first.shot("devices-added")

    finish(second)
    second.forum_tab(forum, "stream")
    # Earlier epochs stay sealed to it — the charter too, so the name is not known here.
    expect(second.page.locator("#posts")).to_contain_text("a key epoch this device does not hold")
    assert BEFORE not in second.page.locator("#posts").inner_text()
    second.page.get_by_label("Write to the forum").fill(SECOND)
    second.page.get_by_role("button", name="Post", exact=True).click()
    expect(second.page.locator("#posts")).to_contain_text(SECOND)
    second.shot("devices-second-browser")
    # The first device verifies the new device's signature through the fold and opens it.
    first.forum_tab(forum, "stream")
    expect(first.page.locator("#posts")).to_contain_text(SECOND)
    expect(first.page.locator("#posts")).to_contain_text(BEFORE)
    assert first.errors == [] and second.errors == []


def test_the_library_adds_a_browser_device(
    members: Any,  # noqa: F811 (the fixture imported above)
    web_node: NodeProcess,
    tmp_path: Path,
) -> None:
    """The request the browser shows is what ``peerforum client device add`` takes."""
    code = add_member(web_node, "hal", "Soylent")
    hal = MemberClient.enroll(tmp_path / "hal", web_node.url, code)
    forum = hal.create_forum("Library forum")
    browser = members()
    report = add_device(hal, request_device(browser, hal.member))
    assert [f["forum"] for f in report["forums"]] == [forum]
    finish(browser)
    hal.post(forum, LATER)
    browser.forum_tab(forum, "stream")
    expect(browser.page.locator("#posts")).to_contain_text(LATER)
    browser.page.get_by_label("Write to the forum").fill(SECOND)
    browser.page.get_by_role("button", name="Post", exact=True).click()
    expect(browser.page.locator("#posts")).to_contain_text(SECOND)

    def texts() -> list[str]:
        read = hal.read(forum)
        return [e["body"]["text"] for e in read["entries"] if e["type"] == "post" and "body" in e]

    wait_until(lambda: texts() == [LATER, SECOND], "the browser device's post read by the library")
    assert browser.errors == []
