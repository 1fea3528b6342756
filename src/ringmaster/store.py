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
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
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
    DEFAULT_ENROLMENT,
    AgentCondition,
    AgentStatus,
    CallId,
    CallKey,
    CallPhase,
    DeviceState,
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    OverflowTarget,
    PenaltyRule,
    Presence,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    RouteTarget,
    SkillRule,
    Skills,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    EndedRing,
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
    # --- 3: call-centre options (issue 4): queue and enrolment options, skills, and the
    # live state of overflows, callbacks, announcements and the new strategies ----------
    # Columns only, with defaults equal to the engine's (model.QueueConfig,
    # model.EnrolmentOptions, records.*), so existing rows mean what they meant.
    # `queues` is not rebuilt for composite foreign keys as did_routes was: dropping it
    # would cascade to queue_agents. The triggers keep overflow targets in the tenant.
    """
    ALTER TABLE queues ADD COLUMN max_len INTEGER NOT NULL DEFAULT 0 CHECK (max_len >= 0);
    ALTER TABLE queues ADD COLUMN max_wait INTEGER NOT NULL DEFAULT 0 CHECK (max_wait >= 0);
    ALTER TABLE queues ADD COLUMN overflow_type TEXT NOT NULL DEFAULT 'hangup'
        CHECK (overflow_type IN ('hangup', 'extension', 'queue'));
    ALTER TABLE queues ADD COLUMN overflow_extension_id INTEGER NULL REFERENCES extensions (id)
        CHECK ((overflow_extension_id IS NULL) = (overflow_type <> 'extension'));
    ALTER TABLE queues ADD COLUMN overflow_queue_id INTEGER NULL REFERENCES queues (id)
        CHECK ((overflow_queue_id IS NULL) = (overflow_type <> 'queue'));
    -- JSON arrays of model.AgentCondition values, sorted
    ALTER TABLE queues ADD COLUMN join_empty TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE queues ADD COLUMN leave_when_empty TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE queues ADD COLUMN weight INTEGER NOT NULL DEFAULT 0 CHECK (weight >= 0);
    ALTER TABLE queues ADD COLUMN service_level INTEGER NOT NULL DEFAULT 20
        CHECK (service_level >= 0);
    ALTER TABLE queues ADD COLUMN announce_frequency INTEGER NOT NULL DEFAULT 0
        CHECK (announce_frequency >= 0);
    ALTER TABLE queues ADD COLUMN ring_progressive_delay INTEGER NOT NULL DEFAULT 10
        CHECK (ring_progressive_delay >= 0);
    -- JSON [{"after": s, "max_penalty": p}] and [{"after": s, "lower_by": n}], in order
    ALTER TABLE queues ADD COLUMN penalty_rules TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE queues ADD COLUMN skill_rules TEXT NOT NULL DEFAULT '[]';
    CREATE TRIGGER queues_overflow_in_tenant_on_insert BEFORE INSERT ON queues
    WHEN (NEW.overflow_queue_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM queues WHERE id = NEW.overflow_queue_id AND tenant_id = NEW.tenant_id))
      OR (NEW.overflow_extension_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM extensions
              WHERE id = NEW.overflow_extension_id AND tenant_id = NEW.tenant_id))
    BEGIN
        SELECT RAISE(ABORT, 'overflow target is not in the queue''s tenant');
    END;
    CREATE TRIGGER queues_overflow_in_tenant_on_update
    BEFORE UPDATE OF tenant_id, overflow_queue_id, overflow_extension_id ON queues
    WHEN (NEW.overflow_queue_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM queues WHERE id = NEW.overflow_queue_id AND tenant_id = NEW.tenant_id))
      OR (NEW.overflow_extension_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM extensions
              WHERE id = NEW.overflow_extension_id AND tenant_id = NEW.tenant_id))
    BEGIN
        SELECT RAISE(ABORT, 'overflow target is not in the queue''s tenant');
    END;

    -- `position` is the agent's position option; ties go by enrolment order, which is
    -- rowid order (a new row's rowid is above every existing one).
    ALTER TABLE queue_agents ADD COLUMN penalty INTEGER NOT NULL DEFAULT 0 CHECK (penalty >= 0);
    ALTER TABLE queue_agents ADD COLUMN wrapup_time INTEGER NULL  -- NULL: the queue's
        CHECK (wrapup_time >= 0);
    ALTER TABLE queue_agents ADD COLUMN max_no_answer INTEGER NOT NULL DEFAULT 0
        CHECK (max_no_answer >= 0);
    ALTER TABLE queue_agents ADD COLUMN busy_delay INTEGER NOT NULL DEFAULT 0
        CHECK (busy_delay >= 0);
    ALTER TABLE queue_agents ADD COLUMN reject_delay INTEGER NOT NULL DEFAULT 0
        CHECK (reject_delay >= 0);
    ALTER TABLE queue_agents ADD COLUMN no_answer_delay INTEGER NOT NULL DEFAULT 0
        CHECK (no_answer_delay >= 0);

    -- JSON objects {skill name: level}
    ALTER TABLE extensions ADD COLUMN skills TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE did_routes ADD COLUMN skills TEXT NOT NULL DEFAULT '{}';

    ALTER TABLE calls ADD COLUMN entered_at REAL NULL;
    ALTER TABLE calls ADD COLUMN hops INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE calls ADD COLUMN callback_number TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN skills TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE calls ADD COLUMN announce_at REAL NULL;
    ALTER TABLE calls ADD COLUMN progress_at REAL NULL;

    ALTER TABLE agent_states ADD COLUMN last_call_ended_at REAL NULL;
    ALTER TABLE agent_states ADD COLUMN skip_until REAL NULL;
    ALTER TABLE agent_states ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0;

    ALTER TABLE queue_memory ADD COLUMN last_answered INTEGER NULL;
    ALTER TABLE queue_memory ADD COLUMN overflowed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_memory ADD COLUMN answered_within INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_memory ADD COLUMN abandoned_within INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_memory ADD COLUMN last_answer_at REAL NULL;
    ALTER TABLE queue_memory ADD COLUMN answer_interval_s REAL NULL;
    """,
    # --- 4: ring ids (an addition to contract v1, issue 9) --------------------------------
    """
    -- A ring stored before ring ids keeps '' (the PBX was never told an id for it).
    ALTER TABLE rings ADD COLUMN ring_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN rings_started INTEGER NOT NULL DEFAULT 0;
    -- JSON list of [extension id, ring id, how it ended], oldest first (EndedRing)
    ALTER TABLE calls ADD COLUMN ended_rings TEXT NOT NULL DEFAULT '[]';
    """,
    # --- 5: the audit trail of configuration changes (issue 15) --------------------------
    """
    -- One row per change, written in the change's own transaction. No foreign keys:
    -- a record outlives what it describes (a deleted tenant's records stay).
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,     -- Unix time
        actor       TEXT NOT NULL,     -- the token's name (admin#1), or 'provision'
        tenant_id   INTEGER NOT NULL,  -- the resource's tenant (a tenant: itself)
        action      TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete')),
        resource    TEXT NOT NULL,     -- tenant, extension, queue, agent, did_route
        resource_id TEXT NOT NULL,     -- an agent: 'queue id/extension id'
        before      TEXT NULL,         -- JSON, as the admin API reads the resource
        after       TEXT NULL
    );
    CREATE INDEX audit_by_tenant ON audit (tenant_id, id);
    CREATE INDEX audit_by_time ON audit (at);
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


AuditAction = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One configuration change: who made it, when, to what, and the values either side.

    `before` and `after` are the resource as the admin API reads it (JSON objects);
    `before` is None for a creation, `after` None for a deletion.
    """

    at: float
    actor: str
    tenant_id: TenantId
    action: AuditAction
    resource: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class StoredAuditRecord:
    """An audit record with its id: the order changes were committed in."""

    id: int
    record: AuditRecord


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit records to list; None fields do not filter.

    `since` includes its instant, `until` does not (Unix times).
    """

    tenant_id: TenantId | None = None
    since: float | None = None
    until: float | None = None
    resource: str | None = None
    resource_id: str | None = None


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
    "entered_at", "hops", "callback_number", "skills", "announce_at", "progress_at",
    "rings_started", "ended_rings",
)
_AGENT_COLUMNS: Final = (
    "extension_id", "presence", "presence_reason", "device", "wrapup_until", "status",
    "last_call_ended_at", "skip_until", "unanswered",
)
_QUEUE_MEMORY_COLUMNS: Final = (
    "queue_id", "last_rung", "offered", "answered", "abandoned", "completed",
    "last_answered", "overflowed", "answered_within", "abandoned_within", "last_answer_at",
    "answer_interval_s",
)
_STATS_COLUMNS: Final = (
    "queue_id", "extension_id", "last_call_ended_at", "calls_completed", "talk_time_s",
)
# fmt: on

_UPSERT_CALL: Final = _upsert_sql("calls", _CALL_COLUMNS, ("tenant_id", "call_id"))
_DELETE_CALL: Final = "DELETE FROM calls WHERE tenant_id = ? AND call_id = ?"
_DELETE_RINGS: Final = "DELETE FROM rings WHERE tenant_id = ? AND call_id = ?"
_INSERT_RING: Final = (
    "INSERT INTO rings"
    " (tenant_id, call_id, extension_id, position, started_at, deadline, ring_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
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


def _json(value: object) -> str:
    """The one JSON spelling of a stored value (compact, keys sorted), so equal is equal."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _skills_json(skills: Skills) -> str:
    # Most calls and extensions have no skills: skip the encoder for them (commit is hot).
    return _json(dict(skills)) if skills else "{}"


def _skills(text: str) -> dict[str, int]:
    # The same shortcut on the way back: `load_live` may read 10,000 calls.
    skills: dict[str, int] = {} if text == "{}" else json.loads(text)
    return skills


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
        call.entered_at,
        call.hops,
        call.callback_number,
        _skills_json(call.skills),
        call.announce_at,
        call.progress_at,
        call.rings_started,
        # Most calls have none: skip the encoder for them (commit is hot).
        json.dumps([list(e) for e in map(_ended_ring_row, call.ended_rings)])
        if call.ended_rings
        else "[]",
    )


def _ended_ring_row(ended: EndedRing) -> tuple[int, str, str]:
    return (ended.extension_id, ended.ring_id, ended.how)


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
        entered_at,
        hops,
        callback_number,
        skills,
        announce_at,
        progress_at,
        rings_started,
        ended_rings,
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
        entered_at=entered_at,
        hops=hops,
        callback_number=callback_number,
        skills=_skills(skills),
        announce_at=announce_at,
        progress_at=progress_at,
        rings_started=rings_started,
        ended_rings=()
        if ended_rings == "[]"
        else tuple(EndedRing(ExtensionId(e), r, how) for e, r, how in json.loads(ended_rings)),
    )


def _agent_row(agent: AgentRecord) -> Row:
    return (
        agent.extension_id,
        agent.presence.value,
        agent.presence_reason,
        agent.device.value,
        agent.wrapup_until,
        agent.status.value,
        agent.last_call_ended_at,
        agent.skip_until,
        agent.unanswered,
    )


def _agent_record(row: Row) -> AgentRecord:
    (
        extension_id,
        presence,
        reason,
        device,
        wrapup_until,
        status,
        last_call_ended_at,
        skip_until,
        unanswered,
    ) = row
    return AgentRecord(
        extension_id=ExtensionId(extension_id),
        presence=Presence(presence),
        presence_reason=reason,
        device=DeviceState(device),
        wrapup_until=wrapup_until,
        status=AgentStatus(status),
        last_call_ended_at=last_call_ended_at,
        skip_until=skip_until,
        unanswered=unanswered,
    )


def _queue_memory_row(memory: QueueMemoryRecord) -> Row:
    return (
        memory.queue_id,
        memory.last_rung,
        memory.offered,
        memory.answered,
        memory.abandoned,
        memory.completed,
        memory.last_answered,
        memory.overflowed,
        memory.answered_within,
        memory.abandoned_within,
        memory.last_answer_at,
        memory.answer_interval_s,
    )


def _queue_memory_record(row: Row) -> QueueMemoryRecord:
    (
        queue_id,
        last_rung,
        offered,
        answered,
        abandoned,
        completed,
        last_answered,
        overflowed,
        answered_within,
        abandoned_within,
        last_answer_at,
        answer_interval_s,
    ) = row
    return QueueMemoryRecord(
        queue_id=QueueId(queue_id),
        last_rung=None if last_rung is None else ExtensionId(last_rung),
        offered=offered,
        answered=answered,
        abandoned=abandoned,
        completed=completed,
        last_answered=None if last_answered is None else ExtensionId(last_answered),
        overflowed=overflowed,
        answered_within=answered_within,
        abandoned_within=abandoned_within,
        last_answer_at=last_answer_at,
        answer_interval_s=answer_interval_s,
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

# fmt: off
_QUEUE_FIELDS: Final = (
    "tenant_id", "name", "queue_number", "strategy", "timeout", "status", "retry",
    "wrapup_time", "max_len", "max_wait", "overflow_type", "overflow_extension_id",
    "overflow_queue_id", "join_empty", "leave_when_empty", "weight", "service_level",
    "announce_frequency", "ring_progressive_delay", "penalty_rules", "skill_rules",
)
# fmt: on
_QUEUE_COLUMNS: Final = ", ".join(("id", *_QUEUE_FIELDS))
_INSERT_QUEUE: Final = (
    f"INSERT INTO queues ({', '.join(_QUEUE_FIELDS)})"
    f" VALUES ({', '.join('?' * len(_QUEUE_FIELDS))})"
)
# A queue's tenant never changes, so an update writes every field but that one.
_UPDATE_QUEUE: Final = (
    f"UPDATE queues SET {', '.join(f'{c} = ?' for c in _QUEUE_FIELDS[1:])} WHERE id = ?"
)
_EXTENSION_COLUMNS: Final = "id, tenant_id, number, name, skills"
_ROUTE_COLUMNS: Final = "id, tenant_id, did, queue_id, extension_id, skills"
#: An enrolment's options (model.EnrolmentOptions), `position` first.
_ENROLMENT_COLUMNS: Final = (
    "position, penalty, wrapup_time, max_no_answer, busy_delay, reject_delay, no_answer_delay"
)


def _queue_values(config: QueueConfig) -> Row:
    """A queue's `_QUEUE_FIELDS`, in that order."""
    overflow = config.overflow
    return (
        config.tenant_id,
        config.name,
        config.queue_number,
        config.strategy,
        config.timeout,
        config.status.value,
        config.retry,
        config.wrapup_time,
        config.max_len,
        config.max_wait,
        _OVERFLOW_TYPES[type(overflow)],
        overflow.extension_id if isinstance(overflow, ExtensionTarget) else None,
        overflow.queue_id if isinstance(overflow, QueueTarget) else None,
        _json(sorted(c.value for c in config.join_empty)),
        _json(sorted(c.value for c in config.leave_when_empty)),
        config.weight,
        config.service_level,
        config.announce_frequency,
        config.ring_progressive_delay,
        _json([{"after": r.after, "max_penalty": r.max_penalty} for r in config.penalty_rules]),
        _json([{"after": r.after, "lower_by": r.lower_by} for r in config.skill_rules]),
    )


_OVERFLOW_TYPES: Final[dict[type, str]] = {
    HangupTarget: "hangup",
    ExtensionTarget: "extension",
    QueueTarget: "queue",
}


def _queue_config(row: Row) -> QueueConfig:
    """The inverse of `_queue_values`, from a row of `_QUEUE_COLUMNS` (the id first)."""
    (
        queue_id,
        tenant_id,
        name,
        queue_number,
        strategy,
        timeout,
        status,
        retry,
        wrapup_time,
        max_len,
        max_wait,
        overflow_type,
        overflow_extension_id,
        overflow_queue_id,
        join_empty,
        leave_when_empty,
        weight,
        service_level,
        announce_frequency,
        ring_progressive_delay,
        penalty_rules,
        skill_rules,
    ) = row
    overflow: OverflowTarget
    if overflow_type == "queue":
        overflow = QueueTarget(QueueId(overflow_queue_id))
    elif overflow_type == "extension":
        overflow = ExtensionTarget(ExtensionId(overflow_extension_id))
    else:
        overflow = HangupTarget()
    return QueueConfig(
        queue_id=QueueId(queue_id),
        tenant_id=TenantId(tenant_id),
        name=name,
        queue_number=queue_number,
        strategy=strategy,
        timeout=timeout,
        status=QueueStatus(status),
        retry=retry,
        wrapup_time=wrapup_time,
        max_len=max_len,
        max_wait=max_wait,
        overflow=overflow,
        join_empty=frozenset(AgentCondition(c) for c in json.loads(join_empty)),
        leave_when_empty=frozenset(AgentCondition(c) for c in json.loads(leave_when_empty)),
        weight=weight,
        service_level=service_level,
        announce_frequency=announce_frequency,
        ring_progressive_delay=ring_progressive_delay,
        penalty_rules=tuple(
            PenaltyRule(r["after"], r["max_penalty"]) for r in json.loads(penalty_rules)
        ),
        skill_rules=tuple(SkillRule(r["after"], r["lower_by"]) for r in json.loads(skill_rules)),
    )


def _enrolment_values(options: EnrolmentOptions) -> Row:
    """The options of `_ENROLMENT_COLUMNS` but `position`, in that order."""
    return (
        options.penalty,
        options.wrapup_time,
        options.max_no_answer,
        options.busy_delay,
        options.reject_delay,
        options.no_answer_delay,
    )


def _enrolment_options(row: Row) -> EnrolmentOptions:
    """Options from a row of `_ENROLMENT_COLUMNS`, with the stored position."""
    position, penalty, wrapup_time, max_no_answer, busy_delay, reject_delay, no_answer_delay = row
    return EnrolmentOptions(
        penalty=penalty,
        position=position,
        wrapup_time=wrapup_time,
        max_no_answer=max_no_answer,
        busy_delay=busy_delay,
        reject_delay=reject_delay,
        no_answer_delay=no_answer_delay,
    )


def _extension(row: Row) -> Extension:
    extension_id, tenant_id, number, name, skills = row
    return Extension(ExtensionId(extension_id), TenantId(tenant_id), number, name, _skills(skills))


def _stored_route(row: Row) -> StoredRoute:
    route_id, tenant_id, did, queue_id, extension_id, skills = row
    target = _route_target(queue_id, extension_id)
    return StoredRoute(route_id, DidRoute(TenantId(tenant_id), did, target, _skills(skills)))


def _route_target(queue_id: int | None, extension_id: int | None) -> RouteTarget:
    if queue_id is not None:
        return QueueTarget(QueueId(queue_id))
    assert extension_id is not None  # the table's CHECK: exactly one is set
    return ExtensionTarget(ExtensionId(extension_id))


def _route_columns(target: RouteTarget) -> tuple[QueueId | None, ExtensionId | None]:
    """A route target as the (queue_id, extension_id) columns, exactly one set."""
    if isinstance(target, QueueTarget):
        return target.queue_id, None
    return None, target.extension_id


async def _load_config(db: aiosqlite.Connection) -> list[ConfigEvent]:
    events: list[ConfigEvent] = []
    for row in await db.execute_fetchall("SELECT id, name FROM tenants ORDER BY id"):
        events.append(TenantSaved(Tenant(TenantId(row[0]), row[1])))
    for row in await db.execute_fetchall(
        f"SELECT {_EXTENSION_COLUMNS} FROM extensions ORDER BY id"
    ):
        events.append(ExtensionSaved(_extension(tuple(row))))
    # By id: a queue may overflow to one saved after it, which the engine allows.
    for row in await db.execute_fetchall(f"SELECT {_QUEUE_COLUMNS} FROM queues ORDER BY id"):
        events.append(QueueSaved(_queue_config(tuple(row))))
    for row in await db.execute_fetchall(
        f"SELECT queue_id, extension_id, {_ENROLMENT_COLUMNS} FROM queue_agents"
        " ORDER BY queue_id, position, rowid"
    ):
        options = _enrolment_options(tuple(row[2:]))
        events.append(AgentEnrolled(QueueId(row[0]), ExtensionId(row[1]), options))
    for row in await db.execute_fetchall(
        f"SELECT {_ROUTE_COLUMNS} FROM did_routes ORDER BY tenant_id, did"
    ):
        events.append(DidRouteSaved(_stored_route(tuple(row)).route))
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
        self, tenant_id: TenantId, number: str, *, name: str = "", skills: Skills | None = None
    ) -> Saved[ExtensionId]:
        """Create or update a tenant's extension, found by its number.

        Args:
            tenant_id: The tenant that owns it.
            number: The extension number, 1..20 characters, unique within the tenant.
            name: Its display name.
            skills: Its skills and their levels (None: none).

        Returns:
            The extension's id and what happened to the row.
        """
        self._check_open()
        old = await self.extension_by_number(tenant_id, number)
        if old is None:
            created = await self.insert_extension(tenant_id, number, name, skills)
            return Saved(created.extension_id, Change.CREATED)
        new = Extension(old.extension_id, tenant_id, number, name, dict(skills or {}))
        if new == old:
            return Saved(old.extension_id, Change.UNCHANGED)
        await self.update_extension(new)
        return Saved(old.extension_id, Change.UPDATED)

    async def upsert_queue(self, config: QueueConfig) -> Saved[QueueId]:
        """Create or update a tenant's queue, found by its tenant and queue number.

        Every field of `config` is stored; its `queue_id` is ignored. The strategy name
        is not checked here (the schema does not know the strategies); callers validate.
        An overflow target must be of the queue's tenant (the schema refuses others).

        Returns:
            The queue's id and what happened to the row.
        """
        self._check_open()
        old = await self.queue_by_number(config.tenant_id, config.queue_number)
        if old is None:
            created = await self.insert_queue(config)
            return Saved(created.queue_id, Change.CREATED)
        new = replace(config, queue_id=old.queue_id)
        if new == old:
            return Saved(old.queue_id, Change.UNCHANGED)
        await self.update_queue(new)
        return Saved(old.queue_id, Change.UPDATED)

    async def set_enrolments(
        self, queue_id: QueueId, agents: Sequence[tuple[ExtensionId, EnrolmentOptions]]
    ) -> Change:
        """Replace a queue's agents with `agents`, each with its options.

        Args:
            queue_id: The queue.
            agents: Its agents, without duplicates, in enrolment order. An agent whose
                options have no `position` gets its index in this list.

        Returns:
            `Change.UNCHANGED` if the queue already had exactly these agents with these
            options in this order, `Change.CREATED` if it had none, else `Change.UPDATED`.
        """
        self._check_open()
        wanted = [
            (e, options if options.position is not None else replace(options, position=index))
            for index, (e, options) in enumerate(agents)
        ]
        # Stored order: by position, ties by enrolment (list) order; sort is stable.
        in_stored_order = sorted(wanted, key=lambda agent: agent[1].position or 0)
        old = [
            (ExtensionId(row[0]), _enrolment_options(tuple(row[1:])))
            for row in await self._db.execute_fetchall(
                f"SELECT extension_id, {_ENROLMENT_COLUMNS} FROM queue_agents"
                " WHERE queue_id = ? ORDER BY position, rowid",
                (queue_id,),
            )
        ]
        if old == in_stored_order:
            return Change.UNCHANGED
        await self._db.execute("DELETE FROM queue_agents WHERE queue_id = ?", (queue_id,))
        await self._db.executemany(
            f"INSERT INTO queue_agents (queue_id, extension_id, {_ENROLMENT_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(queue_id, e, o.position, *_enrolment_values(o)) for e, o in wanted],
        )
        return Change.UPDATED if old else Change.CREATED

    async def upsert_did_route(
        self, tenant_id: TenantId, did: str, target: RouteTarget, *, skills: Skills | None = None
    ) -> Change:
        """Create or change the route of a tenant's DID.

        The target must belong to the same tenant (enforced by the schema).

        Args:
            tenant_id: The tenant that owns the DID.
            did: The DID.
            target: Where its calls go.
            skills: The skills every call of the DID requires (None: none).

        Returns:
            What happened to the row.
        """
        self._check_open()
        new = DidRoute(tenant_id, did, target, dict(skills or {}))
        old = await self.route_by_did(tenant_id, did)
        queue_id, extension_id = _route_columns(target)
        if old is None:
            await self._db.execute(
                "INSERT INTO did_routes (tenant_id, did, queue_id, extension_id, skills)"
                " VALUES (?, ?, ?, ?, ?)",
                (tenant_id, did, queue_id, extension_id, _skills_json(new.skills)),
            )
            return Change.CREATED
        if old.route == new:
            return Change.UNCHANGED
        await self.update_route(StoredRoute(old.id, new))
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
            f"SELECT {_EXTENSION_COLUMNS} FROM extensions WHERE id = ?", (extension_id,)
        )
        return None if row is None else _extension(row)

    async def extension_by_number(self, tenant_id: TenantId, number: str) -> Extension | None:
        """A tenant's extension found by its number, or None."""
        self._check_open()
        row = await self._one(
            f"SELECT {_EXTENSION_COLUMNS} FROM extensions WHERE tenant_id = ? AND number = ?",
            (tenant_id, number),
        )
        return None if row is None else _extension(row)

    async def extensions(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[Extension]:
        """A page of extensions by id, of one tenant or of all."""
        self._check_open()
        rows, total = await self._page("extensions", _EXTENSION_COLUMNS, tenant_id, limit, offset)
        return Page([_extension(r) for r in rows], total)

    async def insert_extension(
        self, tenant_id: TenantId, number: str, name: str, skills: Skills | None = None
    ) -> Extension:
        """Create an extension; the caller checks the number is free in the tenant."""
        self._check_open()
        extension = Extension(ExtensionId(0), tenant_id, number, name, dict(skills or {}))
        cursor = await self._db.execute(
            "INSERT INTO extensions (tenant_id, number, name, skills) VALUES (?, ?, ?, ?)",
            (tenant_id, number, name, _skills_json(extension.skills)),
        )
        assert cursor.lastrowid is not None
        return replace(extension, extension_id=ExtensionId(cursor.lastrowid))

    async def update_extension(self, extension: Extension) -> None:
        """Store an existing extension's number, name and skills (its tenant never changes)."""
        self._check_open()
        await self._db.execute(
            "UPDATE extensions SET number = ?, name = ?, skills = ? WHERE id = ?",
            (
                extension.number,
                extension.name,
                _skills_json(extension.skills),
                extension.extension_id,
            ),
        )

    async def delete_extension(self, extension_id: ExtensionId) -> None:
        """Delete an extension; the caller checks it is in no queue, route or overflow."""
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

    async def insert_queue(self, config: QueueConfig) -> QueueConfig:
        """Create a queue with every field of `config` but its id (pass `QueueId(0)`).

        The caller checks the queue number is free in the tenant, and the strategy.

        Returns:
            The queue as stored, with its new id.
        """
        self._check_open()
        cursor = await self._db.execute(_INSERT_QUEUE, _queue_values(config))
        assert cursor.lastrowid is not None
        stored = await self.queue(QueueId(cursor.lastrowid))
        assert stored is not None
        return stored

    async def update_queue(self, config: QueueConfig) -> None:
        """Store every field of an existing queue (its tenant never changes)."""
        self._check_open()
        await self._db.execute(_UPDATE_QUEUE, (*_queue_values(config)[1:], config.queue_id))

    async def delete_queue(self, queue_id: QueueId) -> None:
        """Delete a queue and its enrolments.

        The caller checks that no route targets it and no other queue overflows to it.
        """
        self._check_open()
        await self._db.execute("DELETE FROM queues WHERE id = ?", (queue_id,))

    async def queues_overflowing_to(
        self, target: QueueTarget | ExtensionTarget
    ) -> list[QueueConfig]:
        """The queues whose overflow target is `target`, by id.

        A queue overflowing to itself is not listed for itself: it never stands in
        the way of its own deletion.
        """
        self._check_open()
        params: tuple[int, ...]
        if isinstance(target, QueueTarget):
            where, params = "overflow_queue_id = ? AND id <> ?", (target.queue_id, target.queue_id)
        else:
            where, params = "overflow_extension_id = ?", (target.extension_id,)
        rows = await self._db.execute_fetchall(
            f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE {where} ORDER BY id", params
        )
        return [_queue_config(tuple(r)) for r in rows]

    async def enrolled(self, queue_id: QueueId) -> list[Extension]:
        """A queue's agents by position, then enrolment order (existing extensions only)."""
        return [extension for extension, _ in await self.enrolments(queue_id)]

    async def enrolments(self, queue_id: QueueId) -> list[tuple[Extension, EnrolmentOptions]]:
        """A queue's agents with their options, by position, then enrolment order.

        Existing extensions only; each `position` is the stored one.
        """
        self._check_open()
        extension_columns = ", ".join(f"e.{c}" for c in _EXTENSION_COLUMNS.split(", "))
        enrolment_columns = ", ".join(f"a.{c}" for c in _ENROLMENT_COLUMNS.split(", "))
        rows = await self._db.execute_fetchall(
            f"SELECT {extension_columns}, {enrolment_columns} FROM queue_agents AS a"
            " JOIN extensions AS e ON e.id = a.extension_id"
            " WHERE a.queue_id = ? ORDER BY a.position, a.rowid",
            (queue_id,),
        )
        return [(_extension(tuple(r[:5])), _enrolment_options(tuple(r[5:]))) for r in rows]

    async def enrolment(
        self, queue_id: QueueId, extension_id: ExtensionId
    ) -> EnrolmentOptions | None:
        """How an extension is enrolled in a queue (its stored position), or None if not."""
        self._check_open()
        row = await self._one(
            f"SELECT {_ENROLMENT_COLUMNS} FROM queue_agents"
            " WHERE queue_id = ? AND extension_id = ?",
            (queue_id, extension_id),
        )
        return None if row is None else _enrolment_options(row)

    async def enrol(
        self,
        queue_id: QueueId,
        extension_id: ExtensionId,
        options: EnrolmentOptions = DEFAULT_ENROLMENT,
    ) -> bool:
        """Add an agent to a queue; False if it already was in it.

        A `position` of None puts the agent after those already in the queue.
        """
        self._check_open()
        # The aggregate yields one row even for an empty queue; the WHERE also keeps
        # SQLite from reading ON CONFLICT as part of the SELECT.
        cursor = await self._db.execute(
            f"INSERT INTO queue_agents (queue_id, extension_id, {_ENROLMENT_COLUMNS})"
            " SELECT ?, ?, coalesce(?, max(position) + 1, 0), ?, ?, ?, ?, ?, ?"
            " FROM queue_agents WHERE queue_id = ? ON CONFLICT DO NOTHING",
            (queue_id, extension_id, options.position, *_enrolment_values(options), queue_id),
        )
        return cursor.rowcount > 0

    async def update_enrolment(
        self, queue_id: QueueId, extension_id: ExtensionId, options: EnrolmentOptions
    ) -> bool:
        """Change an agent's options in a queue; False if it is not in it.

        A `position` of None keeps the agent's position.
        """
        self._check_open()
        cursor = await self._db.execute(
            "UPDATE queue_agents SET position = coalesce(?, position), penalty = ?,"
            " wrapup_time = ?, max_no_answer = ?, busy_delay = ?, reject_delay = ?,"
            " no_answer_delay = ? WHERE queue_id = ? AND extension_id = ?",
            (options.position, *_enrolment_values(options), queue_id, extension_id),
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
        await self.upsert_did_route(route.tenant_id, route.did, route.target, skills=route.skills)
        stored = await self.route_by_did(route.tenant_id, route.did)
        assert stored is not None
        return stored

    async def update_route(self, stored: StoredRoute) -> None:
        """Store an existing route's DID, target and skills (its tenant never changes)."""
        self._check_open()
        queue_id, extension_id = _route_columns(stored.route.target)
        await self._db.execute(
            "UPDATE did_routes SET did = ?, queue_id = ?, extension_id = ?, skills = ?"
            " WHERE id = ?",
            (
                stored.route.did,
                queue_id,
                extension_id,
                _skills_json(stored.route.skills),
                stored.id,
            ),
        )

    async def delete_route(self, route_id: int) -> None:
        """Delete a DID route."""
        self._check_open()
        await self._db.execute("DELETE FROM did_routes WHERE id = ?", (route_id,))

    # --- the audit trail ------------------------------------------------------------

    async def insert_audit(self, record: AuditRecord) -> int:
        """Record a change in this transaction, so that it commits with the change or not at all.

        Returns:
            The record's id.
        """
        self._check_open()
        cursor = await self._db.execute(
            "INSERT INTO audit"
            " (at, actor, tenant_id, action, resource, resource_id, before, after)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.at,
                record.actor,
                record.tenant_id,
                record.action,
                record.resource,
                record.resource_id,
                None if record.before is None else _json(record.before),
                None if record.after is None else _json(record.after),
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def audit(
        self, where: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> Page[StoredAuditRecord]:
        """A page of audit records by id (oldest first), as `where` narrows them."""
        self._check_open()
        tests = [
            ("tenant_id = ?", where.tenant_id),
            ("at >= ?", where.since),
            ("at < ?", where.until),
            ("resource = ?", where.resource),
            ("resource_id = ?", where.resource_id),
        ]
        given = [(test, value) for test, value in tests if value is not None]
        clause = ("WHERE " + " AND ".join(test for test, _ in given)) if given else ""
        params = tuple(value for _, value in given)
        ((total,),) = await self._db.execute_fetchall(
            f"SELECT count(*) FROM audit {clause}", params
        )
        rows = await self._db.execute_fetchall(
            "SELECT id, at, actor, tenant_id, action, resource, resource_id, before, after"
            f" FROM audit {clause} ORDER BY id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return Page([_stored_audit(tuple(row)) for row in rows], int(total))


def _stored_audit(row: Row) -> StoredAuditRecord:
    id_, at, actor, tenant_id, action, resource, resource_id, before, after = row
    return StoredAuditRecord(
        id_,
        AuditRecord(
            at=at,
            actor=actor,
            tenant_id=TenantId(tenant_id),
            action=action,
            resource=resource,
            resource_id=resource_id,
            before=None if before is None else json.loads(before),
            after=None if after is None else json.loads(after),
        ),
    )


def _outbox_seqs(last_rowid: int, count: int) -> list[int]:
    # One writer inside BEGIN IMMEDIATE: AUTOINCREMENT hands out consecutive
    # seqs, ending at the last inserted rowid.
    return list(range(last_rowid - count + 1, last_rowid + 1))


def _commit_steps(
    conn: sqlite3.Connection, steps: Sequence[tuple[str, Iterable[Row]]], outbox_count: int
) -> list[int]:
    """`Store.commit`'s transaction, run whole on SQLite's own thread."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in steps:
            conn.executemany(sql, rows)
        seqs: list[int] = []
        if outbox_count:
            (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
            seqs = _outbox_seqs(last, outbox_count)
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return seqs


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
        # A second connection for `snapshot`, opened on first use.
        self._reader: aiosqlite.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._busy_timeout_ms = 5000
        # Runs a function on SQLite's thread: one hand-off for a whole commit
        # rather than one per statement (about ten a turn, ~55 us of loop time
        # each). aiosqlite has no public hook for it; without its private one,
        # `commit` sends the statements one by one.
        self._run_on_thread: Any = getattr(db, "_execute", None)

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
        store = cls(db, path)
        store._busy_timeout_ms = int(busy_timeout_s * 1000)
        return store

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
        """The file's schema version (``PRAGMA user_version``)."""
        async with self._lock:
            return await _user_version(self._db)

    # --- configuration ----------------------------------------------------------------

    async def load_config(self) -> list[ConfigEvent]:
        """The whole configuration, as the events that would build it from nothing.

        In dependency order: `TenantSaved`, `ExtensionSaved`, `QueueSaved` (by id, though
        a queue may overflow to a later one), `AgentEnrolled` with its options (by queue,
        then position, then enrolment order; positions as stored), `DidRouteSaved`.
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

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[ConfigTransaction]:
        """A consistent read-only view of the configuration, on a connection of its own.

        In WAL mode it reads while `commit` and `transaction` write: the admin
        API's reads neither wait for the daemon's commits nor hold them up, as
        they did on the one connection. SQLite refuses writes through it.

        Yields:
            The reader to use inside the block.
        """
        async with self._reader_lock:
            if self._reader is None:
                reader = await aiosqlite.connect(self.path, isolation_level=None)
                await reader.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                await reader.execute("PRAGMA query_only = ON")
                self._reader = reader
            reader = self._reader
            await reader.execute("BEGIN")
            tx = ConfigTransaction(reader)
            try:
                yield tx
            finally:
                tx._close()
                await reader.execute("COMMIT")

    # --- live state -------------------------------------------------------------------

    async def load_live(self) -> LiveState:
        """The engine's live state as last committed, to restore it at start-up."""
        async with self._lock:
            db = self._db
            rings: dict[CallKey, list[RingRecord]] = {}
            for (
                tenant_id,
                call_id,
                extension_id,
                started_at,
                deadline,
                ring_id,
            ) in await db.execute_fetchall(
                "SELECT tenant_id, call_id, extension_id, started_at, deadline, ring_id"
                " FROM rings ORDER BY tenant_id, call_id, position"
            ):
                rings.setdefault((TenantId(tenant_id), CallId(call_id)), []).append(
                    RingRecord(ExtensionId(extension_id), started_at, deadline, ring_id)
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
                (
                    c.tenant_id,
                    c.call_id,
                    r.extension_id,
                    position,
                    r.started_at,
                    r.deadline,
                    r.ring_id,
                )
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
            if self._run_on_thread is not None:
                done: list[int] = await self._run_on_thread(
                    _commit_steps, self._db._conn, steps, len(outbox)
                )
                return done
            db = self._db
            await db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in steps:
                    await db.executemany(sql, rows)
                seqs: list[int] = []
                if outbox:
                    ((last,),) = await db.execute_fetchall("SELECT last_insert_rowid()")
                    seqs = _outbox_seqs(last, len(outbox))
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
