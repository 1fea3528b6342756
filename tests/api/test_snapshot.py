"""``GET /api/queues/{id}/snapshot``: a queue's running figures, as its retained MQTT snapshot."""

from __future__ import annotations

import httpx

from ringmaster.engine.events import AgentPresenceChanged, CallArrived, CallHungUp, RingAnswered
from ringmaster.engine.model import CallId, Presence, TenantId

from .helpers import NOW, T1_QUEUE, T2_QUEUE, EngineStub


async def test_a_quiet_queue_has_no_service_level_yet(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/queues/{T1_QUEUE}/snapshot")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "queue_id": T1_QUEUE,
        "name": "Sales",
        "queue_number": "600",
        "strategy": "ringall",
        "status": "active",
        "waiting": 0,
        "longest_wait_s": 0.0,
        "agents": {
            "available": 0,
            "ringing": 0,
            "busy": 0,
            "wrapup": 0,
            "paused": 0,
            "logged_out": 1,
        },
        "offered": 0,
        "answered": 0,
        "abandoned": 0,
        "completed": 0,
        "overflowed": 0,
        "service_level_s": 20,
        "answered_within": 0,
        "abandoned_within": 0,
        "service_level_pct": None,
        "callbacks": 0,
    }


async def test_the_snapshot_counts_calls_and_the_service_level(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    tenant = TenantId(1)
    stub.feed(AgentPresenceChanged(tenant, "101", Presence.AVAILABLE))
    stub.feed(CallArrived(tenant, CallId("fast"), "+100"))
    stub.now = NOW + 5
    stub.feed(RingAnswered(tenant, CallId("fast"), "101"))
    stub.now = NOW + 6
    stub.feed(CallArrived(tenant, CallId("waits"), "+100"))
    stub.now = NOW + 48.5
    body = (await client.get(f"/api/queues/{T1_QUEUE}/snapshot")).json()
    assert {key: body[key] for key in ("waiting", "longest_wait_s", "offered", "answered")} == {
        "waiting": 1,
        "longest_wait_s": 42.5,
        "offered": 2,
        "answered": 1,
    }
    assert (body["answered_within"], body["service_level_pct"]) == (1, 100.0)
    assert body["agents"]["busy"] == 1
    stub.feed(CallHungUp(tenant, CallId("waits")))
    body = (await client.get(f"/api/queues/{T1_QUEUE}/snapshot")).json()
    assert (body["waiting"], body["abandoned"], body["abandoned_within"]) == (0, 1, 0)


async def test_another_tenants_snapshot_is_404(tenant1: httpx.AsyncClient) -> None:
    assert (await tenant1.get(f"/api/queues/{T1_QUEUE}/snapshot")).status_code == 200
    response = await tenant1.get(f"/api/queues/{T2_QUEUE}/snapshot")
    assert response.status_code == 404
    assert response.json() == {"detail": f"queue {T2_QUEUE} not found"}
