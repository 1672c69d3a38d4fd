"""``/`` and ``/static/...`` as the node serves them: CSP, MIME types, no escapes, and a
page that loads with no console errors and no request to any other origin."""

from __future__ import annotations

import urllib.request

import pytest
from playwright.sync_api import Browser

from node.routes.web import CSP
from tests.integration.harness import NodeProcess


def head(node: NodeProcess, path: str) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(node.url + path)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_index_is_served_with_a_strict_csp(web_node: NodeProcess) -> None:
    status, headers = head(web_node, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert csp == CSP
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/static/js/codec.js", "text/javascript; charset=utf-8"),
        ("/static/js/app.js", "text/javascript; charset=utf-8"),
        ("/static/css/app.css", "text/css; charset=utf-8"),
    ],
)
def test_static_files_have_their_mime_type(web_node: NodeProcess, path: str, ctype: str) -> None:
    status, headers = head(web_node, path)
    assert (status, headers["Content-Type"]) == (200, ctype)
    assert headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize(
    "path",
    [
        "/static/../routes/web.py",
        "/static/%2e%2e/routes/web.py",
        "/static/..%2froutes%2fweb.py",
        "/static/js/.hidden.js",
        "/static/js//codec.js",
        "/static/js/missing.js",
        "/static/index.html.bak",
        "/test.html",
        "/static/test.html",
    ],
)
def test_nothing_outside_the_web_root_is_served(web_node: NodeProcess, path: str) -> None:
    status, _ = head(web_node, path)
    assert status == 404


def test_index_loads_clean_in_chromium(browser: Browser, web_node: NodeProcess) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    urls: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: urls.append(r.url))
    try:
        response = page.goto(web_node.url + "/")
        assert response is not None and response.status == 200
        page.wait_for_function(
            "() => document.documentElement.dataset.ready === '1'", timeout=10_000
        )
        assert page.locator("h1").inner_text() == "PeerForum web client"
        assert page.locator("#status").get_attribute("data-state") == "ready"
        assert errors == []
        assert urls and all(u.startswith(web_node.url + "/") for u in urls), urls
        assert web_node.url + "/static/js/app.js" in urls
    finally:
        context.close()


def test_csp_blocks_inline_script(browser: Browser, web_node: NodeProcess) -> None:
    """The policy is really enforced: an injected inline script does not run."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(web_node.url + "/")
        page.evaluate(
            """() => {
                 window.violations = [];
                 document.addEventListener('securitypolicyviolation',
                                           (e) => window.violations.push(e.effectiveDirective));
                 const s = document.createElement('script');
                 s.textContent = 'window.injected = 1';
                 document.body.append(s);
               }"""
        )
        page.wait_for_function("window.violations.length > 0", timeout=5_000)
        assert page.evaluate("window.injected") is None
        assert page.evaluate("window.violations") == ["script-src-elem"]
    finally:
        context.close()
