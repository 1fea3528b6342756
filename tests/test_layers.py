"""The package's layers: every import points down.

README.md's "How it is built" draws these layers; this test keeps the drawing true
(and tests/engine/test_sans_io.py keeps the engine itself free of I/O).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ringmaster"

#: Each top-level part of the package and its layer: a module may import its own part
#: and lower layers only.
LAYERS: dict[str, int] = {
    "engine": 0,  # the sans-I/O core
    "settings": 1,
    "logs": 1,
    "client": 2,  # the admin API over HTTP, for the commands: neither daemon nor api
    "cluster": 2,  # the sans-I/O shard, placement and lease core (engine and settings only)
    "options": 2,  # what the adapters derive from the engine's option declarations
    "contract": 3,  # MQTT payloads <-> engine events and commands
    "history": 3,  # engine events and commands -> call and agent history writes
    "queue_log": 3,  # history rows -> Asterisk's queue_log lines
    "store": 4,
    "provision": 5,  # the provisioning file: its format, checks and writes
    "api": 6,  # with provisioning's transaction, audit records and engine events
    "daemon": 7,  # the service and its adapters: MQTT link, private broker, systemd
    "planning": 8,  # simulate and the Erlang formulas
    "workers": 8,  # `ringmaster run --workers N`: starts and watches `run` processes
    "status": 9,  # `ringmaster status`: a client of the API, over HTTP (client)
    "report": 10,  # `ringmaster report`: another
    "supervise": 10,  # `ringmaster agent` and `call`: a supervisor's controls, another
    "cli": 11,
    "__main__": 12,
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        yield parts[0], path


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module an import statement names, anywhere in the file, absolute."""
    package = ".".join(("ringmaster", *path.relative_to(PACKAGE).parent.parts))
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            yield node.lineno, base
            for alias in node.names:  # `from ringmaster import api` names a part
                if base == "ringmaster" and alias.name in LAYERS:
                    yield node.lineno, f"ringmaster.{alias.name}"


def test_every_part_has_a_layer() -> None:
    assert {part for part, _ in _modules()} <= set(LAYERS)


@pytest.mark.parametrize(
    ("part", "path"),
    list(_modules()),
    ids=[str(path.relative_to(PACKAGE)) for _, path in _modules()],
)
def test_imports_point_down(part: str, path: Path) -> None:
    upward = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for line, name in _imports(path)
        if name.startswith("ringmaster.")
        and (target := name.split(".")[1]) != part
        and LAYERS[target] >= LAYERS[part]
    ]
    assert not upward, upward
