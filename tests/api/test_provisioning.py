"""``POST /api/provision``: a provisioning file applied through the daemon, in effect at once."""

from __future__ import annotations

import httpx

from ringmaster.engine.config_diff import config_changes
from ringmaster.engine.events import AgentEnrolled, AgentUnenrolled, QueueSaved
from ringmaster.engine.model import ExtensionId, QueueId
from ringmaster.settings import ApiSettings
from ringmaster.store import Store

from .helpers import T1_EXT_101, T1_EXT_102, T1_QUEUE, EngineStub, api_client, app_for

TOML = {"Content-Type": "application/toml"}

#: A new queue of tenant 1 with Bob, and Bob enrolled in Sales after Alice.
SUPPORT = """
[[queue]]
tenant_id = 1
queue_number = "700"
name = "Support"
strategy = "ringall"
timeout = 20
agents = ["102"]

[[queue]]
tenant_id = 1
queue_number = "600"
name = "Sales"
strategy = "ringall"
timeout = 15
agents = ["101", {extension = "102", penalty = 2}]
"""


async def test_a_file_is_applied_and_live_at_once(
    admin: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    before = len(stub.applied)
    response = await admin.post("/api/provision", content=SUPPORT, headers=TOML)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["queues"] == {"created": 1, "updated": 0, "unchanged": 1}
    assert body["enrolments"] == {"created": 1, "updated": 1, "unchanged": 0}
    assert body["changed"] is True
    # The engine has it now: the new queue's live figures and agents, without a restart.
    queue = next(
        q
        for q in (await admin.get("/api/queues", params={"tenant_id": 1})).json()["items"]
        if q["queue_number"] == "700"
    )
    snapshot = await admin.get(f"/api/queues/{queue['id']}/snapshot")
    assert snapshot.status_code == 200, snapshot.text
    assert snapshot.json()["name"] == "Support"
    agents = (await admin.get(f"/api/queues/{T1_QUEUE}/agents")).json()
    assert [(a["number"], a["penalty"]) for a in agents] == [("101", 0), ("102", 2)]
    # Only what changed reached the engine, in the store's order.
    applied = stub.applied[before:]
    assert [type(event) for event in applied] == [QueueSaved, AgentEnrolled, AgentEnrolled]
    assert [
        (e.queue_id, e.extension_id, e.options.penalty)
        for e in applied
        if isinstance(e, AgentEnrolled)
    ] == [(T1_QUEUE, T1_EXT_102, 2), (queue["id"], T1_EXT_102, 0)]
    # With its audit records, under the token's name.
    trail = (await admin.get("/api/audit", params={"resource": "queue"})).json()["items"]
    assert trail[-1]["actor"] == "admin#1"
    assert trail[-1]["after"]["queue_number"] == "700"
    # The same file again changes nothing, and gives the engine nothing.
    again = await admin.post("/api/provision", content=SUPPORT, headers=TOML)
    assert again.json()["changed"] is False
    assert len(stub.applied) == before + 3


async def test_an_invalid_file_is_422_with_its_lines_and_changes_nothing(
    admin: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    config = await store.load_config()
    before = len(stub.applied)
    bad = SUPPORT.replace("timeout = 20", "timeout = 0").replace('"102"]', '"999"]', 1)
    response = await admin.post(
        "/api/provision", params={"name": "conf/site.toml"}, content=bad, headers=TOML
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            "conf/site.toml: queue[1].timeout: Input should be greater than or equal to 1"
            ' (entry: tenant 1, queue_number "700")'
        ]
    }
    # Cross-checks against the store too: an extension neither has.
    dangling = await admin.post(
        "/api/provision", content=bad.replace("timeout = 0", "timeout = 20"), headers=TOML
    )
    assert dangling.status_code == 422
    assert dangling.json()["detail"] == [
        '<request>: queue[1].agents[1]: No extension "999" in tenant 1;'
        ' references stay within a tenant (entry: tenant 1, queue_number "700")'
    ]
    assert (await admin.post("/api/provision", content="[[", headers=TOML)).status_code == 422
    assert await store.load_config() == config
    assert len(stub.applied) == before


async def test_a_tenant_token_is_403(tenant1: httpx.AsyncClient, store: Store) -> None:
    config = await store.load_config()
    response = await tenant1.post("/api/provision", content=SUPPORT, headers=TOML)
    assert response.status_code == 403
    assert response.json() == {"detail": "an admin token is required"}
    assert await store.load_config() == config


async def test_without_a_token_is_401(stub: EngineStub, store: Store) -> None:
    from .helpers import token_client  # noqa: PLC0415

    async with token_client(stub, store, None) as anonymous:
        response = await anonymous.post("/api/provision", content=SUPPORT, headers=TOML)
    assert response.status_code == 401


async def test_plain_text_is_taken_other_media_types_are_415(admin: httpx.AsyncClient) -> None:
    plain = await admin.post(
        "/api/provision", content=SUPPORT, headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    assert plain.status_code == 200, plain.text
    as_json = await admin.post("/api/provision", json={"queue": []})
    assert as_json.status_code == 415
    not_utf8 = await admin.post("/api/provision", content=b"name = '\xff'", headers=TOML)
    assert not_utf8.status_code == 400


async def test_the_body_limit_applies(stub: EngineStub, store: Store) -> None:
    settings = ApiSettings.model_validate({"max_body_bytes": 1024})
    async with api_client(app_for(stub, store, settings)) as client:
        response = await client.post("/api/provision", content="#" * 2000, headers=TOML)
    assert response.status_code == 413


def test_config_changes_unenrols_an_agent_the_file_left_out() -> None:
    enrolled = AgentEnrolled(QueueId(1), ExtensionId(T1_EXT_101))
    kept = AgentEnrolled(QueueId(1), ExtensionId(T1_EXT_102))
    assert config_changes([enrolled, kept], [kept]) == [
        AgentUnenrolled(QueueId(1), ExtensionId(T1_EXT_101))
    ]
    assert config_changes([kept], [kept]) == []
