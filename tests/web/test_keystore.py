"""Device keys persist in IndexedDB as non-extractable CryptoKeys, across page loads."""

from __future__ import annotations

from playwright.sync_api import Browser

from tests.integration.harness import NodeProcess

from .conftest import open_harness


def test_device_keys_survive_a_reload_and_stay_non_extractable(
    browser: Browser, web_node: NodeProcess
) -> None:
    harness, context = open_harness(browser, web_node)
    try:
        saved = harness.ok("keystoreSave", "@ana:acme.example")
        harness.page.reload()
        harness.page.wait_for_function("window.harnessReady === true")
        loaded = harness.ok("keystoreLoad", "@ana:acme.example")
        assert (loaded["sign"], loaded["agree"]) == (saved["sign"], saved["agree"])
        assert loaded["signExtractable"] is False and loaded["agreeExtractable"] is False
        assert loaded["exportRefused"] == "js.InvalidAccessError"
        assert loaded["agreementWorks"] is True
        harness.ok("keystoreDelete", "@ana:acme.example")
        assert harness.ok("keystoreLoad", "@ana:acme.example") is None
        assert harness.errors == []
    finally:
        context.close()
