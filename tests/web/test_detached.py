"""Detached content in the browser (protocol §6.9) against rules.json's ``detached``
vectors: the browser opens the attachment Python sealed, detaches it again to the same
ct_ref and attachment bytes, and refuses the attachments the node refuses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.vectors import load

from .conftest import Harness

DET = load("rules.json")["detached"]


def test_the_browser_opens_and_detaches_like_python(harness: Harness) -> None:
    valid = DET["valid"]
    got = harness.ok("detachedOpen", valid)
    assert got["plaintext"] == valid["plaintext"]
    assert (got["ct_ref"], got["attachment"]) == (valid["ct_ref"], valid["attachment"])
    assert got["expires"] == valid["expires"]


@pytest.mark.parametrize("case", DET["attachments"], ids=lambda c: c["desc"])
def test_the_browser_refuses_what_the_hub_refuses(harness: Harness, case: dict[str, Any]) -> None:
    assert harness.call("detachedInvalid", case)["error"] == case["error"]


# ---------------------------------------------------------------------------- the web client

LIFE_S = 15  # how far in the future the browser's update expires (its clock is shifted)
RETENTION_MS = 30 * 86_400_000  # what the screen asks for (the charter's default)


def test_an_update_posted_in_the_browser_is_detached_then_expires(
    browser: Any, web_node: Any
) -> None:
    """The screen seals the update detached: the node holds an attachment hashing to the
    entry's ct_ref; at expiry the node deletes it and the browser shows it as expired."""
    import hashlib
    import sqlite3
    import time

    from playwright.sync_api import expect

    from protocol.log import Entry

    from .test_client import Member, add_member

    m = Member(browser, web_node, viewport={"width": 1100, "height": 900})
    try:
        m.enroll(add_member(web_node, "gina", "Umbrella"))
        m.page.get_by_label("Forum name").fill("Updates forum")
        m.page.get_by_role("button", name="Create forum").click()
        expect(m.page.get_by_role("heading", name="Updates forum")).to_be_visible()
        forum = m.page.locator(".screen.forum").get_attribute("data-forum")
        assert forum
        # The screen asks for the charter's 30 days; run the browser's clock 30 days
        # (less LIFE_S) behind, so that "30 days" ends LIFE_S from now for the node.
        real_now = time.time() * 1000
        m.page.clock.install(time=(real_now - RETENTION_MS + LIFE_S * 1000) / 1000)
        m.forum_tab(forum, "stream")
        m.page.get_by_text("Share an update").click()
        m.page.get_by_role("textbox", name="Update", exact=True).fill("gina-update-marker")
        m.page.get_by_role("button", name="Share update").click()
        expect(m.page.locator(".region")).to_contain_text("gina-update-marker")

        db = sqlite3.connect(f"file:{web_node.data / 'node.db'}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT a.ref, a.data, a.expires_ms, e.entry FROM attachments a JOIN entries e"
                " ON e.forum = a.forum AND e.event_id = a.event_id WHERE a.forum = ?",
                (forum,),
            ).fetchall()
        finally:
            db.close()
        [(ref, data, expires_ms, raw)] = rows
        body = Entry.from_bytes(raw).signed_event.body
        assert set(body) == {"ct_ref", "expires"} and body["ct_ref"] == ref
        assert hashlib.sha256(data).digest() == ref and b"gina-update-marker" not in data
        assert abs(expires_ms - (real_now + LIFE_S * 1000)) < 60_000

        time.sleep(max(0.0, (expires_ms - time.time() * 1000) / 1000) + 1.5)
        db_file = web_node.data / "node.db"
        deadline = time.monotonic() + 20
        while any(
            p.exists() and data in p.read_bytes()
            for p in (db_file, db_file.with_name("node.db-wal"))
        ):
            assert time.monotonic() < deadline, "the node kept the expired attachment"
            time.sleep(0.2)
        m.page.clock.set_system_time(time.time())
        m.forum_tab(forum, "stream")
        expect(m.page.locator("li.expired")).to_contain_text("(expired)")
        assert "gina-update-marker" not in m.page.locator("main").inner_text()
        assert m.errors == []
    finally:
        m.context.close()
