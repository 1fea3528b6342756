"""A shard's share of the configuration: what its engine is built from.

A shard's engine holds its own tenants only, so that it announces (retained queue
snapshots, agent states) and rings for nobody else's. The store reads the whole
configuration; this keeps the events of the tenants given, an enrolment with its
queue's tenant.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ringmaster.engine.events import (
    AgentEnrolled,
    ConfigEvent,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
    TenantSaved,
)
from ringmaster.engine.model import QueueId, TenantId


def tenant_ids(events: Iterable[ConfigEvent]) -> list[TenantId]:
    """The tenants a stored configuration holds, in its order."""
    return [event.tenant.tenant_id for event in events if isinstance(event, TenantSaved)]


def configuration_for(
    events: Iterable[ConfigEvent], tenants: Collection[TenantId]
) -> list[ConfigEvent]:
    """The events of a stored configuration (`Store.load_config`) that belong to `tenants`.

    Order is kept, so the result builds an engine as the whole would, tenants first.
    """
    queues: dict[QueueId, TenantId] = {}
    kept: list[ConfigEvent] = []
    for event in events:
        match event:
            case TenantSaved(tenant):
                tenant_id: TenantId | None = tenant.tenant_id
            case ExtensionSaved(extension):
                tenant_id = extension.tenant_id
            case QueueSaved(queue):
                tenant_id = queues[queue.queue_id] = queue.tenant_id
            case AgentEnrolled(queue_id):
                tenant_id = queues.get(queue_id)
            case DidRouteSaved(route):
                tenant_id = route.tenant_id
            case _:
                tenant_id = None
        if tenant_id is not None and tenant_id in tenants:
            kept.append(event)
    return kept
