"""On a cluster node, the live requests of a tenant whose shard another node holds are 421.

The stand-in host serves tenant 1 and not tenant 2 (`EngineStub.served_elsewhere`):
what needs tenant 2's live engine (its live views, a supervisor's requests) is
answered ``421 Misdirected Request``, naming the tenant, and changes nothing.
Configuration is written through any node: where an answer shows live state (an
agent's status, a queue's waiting calls), it is what the holder last stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.core import Engine
from ringmaster.engine.events import AgentEnrolled, ExtensionSaved, QueueRemoved, QueueSaved
from ringmaster.engine.model import CallId, Presence, TenantId
from ringmaster.store import AuditFilter, Store

from .helpers import NOW, QUEUE, T1_QUEUE, T2_EXT_201, T2_QUEUE, T2_ROUTE, EngineStub, created

T1, T2 = TenantId(1), TenantId(2)


def misdirected(tenant_id: int) -> dict[str, str]:
    return {
        "detail": f"tenant {tenant_id} is served by another node of the cluster"
        " (see GET /api/cluster)"
    }


def live_reads(queue_id: int, tenant_id: int) -> list[str]:
    return [
        f"/api/live/{tenant_id}",
        f"/api/live/{tenant_id}/stream",
        f"/api/queues/{queue_id}/calls",
        f"/api/queues/{queue_id}/snapshot",
        f"/api/queues/{queue_id}/agents",
    ]


CALL_ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("move", {"queue_id": T2_QUEUE}),
    ("priority", {"priority": 3}),
    ("send", {"extension": "201"}),
    ("hangup", {}),
]


async def actions_recorded(store: Store) -> list[str]:
    """The audit trail's actions, oldest first (the seed's creations too)."""
    async with store.snapshot() as tx:
        page = await tx.audit(AuditFilter(), limit=1000)
    return [r.record.action for r in page.items]


@pytest.fixture
def elsewhere(stub: EngineStub) -> EngineStub:
    """The stand-in host, serving tenant 1 only."""
    stub.served_elsewhere.add(T2)
    return stub


async def test_live_reads_of_a_tenant_served_elsewhere_are_421_naming_it(
    client: httpx.AsyncClient, elsewhere: EngineStub
) -> None:
    for path in live_reads(T2_QUEUE, 2):
        response = await client.get(path)
        assert response.status_code == 421, (path, response.text)
        assert response.json() == misdirected(2)
    for path in live_reads(T1_QUEUE, 1):
        if path.endswith("/stream"):
            continue  # it answers 200 and streams until the client leaves (test_live.py)
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)


async def test_another_tenants_resources_stay_a_404_not_a_421(
    tenant1: httpx.AsyncClient, elsewhere: EngineStub
) -> None:
    # A tenant token learns nothing of another tenant, not even where it is served.
    for path in live_reads(T2_QUEUE, 2):
        response = await tenant1.get(path)
        assert response.status_code == 404, (path, response.text)
    arrive(elsewhere, "theirs", T2)
    response = await tenant1.post("/api/calls/2/theirs/priority", json={"priority": 3})
    assert response.status_code == 404, response.text
    response = await tenant1.post("/api/agents/2/201/presence", json={"state": "paused"})
    assert response.status_code == 404, response.text


async def holder_commits(store: Store, holder: Engine, event: ev.Event) -> None:
    """What the holder of the tenant's shard would store after `event`."""
    if not list(holder.queues()):
        for config in await store.load_config():
            holder.handle(config, NOW)
        holder.take_changes()
    holder.handle(event, NOW)
    await store.commit(holder.take_changes(), [])


async def test_configuration_writes_go_through_any_node_with_the_holders_stored_state(
    client: httpx.AsyncClient, elsewhere: EngineStub, store: Store
) -> None:
    # Configuration is written through any node: the notice takes it to the holder. What
    # an answer shows of the live state is then what the holder last stored.
    holder = Engine()
    await holder_commits(store, holder, ev.CallArrived(T2, CallId("c"), "+200", "5550001", "Ann"))
    assert (await client.delete(f"/api/did-routes/{T2_ROUTE}")).status_code == 204
    extension = await created(client, "/api/extensions", {"tenant_id": 2, "number": "202"})
    assert (await client.patch(f"/api/queues/{T2_QUEUE}", json={"weight": 2})).status_code == 200
    enrolled = await created(
        client, f"/api/queues/{T2_QUEUE}/agents", {"extension_id": extension["id"]}
    )
    assert (enrolled["id"], enrolled["status"]) == (extension["id"], "logged_out")
    response = await client.patch(
        f"/api/queues/{T2_QUEUE}/agents/{T2_EXT_201}", json={"penalty": 1}
    )
    assert response.status_code == 200, response.text
    assert response.json()["penalty"] == 1
    # A queue with a call its holder stored as waiting is not deleted; once it is gone, it is.
    response = await client.delete(f"/api/queues/{T2_QUEUE}")
    assert response.status_code == 409, response.text
    assert "1 waiting call" in response.json()["detail"]
    await holder_commits(store, holder, ev.CallHungUp(T2, CallId("c")))
    assert (await client.delete(f"/api/queues/{T2_QUEUE}")).status_code == 204


async def test_the_same_writes_for_a_served_tenant_still_work(
    client: httpx.AsyncClient, elsewhere: EngineStub
) -> None:
    extension = await created(client, "/api/extensions", {"tenant_id": 1, "number": "103"})
    await created(client, f"/api/queues/{T1_QUEUE}/agents", {"extension_id": extension["id"]})
    response = await client.patch(
        f"/api/queues/{T1_QUEUE}/agents/{extension['id']}", json={"penalty": 1}
    )
    assert response.status_code == 200, response.text
    queue = await created(client, "/api/queues", QUEUE)
    assert (await client.delete(f"/api/queues/{queue['id']}")).status_code == 204
    assert [type(e) for e in elsewhere.applied] == [
        ExtensionSaved,
        AgentEnrolled,
        AgentEnrolled,
        QueueSaved,
        QueueRemoved,
    ]


def arrive(stub: EngineStub, call_id: str, tenant: TenantId) -> None:
    did = "+100" if tenant == T1 else "+200"
    stub.feed(ev.CallArrived(tenant, CallId(call_id), did, "5550001", "Ann"))


@pytest.mark.parametrize(("action", "body"), CALL_ACTIONS)
async def test_a_supervisors_call_action_for_a_tenant_served_elsewhere_is_421(
    client: httpx.AsyncClient, elsewhere: EngineStub, store: Store, action: str, body: Any
) -> None:
    arrive(elsewhere, "theirs", T2)
    recorded = await actions_recorded(store)
    response = await client.post(f"/api/calls/2/theirs/{action}", json=body)
    assert response.status_code == 421, response.text
    assert response.json() == misdirected(2)
    # Even for a call this node cannot know of: only the holder can say.
    response = await client.post(f"/api/calls/2/unknown/{action}", json=body)
    assert response.status_code == 421, response.text
    assert elsewhere.acted == []
    assert await actions_recorded(store) == recorded


async def test_a_presence_request_for_a_tenant_served_elsewhere_is_421(
    client: httpx.AsyncClient, elsewhere: EngineStub, store: Store
) -> None:
    recorded = await actions_recorded(store)
    response = await client.post("/api/agents/2/201/presence", json={"state": "paused"})
    assert response.status_code == 421, response.text
    assert response.json() == misdirected(2)
    assert elsewhere.acted == []
    assert await actions_recorded(store) == recorded


async def test_supervisor_actions_for_a_served_tenant_still_work(
    client: httpx.AsyncClient, elsewhere: EngineStub
) -> None:
    arrive(elsewhere, "c1", T1)
    response = await client.post("/api/calls/1/c1/priority", json={"priority": 3})
    assert response.status_code == 200, response.text
    assert response.json()["priority"] == 3
    response = await client.post("/api/agents/1/101/presence", json={"state": "paused"})
    assert response.status_code == 202, response.text
    assert [type(event) for event, _ in elsewhere.acted] == [
        ev.SetCallPriority,
        ev.RequestAgentState,
    ]


async def test_a_shard_lost_while_the_request_waits_for_its_turn_is_the_same_421(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    arrive(stub, "c1", T1)
    stub.feed(ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    recorded = await actions_recorded(store)
    for path, body in (
        ("/api/calls/1/c1/priority", {"priority": 3}),
        ("/api/agents/1/101/presence", {"state": "paused"}),
    ):
        stub.served_elsewhere.clear()
        stub.lost_before_act.add(T1)  # the host's act raises NotServedHere
        response = await client.post(path, json=body)
        assert response.status_code == 421, (path, response.text)
        assert response.json() == misdirected(1)
    assert stub.acted == []
    assert await actions_recorded(store) == recorded
