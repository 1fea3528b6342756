"""The engine stays sans-I/O: no module of it imports a clock, randomness, a socket or a store."""

from __future__ import annotations

import ast
from pathlib import Path

import ringmaster.engine

FORBIDDEN = {
    "aiomqtt",
    "aiosqlite",
    "asyncpg",
    "asyncio",
    "datetime",
    "fastapi",
    "os",
    "random",
    "secrets",
    "socket",
    "sqlite3",
    "threading",
    "time",
}


def imported(path: Path) -> set[str]:
    """The top-level names of the modules a file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_engine_module_imports_io_a_clock_or_randomness() -> None:
    modules = sorted(Path(ringmaster.engine.__file__).parent.glob("*.py"))
    assert len(modules) > 10  # the split modules are all looked at
    found = {m.name: imported(m) & FORBIDDEN for m in modules}
    assert {name: bad for name, bad in found.items() if bad} == {}
