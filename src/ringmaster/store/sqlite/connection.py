"""SQLite connections: opening them (PRAGMAs, WAL), transactions, and one turn's commit.

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` by default. A
committed transaction then survives the process being killed (``kill -9``, OOM killer,
a crash): the WAL is in the OS page cache and SQLite recovers it on the next open. It
does *not* survive a power loss or kernel panic, which may roll back the last few
transactions (never corrupt the file). ``synchronous="FULL"`` fsyncs the WAL on every
commit, at the cost of one fsync per event batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from ringmaster.store.backend import Step
from ringmaster.store.config_rows import Row
from ringmaster.store.records import (
    CLUSTER_NEEDS_POSTGRESQL,
    SYNCHRONOUS,
    Fence,
    StoreError,
    Synchronous,
)
from ringmaster.store.sqlite.checkpoint import WRITER_AUTOCHECKPOINT, WalCheckpointer
from ringmaster.store.sqlite.schema import migrate, user_version
from ringmaster.store.sqlite.statements import LAST_OUTBOX_SEQ


async def connect(path: Path, synchronous: Synchronous, busy_timeout_ms: int) -> SqliteConnection:
    """Open the writer's connection to `path`, configured and migrated.

    Raises:
        StoreError: The file's schema is newer than this Ringmaster knows.
        ValueError: `synchronous` is not a setting SQLite knows.
    """
    if synchronous not in SYNCHRONOUS:
        # Checked because PRAGMA values cannot be bound as parameters.
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; every BEGIN here is explicit.
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute(f"PRAGMA synchronous = {synchronous}")
        await db.execute("PRAGMA foreign_keys = ON")
        # Checkpoints are the checkpointer's, off the turn's commit (checkpoint.py).
        await db.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
        await migrate(db, path)
        checkpointer = await WalCheckpointer.open(str(path), synchronous, busy_timeout_ms)
    except BaseException:
        await db.close()
        raise
    return SqliteConnection(db, checkpointer)


async def connect_reader(path: Path, busy_timeout_ms: int) -> SqliteConnection:
    """Open a read-only connection to `path`; in WAL mode it reads while the writer writes."""
    reader = await aiosqlite.connect(path, isolation_level=None)
    await reader.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    await reader.execute("PRAGMA query_only = ON")
    return SqliteConnection(reader)


def outbox_seqs(last_rowid: int, count: int) -> list[int]:
    """The seqs of a turn's `count` outbox messages, given the last one's."""
    # One writer inside BEGIN IMMEDIATE: AUTOINCREMENT hands out consecutive
    # seqs, ending at the last inserted rowid.
    return list(range(last_rowid - count + 1, last_rowid + 1))


def commit_steps_on_thread(
    conn: sqlite3.Connection, steps: Sequence[Step], outbox_count: int
) -> list[int]:
    """A turn's transaction, run whole on SQLite's own thread; returns the outbox seqs."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in steps:
            conn.executemany(sql, rows)
        seqs: list[int] = []
        if outbox_count:
            (last,) = conn.execute(LAST_OUTBOX_SEQ).fetchone()
            seqs = outbox_seqs(last, outbox_count)
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return seqs


async def commit_steps(
    db: aiosqlite.Connection, steps: Sequence[Step], outbox_count: int
) -> list[int]:
    """`commit_steps_on_thread` statement by statement, for an aiosqlite without the hook."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in steps:
            await db.executemany(sql, rows)
        seqs: list[int] = []
        if outbox_count:
            ((last,),) = await db.execute_fetchall(LAST_OUTBOX_SEQ)
            seqs = outbox_seqs(last, outbox_count)
        await db.execute("COMMIT")
    except BaseException:
        await db.rollback()
        raise
    return seqs


class SqliteConnection:
    """A `backend.Connection` on an aiosqlite connection (statements as written)."""

    def __init__(
        self, db: aiosqlite.Connection, checkpointer: WalCheckpointer | None = None
    ) -> None:
        self.db = db
        #: The writer's: told of each turn's commit (a reader has none).
        self.checkpointer = checkpointer
        # Runs a function on SQLite's thread: one hand-off for a whole commit
        # rather than one per statement (about ten a turn, ~55 us of loop time
        # each). aiosqlite has no public hook for it; without its private one,
        # `commit_turn` sends the statements one by one.
        self._run_on_thread: Any = getattr(db, "_execute", None)

    async def fetch_all(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query; all its rows, as tuples."""
        return list(await self.db.execute_fetchall(query, params))  # type: ignore[arg-type]

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one insert, update or delete; how many rows it touched."""
        cursor = await self.db.execute(statement, params)
        return max(cursor.rowcount, 0)

    async def execute_many(self, statement: str, rows: Iterable[Row]) -> None:
        """Run one statement once per row."""
        await self.db.executemany(statement, rows)

    async def insert(self, statement: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` of one row and return the row's new id (its rowid)."""
        cursor = await self.db.execute(statement, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def begin_write(self) -> None:
        """Begin a transaction that takes the write lock at once, so it cannot fail to upgrade."""
        await self.db.execute("BEGIN IMMEDIATE")

    async def begin_read(self) -> None:
        """Begin a transaction whose reads see one committed state."""
        await self.db.execute("BEGIN")

    async def commit(self) -> None:
        """Commit the transaction begun by `begin_write` or `begin_read`."""
        await self.db.execute("COMMIT")

    async def rollback(self) -> None:
        """Roll back the transaction in progress, if any."""
        await self.db.rollback()

    async def commit_turn(
        self, steps: Sequence[Step], outbox_count: int, fence: Fence | None = None
    ) -> list[int]:
        """A turn's transaction, in one hand-off to SQLite's thread when aiosqlite allows.

        Raises:
            StoreError: `fence` is given: a cluster needs PostgreSQL.
        """
        if fence is not None:
            raise StoreError(CLUSTER_NEEDS_POSTGRESQL)
        if self._run_on_thread is not None:
            seqs: list[int] = await self._run_on_thread(
                commit_steps_on_thread, self.db._conn, steps, outbox_count
            )
        else:
            seqs = await commit_steps(self.db, steps, outbox_count)
        if self.checkpointer is not None:
            self.checkpointer.committed()
        return seqs

    async def schema_version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        return await user_version(self.db)

    async def close(self) -> None:
        """Close the connection (and the checkpointer's, first)."""
        try:
            if self.checkpointer is not None:
                await self.checkpointer.close()
        finally:
            await self.db.close()
