"""The seam between the repositories and a database backend (SQLite or PostgreSQL).

The repositories (`config`, `live`, `history`, `reports`, `queue_log`) hold the logic and
name their statements from `store.sqlite`'s statement modules, the canonical spelling;
a `Connection` runs them in its own dialect (`store.postgres` translates every statement
once, at import). They never see a driver: only the few operations below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ringmaster.store.config_rows import Row
from ringmaster.store.records import Fence

#: One statement of a turn and the rows it runs for (``executemany``).
Step = tuple[str, Iterable[Row]]


class Connection(Protocol):
    """One connection to the database, as the repositories and `Store` use it.

    Every method but `begin_*`, `commit`, `rollback` and `commit_turn` runs inside a
    transaction the caller began.
    """

    async def fetch_all(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; all its rows, as tuples."""
        ...

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one insert, update or delete; how many rows it touched."""
        ...

    async def execute_many(self, statement: str, rows: Iterable[Row]) -> None:
        """Run one statement once per row."""
        ...

    async def insert(self, statement: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` of one row into a table with an ``id``; the row's id."""
        ...

    async def begin_write(self) -> None:
        """Begin a transaction that writes (it cannot fail for another writer's lock later)."""
        ...

    async def begin_read(self) -> None:
        """Begin a transaction whose reads all see one committed state."""
        ...

    async def commit(self) -> None:
        """Commit the transaction begun by `begin_write` or `begin_read`."""
        ...

    async def rollback(self) -> None:
        """Roll back the transaction in progress, if any."""
        ...

    async def commit_turn(
        self, steps: Sequence[Step], outbox_count: int, fence: Fence | None = None
    ) -> list[int]:
        """A turn's whole transaction: the fence if any, every step, in order, then commit.

        The outbox rows are inserted by the last step; returns their seqs, in order.
        A fence that fails rolls the transaction back and raises `FencedError`; SQLite
        refuses any fence (`StoreError`): a cluster needs PostgreSQL.
        """
        ...

    async def schema_version(self) -> int:
        """The database's schema version."""
        ...

    async def close(self) -> None:
        """Close the connection; a transaction in progress is rolled back."""
        ...
