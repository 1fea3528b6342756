"""The store's tests on both backends: a database by name, and raw SQL beside the store.

`database` (the fixture, in conftest) is parametrised over ``sqlite`` and
``postgresql``: a test asks it for a database by name (`Databases.__call__`) and opens
it with `Store.open`; the same name is the same database for the whole test (a
reopen). `raw_sql` reads or writes one beside the store, as a test that sets up rows
by hand or checks what is stored needs, in SQLite's spelling (``?`` parameters).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from ringmaster.store.postgres.statements import translate

from .postgres import PostgresCluster

#: What a store-level test names its backend by.
BACKENDS = ("sqlite", "postgresql")
#: The errors a database raises for a broken constraint, by either backend.
INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
#: The errors a write through a read-only snapshot raises.
READ_ONLY_ERRORS = (sqlite3.OperationalError, asyncpg.ReadOnlySQLTransactionError)


class Databases:
    """Databases of one backend for one test, by name; PostgreSQL's are dropped after it."""

    def __init__(self, backend: str, folder: Path, cluster: PostgresCluster | None) -> None:
        self.backend = backend
        self._folder = folder
        self._cluster = cluster
        self._made: dict[str, str] = {}

    def __call__(self, name: str = "store") -> Path | str:
        """The database called `name`: a file in the test's folder, or a new PostgreSQL one."""
        if self._cluster is None:
            return self._folder / name
        if name not in self._made:
            self._made[name] = self._cluster.create_database()
        return self._cluster.url(self._made[name])

    def fresh(self, name: str) -> Path | str:
        """A new, empty database called `name`, in place of any made before under it."""
        if self._cluster is None:
            path = self._folder / name
            path.unlink(missing_ok=True)
            return path
        if name in self._made:
            self._cluster.drop_database(self._made.pop(name))
        return self(name)

    def close(self) -> None:
        """Drop the PostgreSQL databases made."""
        if self._cluster is not None:
            for made in self._made.values():
                self._cluster.drop_database(made)


async def raw_sql(
    where: Path | str, statement: str, rows: Iterable[Sequence[Any]] | None = None
) -> list[tuple[Any, ...]]:
    """Run `statement` (SQLite's spelling) on the database `where`, beside any store.

    With `rows`, once per row (and no result); else once, returning its rows.
    """
    if isinstance(where, Path):
        with sqlite3.connect(where) as db:
            if rows is not None:
                db.executemany(statement, rows)
                return []
            return [tuple(row) for row in db.execute(statement)]
    conn = await asyncpg.connect(where)
    try:
        if rows is not None:
            await conn.executemany(translate(statement), list(rows))
            return []
        return [tuple(row) for row in await conn.fetch(translate(statement))]
    finally:
        await conn.close()
