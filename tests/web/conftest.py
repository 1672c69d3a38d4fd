"""Browser tests of the members' web client, in real headless Chromium.

One real node process (tests/integration/harness.py) serves ``/`` and ``/static/...``
for the whole session, and one Chromium (Debian's /usr/bin/chromium, never a downloaded
browser) runs every test. The crypto tests use a harness page from tests/web/pages,
served by route interception at the node's own origin and under the production CSP, so
the modules are loaded exactly as the node serves them and must work with nothing but
'self'. ``call(name, arg)`` runs ``window.T[name](arg)`` there and returns its
``{ok: ...}`` / ``{error: code}`` answer.
"""

from __future__ import annotations

import mimetypes
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

from node.routes.web import SECURITY_HEADERS
from tests.integration.harness import NodeProcess, init_node, start_node

CHROMIUM = "/usr/bin/chromium"
# Flags from the machine notes: no sandbox as root, and no background traffic, which the
# closed network here would refuse (and which the no-external-requests test would see).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = Path(__file__).resolve().parent / "pages"
HARNESS_PATH = "/__test__/harness.html"


@pytest.fixture(scope="session")
def web_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data, port = init_node(tmp_path_factory.mktemp("web") / "node")
    node = start_node(data, "serve", "--data", str(data), port=port)
    try:
        yield node
    finally:
        node.kill()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Browser tests never skip: CI installs Chromium (.ci/run); locally, apt-get it.
    assert shutil.which(CHROMIUM), f"{CHROMIUM} missing: apt-get install -y chromium"
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield b
    finally:
        b.close()


def serve_test_page(route: Route) -> None:
    """Fulfil /__test__/<file> from tests/web/pages with the production headers."""
    name = route.request.url.split("/__test__/", 1)[1].split("?", 1)[0]
    path = (PAGES / name).resolve()
    if not path.is_relative_to(PAGES) or not path.is_file():
        route.fulfill(status=404, body="not found")
        return
    ctype = "text/javascript" if path.suffix == ".js" else mimetypes.guess_type(path.name)[0]
    route.fulfill(
        status=200,
        body=path.read_bytes(),
        headers={**SECURITY_HEADERS, "Content-Type": f"{ctype}; charset=utf-8"},
    )


class Harness:
    """The harness page and the console errors it logged."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def call(self, name: str, arg: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(
            "([name, arg]) => window.T[name](arg)", [name, arg]
        )
        return result

    def ok(self, name: str, arg: Any = None) -> Any:
        result = self.call(name, arg)
        assert "error" not in result, result
        return result["ok"]


def open_harness(browser: Browser, node: NodeProcess) -> tuple[Harness, Any]:
    context = browser.new_context()
    context.route("**/__test__/**", serve_test_page)
    page = context.new_page()
    harness = Harness(page)
    page.goto(node.url + HARNESS_PATH)
    page.wait_for_function("window.harnessReady === true", timeout=10_000)
    return harness, context


@pytest.fixture(scope="session")
def harness(browser: Browser, web_node: NodeProcess) -> Iterator[Harness]:
    h, context = open_harness(browser, web_node)
    try:
        yield h
        assert h.errors == [], h.errors
    finally:
        context.close()


# ---------------------------------------------------------------------------- JSON values


def to_js(value: Any) -> Any:
    """A vector value as the harness reads it (bytes and big ints tagged)."""
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 - 1 else {"$int": str(value)}
    if isinstance(value, list):
        return [to_js(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return value
        return {k: to_js(v) for k, v in value.items()}
    raise TypeError(type(value))
