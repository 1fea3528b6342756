"""Every endpoint of the admin API, and every validation rule, as an admin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ringmaster.engine.events import (
    AgentEnrolled,
    AgentPresenceChanged,
    AgentUnenrolled,
    CallArrived,
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
    CallId,
    DidRoute,
    EnrolmentOptions,
    ExtensionId,
    ExtensionTarget,
    Presence,
    QueueId,
    QueueStatus,
    QueueTarget,
    Tenant,
    TenantId,
)
from ringmaster.store import Store

from .helpers import (
    NOW,
    QUEUE,
    QUEUE_OPTION_DEFAULTS,
    T1_EXT_101,
    T1_EXT_102,
    T1_QUEUE,
    T1_ROUTE,
    T2_EXT_201,
    T2_QUEUE,
    EngineStub,
    agent_out,
    created,
    error_fields,
    invalid_fields,
)

# --- tenants --------------------------------------------------------------------------------


async def test_tenant_crud(client: httpx.AsyncClient, stub: EngineStub) -> None:
    listed = (await client.get("/api/tenants")).json()
    assert listed == {
        "items": [
            {"id": 1, "name": "One", "timezone": "UTC"},
            {"id": 2, "name": "Two", "timezone": "UTC"},
        ],
        "total": 2,
        "limit": 100,
        "offset": 0,
    }
    assert await created(client, "/api/tenants", {"id": 7, "name": "Seven"}) == {
        "id": 7,
        "name": "Seven",
        "timezone": "UTC",
    }
    assigned = await created(client, "/api/tenants", {"name": "Next", "timezone": "Asia/Tokyo"})
    assert assigned == {"id": 8, "name": "Next", "timezone": "Asia/Tokyo"}
    seven = {"id": 7, "name": "Seven", "timezone": "UTC"}
    assert (await client.get("/api/tenants/7")).json() == seven
    patched = await client.patch("/api/tenants/7", json={"name": "Seventh"})
    assert patched.json() == {"id": 7, "name": "Seventh", "timezone": "UTC"}
    moved = await client.patch("/api/tenants/7", json={"timezone": "Europe/Paris"})
    assert moved.json() == {"id": 7, "name": "Seventh", "timezone": "Europe/Paris"}
    assert (await client.delete("/api/tenants/7")).status_code == 204
    assert (await client.get("/api/tenants/7")).status_code == 404
    assert stub.applied == [
        TenantSaved(Tenant(TenantId(7), "Seven")),
        TenantSaved(Tenant(TenantId(8), "Next", "Asia/Tokyo")),
        TenantSaved(Tenant(TenantId(7), "Seventh")),
        TenantSaved(Tenant(TenantId(7), "Seventh", "Europe/Paris")),
        TenantRemoved(TenantId(7)),
    ]


async def test_an_unknown_timezone_is_refused(client: httpx.AsyncClient) -> None:
    for body in ({"name": "x", "timezone": "Mars/Olympus"}, {"name": "x", "timezone": ""}):
        refused = await client.post("/api/tenants", json=body)
        assert invalid_fields(refused) == [("body", "timezone")]
    patched = await client.patch("/api/tenants/1", json={"timezone": "Europe/Pariss"})
    assert invalid_fields(patched) == [("body", "timezone")]
    assert "IANA" in patched.text
    assert (await client.get("/api/tenants/1")).json()["timezone"] == "UTC"


async def test_tenant_conflicts(client: httpx.AsyncClient) -> None:
    duplicate = await client.post("/api/tenants", json={"id": 1, "name": "Again"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {"detail": "id: tenant 1 already exists"}
    not_empty = await client.delete("/api/tenants/1")
    assert not_empty.status_code == 409
    assert not_empty.json()["detail"] == (
        "tenant 1 still has 2 extensions, 1 queues and 1 did routes; delete them first"
    )


#: Tenant bodies refused, and the field each error names.
TENANT_BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"name": "x", "id": 0}, "id"),
    ({"name": "x", "id": "3"}, "id"),
    ({"name": "x", "id": 2**63}, "id"),
    ({"name": "x", "color": "red"}, "color"),
    ({"name": "a\x00b"}, "name"),
]


async def test_patch_with_null_or_unknown_field_is_refused(client: httpx.AsyncClient) -> None:
    null = await client.patch("/api/tenants/1", json={"name": None})
    assert invalid_fields(null) == [("body", "name")]
    extra = await client.patch("/api/tenants/1", json={"id": 3})
    assert error_fields(extra.json()) == [("body", "id")]


# --- extensions ------------------------------------------------------------------------------


async def test_extension_crud(client: httpx.AsyncClient, stub: EngineStub) -> None:
    made = await created(
        client, "/api/extensions", {"tenant_id": 1, "number": "103", "name": "Carol"}
    )
    assert made == {"id": 4, "tenant_id": 1, "number": "103", "name": "Carol", "skills": {}}
    assert (await client.get("/api/extensions/4")).json() == made
    patched = await client.patch("/api/extensions/4", json={"number": "113"})
    assert patched.json() == {**made, "number": "113"}
    assert stub.engine.agent(ExtensionId(4)) is not None
    assert (await client.delete("/api/extensions/4")).status_code == 204
    assert (await client.get("/api/extensions/4")).status_code == 404
    assert stub.engine.agent(ExtensionId(4)) is None
    assert [type(e) for e in stub.applied] == [ExtensionSaved, ExtensionSaved, ExtensionRemoved]


async def test_extension_list_filter_and_pages(client: httpx.AsyncClient) -> None:
    all_ = (await client.get("/api/extensions")).json()
    assert [e["number"] for e in all_["items"]] == ["101", "102", "201"]
    one = (await client.get("/api/extensions", params={"tenant_id": 2})).json()
    assert [e["id"] for e in one["items"]] == [T2_EXT_201]
    assert one["total"] == 1
    page = (await client.get("/api/extensions", params={"limit": 1, "offset": 1})).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)
    assert [e["number"] for e in page["items"]] == ["102"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"tenant_id": "x"}, "tenant_id"),
    ],
)
async def test_list_parameters_are_checked(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    for path in ("/api/tenants", "/api/extensions", "/api/queues", "/api/did-routes"):
        response = await client.get(path, params=params)
        assert invalid_fields(response) == [("query", field)]


async def test_extension_number_is_unique_per_tenant(client: httpx.AsyncClient) -> None:
    duplicate = await client.post("/api/extensions", json={"tenant_id": 1, "number": "101"})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"].startswith('number: extension "101" already exists')
    # the same number in another tenant is fine
    await created(client, "/api/extensions", {"tenant_id": 2, "number": "101"})
    renumber = await client.patch(f"/api/extensions/{T1_EXT_102}", json={"number": "101"})
    assert renumber.status_code == 409


#: Extension bodies refused, and the field each error names.
EXTENSION_BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"number": "1"}, "tenant_id"),
    ({"tenant_id": 1}, "number"),
    ({"tenant_id": 1, "number": ""}, "number"),
    ({"tenant_id": 1, "number": "1" * 21}, "number"),
    ({"tenant_id": 1, "number": 101}, "number"),
    ({"tenant_id": "1", "number": "1"}, "tenant_id"),
    ({"tenant_id": 1, "number": "1", "queue": 1}, "queue"),
]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/api/tenants", body, field) for body, field in TENANT_BAD_BODIES]
    + [("/api/extensions", body, field) for body, field in EXTENSION_BAD_BODIES],
)
async def test_a_bad_body_is_422_naming_its_field(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post(path, json=body)
    assert invalid_fields(response) == [("body", field)]


async def test_extension_in_unknown_tenant_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/extensions", json={"tenant_id": 9, "number": "1"})
    assert response.status_code == 404
    assert response.json() == {"detail": "tenant_id: tenant 9 not found"}


async def test_deleting_an_enrolled_extension_names_its_queues(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    response = await client.delete(f"/api/extensions/{T1_EXT_101}")
    assert response.status_code == 409
    assert "enrolled in queue 1 (600 Sales)" in response.json()["detail"]
    assert (await client.get(f"/api/extensions/{T1_EXT_101}")).status_code == 200
    assert stub.applied == []


async def test_deleting_a_route_target_extension_is_409(client: httpx.AsyncClient) -> None:
    await created(client, "/api/did-routes", {"tenant_id": 1, "did": "+5", "extension_id": 2})
    response = await client.delete(f"/api/extensions/{T1_EXT_102}")
    assert response.status_code == 409
    assert "target of DID routes 3 (+5)" in response.json()["detail"]


# --- queues ----------------------------------------------------------------------------------


async def test_queue_crud_with_the_documented_fields(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    made = await created(client, "/api/queues", QUEUE)
    assert made == {"id": 3, **QUEUE, **QUEUE_OPTION_DEFAULTS, "agents": []}
    assert stub.engine.queue(QueueId(3)) is not None
    read = (await client.get(f"/api/queues/{T1_QUEUE}")).json()
    assert read["agents"] == [agent_out(T1_EXT_101, "101", "Alice", 0)]
    patched = await client.patch("/api/queues/3", json={"timeout": 30, "status": "inactive"})
    assert patched.json() == {**made, "timeout": 30, "status": "inactive"}
    live = stub.engine.queue(QueueId(3))
    assert live is not None
    assert (live.config.timeout, live.config.status) == (30, QueueStatus.INACTIVE)
    listed = (await client.get("/api/queues", params={"tenant_id": 1})).json()
    assert [q["id"] for q in listed["items"]] == [T1_QUEUE, 3]
    assert (await client.delete("/api/queues/3")).status_code == 204
    assert (await client.get("/api/queues/3")).status_code == 404
    assert stub.engine.queue(QueueId(3)) is None
    assert [type(e) for e in stub.applied] == [QueueSaved, QueueSaved, QueueRemoved]


async def test_patch_keeps_provisioned_retry_and_wrapup(
    client: httpx.AsyncClient, store: Store
) -> None:
    await client.patch(f"/api/queues/{T1_QUEUE}", json={"name": "Renamed"})
    async with store.transaction() as tx:
        queue = await tx.queue(QueueId(T1_QUEUE))
    assert queue is not None
    assert (queue.name, queue.retry, queue.wrapup_time) == ("Renamed", 5, 0)


async def test_queue_number_is_unique_per_tenant(client: httpx.AsyncClient) -> None:
    duplicate = await client.post("/api/queues", json={**QUEUE, "queue_number": "600"})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == 'queue_number: queue "600" already exists in tenant 1'
    await created(client, "/api/queues", QUEUE)
    renumber = await client.patch("/api/queues/3", json={"queue_number": "600"})
    assert renumber.status_code == 409
    assert renumber.json()["detail"].startswith("queue_number: ")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenant_id": None}, "tenant_id"),
        ({"name": ""}, "name"),
        ({"queue_number": ""}, "queue_number"),
        ({"queue_number": "1" * 21}, "queue_number"),
        ({"queue_number": 700}, "queue_number"),
        ({"strategy": "loudest"}, "strategy"),
        ({"timeout": "15"}, "timeout"),
        ({"timeout": 1.5}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": None}, "timeout"),
        ({"status": "paused"}, "status"),
        ({"retry": -1}, "retry"),
    ],
)
async def test_queue_validation(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    body = {**QUEUE, **change}
    if change.get("tenant_id", 0) is None:
        del body["tenant_id"]
    response = await client.post("/api/queues", json=body)
    assert invalid_fields(response) == [("body", field)]
    if field != "tenant_id":
        patch = await client.patch(f"/api/queues/{T1_QUEUE}", json=change)
        assert invalid_fields(patch) == [("body", field)]


async def test_a_queue_may_leave_status_out_and_is_active(client: httpx.AsyncClient) -> None:
    body = {k: v for k, v in QUEUE.items() if k != "status"}
    assert (await created(client, "/api/queues", body))["status"] == "active"


async def test_queue_in_unknown_tenant_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/queues", json={**QUEUE, "tenant_id": 9})
    assert response.status_code == 404
    assert response.json() == {"detail": "tenant_id: tenant 9 not found"}


async def test_deleting_a_queue_with_waiting_calls_is_409(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    await client.delete(f"/api/did-routes/{T1_ROUTE}")  # out of the way of the other 409
    route = await created(client, "/api/did-routes", {"tenant_id": 1, "did": "+1", "queue_id": 1})
    stub.feed(CallArrived(TenantId(1), CallId("c1"), "+1"))
    await client.delete(f"/api/did-routes/{route['id']}")
    response = await client.delete(f"/api/queues/{T1_QUEUE}")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("queue 1 has 1 waiting call;")


async def test_deleting_a_route_target_queue_is_409(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"/api/queues/{T1_QUEUE}")
    assert response.status_code == 409
    assert response.json() == {"detail": "queue 1 is the target of DID routes 1 (+100)"}


async def test_inactive_queue_rejects_new_calls_and_serves_waiting(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    stub.feed(CallArrived(TenantId(1), CallId("before"), "+100"))
    await client.patch(f"/api/queues/{T1_QUEUE}", json={"status": "inactive"})
    stub.feed(CallArrived(TenantId(1), CallId("after"), "+100"))
    calls = (await client.get(f"/api/queues/{T1_QUEUE}/calls")).json()
    assert [c["call_id"] for c in calls] == ["before"]


# --- agents ------------------------------------------------------------------------------------


async def test_enrol_list_and_unenrol(client: httpx.AsyncClient, stub: EngineStub) -> None:
    enrolled = await created(client, f"/api/queues/{T1_QUEUE}/agents", {"extension_id": 2})
    assert enrolled == {
        **agent_out(2, "102", "Bob", 1),
        "status": "logged_out",
        "state_since": None,
    }
    stub.feed(AgentPresenceChanged(TenantId(1), "102", Presence.AVAILABLE))
    agents = (await client.get(f"/api/queues/{T1_QUEUE}/agents")).json()
    assert [(a["number"], a["status"]) for a in agents] == [
        ("101", "logged_out"),
        ("102", "available"),
    ]
    queue = (await client.get(f"/api/queues/{T1_QUEUE}")).json()
    assert [a["id"] for a in queue["agents"]] == [T1_EXT_101, T1_EXT_102]
    assert (await client.delete(f"/api/queues/{T1_QUEUE}/agents/2")).status_code == 204
    again = await client.delete(f"/api/queues/{T1_QUEUE}/agents/2")
    assert again.status_code == 404
    assert again.json() == {"detail": "extension 2 is not in queue 1"}
    assert stub.applied == [
        AgentEnrolled(QueueId(1), ExtensionId(2), EnrolmentOptions(position=1)),
        AgentUnenrolled(QueueId(1), ExtensionId(2)),
    ]


async def test_enrolling_twice_is_409(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/api/queues/{T1_QUEUE}/agents", json={"extension_id": 1})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("extension_id: extension 1 is already in")


@pytest.mark.parametrize("extension_id", [T2_EXT_201, 99])
async def test_enrolling_another_tenants_or_no_extension_is_refused(
    client: httpx.AsyncClient, extension_id: int
) -> None:
    response = await client.post(
        f"/api/queues/{T1_QUEUE}/agents", json={"extension_id": extension_id}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "extension_id"],
            "msg": f"no extension {extension_id} in tenant 1, the queue's",
            "type": "extension_not_in_tenant",
        }
    ]


@pytest.mark.parametrize("body", [{}, {"extension_id": "1"}, {"extension_id": 1, "x": 1}])
async def test_enrolment_validation(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(f"/api/queues/{T1_QUEUE}/agents", json=body)
    assert response.status_code == 422


async def test_waiting_calls_in_order_with_wait_and_priority(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    stub.feed(CallArrived(TenantId(1), CallId("low"), "+100", caller_id="1"))
    stub.now = NOW + 2
    stub.feed(CallArrived(TenantId(1), CallId("high"), "+100", priority=5))
    stub.now = NOW + 10
    calls = (await client.get(f"/api/queues/{T1_QUEUE}/calls")).json()
    assert [(c["call_id"], c["position"], c["priority"], c["wait_s"]) for c in calls] == [
        ("high", 1, 5, 8.0),
        ("low", 2, 0, 10.0),
    ]
    assert calls[1]["state"] == "queued"
    assert calls[1]["caller_id"] == "1"


async def test_a_ringing_call_shows_who_rings(client: httpx.AsyncClient, stub: EngineStub) -> None:
    stub.feed(AgentPresenceChanged(TenantId(1), "101", Presence.AVAILABLE))
    stub.feed(CallArrived(TenantId(1), CallId("c1"), "+100"))
    (call,) = (await client.get(f"/api/queues/{T1_QUEUE}/calls")).json()
    assert (call["state"], call["ringing"]) == ("ringing", ["101"])
    agents = (await client.get(f"/api/queues/{T1_QUEUE}/agents")).json()
    assert agents[0]["status"] == "ringing"


@pytest.mark.parametrize(
    "path",
    ["/api/queues/9", "/api/queues/9/agents", "/api/queues/9/calls", "/api/queues/9/snapshot"],
)
async def test_live_views_of_a_missing_queue_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "queue 9 not found"}


# --- DID routes --------------------------------------------------------------------------------


async def test_did_route_crud(client: httpx.AsyncClient, stub: EngineStub) -> None:
    made = await created(client, "/api/did-routes", {"tenant_id": 1, "did": "+1555", "queue_id": 1})
    assert made == {
        "id": 3,
        "tenant_id": 1,
        "did": "+1555",
        "queue_id": 1,
        "extension_id": None,
        "skills": {},
    }
    assert (await client.get("/api/did-routes/3")).json() == made
    retarget = await client.patch("/api/did-routes/3", json={"extension_id": 2})
    assert retarget.json() == {**made, "queue_id": None, "extension_id": 2}
    renamed = await client.patch("/api/did-routes/3", json={"did": "+1666"})
    assert renamed.json()["did"] == "+1666"
    listed = (await client.get("/api/did-routes", params={"tenant_id": 1})).json()
    assert [r["did"] for r in listed["items"]] == ["+100", "+1666"]
    assert (await client.delete("/api/did-routes/3")).status_code == 204
    assert (await client.get("/api/did-routes/3")).status_code == 404
    t1 = TenantId(1)
    assert stub.applied == [
        DidRouteSaved(DidRoute(t1, "+1555", QueueTarget(QueueId(1)))),
        DidRouteSaved(DidRoute(t1, "+1555", ExtensionTarget(ExtensionId(2)))),
        DidRouteRemoved(t1, "+1555"),
        DidRouteSaved(DidRoute(t1, "+1666", ExtensionTarget(ExtensionId(2)))),
        DidRouteRemoved(t1, "+1666"),
    ]


async def test_did_is_unique_per_tenant(client: httpx.AsyncClient) -> None:
    duplicate = await client.post(
        "/api/did-routes", json={"tenant_id": 1, "did": "+100", "extension_id": 1}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"].startswith('did: "+100" already has a route')
    await created(client, "/api/did-routes", {"tenant_id": 2, "did": "+100", "queue_id": 2})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant_id": 1, "did": "+1"}, None),
        ({"tenant_id": 1, "did": "+1", "queue_id": 1, "extension_id": 1}, None),
        ({"tenant_id": 1, "did": "12a", "queue_id": 1}, "did"),
        ({"tenant_id": 1, "did": "", "queue_id": 1}, "did"),
        ({"tenant_id": 1, "did": 100, "queue_id": 1}, "did"),
        ({"tenant_id": 1, "did": "+1", "queue_id": "1"}, "queue_id"),
        ({"tenant_id": 1, "did": "+1", "queue_id": T2_QUEUE}, "queue_id"),
        ({"tenant_id": 1, "did": "+1", "extension_id": T2_EXT_201}, "extension_id"),
        ({"tenant_id": 1, "did": "+1", "extension_id": 99}, "extension_id"),
    ],
)
async def test_did_route_validation(
    client: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    response = await client.post("/api/did-routes", json=body)
    assert invalid_fields(response) == [("body",) if field is None else ("body", field)]


async def test_did_route_patch_validation(client: httpx.AsyncClient) -> None:
    both = await client.patch(
        f"/api/did-routes/{T1_ROUTE}", json={"queue_id": 1, "extension_id": 1}
    )
    assert both.status_code == 422
    other = await client.patch(f"/api/did-routes/{T1_ROUTE}", json={"queue_id": T2_QUEUE})
    assert error_fields(other.json()) == [("body", "queue_id")]


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"/api/queues", "/api/queues/{queue_id}/agents", "/api/did-routes/{route_id}"} <= set(
        schema["paths"]
    )
    assert (await client.get("/docs")).status_code == 200
