"""A shard's share of the stored configuration, and the diff a configuration notice applies."""

from __future__ import annotations

from ringmaster.cluster.configuration import configuration_for, tenant_ids
from ringmaster.engine.config_diff import config_changes
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
from ringmaster.engine.model import (
    DidRoute,
    Extension,
    ExtensionId,
    QueueConfig,
    QueueId,
    QueueTarget,
    Tenant,
    TenantId,
)


def tenant_config(tenant: int, queue: int, extension: int) -> list[ConfigEvent]:
    t = TenantId(tenant)
    return [
        TenantSaved(Tenant(t, f"tenant {tenant}")),
        ExtensionSaved(Extension(ExtensionId(extension), t, "101")),
        QueueSaved(QueueConfig(QueueId(queue), t, "sales", "600", "ringall", timeout=15)),
        AgentEnrolled(QueueId(queue), ExtensionId(extension)),
        DidRouteSaved(DidRoute(t, "+100", QueueTarget(QueueId(queue)))),
    ]


def stored(*tenants: list[ConfigEvent]) -> list[ConfigEvent]:
    """As `Store.load_config` orders them: tenants, extensions, queues, agents, routes."""
    kinds = (TenantSaved, ExtensionSaved, QueueSaved, AgentEnrolled, DidRouteSaved)
    return [
        event for kind in kinds for events in tenants for event in events if isinstance(event, kind)
    ]


def test_a_shard_keeps_its_tenants_events_in_the_stored_order() -> None:
    one, two = tenant_config(1, 10, 100), tenant_config(2, 20, 200)
    everything = stored(one, two)
    assert tenant_ids(everything) == [1, 2]
    assert configuration_for(everything, {TenantId(2)}) == stored(two)
    assert configuration_for(everything, set()) == []


def test_an_enrolment_of_a_deleted_extension_goes_with_its_queue() -> None:
    # Deleting an extension leaves its enrolments: the queue says whose they are.
    dangling = AgentEnrolled(QueueId(20), ExtensionId(999))
    everything = [*stored(tenant_config(1, 10, 100), tenant_config(2, 20, 200)), dangling]
    assert dangling in configuration_for(everything, {TenantId(2)})
    assert dangling not in configuration_for(everything, {TenantId(1)})


def test_the_diff_removes_what_went_after_whatever_named_it() -> None:
    before = tenant_config(1, 10, 100)
    assert config_changes(before, []) == [
        DidRouteRemoved(TenantId(1), "+100"),
        AgentUnenrolled(QueueId(10), ExtensionId(100)),
        QueueRemoved(QueueId(10)),
        ExtensionRemoved(ExtensionId(100)),
        TenantRemoved(TenantId(1)),
    ]
    assert config_changes([], before) == before
    assert config_changes(before, before) == []


def test_the_diff_saves_a_changed_resource_and_its_new_dependants_in_order() -> None:
    before = tenant_config(1, 10, 100)
    renamed = ExtensionSaved(Extension(ExtensionId(100), TenantId(1), "101", name="Ann"))
    queue = QueueSaved(
        QueueConfig(QueueId(11), TenantId(1), "support", "601", "ringall", timeout=9)
    )
    enrolled = AgentEnrolled(QueueId(11), ExtensionId(100))
    retargeted = DidRouteSaved(DidRoute(TenantId(1), "+100", QueueTarget(QueueId(11))))
    after = [before[0], renamed, before[2], queue, before[3], enrolled, retargeted]
    assert config_changes(before, after) == [renamed, queue, enrolled, retargeted]
