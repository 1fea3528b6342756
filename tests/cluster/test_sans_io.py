"""The cluster core stays sans-I/O, like the engine: no clock, randomness, socket or driver."""

from __future__ import annotations

from pathlib import Path

import ringmaster.cluster

from ..engine.test_sans_io import FORBIDDEN, imported

#: The engine's list, and the drivers and clients the daemon will use around this core.
DRIVERS = {"aiosqlite", "asyncpg", "psycopg", "psycopg_pool", "sqlalchemy", "paho", "platform"}


def test_no_cluster_module_imports_io_a_clock_or_randomness() -> None:
    modules = sorted(Path(ringmaster.cluster.__file__).parent.glob("*.py"))
    assert {m.name for m in modules} >= {"shards.py", "placement.py", "leases.py"}
    found = {m.name: imported(m) & (FORBIDDEN | DRIVERS) for m in modules}
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_the_cluster_core_imports_only_the_engine_and_the_settings_of_ringmaster() -> None:
    modules = sorted(Path(ringmaster.cluster.__file__).parent.glob("*.py"))
    text = "".join(m.read_text(encoding="utf-8") for m in modules)
    # `from ringmaster.x import ...` only, so that the check below sees every import.
    assert [line for line in text.splitlines() if line.startswith("import ringmaster")] == []
    parts = {line.split()[1] for line in text.splitlines() if line.startswith("from ringmaster.")}
    assert parts <= {"ringmaster.engine.events", "ringmaster.engine.model", "ringmaster.settings"}
