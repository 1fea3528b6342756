"""The audit trail: every configuration change, who made it, and what it was before and after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from ringmaster.api.provisioning import provision
from ringmaster.store import ConfigTransaction, Store

from .helpers import (
    ADMIN_TOKEN,
    NOW,
    QUEUE,
    SEED,
    T1_EXT_101,
    T1_EXT_102,
    T1_QUEUE,
    T1_ROUTE,
    T1_TOKEN,
    T2_TOKEN,
    EngineStub,
    api_client,
    app_for,
    seeded_store,
    stub_for,
    token_client,
)

#: What the seed file provisions, one record each (agents: one per enrolment).
SEEDED = {"tenant": 2, "extension": 3, "queue": 2, "agent": 2, "did_route": 2}


async def audit(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/audit", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def records_of(
    client: httpx.AsyncClient, change: Callable[[], Awaitable[httpx.Response]]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """The response to `change`, and the audit records it added."""
    before = (await audit(client))["total"]
    response = await change()
    return response, (await audit(client, offset=before))["items"]


async def read(client: httpx.AsyncClient, resource: str, resource_id: str) -> dict[str, Any]:
    """A resource as the API reads it (an agent: as its queue's read lists it)."""
    if resource == "agent":
        queue_id, extension_id = resource_id.split("/")
        queue = (await client.get(f"/api/queues/{queue_id}")).json()
        (agent,) = [a for a in queue["agents"] if a["id"] == int(extension_id)]
        result: dict[str, Any] = agent
        return result
    path = {"did_route": "did-routes"}.get(resource, resource + "s")
    response = await client.get(f"/api/{path}/{resource_id}")
    assert response.status_code == 200, response.text
    result = response.json()
    return result


@dataclass(frozen=True)
class Case:
    resource: str
    method: str
    path: str
    body: dict[str, Any] | None
    resource_id: str
    tenant_id: int
    #: A resource to create first (path, body), for a case that needs a fresh one.
    setup: tuple[str, dict[str, Any]] | None = None

    @property
    def action(self) -> str:
        return {"POST": "create", "PATCH": "update", "DELETE": "delete"}[self.method]


ROUTE = {"tenant_id": 1, "did": "+300", "extension_id": T1_EXT_102}
CASES = [
    Case("tenant", "POST", "/api/tenants", {"id": 3, "name": "Three"}, "3", 3),
    Case("tenant", "PATCH", "/api/tenants/1", {"name": "Uno"}, "1", 1),
    Case(
        "tenant", "DELETE", "/api/tenants/3", None, "3", 3, ("/api/tenants", {"id": 3, "name": "X"})
    ),
    Case("extension", "POST", "/api/extensions", {"tenant_id": 1, "number": "103"}, "4", 1),
    Case("extension", "PATCH", f"/api/extensions/{T1_EXT_101}", {"skills": {"fr": 3}}, "1", 1),
    Case("extension", "DELETE", f"/api/extensions/{T1_EXT_102}", None, "2", 1),
    Case("queue", "POST", "/api/queues", QUEUE, "3", 1),
    Case("queue", "PATCH", f"/api/queues/{T1_QUEUE}", {"timeout": 30, "retry": 2}, "1", 1),
    Case("queue", "DELETE", "/api/queues/3", None, "3", 1, ("/api/queues", QUEUE)),
    Case(
        "agent",
        "POST",
        f"/api/queues/{T1_QUEUE}/agents",
        {"extension_id": T1_EXT_102, "penalty": 2},
        f"{T1_QUEUE}/{T1_EXT_102}",
        1,
    ),
    Case(
        "agent",
        "PATCH",
        f"/api/queues/{T1_QUEUE}/agents/{T1_EXT_101}",
        {"wrapup_time": 7},
        f"{T1_QUEUE}/{T1_EXT_101}",
        1,
    ),
    Case(
        "agent",
        "DELETE",
        f"/api/queues/{T1_QUEUE}/agents/{T1_EXT_101}",
        None,
        f"{T1_QUEUE}/{T1_EXT_101}",
        1,
    ),
    Case("did_route", "POST", "/api/did-routes", ROUTE, "3", 1),
    Case("did_route", "PATCH", f"/api/did-routes/{T1_ROUTE}", {"did": "+101"}, "1", 1),
    Case("did_route", "DELETE", f"/api/did-routes/{T1_ROUTE}", None, "1", 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.action}-{c.resource}")
async def test_every_change_is_recorded_once_with_its_before_and_after(
    admin: httpx.AsyncClient, stub: EngineStub, case: Case
) -> None:
    if case.setup is not None:
        assert (await admin.post(case.setup[0], json=case.setup[1])).status_code == 201
    expected_before = (
        None if case.action == "create" else await read(admin, case.resource, case.resource_id)
    )
    stub.now = NOW + 60

    response, records = await records_of(
        admin, lambda: admin.request(case.method, case.path, json=case.body)
    )

    assert response.status_code in (200, 201, 204), response.text
    expected_after = (
        None if case.action == "delete" else await read(admin, case.resource, case.resource_id)
    )
    assert records == [
        {
            "id": records[0]["id"],
            "at": datetime.fromtimestamp(NOW + 60, UTC).isoformat().replace("+00:00", "Z"),
            "actor": "admin#1",
            "tenant_id": case.tenant_id,
            "action": case.action,
            "resource": case.resource,
            "resource_id": case.resource_id,
            "before": expected_before,
            "after": expected_after,
        }
    ]
    assert expected_before != expected_after


async def test_a_tenant_token_is_recorded_by_its_name_never_the_token(
    tenant1: httpx.AsyncClient,
) -> None:
    with structlog.testing.capture_logs() as logs:
        response, records = await records_of(
            tenant1, lambda: tenant1.patch(f"/api/extensions/{T1_EXT_101}", json={"name": "Al"})
        )
    assert response.status_code == 200
    assert [r["actor"] for r in records] == ["tenant-1#1"]
    audit_logs = [entry for entry in logs if entry["event"] == "audit"]
    assert audit_logs == [
        {
            "event": "audit",
            "log_level": "info",
            "actor": "tenant-1#1",
            "tenant_id": 1,
            "action": "update",
            "resource": "extension",
            "resource_id": "1",
            "audit_id": records[0]["id"],
            "before": records[0]["before"],
            "after": records[0]["after"],
        }
    ]
    assert T1_TOKEN not in str(logs) + str(records)


@pytest.mark.parametrize(
    ("token", "method", "path", "body", "status"),
    [
        (ADMIN_TOKEN, "PATCH", "/api/tenants/9", {"name": "x"}, 404),
        (ADMIN_TOKEN, "POST", "/api/tenants", {"id": 1, "name": "x"}, 409),
        (ADMIN_TOKEN, "POST", "/api/extensions", {"tenant_id": 1, "number": ""}, 422),
        (ADMIN_TOKEN, "DELETE", f"/api/extensions/{T1_EXT_101}", None, 409),
        (ADMIN_TOKEN, "DELETE", f"/api/queues/{T1_QUEUE}", None, 409),
        (ADMIN_TOKEN, "DELETE", "/api/tenants/1", None, 409),
        (ADMIN_TOKEN, "POST", f"/api/queues/{T1_QUEUE}/agents", {"extension_id": 1}, 409),
        (ADMIN_TOKEN, "PATCH", "/api/did-routes/1", {"extension_id": 3}, 422),
        (T1_TOKEN, "POST", "/api/tenants", {"name": "x"}, 403),
        (T1_TOKEN, "PATCH", "/api/queues/2", {"timeout": 9}, 404),
        (T1_TOKEN, "DELETE", "/api/did-routes/2", None, 404),
        ("wrong", "PATCH", "/api/tenants/1", {"name": "x"}, 401),
        # Nothing to change: nothing changed, nothing recorded.
        (ADMIN_TOKEN, "PATCH", "/api/tenants/1", {"name": "One"}, 200),
        (ADMIN_TOKEN, "PATCH", f"/api/queues/{T1_QUEUE}", {}, 200),
    ],
)
async def test_a_refused_change_records_nothing(
    stub: EngineStub,
    store: Store,
    admin: httpx.AsyncClient,
    *,
    token: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    before = await audit(admin)
    async with token_client(stub, store, token) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert await audit(admin) == before


async def test_a_change_and_its_record_are_written_together_or_not_at_all(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(self: ConfigTransaction, *args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ConfigTransaction, "insert_audit", failing)
    with pytest.raises(RuntimeError):
        await admin.patch("/api/tenants/1", json={"name": "Uno"})
    assert (await admin.get("/api/tenants/1")).json()["name"] == "One"


async def test_a_tenant_token_reads_its_own_tenants_records_only(
    stub: EngineStub, store: Store, admin: httpx.AsyncClient, tenant1: httpx.AsyncClient
) -> None:
    assert (await admin.patch("/api/tenants/1", json={"name": "Uno"})).status_code == 200
    assert (await admin.patch("/api/tenants/2", json={"name": "Deux"})).status_code == 200

    everything = await audit(admin)
    assert {r["tenant_id"] for r in everything["items"]} == {1, 2}
    mine = await audit(tenant1)
    assert mine["items"] == [r for r in everything["items"] if r["tenant_id"] == 1]
    assert mine["total"] == len(mine["items"])
    assert await audit(tenant1, tenant_id=2) == {
        "items": [],
        "total": 0,
        "limit": 1000,
        "offset": 0,
    }
    async with token_client(stub, store, T2_TOKEN) as tenant2:
        assert (await audit(tenant2))["items"] == [
            r for r in everything["items"] if r["tenant_id"] == 2
        ]
    assert (await audit(admin, tenant_id=2))["items"] == [
        r for r in everything["items"] if r["tenant_id"] == 2
    ]


async def test_the_trail_filters_by_resource_and_time_and_pages(
    admin: httpx.AsyncClient, stub: EngineStub
) -> None:
    stub.now = NOW + 100
    await admin.patch("/api/tenants/1", json={"name": "Uno"})
    stub.now = NOW + 200
    await admin.patch(f"/api/queues/{T1_QUEUE}", json={"timeout": 30})
    stub.now = NOW + 300
    await admin.patch("/api/tenants/1", json={"name": "Un"})

    def at(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat()

    later = await audit(admin, **{"from": at(NOW + 100)})
    assert [(r["resource"], r["after"]["name"]) for r in later["items"]] == [
        ("tenant", "Uno"),
        ("queue", "Sales"),
        ("tenant", "Un"),
    ]
    # `from` includes its instant, `to` does not.
    middle = await audit(admin, **{"from": at(NOW + 200), "to": at(NOW + 300)})
    assert [r["resource"] for r in middle["items"]] == ["queue"]
    tenants = await audit(admin, resource="tenant", **{"from": at(NOW + 1)})
    assert [r["after"]["name"] for r in tenants["items"]] == ["Uno", "Un"]
    one = await audit(admin, resource="tenant", resource_id="1", limit=1, offset=1)
    assert one["total"] == 3  # provisioned, then renamed twice
    assert [r["after"]["name"] for r in one["items"]] == ["Uno"]
    assert (await admin.get("/api/audit", params={"resource": "widget"})).status_code == 422


async def test_records_survive_a_restart(tmp_path: Path) -> None:
    store = await seeded_store(tmp_path)
    stub = await stub_for(store)
    async with api_client(app_for(stub, store)) as client:
        await client.patch("/api/tenants/1", json={"name": "Uno"})
        written = await audit(client)
    await store.close()

    store = await Store.open(tmp_path / "api.sqlite3")
    try:
        async with api_client(app_for(await stub_for(store), store)) as client:
            assert await audit(client) == written
    finally:
        await store.close()
    assert written["items"][-1]["after"] == {"id": 1, "name": "Uno", "timezone": "UTC"}


async def test_provisioning_records_what_it_changed_as_provision(
    tmp_path: Path, store: Store, client: httpx.AsyncClient
) -> None:
    seeded = (await audit(client))["items"]
    assert {r["actor"] for r in seeded} == {"provision"}
    assert {r["action"] for r in seeded} == {"create"}
    counts = {kind: [r["resource"] for r in seeded].count(kind) for kind in SEEDED}
    assert counts == SEEDED
    assert len(seeded) == sum(SEEDED.values())
    route = next(r for r in seeded if r["resource"] == "did_route")
    assert route["after"] == await read(client, "did_route", route["resource_id"])

    again = tmp_path / "again.toml"
    again.write_text(SEED)
    await provision(again, store)
    assert (await audit(client))["items"] == seeded  # nothing changed, nothing recorded

    before = await read(client, "queue", str(T1_QUEUE))
    again.write_text(SEED.replace("timeout = 15\nagents", "timeout = 25\nagents", 1))
    await provision(again, store)
    (record,) = (await audit(client, offset=len(seeded)))["items"]
    assert record | {"id": 0, "at": ""} == {
        "id": 0,
        "at": "",
        "actor": "provision",
        "tenant_id": 1,
        "action": "update",
        "resource": "queue",
        "resource_id": str(T1_QUEUE),
        "before": before,
        "after": await read(client, "queue", str(T1_QUEUE)),
    }


async def test_the_schema_documents_the_trail(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/audit"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "tenant_id",
        "from",
        "to",
        "resource",
        "resource_id",
        "limit",
        "offset",
    }
    assert "200" in operation["responses"]
    assert set(schema["paths"]["/api/audit"]) == {"get"}  # read only
