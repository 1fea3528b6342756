"""The store's public record types: what its methods take and return besides the engine's."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar, get_args

from ringmaster.engine.model import DidRoute, TenantId

#: SQLite's ``synchronous`` settings (see `Store.open`).
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
#: Its values, to check one before it goes into a PRAGMA (which binds no parameters).
SYNCHRONOUS: Final[tuple[str, ...]] = get_args(Synchronous)


class StoreError(Exception):
    """The database cannot be used as asked (e.g. it was written by a newer Ringmaster)."""


#: Why SQLite refuses every cluster operation.
CLUSTER_NEEDS_POSTGRESQL = (
    "a cluster needs a PostgreSQL database (database.url = postgresql://...);"
    " SQLite is for one daemon"
)


class FencedError(StoreError):
    """A fenced turn was refused: its node no longer holds the shard's lease at its epoch.

    Nothing of the turn was written; the shard must stop on this node (docs/cluster.md).
    """


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a cluster's turn is committed under (`Store.commit`'s ``fence``).

    Attributes:
        shard: The shard whose turn it is; its outbox rows are the shard's.
        node: This node (``cluster.node``), the lease's holder.
        epoch: The lease's epoch when the node took it (`StartShard.epoch`).
    """

    shard: int
    node: str
    epoch: int


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


#: A configuration change, or a supervisor's action (on a call, or an agent's presence).
AuditAction = Literal[
    "create", "update", "delete", "move", "priority", "send", "hangup", "presence"
]


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
