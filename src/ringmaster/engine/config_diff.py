"""The configuration events that take an engine from one stored configuration to another.

Both sides are `Store.load_config`'s form: the saved resources, each as the event that
would create it (tenants, extensions, queues, enrolments, DID routes, in that order).
Live provisioning diffs the whole configuration before and after its transaction; a
cluster node diffs a shard's tenants as it holds them against the store after a
configuration notice (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from ringmaster.engine.events import (
    AgentEnrolled,
    AgentUnenrolled,
    ConfigEvent,
    DidRouteRemoved,
    DidRouteSaved,
    ExtensionRemoved,
    ExtensionSaved,
    QueueRemoved,
    QueueSaved,
    TenantRemoved,
    TenantSaved,
)


def resource_key(event: ConfigEvent) -> Hashable:
    """What a saving event is about: its kind and the resource's id.

    Raises:
        ValueError: The event removes something (stored configurations hold none).
    """
    match event:
        case TenantSaved(tenant):
            return ("tenant", tenant.tenant_id)
        case ExtensionSaved(extension):
            return ("extension", extension.extension_id)
        case QueueSaved(queue):
            return ("queue", queue.queue_id)
        case AgentEnrolled(queue_id, extension_id):
            return ("agent", queue_id, extension_id)
        case DidRouteSaved(route):
            return ("did_route", route.tenant_id, route.did)
    raise ValueError(f"not a stored resource: {event}")


def _removal(event: ConfigEvent) -> ConfigEvent:
    match event:
        case TenantSaved(tenant):
            return TenantRemoved(tenant.tenant_id)
        case ExtensionSaved(extension):
            return ExtensionRemoved(extension.extension_id)
        case QueueSaved(queue):
            return QueueRemoved(queue.queue_id)
        case AgentEnrolled(queue_id, extension_id):
            return AgentUnenrolled(queue_id, extension_id)
        case DidRouteSaved(route):
            return DidRouteRemoved(route.tenant_id, route.did)
    raise ValueError(f"not a stored resource: {event}")


def config_changes(
    before: Sequence[ConfigEvent], after: Sequence[ConfigEvent]
) -> list[ConfigEvent]:
    """The events that take the engine from the configuration `before` to `after`.

    Each step names only what exists by then, as the store's own constraints
    require of a write: resources saved (new or changed) in dependency order
    (tenants, extensions, queues), then the DID routes and enrolments that went,
    then the enrolments and routes saved, then the queues, extensions and tenants
    that went, each after everything that named it. Unchanged resources yield nothing.
    """
    old = {resource_key(event): event for event in before}
    new_keys = {resource_key(event) for event in after}
    saved = [event for event in after if old.get(resource_key(event)) != event]
    gone = [event for event in before if resource_key(event) not in new_keys]

    def of(events: list[ConfigEvent], *kinds: type) -> list[ConfigEvent]:
        return [event for event in events if isinstance(event, kinds)]

    return [
        *of(saved, TenantSaved, ExtensionSaved, QueueSaved),
        *(_removal(event) for event in [*of(gone, DidRouteSaved), *of(gone, AgentEnrolled)]),
        *of(saved, AgentEnrolled, DidRouteSaved),
        *(_removal(event) for event in reversed(of(gone, TenantSaved, ExtensionSaved, QueueSaved))),
    ]
