"""The spec and the code agree: every error code is listed once, with its status."""

from __future__ import annotations

import re
from pathlib import Path

from protocol.errors import CODES

SPECS = Path(__file__).resolve().parents[2] / "specs"


def _spec_text() -> str:
    return (SPECS / "protocol.md").read_text()


def test_error_table_matches_code() -> None:
    rows = re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \| (\d{3}) \|", _spec_text(), re.M)
    listed = {code: int(status) for code, status in rows}
    assert len(rows) == len(listed), "a code is listed twice"
    assert listed == {code: status for code, (status, _) in CODES.items()}


def test_every_vector_file_is_described() -> None:
    import json

    for path in sorted((SPECS / "vectors").glob("*.json")):
        data = json.loads(path.read_text())
        assert data.get("source"), f"{path.name} does not say where its vectors come from"
        for group in data.values():
            if isinstance(group, list):
                for case in group:
                    if isinstance(case, dict) and "error" in case:
                        assert case.get("desc"), f"{path.name}: invalid case without desc"
                        assert case["error"] in CODES, f"{path.name}: unknown code {case['error']}"
