"""Load test vectors from specs/vectors/ (JSON; bytes as hex)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent.parent / "specs" / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


def cases(name: str, group: str) -> list[Any]:
    """Cases of one group, for ``pytest.mark.parametrize(..., ids=...)``."""
    return list(load(name)[group])


def seed(label: str) -> bytes:
    """The fixed seeds every vector uses: SHA-256('PFP/1 test vector ' + label)."""
    return hashlib.sha256(("PFP/1 test vector " + label).encode()).digest()
