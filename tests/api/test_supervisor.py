"""A supervisor's controls: an agent's presence; move, reprioritise, send or hang up a call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    CancelRing,
    PublishCallOverflowed,
    RouteToExtension,
    RouteToHangup,
    SetAgentState,
)
from ringmaster.engine.model import AgentStatus, CallId, ExtensionId, Presence, TenantId
from ringmaster.store import AuditFilter, Store

from .helpers import (
    NOW,
    QUEUE,
    T1_EXT_101,
    T1_QUEUE,
    T2_QUEUE,
    EngineStub,
    created,
)

T1, T2 = TenantId(1), TenantId(2)


def arrive(stub: EngineStub, call_id: str, tenant: TenantId = T1, priority: int = 0) -> None:
    did = "+100" if tenant == T1 else "+200"
    stub.feed(ev.CallArrived(tenant, CallId(call_id), did, "5550001", "Ann", priority))


async def support_queue(client: httpx.AsyncClient, **fields: Any) -> int:
    """A second queue of tenant 1 ("700 Support"), with 102 enrolled."""
    queue = await created(client, "/api/queues", {**QUEUE, **fields})
    await created(client, f"/api/queues/{queue['id']}/agents", {"extension_id": 2})
    queue_id: int = queue["id"]
    return queue_id


async def audit_trail(store: Store) -> list[dict[str, Any]]:
    """The supervisors' actions in the audit trail, oldest first."""
    async with store.snapshot() as tx:
        page = await tx.audit(AuditFilter(), limit=1000)
    return [
        {
            "actor": r.record.actor,
            "action": r.record.action,
            "resource": r.record.resource,
            "resource_id": r.record.resource_id,
            "before": r.record.before,
            "after": r.record.after,
        }
        for r in page.items
        if r.record.action not in ("create", "update", "delete")
    ]


# --- presence --------------------------------------------------------------------------------


async def test_a_pause_request_is_passed_on_and_the_state_waits_for_the_pbx(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    stub.feed(ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    response = await client.post(
        "/api/agents/1/101/presence", json={"state": "paused", "reason": "lunch"}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {
        "tenant_id": 1,
        "extension": "101",
        "requested": "paused",
        "reason": "lunch",
        "state": "available",
    }
    assert stub.acted == [
        (
            ev.RequestAgentState(T1, "101", Presence.PAUSED, "lunch"),
            [SetAgentState(T1, "101", Presence.PAUSED, "lunch")],
        )
    ]
    agent = stub.engine.agent(ExtensionId(T1_EXT_101))
    assert agent is not None
    assert agent.status is AgentStatus.AVAILABLE
    assert await audit_trail(store) == [
        {
            "actor": "local",
            "action": "presence",
            "resource": "extension",
            "resource_id": str(T1_EXT_101),
            "before": {"state": "available"},
            "after": response.json(),
        }
    ]


async def test_a_reason_goes_with_a_pause_only(client: httpx.AsyncClient, stub: EngineStub) -> None:
    response = await client.post(
        "/api/agents/1/101/presence", json={"state": "logged_out", "reason": "home"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["reason"] == ""
    assert stub.acted[0][0] == ev.RequestAgentState(T1, "101", Presence.LOGGED_OUT, "")


@pytest.mark.parametrize(
    "body",
    [
        {"state": "busy"},
        {"state": "paused", "reason": "x" * 257},
        {},
        {"state": "paused", "extra": 1},
    ],
)
async def test_a_bad_presence_body_is_a_422_and_sends_nothing(
    client: httpx.AsyncClient, stub: EngineStub, body: dict[str, Any]
) -> None:
    response = await client.post("/api/agents/1/101/presence", json=body)
    assert response.status_code == 422, response.text
    assert stub.acted == []


async def test_presence_for_an_unknown_or_another_tenants_extension_is_a_404(
    tenant1: httpx.AsyncClient, stub: EngineStub
) -> None:
    for path in ("/api/agents/1/199/presence", "/api/agents/2/201/presence"):
        response = await tenant1.post(path, json={"state": "paused"})
        assert response.status_code == 404, response.text
    assert stub.acted == []


# --- moving a call ----------------------------------------------------------------------------


async def test_moving_a_ringing_call_rings_the_other_queues_agent(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    support = await support_queue(client)
    stub.feed(ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    stub.feed(ev.AgentPresenceChanged(T1, "102", Presence.AVAILABLE))
    arrive(stub, "c1")  # rings 101
    stub.now = NOW + 4
    response = await client.post("/api/calls/1/c1/move", json={"queue_id": support})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "tenant_id": 1,
        "queue_id": support,
        "call_id": "c1",
        "position": 1,
        "priority": 0,
        "wait_s": 4.0,
        "state": "ringing",
        "did": "+100",
        "caller_id": "5550001",
        "caller_name": "Ann",
        "ringing": ["102"],
    }
    ((_, commands),) = stub.acted
    assert [c.extension for c in commands if isinstance(c, CancelRing)] == ["101"]
    (overflowed,) = [c for c in commands if isinstance(c, PublishCallOverflowed)]
    assert (overflowed.reason, overflowed.to_queue) == ("supervisor", support)
    (calls,) = [(await client.get(f"/api/queues/{support}/calls")).json()]
    assert [c["call_id"] for c in calls] == ["c1"]
    (record,) = await audit_trail(store)
    assert (record["action"], record["resource"], record["resource_id"]) == ("move", "call", "c1")
    assert (record["before"]["queue_id"], record["after"]["queue_id"]) == (T1_QUEUE, support)


async def test_a_move_to_a_queue_that_cannot_take_it_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    inactive = await support_queue(client, status="inactive")
    arrive(stub, "c1")
    for queue_id, kind in (
        (T2_QUEUE, "not_found"),  # another tenant's
        (999, "not_found"),
        (inactive, "queue_inactive"),
        (T1_QUEUE, "same_queue"),
    ):
        response = await client.post("/api/calls/1/c1/move", json={"queue_id": queue_id})
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert (error["loc"], error["type"]) == (["body", "queue_id"], kind)
    assert stub.acted == []


async def test_a_move_to_a_full_queue_ends_where_that_queue_overflows(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    # Support holds one call at most and overflows to a hangup.
    support = await support_queue(client, max_len=1)
    arrive(stub, "c1")
    arrive(stub, "c2")
    assert (await client.post("/api/calls/1/c1/move", json={"queue_id": support})).is_success
    response = await client.post("/api/calls/1/c2/move", json={"queue_id": support})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "tenant_id": 1,
        "call_id": "c2",
        "routed": {"type": "hangup", "extension": None, "reason": "queue_full"},
    }


# --- priority ------------------------------------------------------------------------------------


async def test_raising_a_calls_priority_puts_it_first(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    arrive(stub, "c1")
    arrive(stub, "c2")
    response = await client.post("/api/calls/1/c2/priority", json={"priority": 5})
    assert response.status_code == 200, response.text
    assert (response.json()["position"], response.json()["priority"]) == (1, 5)
    calls = (await client.get(f"/api/queues/{T1_QUEUE}/calls")).json()
    assert [c["call_id"] for c in calls] == ["c2", "c1"]
    # The same priority again: nothing to do, and said so with the call as it is.
    again = await client.post("/api/calls/1/c2/priority", json={"priority": 5})
    assert again.json() == response.json()


@pytest.mark.parametrize("priority", [10, -1, "5", 5.0, True, None])
async def test_a_priority_outside_0_to_9_or_not_an_integer_is_a_422(
    client: httpx.AsyncClient, stub: EngineStub, priority: Any
) -> None:
    arrive(stub, "c1")
    response = await client.post("/api/calls/1/c1/priority", json={"priority": priority})
    assert response.status_code == 422, response.text
    assert stub.acted == []


# --- send and hangup ---------------------------------------------------------------------------


async def test_sending_a_ringing_call_to_an_extension(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    stub.feed(ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    arrive(stub, "c1")  # rings 101
    response = await client.post("/api/calls/1/c1/send", json={"extension": "102"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "tenant_id": 1,
        "call_id": "c1",
        "routed": {"type": "extension", "extension": "102", "reason": None},
    }
    ((_, commands),) = stub.acted
    assert [c for c in commands if isinstance(c, RouteToExtension)] == [
        RouteToExtension(T1, CallId("c1"), "102")
    ]
    assert (await client.get(f"/api/queues/{T1_QUEUE}/calls")).json() == []
    (record,) = await audit_trail(store)
    assert (record["action"], record["after"]["routed"]["extension"]) == ("send", "102")


async def test_sending_a_call_to_an_unknown_or_another_tenants_extension_is_a_422(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    arrive(stub, "c1")
    for number in ("199", "201"):
        response = await client.post("/api/calls/1/c1/send", json={"extension": number})
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "extension"]
    assert stub.acted == []


async def test_hanging_up_a_waiting_call(client: httpx.AsyncClient, stub: EngineStub) -> None:
    arrive(stub, "c1")
    arrive(stub, "c2")
    response = await client.post("/api/calls/1/c1/hangup", json={})
    assert response.status_code == 200, response.text
    assert response.json()["routed"] == {
        "type": "hangup",
        "extension": None,
        "reason": "supervisor",
    }
    response = await client.post("/api/calls/1/c2/hangup")  # no body at all
    assert response.status_code == 200, response.text
    assert [c for _, cs in stub.acted for c in cs if isinstance(c, RouteToHangup)] == [
        RouteToHangup(T1, CallId("c1"), "supervisor"),
        RouteToHangup(T1, CallId("c2"), "supervisor"),
    ]
    # Ended: now unknown to the controls.
    assert (await client.post("/api/calls/1/c1/hangup", json={})).status_code == 404


# --- calls the controls cannot act on ------------------------------------------------------------

ACTIONS = [
    ("move", {"queue_id": 999}),
    ("priority", {"priority": 3}),
    ("send", {"extension": "102"}),
    ("hangup", {}),
]


@pytest.mark.parametrize(("action", "body"), ACTIONS)
async def test_an_answered_call_is_a_409(
    client: httpx.AsyncClient, stub: EngineStub, action: str, body: dict[str, Any]
) -> None:
    stub.feed(ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    arrive(stub, "c1")
    stub.feed(ev.RingAnswered(T1, CallId("c1"), "101"))
    response = await client.post(f"/api/calls/1/c1/{action}", json=body)
    assert response.status_code == 409, response.text
    assert stub.acted == []


@pytest.mark.parametrize(("action", "body"), ACTIONS)
async def test_an_unknown_or_another_tenants_call_is_a_404(
    tenant1: httpx.AsyncClient, stub: EngineStub, action: str, body: dict[str, Any]
) -> None:
    arrive(stub, "theirs", T2)
    for path in ("/api/calls/1/nope", "/api/calls/2/theirs"):
        response = await tenant1.post(f"{path}/{action}", json=body)
        assert response.status_code == 404, response.text
    assert stub.acted == []


@pytest.mark.parametrize(
    ("action", "body"), [("priority", {"priority": 3}), ("send", {"extension": "102"})]
)
async def test_a_call_answered_between_the_check_and_the_turn_is_a_409(
    client: httpx.AsyncClient, stub: EngineStub, store: Store, action: str, body: dict[str, Any]
) -> None:
    stub.feed(ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    arrive(stub, "c1")
    stub.before_act.append(ev.RingAnswered(T1, CallId("c1"), "101"))
    response = await client.post(f"/api/calls/1/c1/{action}", json=body)
    assert response.status_code == 409, response.text
    assert "answered meanwhile" in response.json()["detail"]
    ((_, commands),) = stub.acted
    assert commands == []
    assert await audit_trail(store) == []  # nothing happened, nothing recorded


async def test_a_tenant_token_acts_on_its_own_calls(
    tenant1: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    arrive(stub, "c1")
    response = await tenant1.post("/api/calls/1/c1/priority", json={"priority": 2})
    assert response.status_code == 200, response.text
    (record,) = await audit_trail(store)
    assert record["actor"] == "tenant-1#1"
    assert response.json()["priority"] == 2
