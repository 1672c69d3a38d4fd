"""protocol/ is pure: no networking, no event loop, no database, no clock, no ambient randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import protocol

FORBIDDEN_MODULES = {
    "asyncio",
    "aiohttp",
    "aiosqlite",
    "socket",
    "sqlite3",
    "time",
    "datetime",
    "random",
    "secrets",
    "node",
    "cli",
    "threading",
    "subprocess",
}
FORBIDDEN_CALLS = {("os", "urandom"), ("os", "getrandom"), ("nacl.utils", "random")}


def _protocol_files() -> list[Path]:
    root = Path(protocol.__file__).parent
    return sorted(root.rglob("*.py"))


def test_protocol_imports_nothing_impure() -> None:
    offenders = []
    for path in _protocol_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES or any(
                    name == f"{m}.{f}" for m, f in FORBIDDEN_CALLS
                ):
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in FORBIDDEN_CALLS
            ):
                offenders.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert offenders == []


def test_the_checker_catches_an_impure_module(tmp_path: Path) -> None:
    # Guard against a checker that cannot fail.
    bad = "import asyncio\nimport os\nx = os.urandom(4)\n"
    tree = ast.parse(bad)
    hits = [n for n in ast.walk(tree) if isinstance(n, ast.Import) and n.names[0].name == "asyncio"]
    attrs = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "urandom"]
    assert hits and attrs
