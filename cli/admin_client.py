"""A small synchronous client of the node's local admin API (specs/api.md §Admin).

The CLI talks to the running node rather than its database so that the node stays the
only writer and sees every change at once (a pinned peer, a rotated key).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from node.config import NodeConfig
from node.datadir import DataDir

from .output import EXIT_FAILURE, EXIT_UNREACHABLE, CliFailure

_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class AdminClient:
    def __init__(self, data: DataDir, config: NodeConfig, timeout_s: float = 30.0) -> None:
        host = _LOOPBACK_FOR.get(config.listen_host, config.listen_host)
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if config.tls_enabled else "http"
        self.base = f"{scheme}://{shown}:{config.listen_port}"
        self.data = data
        self.token = data.read_admin_token()
        self.timeout_s = timeout_s
        self._ssl: ssl.SSLContext | None = None
        if config.tls_enabled:
            assert config.tls.cert is not None
            # The node's own certificate is the trust anchor: we know exactly which
            # server we mean, whatever name the certificate was issued for.
            self._ssl = ssl.create_default_context(cafile=str(data.resolve(config.tls.cert)))
            self._ssl.check_hostname = False

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ssl) as resp:
                result: dict[str, Any] = json.loads(resp.read())
                return result
        except urllib.error.HTTPError as exc:
            raise _api_failure(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise CliFailure(
                f"cannot reach the node's admin API at {self.base} ({exc}): is "
                f"`peerforum serve --data {self.data.root}` running?",
                EXIT_FAILURE,
                "cli.node_down",
            ) from None


def _api_failure(exc: urllib.error.HTTPError) -> CliFailure:
    try:
        body = json.loads(exc.read())
        code, message = str(body["error"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "api.internal", f"the node answered HTTP {exc.code}"
    exit_code = EXIT_UNREACHABLE if code == "api.unavailable" else EXIT_FAILURE
    return CliFailure(message, exit_code, code)
