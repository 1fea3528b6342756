"""PostgreSQL connections (asyncpg): opening and migrating, transactions, a turn's commit.

The driver is asyncpg (docs/performance.md); this module is the only one that imports
it, so another driver is a change of this module alone.

Transactions: the writer's are READ COMMITTED, serialised by `Store`'s lock (one writer
per store, as on SQLite); the reader's are REPEATABLE READ and READ ONLY, so a snapshot
or a report sees one committed state while turns go on committing. A turn's statements
go out in one pipelined ``executemany`` each, their prepared forms cached by asyncpg.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import asyncpg

from ringmaster.settings import redact_database_url
from ringmaster.store.backend import Step
from ringmaster.store.config_rows import Row
from ringmaster.store.postgres.cluster_statements import FENCE
from ringmaster.store.postgres.schema import BASELINE, BASELINE_VERSION, LATEST_VERSION, MIGRATIONS
from ringmaster.store.postgres.statements import INSERT_OUTBOX_RETURNING, dialect
from ringmaster.store.records import Fence, FencedError, StoreError
from ringmaster.store.sqlite.statements import INSERT_OUTBOX

#: Every statement text the store runs, prepared once per connection.
_STATEMENT_CACHE_SIZE: Final = 512
#: Held while a database is created or migrated, so two daemons starting together
#: do not both migrate (an arbitrary constant: "ringmstr" in ASCII).
_MIGRATION_LOCK: Final = 0x72696E676D737472


async def _connect(url: str) -> asyncpg.Connection:
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            url, statement_cache_size=_STATEMENT_CACHE_SIZE
        )
    except (OSError, asyncpg.PostgresError) as exc:
        # The driver's message may repeat the URL; ours names it without its password.
        raise StoreError(
            f"{redact_database_url(url)}: cannot connect: {type(exc).__name__}: {exc}"
        ) from None
    return connection


async def connect(url: str) -> PostgresConnection:
    """Open the writer's connection to the database at `url`, migrated.

    Raises:
        StoreError: The database cannot be reached, or its schema is newer than this
            Ringmaster knows.
    """
    conn = await _connect(url)
    try:
        await migrate(conn, redact_database_url(url))
    except BaseException:
        await conn.close()
        raise
    return PostgresConnection(conn)


async def connect_reader(url: str) -> PostgresConnection:
    """Open a connection for read-only snapshots of the database at `url`."""
    return PostgresConnection(await _connect(url))


async def schema_version(conn: asyncpg.Connection) -> int:
    """The database's schema version; 0 for a database without Ringmaster's tables."""
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        return 0
    version = await conn.fetchval("SELECT version FROM schema_version")
    return 0 if version is None else int(version)


async def migrate(conn: asyncpg.Connection, name: str) -> None:
    """Bring the schema up to `LATEST_VERSION`, one transaction per migration.

    A database without Ringmaster's tables gets the baseline (SQLite's version
    `BASELINE_VERSION`) in one transaction.

    Raises:
        StoreError: The database's schema is newer than this Ringmaster knows.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        version = await schema_version(conn)
        if version == 0:
            await conn.execute(BASELINE)
            version = BASELINE_VERSION
    if version > LATEST_VERSION:
        raise StoreError(
            f"{name}: schema version {version} is newer than this Ringmaster's"
            f" ({LATEST_VERSION}); upgrade Ringmaster or restore a matching backup"
        )
    for number in range(version + 1, LATEST_VERSION + 1):
        # The version row is written in the migration's transaction: a failed migration
        # leaves both the schema and the version as they were.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            if await schema_version(conn) >= number:
                continue  # another process applied it meanwhile
            await conn.execute(MIGRATIONS[number])
            await conn.execute("UPDATE schema_version SET version = $1", number)


def _rowcount(status: str) -> int:
    """The rows a command touched, from its status (``UPDATE 3``, ``INSERT 0 1``)."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


class PostgresConnection:
    """A `backend.Connection` on an asyncpg connection, in PostgreSQL's dialect."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def fetch_all(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; all its rows, as tuples."""
        return [tuple(row) for row in await self.conn.fetch(dialect(query), *params)]

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one insert, update or delete; how many rows it touched."""
        return _rowcount(await self.conn.execute(dialect(statement), *params))

    async def execute_many(self, statement: str, rows: Iterable[Row]) -> None:
        """Run one statement once per row, pipelined."""
        await self.conn.executemany(dialect(statement), rows)

    async def insert(self, statement: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` of one row and return the row's new id."""
        new_id = await self.conn.fetchval(dialect(statement) + " RETURNING id", *params)
        return int(new_id)

    async def begin_write(self) -> None:
        """Begin a writing transaction (`Store`'s lock makes this the only writer)."""
        await self.conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")

    async def begin_read(self) -> None:
        """Begin a read-only transaction whose reads all see one committed state."""
        await self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    async def commit(self) -> None:
        """Commit the transaction begun by `begin_write` or `begin_read`."""
        await self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        """Roll back the transaction in progress, if any."""
        if self.conn.is_in_transaction():
            await self.conn.execute("ROLLBACK")

    async def commit_turn(
        self, steps: Sequence[Step], outbox_count: int, fence: Fence | None = None
    ) -> list[int]:
        """A turn's transaction: the fence, one ``executemany`` per step, commit.

        The outbox's messages (the last step, when `outbox_count`) go in one statement
        that returns their seqs. A fence that matches no lease row rolls back and
        raises `FencedError`: nothing of the turn is written.
        """
        conn = self.conn
        await self.begin_write()
        try:
            if fence is not None and (
                await conn.fetchval(FENCE, fence.shard, fence.node, fence.epoch) is None
            ):
                await conn.execute("ROLLBACK")
                raise FencedError(
                    f"shard {fence.shard}: node {fence.node!r} no longer holds the lease at"
                    f" epoch {fence.epoch}; the turn was not written"
                )
            state_steps = steps[:-1] if outbox_count else steps
            for sql, rows in state_steps:
                await conn.executemany(dialect(sql), rows)
            seqs: list[int] = []
            if outbox_count:
                sql, rows = steps[-1]
                assert sql == INSERT_OUTBOX, "the outbox's messages are a turn's last step"
                shards, topics, payloads, retains = zip(*rows, strict=True)
                inserted = await conn.fetch(
                    INSERT_OUTBOX_RETURNING, shards[0], topics, payloads, retains
                )
                # The identity numbers the rows in the order they are inserted.
                seqs = sorted(int(row[0]) for row in inserted)
            await conn.execute("COMMIT")
        except BaseException:
            if not conn.is_closed() and conn.is_in_transaction():
                await conn.execute("ROLLBACK")
            raise
        return seqs

    async def schema_version(self) -> int:
        """The database's schema version (the row of ``schema_version``)."""
        return await schema_version(self.conn)

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()
