"""The `Store` facade: opening the database, and serialising every use of its connection.

The backend (SQLite or PostgreSQL) is chosen by what `Store.open` is given; everything
past the opening goes through `backend.Connection`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from ringmaster.contract import OutboxMessage
from ringmaster.engine.events import ConfigEvent
from ringmaster.engine.model import TenantId
from ringmaster.engine.records import LiveState, StateChanges
from ringmaster.history import HistoryWrite
from ringmaster.settings import database_target
from ringmaster.store import history, live
from ringmaster.store.backend import Connection
from ringmaster.store.config import ConfigTransaction, load_config
from ringmaster.store.history import HistoryReader
from ringmaster.store.queue_log import QueueLogReader
from ringmaster.store.records import CLUSTER_NEEDS_POSTGRESQL, Fence, StoreError, Synchronous
from ringmaster.store.reports import ReportReader
from ringmaster.store.repository import Repository
from ringmaster.store.sqlite import connection

if TYPE_CHECKING:
    from ringmaster.store.postgres.cluster import ClusterStore, Listener

ReaderT = TypeVar("ReaderT", bound=Repository)


class Store:
    """Ringmaster's database, SQLite or PostgreSQL. Open with `Store.open`; use as a context.

    All methods are serialised on one connection by a lock, so a configuration
    transaction and the service's `commit` never interleave their statements.
    """

    def __init__(
        self,
        db: Connection,
        path: Path | None,
        open_reader: Callable[[], Awaitable[Connection]],
        url: str | None = None,
    ) -> None:
        # Use Store.open(), which configures and migrates the connection.
        self._db = db
        self._lock = asyncio.Lock()
        #: The SQLite file, or None on PostgreSQL.
        self.path = path
        # A second connection for `snapshot` and the history's readers, opened on first use.
        self._open_reader = open_reader
        self._reader: Connection | None = None
        self._reader_lock = asyncio.Lock()
        # The PostgreSQL URL, for the cluster's connections of their own.
        self._url = url

    @classmethod
    async def open(
        cls,
        where: Path | str,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 5.0,
    ) -> Self:
        """Open (creating it if needed) and migrate the database `where` says.

        Each missing migration is applied in its own transaction, together with the new
        schema version, so an interrupted upgrade leaves the database at the last
        complete version.

        Args:
            where: A SQLite file's path; or a URL, ``sqlite:///relative/path`` or
                ``postgresql://user:pass@host:port/db`` (see `settings.database_target`).
            synchronous: SQLite's ``synchronous`` setting. ``NORMAL`` (WAL mode) survives a
                killed process but may lose the last transactions on power loss; ``FULL``
                survives power loss too, at one fsync per commit. Not used by PostgreSQL.
            busy_timeout_s: How long to wait for another connection's write lock (SQLite).

        Returns:
            The open store.

        Raises:
            StoreError: The database's schema is newer than this Ringmaster knows.
            ValueError: `synchronous` is not a setting SQLite knows, or `where` is a URL
                of no backend.
        """
        target = database_target(where) if isinstance(where, str) and "://" in where else where
        if isinstance(target, str):
            # Imported here: the SQLite-only daemon never loads the PostgreSQL driver.
            from ringmaster.store.postgres import connection as postgres  # noqa: PLC0415

            url = target
            writer = await postgres.connect(url)

            async def open_postgres_reader() -> Connection:
                return await postgres.connect_reader(url)

            return cls(writer, None, open_postgres_reader, url)
        path = Path(target)
        busy_timeout_ms = int(busy_timeout_s * 1000)

        async def open_sqlite_reader() -> Connection:
            return await connection.connect_reader(path, busy_timeout_ms)

        db = await connection.connect(path, synchronous, busy_timeout_ms)
        return cls(db, path, open_sqlite_reader)

    async def close(self) -> None:
        """Close the connection. Uncommitted work (there is none outside a method) is lost."""
        if self._reader is not None:
            await self._reader.close()
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """The database's schema version (SQLite: ``PRAGMA user_version``)."""
        async with self._lock:
            return await self._db.schema_version()

    # --- configuration ----------------------------------------------------------------

    async def load_config(self) -> list[ConfigEvent]:
        """The whole configuration, as the events that would build it from nothing.

        In dependency order: `TenantSaved`, `ExtensionSaved`, `QueueSaved` (by id, though
        a queue may overflow to a later one), `AgentEnrolled` with its options (by queue,
        then position, then enrolment order; positions as stored), `DidRouteSaved`.
        """
        async with self._lock:
            return await load_config(self._db)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ConfigTransaction]:
        """A configuration transaction: everything written in it is applied, or nothing.

        Leaving the block normally commits; an exception rolls back and propagates.

        Yields:
            The writer to use inside the block (it refuses to write after it).
        """
        async with self._lock:
            tx = ConfigTransaction(self._db)
            try:
                # Inside: cancelled as it begins, the BEGIN may still run (on SQLite's
                # thread), and the turns' connection must not be left inside it.
                await self._db.begin_write()
                yield tx
                tx._close()
                await self._db.commit()
            except BaseException:
                tx._close()
                await self._db.rollback()
                raise

    def snapshot(self) -> AbstractAsyncContextManager[ConfigTransaction]:
        """A consistent read-only view of the configuration, on a connection of its own.

        In WAL mode it reads while `commit` and `transaction` write: the admin
        API's reads neither wait for the daemon's commits nor hold them up, as
        they did on the one connection. SQLite refuses writes through it; on
        PostgreSQL it is a read-only REPEATABLE READ transaction.
        """
        return self._reading(ConfigTransaction)

    # --- live state -------------------------------------------------------------------

    async def load_live(self, tenants: Collection[TenantId] | None = None) -> LiveState:
        """The engine's live state as last committed, to restore it at start-up.

        Args:
            tenants: Only these tenants' (a shard's, `cluster.shards.tenants_of`): their
                calls, the agents of their extensions, their queues' memory and
                statistics. None: everything.
        """
        async with self._lock:
            return await live.load_live(self._db, tenants)

    async def commit(
        self,
        changes: StateChanges,
        outbox: Sequence[OutboxMessage],
        delivered_up_to: int | None = None,
        history: Sequence[HistoryWrite] = (),
        *,
        fence: Fence | None = None,
    ) -> list[int]:
        """Store what changed and the messages it implies, in one transaction.

        This is the hot path (once per event batch), so it issues one ``executemany`` per
        kind of row that has any, never one statement per row.

        Args:
            changes: The engine's changes: upserts are applied before removals.
            outbox: Messages to publish, in order.
            delivered_up_to: Outbox rows with ``seq <= delivered_up_to`` were confirmed
                published and are deleted.
            history: The turn's call and agent history (`ringmaster.history`), written
                in the same transaction, in order.
            fence: A cluster's turn: the lease it runs under. The transaction first
                checks that the lease is still the fence's node's at its epoch, and
                holds it until the commit. The outbox rows (and the watermark) are the
                fence's shard's; without a fence, shard 0's.

        Returns:
            The outbox sequence numbers given to `outbox`, in the same order: rising,
            though with a cluster not consecutive.

        Raises:
            FencedError: The lease is no longer the fence's: nothing was written.
            StoreError: A fence on SQLite (a cluster needs PostgreSQL).

        Cancelling the caller mid-commit may leave the outcome unknown to it (the
        statement already handed to the database still runs), though never half
        applied; callers that may be cancelled should `asyncio.shield` it.
        """
        shard = 0 if fence is None else fence.shard
        steps = live.turn_steps(changes, outbox, delivered_up_to, history, shard)
        if not steps:
            return []
        async with self._lock:
            return await self._db.commit_turn(steps, len(outbox), fence)

    @asynccontextmanager
    async def _reading(self, reader_type: type[ReaderT]) -> AsyncIterator[ReaderT]:
        """A read transaction on the reading connection, through a reader of `reader_type`.

        The history's readers (calls, queue_log, reports) share one connection
        apart from the turn's, so that a long report never holds a turn up.
        """
        async with self._reader_lock:
            if self._reader is None:
                self._reader = await self._open_reader()
            reader = self._reader
            try:
                await reader.begin_read()
            except BaseException:
                # Cancelled while it began (a request's timeout, a stream closed): on
                # SQLite the BEGIN runs on its thread all the same, and a reader left
                # inside it refuses every later read.
                await reader.rollback()
                raise
            tx = reader_type(reader)
            try:
                yield tx
            finally:
                tx._close()
                await reader.commit()

    def history(self) -> AbstractAsyncContextManager[HistoryReader]:
        """A consistent read-only view of the call and agent history (as `snapshot`)."""
        return self._reading(HistoryReader)

    def queue_log(self) -> AbstractAsyncContextManager[QueueLogReader]:
        """A consistent read-only view of the history for Asterisk's queue_log."""
        return self._reading(QueueLogReader)

    def reports(self) -> AbstractAsyncContextManager[ReportReader]:
        """A consistent read-only view of the history for the interval reports."""
        return self._reading(ReportReader)

    async def prune_history(self, cutoff: float, *, batch: int = 1000) -> int:
        """Delete one batch of history older than `cutoff` (Unix seconds), in one transaction.

        Ended visits with their rings, and agent activity; open visits are kept.

        Returns:
            How many rows went: fewer than a whole batch of each means nothing is left.
        """
        async with self._lock:
            return await history.prune(self._db, cutoff, batch)

    async def pending_outbox(self, shard: int = 0) -> list[tuple[int, OutboxMessage]]:
        """`shard`'s messages committed but not yet confirmed published, oldest first.

        Without a cluster every message is shard 0's.
        """
        async with self._lock:
            return await live.pending_outbox(self._db, shard)

    # --- the cluster (PostgreSQL only) ------------------------------------------------

    def _cluster_url(self) -> str:
        if self._url is None:
            raise StoreError(CLUSTER_NEEDS_POSTGRESQL)
        return self._url

    async def open_cluster(
        self, node: str, lease_ttl_s: float, *, api_url: str = ""
    ) -> ClusterStore:
        """The lease and heartbeat statements of `node`, on a connection of their own.

        Args:
            node: This node (``cluster.node``).
            lease_ttl_s: ``cluster.lease_ttl_s``.
            api_url: This node's admin API, for the other nodes (written with its heartbeat).

        Raises:
            StoreError: The store is SQLite's.
        """
        url = self._cluster_url()
        from ringmaster.store.postgres import cluster  # noqa: PLC0415

        return await cluster.open_cluster(url, node, lease_ttl_s, api_url)

    async def listen_config(self, callback: Callable[[TenantId], None]) -> Listener:
        """Hear every committed change of a tenant's configuration, through any store.

        `callback` gets the tenant's id, once per tenant and writing transaction, on
        the event loop, after the transaction committed (never for one rolled back).

        Raises:
            StoreError: The store is SQLite's.
        """
        url = self._cluster_url()
        from ringmaster.store.postgres import cluster  # noqa: PLC0415

        return await cluster.listen_config(url, callback)

    async def listen_leases(self, callback: Callable[[int], None]) -> Listener:
        """Hear every lease released (`Release`), through any store: the shard's number.

        So that the node placement prefers acquires at once, not at its next poll.

        Raises:
            StoreError: The store is SQLite's.
        """
        url = self._cluster_url()
        from ringmaster.store.postgres import cluster  # noqa: PLC0415

        return await cluster.listen_leases(url, callback)
