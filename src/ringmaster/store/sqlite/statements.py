"""Every SQLite statement of the store but the schema's, by concern.

The repository modules (`ringmaster.store.config`, `ringmaster.store.live`) hold the
logic and no SQL text; they run the statements named here, with rows in the column
orders of `config_rows` and `live_rows`. SQLite's own spellings stay in this file:
``?`` parameters, ``ON CONFLICT`` upserts, ``rowid`` as enrolment order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ringmaster.store.config_rows import (
    AUDIT_COLUMNS,
    AUDIT_FIELDS,
    ENROLMENT_COLUMNS,
    ENROLMENT_KEY,
    EXTENSION_COLUMNS,
    QUEUE_COLUMNS,
    QUEUE_FIELDS,
    ROUTE_COLUMNS,
)
from ringmaster.store.live_rows import (
    AGENT_COLUMNS,
    CALL_COLUMNS,
    CALL_KEY,
    OUTBOX_COLUMNS,
    QUEUE_MEMORY_COLUMNS,
    RING_COLUMNS,
    STATS_COLUMNS,
)


def _names(columns: Sequence[str], alias: str = "") -> str:
    return ", ".join(f"{alias}{c}" for c in columns)


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({_names(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """An ``INSERT ... ON CONFLICT DO UPDATE`` of every non-key column.

    Used rather than ``INSERT OR REPLACE``, which deletes the old row first and would
    cascade to the row's children (a call's rings).
    """
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"{_insert(table, columns)} ON CONFLICT ({_names(key)}) DO UPDATE SET {updates}"


def _select(table: str, columns: Sequence[str], rest: str = "") -> str:
    return f"SELECT {_names(columns)} FROM {table} {rest}".rstrip()


# --- live state and the outbox: one turn's commit, and the restore at start-up ------

UPSERT_CALL: Final = _upsert("calls", CALL_COLUMNS, CALL_KEY)
DELETE_CALL: Final = "DELETE FROM calls WHERE tenant_id = ? AND call_id = ?"
DELETE_RINGS: Final = "DELETE FROM rings WHERE tenant_id = ? AND call_id = ?"
INSERT_RING: Final = _insert("rings", RING_COLUMNS)
UPSERT_AGENT: Final = _upsert("agent_states", AGENT_COLUMNS, ("extension_id",))
DELETE_AGENT: Final = "DELETE FROM agent_states WHERE extension_id = ?"
UPSERT_QUEUE_MEMORY: Final = _upsert("queue_memory", QUEUE_MEMORY_COLUMNS, ("queue_id",))
DELETE_QUEUE_MEMORY: Final = "DELETE FROM queue_memory WHERE queue_id = ?"
UPSERT_STATS: Final = _upsert("agent_queue_stats", STATS_COLUMNS, ("queue_id", "extension_id"))
DELETE_STATS: Final = "DELETE FROM agent_queue_stats WHERE queue_id = ? AND extension_id = ?"
# Per shard: another shard's rows are another holder's to confirm (issue 13).
DELETE_DELIVERED: Final = "DELETE FROM outbox WHERE shard = ? AND seq <= ?"
INSERT_OUTBOX: Final = _insert("outbox", OUTBOX_COLUMNS)
#: The outbox seq given to the last message of a turn (see `connection.outbox_seqs`).
LAST_OUTBOX_SEQ: Final = "SELECT last_insert_rowid()"

SELECT_RINGS: Final = (
    "SELECT tenant_id, call_id, extension_id, started_at, deadline, ring_id, number"
    " FROM rings ORDER BY tenant_id, call_id, position"
)
SELECT_CALLS: Final = _select("calls", CALL_COLUMNS, "ORDER BY seq")
SELECT_AGENTS: Final = _select("agent_states", AGENT_COLUMNS, "ORDER BY extension_id")
SELECT_QUEUE_MEMORY: Final = _select("queue_memory", QUEUE_MEMORY_COLUMNS, "ORDER BY queue_id")
SELECT_STATS: Final = _select("agent_queue_stats", STATS_COLUMNS, "ORDER BY queue_id, extension_id")
SELECT_OUTBOX: Final = "SELECT seq, topic, payload, retain FROM outbox WHERE shard = ? ORDER BY seq"

# The live state of some tenants only (a shard's): the parameter is a JSON list of their
# ids. Agents belong to a tenant through their extension, queues' rows through the queue.
_OF_TENANTS: Final = "(SELECT value FROM json_each(?))"
SELECT_RINGS_OF: Final = (
    "SELECT tenant_id, call_id, extension_id, started_at, deadline, ring_id, number"
    f" FROM rings WHERE tenant_id IN {_OF_TENANTS} ORDER BY tenant_id, call_id, position"
)
SELECT_CALLS_OF: Final = _select(
    "calls", CALL_COLUMNS, f"WHERE tenant_id IN {_OF_TENANTS} ORDER BY seq"
)
SELECT_AGENTS_OF: Final = _select(
    "agent_states",
    AGENT_COLUMNS,
    f"WHERE extension_id IN (SELECT id FROM extensions WHERE tenant_id IN {_OF_TENANTS})"
    " ORDER BY extension_id",
)
SELECT_QUEUE_MEMORY_OF: Final = _select(
    "queue_memory",
    QUEUE_MEMORY_COLUMNS,
    f"WHERE queue_id IN (SELECT id FROM queues WHERE tenant_id IN {_OF_TENANTS}) ORDER BY queue_id",
)
SELECT_STATS_OF: Final = _select(
    "agent_queue_stats",
    STATS_COLUMNS,
    f"WHERE queue_id IN (SELECT id FROM queues WHERE tenant_id IN {_OF_TENANTS})"
    " ORDER BY queue_id, extension_id",
)


# --- the configuration --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """A configuration table that the admin API addresses by id and lists by page.

    Attributes:
        name: The table.
        columns: The columns a record is read from (`config_rows`), the id first.
        tenant_column: The column a list is narrowed to one tenant by.
    """

    name: str
    columns: Sequence[str]
    tenant_column: str = "tenant_id"

    def select(self, rest: str = "") -> str:
        """``SELECT`` this table's record columns, followed by `rest` (WHERE, ORDER BY)."""
        return _select(self.name, self.columns, rest)

    def page(self, narrowed: bool) -> tuple[str, str]:
        """The count and the page of a list, narrowed to one tenant or not.

        The page's parameters are the tenant's id if `narrowed`, then limit and offset.
        """
        where = f"WHERE {self.tenant_column} = ?" if narrowed else ""
        return (
            f"SELECT count(*) FROM {self.name} {where}",
            self.select(f"{where} ORDER BY id LIMIT ? OFFSET ?"),
        )


TENANTS: Final = Table("tenants", ("id", "name", "timezone"), tenant_column="id")
EXTENSIONS: Final = Table("extensions", EXTENSION_COLUMNS)
QUEUES: Final = Table("queues", QUEUE_COLUMNS)
ROUTES: Final = Table("did_routes", ROUTE_COLUMNS)
AUDIT: Final = Table("audit", AUDIT_COLUMNS)

#: Lists read at start-up to rebuild the engine's configuration, in dependency order.
SELECT_ALL_TENANTS: Final = TENANTS.select("ORDER BY id")
SELECT_ALL_EXTENSIONS: Final = EXTENSIONS.select("ORDER BY id")
SELECT_ALL_QUEUES: Final = QUEUES.select("ORDER BY id")
SELECT_ALL_ROUTES: Final = ROUTES.select("ORDER BY tenant_id, did")
#: An enrolment as `config_rows.enrolment_options` reads it: which agent of which queue
#: it is (so that an error can say), then its columns.
_ENROLMENT_ROW: Final = (*ENROLMENT_KEY, *ENROLMENT_COLUMNS)
# Ties in position go by enrolment order, which is rowid order (a new row's rowid is
# above every existing one).
SELECT_ALL_ENROLMENTS: Final = _select(
    "queue_agents", _ENROLMENT_ROW, "ORDER BY queue_id, position, rowid"
)

TENANT_BY_ID: Final = TENANTS.select("WHERE id = ?")
INSERT_TENANT: Final = "INSERT INTO tenants (id, name, timezone) VALUES (?, ?, ?)"
RENAME_TENANT: Final = "UPDATE tenants SET name = ?, timezone = ? WHERE id = ?"
DELETE_TENANT: Final = "DELETE FROM tenants WHERE id = ?"
#: What a tenant holds, by table: a tenant is deleted only when they are empty.
TENANT_CONTENTS: Final = {
    table: f"SELECT count(*) FROM {table} WHERE tenant_id = ?"
    for table in ("extensions", "queues", "did_routes")
}

EXTENSION_BY_ID: Final = EXTENSIONS.select("WHERE id = ?")
EXTENSION_BY_NUMBER: Final = EXTENSIONS.select("WHERE tenant_id = ? AND number = ?")
INSERT_EXTENSION: Final = _insert("extensions", EXTENSION_COLUMNS[1:])
UPDATE_EXTENSION: Final = "UPDATE extensions SET number = ?, name = ?, skills = ? WHERE id = ?"
DELETE_EXTENSION: Final = "DELETE FROM extensions WHERE id = ?"

QUEUE_BY_ID: Final = QUEUES.select("WHERE id = ?")
QUEUE_BY_NUMBER: Final = QUEUES.select("WHERE tenant_id = ? AND queue_number = ?")
INSERT_QUEUE: Final = _insert("queues", QUEUE_FIELDS)
# A queue's tenant never changes, so an update writes every field but that one.
UPDATE_QUEUE: Final = (
    f"UPDATE queues SET {', '.join(f'{c} = ?' for c in QUEUE_FIELDS[1:])} WHERE id = ?"
)
DELETE_QUEUE: Final = "DELETE FROM queues WHERE id = ?"
# A queue overflowing to itself does not stand in the way of its own deletion.
QUEUES_OVERFLOWING_TO_QUEUE: Final = QUEUES.select(
    "WHERE overflow_queue_id = ? AND id <> ? ORDER BY id"
)
QUEUES_OVERFLOWING_TO_EXTENSION: Final = QUEUES.select(
    "WHERE overflow_extension_id = ? ORDER BY id"
)
QUEUES_OF_EXTENSION: Final = QUEUES.select(
    "WHERE id IN (SELECT queue_id FROM queue_agents WHERE extension_id = ?) ORDER BY id"
)

ENROLMENTS_OF_QUEUE: Final = _select(
    "queue_agents", _ENROLMENT_ROW, "WHERE queue_id = ? ORDER BY position, rowid"
)
ENROLLED_EXTENSIONS: Final = (
    f"SELECT {_names(EXTENSION_COLUMNS, 'e.')}, {_names(_ENROLMENT_ROW, 'a.')}"
    " FROM queue_agents AS a JOIN extensions AS e ON e.id = a.extension_id"
    " WHERE a.queue_id = ? ORDER BY a.position, a.rowid"
)
ENROLMENT: Final = _select(
    "queue_agents", _ENROLMENT_ROW, "WHERE queue_id = ? AND extension_id = ?"
)
UNENROL_ALL: Final = "DELETE FROM queue_agents WHERE queue_id = ?"
INSERT_ENROLMENT: Final = _insert("queue_agents", _ENROLMENT_ROW)
# Parameters: queue, extension, position or None (after the others), the other
# options, the queue again. The aggregate yields one row even for an empty queue; the
# WHERE also keeps SQLite from reading ON CONFLICT as part of the SELECT.
_OTHER_OPTIONS: Final = ", ".join("?" * (len(ENROLMENT_COLUMNS) - 1))
ENROL: Final = (
    f"INSERT INTO queue_agents ({_names(_ENROLMENT_ROW)})"
    f" SELECT ?, ?, coalesce(?, max(position) + 1, 0), {_OTHER_OPTIONS}"
    " FROM queue_agents WHERE queue_id = ? ON CONFLICT DO NOTHING"
)
# Parameters: position or None (keep it), the other options, queue, extension.
UPDATE_ENROLMENT: Final = (
    "UPDATE queue_agents SET position = coalesce(?, position),"
    f" {', '.join(f'{c} = ?' for c in ENROLMENT_COLUMNS[1:])}"
    " WHERE queue_id = ? AND extension_id = ?"
)
UNENROL: Final = "DELETE FROM queue_agents WHERE queue_id = ? AND extension_id = ?"

ROUTE_BY_ID: Final = ROUTES.select("WHERE id = ?")
ROUTE_BY_DID: Final = ROUTES.select("WHERE tenant_id = ? AND did = ?")
ROUTES_TO_QUEUE: Final = ROUTES.select("WHERE queue_id = ? ORDER BY id")
ROUTES_TO_EXTENSION: Final = ROUTES.select("WHERE extension_id = ? ORDER BY id")
INSERT_ROUTE: Final = _insert("did_routes", ROUTE_COLUMNS[1:])
UPDATE_ROUTE: Final = (
    "UPDATE did_routes SET did = ?, queue_id = ?, extension_id = ?, skills = ? WHERE id = ?"
)
DELETE_ROUTE: Final = "DELETE FROM did_routes WHERE id = ?"

INSERT_AUDIT: Final = _insert("audit", AUDIT_FIELDS)
#: The audit list's filters, by field of `AuditFilter`; `since` includes its instant.
AUDIT_TESTS: Final = {
    "tenant_id": "tenant_id = ?",
    "since": "at >= ?",
    "until": "at < ?",
    "resource": "resource = ?",
    "resource_id": "resource_id = ?",
}


def audit_page(tests: Sequence[str]) -> tuple[str, str]:
    """The count and the page of the audit records that pass every test of `AUDIT_TESTS`.

    The page's parameters are the tests', then limit and offset.
    """
    where = ("WHERE " + " AND ".join(tests)) if tests else ""
    return (
        f"SELECT count(*) FROM audit {where}",
        AUDIT.select(f"{where} ORDER BY id LIMIT ? OFFSET ?"),
    )
