"""``/api/audit``: the trail of configuration changes, who made them, the values either side.

Changes made through this API are recorded by `ApiContext.write` (see context.py).
Provisioning writes no resource through a route, so it records its changes by
comparing the resources of the tenants it touches, read as this API reads them,
before and after (`snapshot`, `changes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ringmaster.api.auth import Caller
from ringmaster.api.context import Context, hidden_list, list_filter
from ringmaster.api.did_routes import route_out
from ringmaster.api.extensions import extension_out
from ringmaster.api.queues import agent_key, agent_out, queue_out
from ringmaster.api.schemas import (
    DEFAULT_PAGE,
    MAX_ID,
    AuditRecordOut,
    AuditResource,
    Limit,
    Offset,
    Page,
    TenantFilter,
)
from ringmaster.api.tenants import tenant_out
from ringmaster.engine.model import TenantId
from ringmaster.store import AuditFilter, AuditRecord, ConfigTransaction, StoredAuditRecord

router = APIRouter(prefix="/api/audit", tags=["audit"])

Instant = Annotated[
    datetime | None,
    Query(description="ISO 8601 (UTC unless it gives an offset) or Unix seconds."),
]


def _unix(instant: datetime | None) -> float | None:
    if instant is None:
        return None
    return (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).timestamp()


def _record_out(stored: StoredAuditRecord) -> AuditRecordOut:
    record = stored.record
    return AuditRecordOut(
        id=stored.id,
        at=datetime.fromtimestamp(record.at, UTC),
        actor=record.actor,
        tenant_id=record.tenant_id,
        action=record.action,
        resource=record.resource,  # type: ignore[arg-type]  # the store holds what we wrote
        resource_id=record.resource_id,
        before=record.before,
        after=record.after,
    )


@router.get("", summary="List configuration changes")
async def list_changes(
    context: Context,
    caller: Caller,
    *,
    tenant_id: TenantFilter = None,
    since: Annotated[Instant, Query(alias="from")] = None,
    to: Annotated[Instant, Query(description="Changes before this instant (excluded).")] = None,
    resource: Annotated[
        AuditResource | None, Query(description="Only changes to this kind of resource.")
    ] = None,
    resource_id: Annotated[
        str | None,
        Query(max_length=64, description="Only changes to the resource with this id."),
    ] = None,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
) -> Page[AuditRecordOut]:
    """The changes to the configuration the caller sees, oldest first (by id).

    A tenant token sees its own tenant's changes only (its tenant's creation among
    them). `from` includes its instant, `to` excludes it.
    """
    if hidden_list(caller, tenant_id):
        return Page(items=[], total=0, limit=limit, offset=offset)
    where = AuditFilter(
        list_filter(caller, tenant_id), _unix(since), _unix(to), resource, resource_id
    )
    async with context.read() as tx:
        page = await tx.audit(where, limit=limit, offset=offset)
    return Page(
        items=[_record_out(r) for r in page.items], total=page.total, limit=limit, offset=offset
    )


# --- what provisioning changed ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Read:
    tenant_id: TenantId
    value: dict[str, Any]
    #: The part whose change is this resource's: a queue's agents are resources of their own.
    own: dict[str, Any]


#: The resources of some tenants as the API reads them, by (kind, id).
Snapshot = dict[tuple[str, str], _Read]


async def snapshot(tx: ConfigTransaction, tenant_ids: Iterable[TenantId]) -> Snapshot:
    """Every resource of these tenants, as the API reads it, in the transaction `tx`."""
    seen: Snapshot = {}

    def add(kind: str, id_: object, tenant_id: TenantId, model: BaseModel, *nested: str) -> None:
        value = model.model_dump(mode="json")
        own = {k: v for k, v in value.items() if k not in nested}
        seen[(kind, str(id_))] = _Read(tenant_id, value, own)

    for tenant_id in sorted(set(tenant_ids)):
        tenant = await tx.tenant(tenant_id)
        if tenant is None:
            continue
        add("tenant", tenant_id, tenant_id, tenant_out(tenant))
        for extension in (await tx.extensions(tenant_id, limit=MAX_ID)).items:
            add("extension", extension.extension_id, tenant_id, extension_out(extension))
        for queue in (await tx.queues(tenant_id, limit=MAX_ID)).items:
            add("queue", queue.queue_id, tenant_id, await queue_out(tx, queue), "agents")
            for extension, options in await tx.enrolments(queue.queue_id):
                key = agent_key(queue.queue_id, extension.extension_id)
                add("agent", key, tenant_id, agent_out(extension, options))
        for route in (await tx.routes(tenant_id, limit=MAX_ID)).items:
            add("did_route", route.id, tenant_id, route_out(route))
    return seen


def changes(before: Snapshot, after: Snapshot, *, actor: str, at: float) -> list[AuditRecord]:
    """One audit record per resource that differs between two snapshots."""
    records: list[AuditRecord] = []
    for key in [*after, *(k for k in before if k not in after)]:
        old, new = before.get(key), after.get(key)
        if old is not None and new is not None and old.own == new.own:
            continue
        read = new or old
        assert read is not None
        records.append(
            AuditRecord(
                at=at,
                actor=actor,
                tenant_id=read.tenant_id,
                action="create" if old is None else "delete" if new is None else "update",
                resource=key[0],
                resource_id=key[1],
                before=None if old is None else old.value,
                after=None if new is None else new.value,
            )
        )
    return records
