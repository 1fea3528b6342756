"""SQLite persistence: the schema, its migrations, and every SQL statement of Ringmaster.

One file holds both the configuration (tenants, extensions, queues, enrolments, DID
routes) and the engine's live state (calls, rings, agents, strategy memory), plus the
*transactional outbox*: MQTT messages the engine decided to publish but that are not yet
confirmed sent. State and the messages it implies are committed in one transaction
(`Store.commit`), so a crash between deciding and publishing loses nothing: at start-up
the service re-publishes `Store.pending_outbox()` (QoS 1 subscribers must tolerate the
duplicate, which the contract already requires).

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` by default. A
committed transaction then survives the process being killed (``kill -9``, OOM killer,
a crash): the WAL is in the OS page cache and SQLite recovers it on the next open. It
does *not* survive a power loss or kernel panic, which may roll back the last few
transactions (never corrupt the file). Pass ``synchronous="FULL"`` to `Store.open` to
fsync the WAL on every commit, at the cost of one fsync per event batch.

Rows are converted to and from the engine's records and events here and only here;
nothing outside this module writes SQL.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Generic, Literal, Self, TypeVar

import aiosqlite

from ringmaster.engine.events import (
    AgentEnrolled,
    ConfigEvent,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
    TenantSaved,
)
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallKey,
    CallPhase,
    DeviceState,
    DidRoute,
    Extension,
    ExtensionId,
    ExtensionTarget,
    Presence,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    RouteTarget,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    LiveState,
    QueueMemoryRecord,
    RingRecord,
    StateChanges,
)

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

#: Schema migrations, oldest first: ``MIGRATIONS[i]`` takes a file from version ``i`` to
#: ``i + 1`` (``PRAGMA user_version``). Append only; never edit a released migration.
MIGRATIONS: list[str] = [
    # --- 1: the initial schema ------------------------------------------------------
    """
    -- Configuration: the product's documented model.
    CREATE TABLE tenants (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL
    );
    CREATE TABLE extensions (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants ON DELETE CASCADE,
        number    TEXT NOT NULL CHECK (length(number) BETWEEN 1 AND 20),
        name      TEXT NOT NULL DEFAULT '',
        UNIQUE (tenant_id, number),
        UNIQUE (tenant_id, id)  -- target of did_routes' same-tenant foreign key
    );
    CREATE TABLE queues (
        id           INTEGER PRIMARY KEY,
        tenant_id    INTEGER NOT NULL REFERENCES tenants,
        name         TEXT NOT NULL,
        queue_number TEXT NOT NULL CHECK (length(queue_number) BETWEEN 1 AND 20),
        strategy     TEXT NOT NULL,  -- checked by the writer: strategies are code, not schema
        timeout      INTEGER NOT NULL CHECK (timeout >= 1),
        status       TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
        retry        INTEGER NOT NULL DEFAULT 5 CHECK (retry >= 0),
        wrapup_time  INTEGER NOT NULL DEFAULT 0 CHECK (wrapup_time >= 0),
        UNIQUE (tenant_id, queue_number),
        UNIQUE (tenant_id, id)  -- target of did_routes' same-tenant foreign key
    );
    -- No foreign key to extensions, deliberately: the product documents that deleting
    -- an extension does not unenroll it, and the engine tolerates enrolments of nothing.
    CREATE TABLE queue_agents (
        queue_id     INTEGER NOT NULL REFERENCES queues ON DELETE CASCADE,
        extension_id INTEGER NOT NULL,
        position     INTEGER NOT NULL,
        PRIMARY KEY (queue_id, extension_id)
    );
    -- The composite foreign keys also keep a route inside its tenant (contract: "a route
    -- to a queue of another tenant ... never rings anyone"); a NULL side is not checked.
    CREATE TABLE did_routes (
        tenant_id    INTEGER NOT NULL REFERENCES tenants,
        did          TEXT NOT NULL,
        queue_id     INTEGER NULL,
        extension_id INTEGER NULL,
        CHECK ((queue_id IS NULL) <> (extension_id IS NULL)),
        PRIMARY KEY (tenant_id, did),
        FOREIGN KEY (tenant_id, queue_id) REFERENCES queues (tenant_id, id),
        FOREIGN KEY (tenant_id, extension_id) REFERENCES extensions (tenant_id, id)
    );

    -- Live state, mirroring ringmaster.engine.records. No foreign keys to the
    -- configuration: a call outlives a queue edit, and the engine reconciles.
    CREATE TABLE calls (
        tenant_id   INTEGER NOT NULL,
        call_id     TEXT NOT NULL,
        phase       TEXT NOT NULL,
        queue_id    INTEGER NULL,
        did         TEXT NOT NULL,
        caller_id   TEXT NOT NULL,
        caller_name TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        arrived_at  REAL NOT NULL,
        seq         INTEGER NOT NULL,
        tried       TEXT NOT NULL DEFAULT '[]',  -- JSON list of extension ids, in order
        retry_at    REAL NULL,
        agent_id    INTEGER NULL,
        answered_at REAL NULL,
        ended_at    REAL NULL,
        PRIMARY KEY (tenant_id, call_id)
    );
    CREATE TABLE rings (
        tenant_id    INTEGER NOT NULL,
        call_id      TEXT NOT NULL,
        extension_id INTEGER NOT NULL,
        position     INTEGER NOT NULL,  -- order within CallRecord.rings
        started_at   REAL NOT NULL,
        deadline     REAL NOT NULL,
        PRIMARY KEY (tenant_id, call_id, extension_id),
        FOREIGN KEY (tenant_id, call_id) REFERENCES calls ON DELETE CASCADE
    );
    CREATE TABLE agent_states (
        extension_id    INTEGER PRIMARY KEY,
        presence        TEXT NOT NULL,
        presence_reason TEXT NOT NULL,
        device          TEXT NOT NULL,
        wrapup_until    REAL NULL,
        status          TEXT NOT NULL
    );
    CREATE TABLE queue_memory (
        queue_id  INTEGER PRIMARY KEY,
        last_rung INTEGER NULL,
        offered   INTEGER NOT NULL,
        answered  INTEGER NOT NULL,
        abandoned INTEGER NOT NULL,
        completed INTEGER NOT NULL
    );
    CREATE TABLE agent_queue_stats (
        queue_id           INTEGER NOT NULL,
        extension_id       INTEGER NOT NULL,
        last_call_ended_at REAL NULL,
        calls_completed    INTEGER NOT NULL,
        talk_time_s        REAL NOT NULL,
        PRIMARY KEY (queue_id, extension_id)
    );

    -- The transactional outbox: messages decided but not yet confirmed published.
    CREATE TABLE outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        topic   TEXT NOT NULL,
        payload BLOB NOT NULL,
        retain  INTEGER NOT NULL
    );
    """,
    # --- 2: DID routes get a surrogate id, so the admin API can address them ---------
    # SQLite cannot add a primary key to a table, so the table is rebuilt (its rows keep
    # their order as their ids). Nothing references did_routes, so dropping it is safe
    # with foreign keys on.
    """
    CREATE TABLE did_routes_v2 (
        id           INTEGER PRIMARY KEY,
        tenant_id    INTEGER NOT NULL REFERENCES tenants,
        did          TEXT NOT NULL,
        queue_id     INTEGER NULL,
        extension_id INTEGER NULL,
        CHECK ((queue_id IS NULL) <> (extension_id IS NULL)),
        UNIQUE (tenant_id, did),
        FOREIGN KEY (tenant_id, queue_id) REFERENCES queues (tenant_id, id),
        FOREIGN KEY (tenant_id, extension_id) REFERENCES extensions (tenant_id, id)
    );
    INSERT INTO did_routes_v2 (tenant_id, did, queue_id, extension_id)
        SELECT tenant_id, did, queue_id, extension_id FROM did_routes ORDER BY tenant_id, did;
    DROP TABLE did_routes;
    ALTER TABLE did_routes_v2 RENAME TO did_routes;
    """,
]


class StoreError(Exception):
    """The database cannot be used as asked (e.g. it was written by a newer Ringmaster)."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An MQTT message waiting in the outbox until its publication is confirmed."""

    topic: str
    payload: bytes
    retain: bool = False


class Change(enum.Enum):
    """What a configuration write did to the stored row."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


IdT = TypeVar("IdT")


@dataclass(frozen=True, slots=True)
class Saved(Generic[IdT]):
    """The result of an upsert by natural key: the row's id and what happened to it."""

    id: IdT
    change: Change


ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a list, and how many items the whole list has."""

    items: list[ItemT]
    total: int


@dataclass(frozen=True, slots=True)
class StoredRoute:
    """A DID route with its surrogate id (migration 2), by which the admin API addresses it."""

    id: int
    route: DidRoute


# --- live-state SQL ------------------------------------------------------------------


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """An ``INSERT ... ON CONFLICT DO UPDATE`` of every non-key column.

    Used rather than ``INSERT OR REPLACE``, which deletes the old row first and would
    cascade to the row's children (a call's rings).
    """
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


# Column orders: the row converters below build and unpack tuples in these orders.
# fmt: off
_CALL_COLUMNS: Final = (
    "tenant_id", "call_id", "phase", "queue_id", "did", "caller_id", "caller_name", "priority",
    "arrived_at", "seq", "tried", "retry_at", "agent_id", "answered_at", "ended_at",
)
_AGENT_COLUMNS: Final = (
    "extension_id", "presence", "presence_reason", "device", "wrapup_until", "status",
)
_QUEUE_MEMORY_COLUMNS: Final = (
    "queue_id", "last_rung", "offered", "answered", "abandoned", "completed",
)
_STATS_COLUMNS: Final = (
    "queue_id", "extension_id", "last_call_ended_at", "calls_completed", "talk_time_s",
)
# fmt: on

_UPSERT_CALL: Final = _upsert_sql("calls", _CALL_COLUMNS, ("tenant_id", "call_id"))
_DELETE_CALL: Final = "DELETE FROM calls WHERE tenant_id = ? AND call_id = ?"
_DELETE_RINGS: Final = "DELETE FROM rings WHERE tenant_id = ? AND call_id = ?"
_INSERT_RING: Final = (
    "INSERT INTO rings (tenant_id, call_id, extension_id, position, started_at, deadline) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_AGENT: Final = _upsert_sql("agent_states", _AGENT_COLUMNS, ("extension_id",))
_DELETE_AGENT: Final = "DELETE FROM agent_states WHERE extension_id = ?"
_UPSERT_QUEUE_MEMORY: Final = _upsert_sql("queue_memory", _QUEUE_MEMORY_COLUMNS, ("queue_id",))
_DELETE_QUEUE_MEMORY: Final = "DELETE FROM queue_memory WHERE queue_id = ?"
_UPSERT_STATS: Final = _upsert_sql(
    "agent_queue_stats", _STATS_COLUMNS, ("queue_id", "extension_id")
)
_DELETE_STATS: Final = "DELETE FROM agent_queue_stats WHERE queue_id = ? AND extension_id = ?"
_DELETE_DELIVERED: Final = "DELETE FROM outbox WHERE seq <= ?"
_INSERT_OUTBOX: Final = "INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)"

Row = tuple[Any, ...]


def _call_row(call: CallRecord) -> Row:
    return (
        call.tenant_id,
        call.call_id,
        call.phase.value,
        call.queue_id,
        call.did,
        call.caller_id,
        call.caller_name,
        call.priority,
        call.arrived_at,
        call.seq,
        json.dumps(call.tried),
        call.retry_at,
        call.agent_id,
        call.answered_at,
        call.ended_at,
    )


def _call_record(row: Row, rings: tuple[RingRecord, ...]) -> CallRecord:
    (
        tenant_id,
        call_id,
        phase,
        queue_id,
        did,
        caller_id,
        caller_name,
        priority,
        arrived_at,
        seq,
        tried,
        retry_at,
        agent_id,
        answered_at,
        ended_at,
    ) = row
    return CallRecord(
        tenant_id=TenantId(tenant_id),
        call_id=CallId(call_id),
        phase=CallPhase(phase),
        did=did,
        caller_id=caller_id,
        caller_name=caller_name,
        priority=priority,
        arrived_at=arrived_at,
        seq=seq,
        queue_id=None if queue_id is None else QueueId(queue_id),
        rings=rings,
        tried=tuple(ExtensionId(e) for e in json.loads(tried)),
        retry_at=retry_at,
        agent_id=None if agent_id is None else ExtensionId(agent_id),
        answered_at=answered_at,
        ended_at=ended_at,
    )


def _agent_row(agent: AgentRecord) -> Row:
    return (
        agent.extension_id,
        agent.presence.value,
        agent.presence_reason,
        agent.device.value,
        agent.wrapup_until,
        agent.status.value,
    )


def _agent_record(row: Row) -> AgentRecord:
    extension_id, presence, reason, device, wrapup_until, status = row
    return AgentRecord(
        extension_id=ExtensionId(extension_id),
        presence=Presence(presence),
        presence_reason=reason,
        device=DeviceState(device),
        wrapup_until=wrapup_until,
        status=AgentStatus(status),
    )


def _queue_memory_row(memory: QueueMemoryRecord) -> Row:
    return (
        memory.queue_id,
        memory.last_rung,
        memory.offered,
        memory.answered,
        memory.abandoned,
        memory.completed,
    )


def _queue_memory_record(row: Row) -> QueueMemoryRecord:
    queue_id, last_rung, offered, answered, abandoned, completed = row
    return QueueMemoryRecord(
        queue_id=QueueId(queue_id),
        last_rung=None if last_rung is None else ExtensionId(last_rung),
        offered=offered,
        answered=answered,
        abandoned=abandoned,
        completed=completed,
    )


def _stats_row(stats: AgentQueueStats) -> Row:
    return (
        stats.queue_id,
        stats.extension_id,
        stats.last_call_ended_at,
        stats.calls_completed,
        stats.talk_time_s,
    )


def _stats_record(row: Row) -> AgentQueueStats:
    queue_id, extension_id, last_call_ended_at, calls_completed, talk_time_s = row
    return AgentQueueStats(
        queue_id=QueueId(queue_id),
        extension_id=ExtensionId(extension_id),
        last_call_ended_at=last_call_ended_at,
        calls_completed=calls_completed,
        talk_time_s=float(talk_time_s),
    )


# --- configuration SQL ------------------------------------------------------------------


def _queue_config(row: Row) -> QueueConfig:
    queue_id, tenant_id, name, queue_number, strategy, timeout, status, retry, wrapup = row
    return QueueConfig(
        queue_id=QueueId(queue_id),
        tenant_id=TenantId(tenant_id),
        name=name,
        queue_number=queue_number,
        strategy=strategy,
        timeout=timeout,
        status=QueueStatus(status),
        retry=retry,
        wrapup_time=wrapup,
    )


_QUEUE_COLUMNS: Final = (
    "id, tenant_id, name, queue_number, strategy, timeout, status, retry, wrapup_time"
)
_ROUTE_COLUMNS: Final = "id, tenant_id, did, queue_id, extension_id"


def _extension(row: Row) -> Extension:
    extension_id, tenant_id, number, name = row
    return Extension(ExtensionId(extension_id), TenantId(tenant_id), number, name)


def _stored_route(row: Row) -> StoredRoute:
    route_id, tenant_id, did, queue_id, extension_id = row
    return StoredRoute(
        route_id, DidRoute(TenantId(tenant_id), did, _route_target(queue_id, extension_id))
    )


def _route_target(queue_id: int | None, extension_id: int | None) -> RouteTarget:
    if queue_id is not None:
        return QueueTarget(QueueId(queue_id))
    assert extension_id is not None  # the table's CHECK: exactly one is set
    return ExtensionTarget(ExtensionId(extension_id))


async def _load_config(db: aiosqlite.Connection) -> list[ConfigEvent]:
    events: list[ConfigEvent] = []
    for row in await db.execute_fetchall("SELECT id, name FROM tenants ORDER BY id"):
        events.append(TenantSaved(Tenant(TenantId(row[0]), row[1])))
    for row in await db.execute_fetchall(
        "SELECT id, tenant_id, number, name FROM extensions ORDER BY id"
    ):
        events.append(
            ExtensionSaved(Extension(ExtensionId(row[0]), TenantId(row[1]), row[2], row[3]))
        )
    for row in await db.execute_fetchall(
        "SELECT id, tenant_id, name, queue_number, strategy, timeout, status, retry,"
        " wrapup_time FROM queues ORDER BY id"
    ):
        events.append(QueueSaved(_queue_config(tuple(row))))
    for row in await db.execute_fetchall(
        "SELECT queue_id, extension_id FROM queue_agents ORDER BY queue_id, position"
    ):
        events.append(AgentEnrolled(QueueId(row[0]), ExtensionId(row[1])))
    for row in await db.execute_fetchall(
        "SELECT tenant_id, did, queue_id, extension_id FROM did_routes ORDER BY tenant_id, did"
    ):
        route = DidRoute(TenantId(row[0]), row[1], _route_target(row[2], row[3]))
        events.append(DidRouteSaved(route))
    return events


class ConfigTransaction:
    """Configuration writes, applied together or not at all (see `Store.transaction`).

    Each upsert finds its row by natural key (a tenant's extension number, a tenant's
    queue number, a tenant's DID), so provisioning the same file twice changes nothing,
    and reports what it did as a `Change`.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._open = True

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("the transaction is over; open a new one with Store.transaction()")

    def _close(self) -> None:
        self._open = False

    async def load_config(self) -> list[ConfigEvent]:
        """The configuration as this transaction sees it; see `Store.load_config`."""
        self._check_open()
        return await _load_config(self._db)

    async def _one(self, sql: str, params: Sequence[Any]) -> Row | None:
        rows = list(await self._db.execute_fetchall(sql, params))
        return tuple(rows[0]) if rows else None

    async def upsert_tenant(self, tenant_id: TenantId, name: str) -> Change:
        """Create tenant `tenant_id` or rename it.

        Args:
            tenant_id: The tenant's id, chosen by the operator (it appears in topics).
            name: Its display name.

        Returns:
            What happened to the row.
        """
        self._check_open()
        old = await self._one("SELECT name FROM tenants WHERE id = ?", (tenant_id,))
        if old is None:
            await self._db.execute(
                "INSERT INTO tenants (id, name) VALUES (?, ?)", (tenant_id, name)
            )
            return Change.CREATED
        if old == (name,):
            return Change.UNCHANGED
        await self._db.execute("UPDATE tenants SET name = ? WHERE id = ?", (name, tenant_id))
        return Change.UPDATED

    async def upsert_extension(
        self, tenant_id: TenantId, number: str, *, name: str = ""
    ) -> Saved[ExtensionId]:
        """Create or update a tenant's extension, found by its number.

        Args:
            tenant_id: The tenant that owns it.
            number: The extension number, 1..20 characters, unique within the tenant.
            name: Its display name.

        Returns:
            The extension's id and what happened to the row.
        """
        self._check_open()
        old = await self._one(
            "SELECT id, name FROM extensions WHERE tenant_id = ? AND number = ?",
            (tenant_id, number),
        )
        if old is None:
            cursor = await self._db.execute(
                "INSERT INTO extensions (tenant_id, number, name) VALUES (?, ?, ?)",
                (tenant_id, number, name),
            )
            assert cursor.lastrowid is not None
            return Saved(ExtensionId(cursor.lastrowid), Change.CREATED)
        extension_id = ExtensionId(old[0])
        if old[1] == name:
            return Saved(extension_id, Change.UNCHANGED)
        await self._db.execute("UPDATE extensions SET name = ? WHERE id = ?", (name, extension_id))
        return Saved(extension_id, Change.UPDATED)

    async def upsert_queue(
        self,
        tenant_id: TenantId,
        queue_number: str,
        *,
        name: str,
        strategy: str,
        timeout: int,  # noqa: ASYNC109 - the queue's ring timeout, not a deadline for this call
        status: QueueStatus = QueueStatus.ACTIVE,
        retry: int = 5,
        wrapup_time: int = 0,
    ) -> Saved[QueueId]:
        """Create or update a tenant's queue, found by its queue number.

        The fields are those of `ringmaster.engine.model.QueueConfig`. The strategy name
        is not checked here (the schema does not know the strategies); callers validate.

        Returns:
            The queue's id and what happened to the row.
        """
        self._check_open()
        fields = (name, strategy, timeout, status.value, retry, wrapup_time)
        old = await self._one(
            "SELECT id, name, strategy, timeout, status, retry, wrapup_time FROM queues"
            " WHERE tenant_id = ? AND queue_number = ?",
            (tenant_id, queue_number),
        )
        if old is None:
            cursor = await self._db.execute(
                "INSERT INTO queues (tenant_id, queue_number, name, strategy, timeout, status,"
                " retry, wrapup_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (tenant_id, queue_number, *fields),
            )
            assert cursor.lastrowid is not None
            return Saved(QueueId(cursor.lastrowid), Change.CREATED)
        queue_id = QueueId(old[0])
        if old[1:] == fields:
            return Saved(queue_id, Change.UNCHANGED)
        await self._db.execute(
            "UPDATE queues SET name = ?, strategy = ?, timeout = ?, status = ?, retry = ?,"
            " wrapup_time = ? WHERE id = ?",
            (*fields, queue_id),
        )
        return Saved(queue_id, Change.UPDATED)

    async def set_enrolments(
        self, queue_id: QueueId, extension_ids: Sequence[ExtensionId]
    ) -> Change:
        """Replace a queue's agents with `extension_ids`, in this (enrolment) order.

        Args:
            queue_id: The queue.
            extension_ids: Its agents, without duplicates; the order is the fixed order of
                round-robin strategies.

        Returns:
            `Change.UNCHANGED` if the queue already had exactly these agents in this
            order, `Change.CREATED` if it had none, else `Change.UPDATED`.
        """
        self._check_open()
        old = [
            row[0]
            for row in await self._db.execute_fetchall(
                "SELECT extension_id FROM queue_agents WHERE queue_id = ? ORDER BY position",
                (queue_id,),
            )
        ]
        if old == list(extension_ids):
            return Change.UNCHANGED
        await self._db.execute("DELETE FROM queue_agents WHERE queue_id = ?", (queue_id,))
        await self._db.executemany(
            "INSERT INTO queue_agents (queue_id, extension_id, position) VALUES (?, ?, ?)",
            [(queue_id, e, position) for position, e in enumerate(extension_ids)],
        )
        return Change.UPDATED if old else Change.CREATED

    async def upsert_did_route(self, tenant_id: TenantId, did: str, target: RouteTarget) -> Change:
        """Create or retarget the route of a tenant's DID.

        The target must belong to the same tenant (enforced by the schema).

        Returns:
            What happened to the row.
        """
        self._check_open()
        queue_id = target.queue_id if isinstance(target, QueueTarget) else None
        extension_id = target.extension_id if isinstance(target, ExtensionTarget) else None
        old = await self._one(
            "SELECT queue_id, extension_id FROM did_routes WHERE tenant_id = ? AND did = ?",
            (tenant_id, did),
        )
        if old is None:
            await self._db.execute(
                "INSERT INTO did_routes (tenant_id, did, queue_id, extension_id)"
                " VALUES (?, ?, ?, ?)",
                (tenant_id, did, queue_id, extension_id),
            )
            return Change.CREATED
        if old == (queue_id, extension_id):
            return Change.UNCHANGED
        await self._db.execute(
            "UPDATE did_routes SET queue_id = ?, extension_id = ? WHERE tenant_id = ? AND did = ?",
            (queue_id, extension_id, tenant_id, did),
        )
        return Change.UPDATED

    # --- the admin API: reads, inserts and updates by id, deletes ---------------------
    #
    # The API addresses rows by id and must refuse duplicates (409) rather than upsert,
    # so these complement the natural-key upserts above. Every list takes an optional
    # tenant filter and a page; ids are the stable order.

    async def _page(
        self, table: str, columns: str, tenant_id: TenantId | None, limit: int, offset: int
    ) -> tuple[list[Row], int]:
        # `table` and `columns` are constants of this module, never input.
        where, params = ("WHERE tenant_id = ?", (tenant_id,)) if tenant_id is not None else ("", ())
        ((total,),) = await self._db.execute_fetchall(
            f"SELECT count(*) FROM {table} {where}", params
        )
        rows = await self._db.execute_fetchall(
            f"SELECT {columns} FROM {table} {where} ORDER BY id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [tuple(row) for row in rows], int(total)

    async def tenant(self, tenant_id: TenantId) -> Tenant | None:
        """The tenant with this id, or None."""
        self._check_open()
        row = await self._one("SELECT id, name FROM tenants WHERE id = ?", (tenant_id,))
        return None if row is None else Tenant(TenantId(row[0]), row[1])

    async def tenants(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[Tenant]:
        """A page of tenants by id; `tenant_id` narrows the list to that one tenant."""
        self._check_open()
        where, params = ("WHERE id = ?", (tenant_id,)) if tenant_id is not None else ("", ())
        ((total,),) = await self._db.execute_fetchall(
            f"SELECT count(*) FROM tenants {where}", params
        )
        rows = await self._db.execute_fetchall(
            f"SELECT id, name FROM tenants {where} ORDER BY id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return Page([Tenant(TenantId(r[0]), r[1]) for r in rows], int(total))

    async def insert_tenant(self, tenant_id: TenantId | None, name: str) -> Tenant:
        """Create a tenant; with `tenant_id` None, SQLite picks the next free id.

        The caller checks that `tenant_id` is free (`tenant`).
        """
        self._check_open()
        cursor = await self._db.execute(
            "INSERT INTO tenants (id, name) VALUES (?, ?)", (tenant_id, name)
        )
        assert cursor.lastrowid is not None
        return Tenant(TenantId(cursor.lastrowid), name)

    async def tenant_contents(self, tenant_id: TenantId) -> dict[str, int]:
        """How many extensions, queues and DID routes the tenant has, by kind."""
        self._check_open()
        counts: dict[str, int] = {}
        for table in ("extensions", "queues", "did_routes"):
            ((count,),) = await self._db.execute_fetchall(
                f"SELECT count(*) FROM {table} WHERE tenant_id = ?", (tenant_id,)
            )
            counts[table] = int(count)
        return counts

    async def delete_tenant(self, tenant_id: TenantId) -> bool:
        """Delete an empty tenant (see `tenant_contents`); False if it did not exist."""
        self._check_open()
        cursor = await self._db.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,))
        return cursor.rowcount > 0

    async def extension(self, extension_id: ExtensionId) -> Extension | None:
        """The extension with this id, or None."""
        self._check_open()
        row = await self._one(
            "SELECT id, tenant_id, number, name FROM extensions WHERE id = ?", (extension_id,)
        )
        return None if row is None else _extension(row)

    async def extension_by_number(self, tenant_id: TenantId, number: str) -> Extension | None:
        """A tenant's extension found by its number, or None."""
        self._check_open()
        row = await self._one(
            "SELECT id, tenant_id, number, name FROM extensions WHERE tenant_id = ? AND number = ?",
            (tenant_id, number),
        )
        return None if row is None else _extension(row)

    async def extensions(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[Extension]:
        """A page of extensions by id, of one tenant or of all."""
        self._check_open()
        rows, total = await self._page(
            "extensions", "id, tenant_id, number, name", tenant_id, limit, offset
        )
        return Page([_extension(r) for r in rows], total)

    async def insert_extension(self, tenant_id: TenantId, number: str, name: str) -> Extension:
        """Create an extension; the caller checks the number is free in the tenant."""
        self._check_open()
        cursor = await self._db.execute(
            "INSERT INTO extensions (tenant_id, number, name) VALUES (?, ?, ?)",
            (tenant_id, number, name),
        )
        assert cursor.lastrowid is not None
        return Extension(ExtensionId(cursor.lastrowid), tenant_id, number, name)

    async def update_extension(self, extension: Extension) -> None:
        """Store an existing extension's number and name (its tenant never changes)."""
        self._check_open()
        await self._db.execute(
            "UPDATE extensions SET number = ?, name = ? WHERE id = ?",
            (extension.number, extension.name, extension.extension_id),
        )

    async def delete_extension(self, extension_id: ExtensionId) -> None:
        """Delete an extension; the caller checks it is in no queue and no route."""
        self._check_open()
        await self._db.execute("DELETE FROM extensions WHERE id = ?", (extension_id,))

    async def queue(self, queue_id: QueueId) -> QueueConfig | None:
        """The queue with this id, or None."""
        self._check_open()
        row = await self._one(f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE id = ?", (queue_id,))
        return None if row is None else _queue_config(row)

    async def queue_by_number(self, tenant_id: TenantId, queue_number: str) -> QueueConfig | None:
        """A tenant's queue found by its queue number, or None."""
        self._check_open()
        row = await self._one(
            f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE tenant_id = ? AND queue_number = ?",
            (tenant_id, queue_number),
        )
        return None if row is None else _queue_config(row)

    async def queues(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[QueueConfig]:
        """A page of queues by id, of one tenant or of all."""
        self._check_open()
        rows, total = await self._page("queues", _QUEUE_COLUMNS, tenant_id, limit, offset)
        return Page([_queue_config(r) for r in rows], total)

    async def insert_queue(
        self,
        tenant_id: TenantId,
        queue_number: str,
        *,
        name: str,
        strategy: str,
        timeout: int,  # noqa: ASYNC109 - the queue's ring timeout, not a deadline for this call
        status: QueueStatus,
    ) -> QueueConfig:
        """Create a queue (default `retry` and `wrapup_time`); the caller checks the number."""
        self._check_open()
        saved = await self.upsert_queue(
            tenant_id, queue_number, name=name, strategy=strategy, timeout=timeout, status=status
        )
        config = await self.queue(saved.id)
        assert config is not None
        return config

    async def update_queue(self, config: QueueConfig) -> None:
        """Store an existing queue's settings (its tenant never changes)."""
        self._check_open()
        await self._db.execute(
            "UPDATE queues SET name = ?, queue_number = ?, strategy = ?, timeout = ?,"
            " status = ?, retry = ?, wrapup_time = ? WHERE id = ?",
            (
                config.name,
                config.queue_number,
                config.strategy,
                config.timeout,
                config.status.value,
                config.retry,
                config.wrapup_time,
                config.queue_id,
            ),
        )

    async def delete_queue(self, queue_id: QueueId) -> None:
        """Delete a queue and its enrolments; the caller checks no route targets it."""
        self._check_open()
        await self._db.execute("DELETE FROM queues WHERE id = ?", (queue_id,))

    async def enrolled(self, queue_id: QueueId) -> list[Extension]:
        """A queue's agents in enrolment order (existing extensions only)."""
        self._check_open()
        rows = await self._db.execute_fetchall(
            "SELECT e.id, e.tenant_id, e.number, e.name FROM queue_agents AS a"
            " JOIN extensions AS e ON e.id = a.extension_id"
            " WHERE a.queue_id = ? ORDER BY a.position",
            (queue_id,),
        )
        return [_extension(tuple(r)) for r in rows]

    async def enrol(self, queue_id: QueueId, extension_id: ExtensionId) -> bool:
        """Add an agent after those already in the queue; False if it already was."""
        self._check_open()
        cursor = await self._db.execute(
            "INSERT INTO queue_agents (queue_id, extension_id, position)"
            " SELECT ?, ?, coalesce(max(position) + 1, 0) FROM queue_agents WHERE queue_id = ?"
            " ON CONFLICT DO NOTHING",
            (queue_id, extension_id, queue_id),
        )
        return cursor.rowcount > 0

    async def unenrol(self, queue_id: QueueId, extension_id: ExtensionId) -> bool:
        """Take an agent out of a queue; False if it was not in it."""
        self._check_open()
        cursor = await self._db.execute(
            "DELETE FROM queue_agents WHERE queue_id = ? AND extension_id = ?",
            (queue_id, extension_id),
        )
        return cursor.rowcount > 0

    async def queues_of(self, extension_id: ExtensionId) -> list[QueueConfig]:
        """The queues an extension is enrolled in, by id."""
        self._check_open()
        rows = await self._db.execute_fetchall(
            f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE id IN"
            " (SELECT queue_id FROM queue_agents WHERE extension_id = ?) ORDER BY id",
            (extension_id,),
        )
        return [_queue_config(tuple(r)) for r in rows]

    async def route(self, route_id: int) -> StoredRoute | None:
        """The DID route with this id, or None."""
        self._check_open()
        row = await self._one(f"SELECT {_ROUTE_COLUMNS} FROM did_routes WHERE id = ?", (route_id,))
        return None if row is None else _stored_route(row)

    async def route_by_did(self, tenant_id: TenantId, did: str) -> StoredRoute | None:
        """A tenant's route for one DID, or None."""
        self._check_open()
        row = await self._one(
            f"SELECT {_ROUTE_COLUMNS} FROM did_routes WHERE tenant_id = ? AND did = ?",
            (tenant_id, did),
        )
        return None if row is None else _stored_route(row)

    async def routes(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[StoredRoute]:
        """A page of DID routes by id, of one tenant or of all."""
        self._check_open()
        rows, total = await self._page("did_routes", _ROUTE_COLUMNS, tenant_id, limit, offset)
        return Page([_stored_route(r) for r in rows], total)

    async def routes_to(self, target: RouteTarget) -> list[StoredRoute]:
        """The DID routes that send calls to a queue or an extension, by id."""
        self._check_open()
        column, value = (
            ("queue_id", target.queue_id)
            if isinstance(target, QueueTarget)
            else ("extension_id", target.extension_id)
        )
        rows = await self._db.execute_fetchall(
            f"SELECT {_ROUTE_COLUMNS} FROM did_routes WHERE {column} = ? ORDER BY id", (value,)
        )
        return [_stored_route(tuple(r)) for r in rows]

    async def insert_route(self, route: DidRoute) -> StoredRoute:
        """Create a DID route; the caller checks the DID is free and the target same-tenant."""
        self._check_open()
        await self.upsert_did_route(route.tenant_id, route.did, route.target)
        stored = await self.route_by_did(route.tenant_id, route.did)
        assert stored is not None
        return stored

    async def update_route(self, stored: StoredRoute) -> None:
        """Store an existing route's DID and target (its tenant never changes)."""
        self._check_open()
        target = stored.route.target
        await self._db.execute(
            "UPDATE did_routes SET did = ?, queue_id = ?, extension_id = ? WHERE id = ?",
            (
                stored.route.did,
                target.queue_id if isinstance(target, QueueTarget) else None,
                target.extension_id if isinstance(target, ExtensionTarget) else None,
                stored.id,
            ),
        )

    async def delete_route(self, route_id: int) -> None:
        """Delete a DID route."""
        self._check_open()
        await self._db.execute("DELETE FROM did_routes WHERE id = ?", (route_id,))


class Store:
    """Ringmaster's SQLite database. Open with `Store.open`; use as an async context manager.

    All methods are serialised on one connection by a lock, so a configuration
    transaction and the service's `commit` never interleave their statements.
    """

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        # Use Store.open(), which configures and migrates the connection.
        self._db = db
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 5.0,
    ) -> Self:
        """Open (creating it and its folder if needed) and migrate the database at `path`.

        Each missing migration is applied in its own transaction, together with the new
        ``user_version``, so an interrupted upgrade leaves the file at the last complete
        version.

        Args:
            path: The database file.
            synchronous: SQLite's ``synchronous`` setting. ``NORMAL`` (WAL mode) survives a
                killed process but may lose the last transactions on power loss; ``FULL``
                survives power loss too, at one fsync per commit.
            busy_timeout_s: How long to wait for another connection's write lock.

        Returns:
            The open store.

        Raises:
            StoreError: The file's schema is newer than this Ringmaster knows.
            ValueError: `synchronous` is not a setting SQLite knows.
        """
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            # Checked because PRAGMA values cannot be bound as parameters.
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every BEGIN here is explicit.
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute(f"PRAGMA synchronous = {synchronous}")
            await db.execute("PRAGMA foreign_keys = ON")
            await _migrate(db, path)
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        """Close the connection. Uncommitted work (there is none outside a method) is lost."""
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
        """The file's schema version (``PRAGMA user_version``)."""
        async with self._lock:
            return await _user_version(self._db)

    # --- configuration ----------------------------------------------------------------

    async def load_config(self) -> list[ConfigEvent]:
        """The whole configuration, as the events that would build it from nothing.

        In dependency order: `TenantSaved`, `ExtensionSaved`, `QueueSaved`,
        `AgentEnrolled` (by queue, then enrolment order), `DidRouteSaved`.
        """
        async with self._lock:
            return await _load_config(self._db)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ConfigTransaction]:
        """A configuration transaction: everything written in it is applied, or nothing.

        Leaving the block normally commits; an exception rolls back and propagates.

        Yields:
            The writer to use inside the block (it refuses to write after it).
        """
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            tx = ConfigTransaction(self._db)
            try:
                yield tx
                tx._close()
                await self._db.execute("COMMIT")
            except BaseException:
                tx._close()
                await self._db.rollback()
                raise

    # --- live state -------------------------------------------------------------------

    async def load_live(self) -> LiveState:
        """The engine's live state as last committed, to restore it at start-up."""
        async with self._lock:
            db = self._db
            rings: dict[CallKey, list[RingRecord]] = {}
            for tenant_id, call_id, extension_id, started_at, deadline in await db.execute_fetchall(
                "SELECT tenant_id, call_id, extension_id, started_at, deadline FROM rings"
                " ORDER BY tenant_id, call_id, position"
            ):
                rings.setdefault((TenantId(tenant_id), CallId(call_id)), []).append(
                    RingRecord(ExtensionId(extension_id), started_at, deadline)
                )
            calls = tuple(
                _call_record(tuple(row), tuple(rings.get((row[0], row[1]), ())))
                for row in await db.execute_fetchall(
                    f"SELECT {', '.join(_CALL_COLUMNS)} FROM calls ORDER BY seq"
                )
            )
            agents = tuple(
                _agent_record(tuple(row))
                for row in await db.execute_fetchall(
                    f"SELECT {', '.join(_AGENT_COLUMNS)} FROM agent_states ORDER BY extension_id"
                )
            )
            queues = tuple(
                _queue_memory_record(tuple(row))
                for row in await db.execute_fetchall(
                    f"SELECT {', '.join(_QUEUE_MEMORY_COLUMNS)} FROM queue_memory ORDER BY queue_id"
                )
            )
            stats = tuple(
                _stats_record(tuple(row))
                for row in await db.execute_fetchall(
                    f"SELECT {', '.join(_STATS_COLUMNS)} FROM agent_queue_stats"
                    " ORDER BY queue_id, extension_id"
                )
            )
            return LiveState(calls=calls, agents=agents, queues=queues, agent_stats=stats)

    async def commit(
        self,
        changes: StateChanges,
        outbox: Sequence[OutboxMessage],
        delivered_up_to: int | None = None,
    ) -> list[int]:
        """Store what changed and the messages it implies, in one transaction.

        This is the hot path (once per event batch), so it issues one ``executemany`` per
        kind of row that has any, never one statement per row.

        Args:
            changes: The engine's changes: upserts are applied before removals.
            outbox: Messages to publish, in order.
            delivered_up_to: Outbox rows with ``seq <= delivered_up_to`` were confirmed
                published and are deleted.

        Returns:
            The outbox sequence numbers given to `outbox`, in the same order.

        Cancelling the caller mid-commit may leave the outcome unknown to it (the
        statement already handed to SQLite's thread still runs), though never half
        applied; callers that may be cancelled should `asyncio.shield` it.
        """
        live = changes.live
        steps: list[tuple[str, Iterable[Row]]] = []

        def step(sql: str, rows: Sequence[Row]) -> None:
            if rows:
                steps.append((sql, rows))

        step(_UPSERT_CALL, [_call_row(c) for c in live.calls])
        # A changed call's rings are replaced whole; a removed call's go by cascade.
        step(_DELETE_RINGS, [(c.tenant_id, c.call_id) for c in live.calls])
        step(
            _INSERT_RING,
            [
                (c.tenant_id, c.call_id, r.extension_id, position, r.started_at, r.deadline)
                for c in live.calls
                for position, r in enumerate(c.rings)
            ],
        )
        step(_DELETE_CALL, list(changes.calls_removed))
        step(_UPSERT_AGENT, [_agent_row(a) for a in live.agents])
        step(_DELETE_AGENT, [(e,) for e in changes.agents_removed])
        step(_UPSERT_QUEUE_MEMORY, [_queue_memory_row(q) for q in live.queues])
        step(_DELETE_QUEUE_MEMORY, [(q,) for q in changes.queues_removed])
        step(_UPSERT_STATS, [_stats_row(s) for s in live.agent_stats])
        step(_DELETE_STATS, list(changes.agent_stats_removed))
        if delivered_up_to is not None:
            step(_DELETE_DELIVERED, [(delivered_up_to,)])
        step(_INSERT_OUTBOX, [(m.topic, m.payload, int(m.retain)) for m in outbox])
        if not steps:
            return []

        async with self._lock:
            db = self._db
            await db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in steps:
                    await db.executemany(sql, rows)
                seqs: list[int] = []
                if outbox:
                    # One writer inside BEGIN IMMEDIATE: AUTOINCREMENT hands out
                    # consecutive seqs, ending at the last inserted rowid.
                    ((last,),) = await db.execute_fetchall("SELECT last_insert_rowid()")
                    seqs = list(range(last - len(outbox) + 1, last + 1))
                await db.execute("COMMIT")
            except BaseException:
                await db.rollback()
                raise
            return seqs

    async def pending_outbox(self) -> list[tuple[int, OutboxMessage]]:
        """Messages committed but not yet confirmed published, oldest first."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT seq, topic, payload, retain FROM outbox ORDER BY seq"
            )
        return [
            (seq, OutboxMessage(topic, bytes(payload), bool(retain)))
            for seq, topic, payload, retain in rows
        ]


async def _user_version(db: aiosqlite.Connection) -> int:
    ((version,),) = await db.execute_fetchall("PRAGMA user_version")
    return int(version)


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the schema up to ``len(MIGRATIONS)``, one transaction per migration."""
    version = await _user_version(db)
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path}: schema version {version} is newer than this Ringmaster's"
            f" ({len(MIGRATIONS)}); upgrade Ringmaster or restore a matching backup"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        # user_version lives in the file header and is written in the same transaction,
        # so a failed migration leaves both the schema and the version as they were.
        script = MIGRATIONS[number - 1]
        try:
            await db.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        except BaseException:
            await db.rollback()
            raise
