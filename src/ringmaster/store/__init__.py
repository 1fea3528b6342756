"""Persistence: the configuration, the engine's live state and the transactional outbox.

One database, a SQLite file or a PostgreSQL database (docs/store.md), holds the
configuration (tenants, extensions, queues, enrolments, DID routes, the audit
trail), the engine's live state (calls, rings, agents, strategy
memory), and the *transactional outbox*: MQTT messages the engine decided to publish but
that are not yet confirmed sent. State and the messages it implies are committed in one
transaction (`Store.commit`), so a crash between deciding and publishing loses nothing:
at start-up the service re-publishes `Store.pending_outbox()` (QoS 1 subscribers must
tolerate the duplicate, which the contract already requires).

The package, top down (imports only point down):

- `database`: the `Store` facade: open (the backend by path or URL), close,
  `transaction`, `snapshot`, `commit`.
- `backend`: the seam: the few operations (`Connection`) the repositories and `Store`
  run statements through, so that they never see a driver.
- `config`: the configuration repository (`ConfigTransaction`): natural-key upserts for
  provisioning, reads/inserts/updates/deletes by id and pages for the admin API, audit;
  on `repository`'s one helper per access pattern (find one, list, page, write).
- `live`: the live state and the outbox: which statements one turn's commit runs with
  which rows, the restore at start-up, the pending outbox.
- `config_rows`, `live_rows`: records <-> rows (tuples in a named column order) and
  the JSON spelling of stored values. Backend-neutral. A queue's options and an
  enrolment's are one JSON object each (schema version 6), written and checked on read
  by their declarations (`ringmaster.options`): a missing key reads as the option's
  default, so a new option needs no migration; an unknown key or a bad value is a
  `StoreError` naming the queue (and agent) and the option. References and keys stay
  columns (tenant, number, strategy, timeout, status, overflow target, position).
- `records`: the public types the store returns besides the engine's.
- `sqlite/`: everything SQLite-specific, and the canonical SQL text: `schema` (the DDL of
  every migration, ``user_version``), `statements` (every other statement, by concern:
  ``?`` parameters, ``ON CONFLICT`` upserts, ``rowid`` as enrolment order), and
  `connection` (PRAGMAs, WAL, ``BEGIN IMMEDIATE``, ``last_insert_rowid`` as the outbox
  seq and new ids, a turn's commit run whole on SQLite's thread).
- `postgres/`: everything PostgreSQL-specific (asyncpg): `schema` (a baseline equal to
  SQLite's version 11, then migrations written for both), `statements` (SQLite's
  statements renumbered once, and those that differ), `connection` (transactions,
  a turn's pipelined commit, its fence), `cluster` and `cluster_statements` (the
  cluster's leases, heartbeats, assignment, configuration and release notices,
  PostgreSQL only: `Store.open_cluster`, `Store.listen_config`, `Store.listen_leases`).
  Imported only when a PostgreSQL URL is opened.

Every public name is importable from `ringmaster.store`; nothing outside this package
writes SQL, and nothing outside `sqlite/` and `postgres/` holds any.
"""

from ringmaster.store.config import ConfigTransaction
from ringmaster.store.database import Store
from ringmaster.store.records import (
    AuditAction,
    AuditFilter,
    AuditRecord,
    Change,
    Fence,
    FencedError,
    Page,
    Saved,
    StoredAuditRecord,
    StoredRoute,
    StoreError,
    Synchronous,
)
from ringmaster.store.sqlite.schema import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "AuditAction",
    "AuditFilter",
    "AuditRecord",
    "Change",
    "ConfigTransaction",
    "Fence",
    "FencedError",
    "Page",
    "Saved",
    "Store",
    "StoreError",
    "StoredAuditRecord",
    "StoredRoute",
    "Synchronous",
]
