"""The call-centre options through the admin API: each accepted, stored, applied, returned.

And each refused when bad, naming the field. What the options do is the engine's
business (tests/engine); here a few checks only that the engine acts on a change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from ringmaster.engine.events import (
    AgentEnrolled,
    AgentPresenceChanged,
    CallArrived,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
)
from ringmaster.engine.model import (
    AgentCondition,
    CallId,
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    PenaltyRule,
    Presence,
    QueueConfig,
    QueueId,
    QueueTarget,
    SkillRule,
    TenantId,
)
from ringmaster.store import Store

from .helpers import (
    QUEUE,
    QUEUE_OPTION_DEFAULTS,
    T1_EXT_101,
    T1_EXT_102,
    T1_QUEUE,
    T1_ROUTE,
    T2_QUEUE,
    EngineStub,
    agent_out,
    created,
    error_fields,
    invalid_fields,
)

T1 = TenantId(1)
#: The queue QUEUE creates, as the engine should see it with every option at its default.
NEW_QUEUE = QueueConfig(QueueId(3), T1, "Support", "700", "ringall", 20)


async def stored_queue(store: Store, queue_id: int) -> QueueConfig:
    async with store.transaction() as tx:
        queue = await tx.queue(QueueId(queue_id))
    assert queue is not None
    return queue


async def stored_enrolment(store: Store, queue_id: int, extension_id: int) -> EnrolmentOptions:
    async with store.transaction() as tx:
        options = await tx.enrolment(QueueId(queue_id), ExtensionId(extension_id))
    assert options is not None
    return options


def assert_refused(response: httpx.Response, field: str) -> None:
    """A 422 whose every error lies in `field` of the body."""
    locations = invalid_fields(response)
    assert locations, response.text
    assert all(loc[:2] == ("body", field) for loc in locations), locations


# --- queue options --------------------------------------------------------------------------

#: (field, as the API takes and returns it, as the engine holds it)
QUEUE_OPTIONS: list[tuple[str, Any, Any]] = [
    ("retry", 0, 0),
    ("wrapup_time", 30, 30),
    ("max_len", 3, 3),
    ("max_wait", 120, 120),
    ("overflow", {"type": "queue", "queue_id": T1_QUEUE}, QueueTarget(QueueId(T1_QUEUE))),
    ("overflow", {"type": "extension", "extension": "102"}, ExtensionTarget(ExtensionId(2))),
    (
        "join_empty",
        ["paused", "logged_out"],
        frozenset({AgentCondition.PAUSED, AgentCondition.LOGGED_OUT}),
    ),
    (
        "leave_when_empty",
        ["paused", "unavailable", "logged_out", "busy", "wrapup"],
        frozenset(AgentCondition),
    ),
    ("weight", 7, 7),
    ("service_level", 30, 30),
    ("announce_frequency", 45, 45),
    ("ring_progressive_delay", 4, 4),
    (
        "penalty_rules",
        [{"after": 30, "max_penalty": 2}, {"after": 60, "max_penalty": 5}],
        (PenaltyRule(30, 2), PenaltyRule(60, 5)),
    ),
    ("skill_rules", [{"after": 20, "lower_by": 3}], (SkillRule(20, 3),)),
    ("ring_in_use", True, True),
]


async def assert_stored_and_applied(store: Store, stub: EngineStub, expected: QueueConfig) -> None:
    """Queue 3 is `expected` in the store, in what the engine was given, and in the engine."""
    assert await stored_queue(store, 3) == expected
    assert stub.applied == [QueueSaved(expected)]
    live = stub.engine.queue(QueueId(3))
    assert live is not None
    assert live.config == expected


@pytest.mark.parametrize("option", QUEUE_OPTIONS, ids=lambda o: f"{o[0]}={o[1]}")
async def test_a_queue_option_is_accepted_stored_applied_and_returned(
    client: httpx.AsyncClient, stub: EngineStub, store: Store, option: tuple[str, Any, Any]
) -> None:
    field, value, engine_value = option
    made = await created(client, "/api/queues", {**QUEUE, field: value})
    assert made == {"id": 3, **QUEUE, **QUEUE_OPTION_DEFAULTS, field: value, "agents": []}
    await assert_stored_and_applied(store, stub, replace(NEW_QUEUE, **{field: engine_value}))
    assert (await client.get("/api/queues/3")).json() == made


@pytest.mark.parametrize("option", QUEUE_OPTIONS, ids=lambda o: f"{o[0]}={o[1]}")
async def test_a_queue_option_changes_live(
    client: httpx.AsyncClient, stub: EngineStub, store: Store, option: tuple[str, Any, Any]
) -> None:
    field, value, engine_value = option
    await created(client, "/api/queues", QUEUE)
    stub.applied.clear()
    patched = await client.patch("/api/queues/3", json={field: value})
    assert patched.status_code == 200, patched.text
    assert patched.json()[field] == value
    await assert_stored_and_applied(store, stub, replace(NEW_QUEUE, **{field: engine_value}))


async def test_a_new_queue_gets_the_engines_defaults(
    client: httpx.AsyncClient, store: Store
) -> None:
    await created(client, "/api/queues", QUEUE)
    assert await stored_queue(store, 3) == NEW_QUEUE


async def test_every_option_at_once_and_back(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    every = {field: value for field, value, _ in QUEUE_OPTIONS}
    made = await created(client, "/api/queues", {**QUEUE, **every})
    assert made == {"id": 3, **QUEUE, **every, "agents": []}
    reset = await client.patch("/api/queues/3", json=QUEUE_OPTION_DEFAULTS)
    assert reset.json() == {"id": 3, **QUEUE, **QUEUE_OPTION_DEFAULTS, "agents": []}
    assert await stored_queue(store, 3) == NEW_QUEUE
    assert stub.applied[-1] == QueueSaved(NEW_QUEUE)


async def test_a_patch_keeps_the_options_it_does_not_name(
    client: httpx.AsyncClient, store: Store
) -> None:
    await created(client, "/api/queues", {**QUEUE, "max_len": 4, "join_empty": ["paused"]})
    patched = (await client.patch("/api/queues/3", json={"timeout": 25, "weight": 2})).json()
    assert (patched["timeout"], patched["weight"], patched["max_len"]) == (25, 2, 4)
    assert patched["join_empty"] == ["paused"]
    assert await stored_queue(store, 3) == replace(
        NEW_QUEUE,
        timeout=25,
        weight=2,
        max_len=4,
        join_empty=frozenset({AgentCondition.PAUSED}),
    )


async def test_conditions_read_back_in_a_fixed_order(client: httpx.AsyncClient) -> None:
    made = await created(client, "/api/queues", {**QUEUE, "join_empty": ["wrapup", "paused"]})
    assert made["join_empty"] == ["paused", "wrapup"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retry", -1),
        ("retry", 86_401),
        ("retry", "5"),
        ("retry", 1.5),
        ("retry", True),
        ("retry", None),
        ("wrapup_time", -1),
        ("wrapup_time", 86_401),
        ("max_len", -1),
        ("max_len", "1"),
        ("max_wait", -1),
        ("max_wait", 86_401),
        ("weight", -1),
        ("weight", 1001),
        ("service_level", 0),
        ("service_level", 86_401),
        ("announce_frequency", -1),
        ("ring_progressive_delay", 0),
        ("ring_in_use", 1),
        ("ring_in_use", "yes"),
        ("ring_in_use", None),
        ("join_empty", ["paused", "paused"]),
        ("join_empty", ["sleeping"]),
        ("join_empty", "paused"),
        ("join_empty", [1]),
        ("leave_when_empty", ["busy", "busy"]),
        ("leave_when_empty", None),
        ("penalty_rules", [{"after": 60, "max_penalty": 1}, {"after": 30, "max_penalty": 2}]),
        ("penalty_rules", [{"after": 30, "max_penalty": 1}, {"after": 30, "max_penalty": 2}]),
        ("penalty_rules", [{"after": 30}]),
        ("penalty_rules", [{"after": 30, "max_penalty": 1, "min_penalty": 0}]),
        ("penalty_rules", [{"after": -1, "max_penalty": 1}]),
        ("penalty_rules", [{"after": 30, "max_penalty": 1001}]),
        ("penalty_rules", [{"after": i, "max_penalty": 1} for i in range(21)]),
        ("penalty_rules", {"after": 30, "max_penalty": 1}),
        ("skill_rules", [{"after": 10, "lower_by": 0}]),
        ("skill_rules", [{"after": 10, "lower_by": 11}]),
        ("skill_rules", [{"after": 10, "lower_by": 1}, {"after": 10, "lower_by": 2}]),
        ("overflow", {"type": "voicemail"}),
        ("overflow", {"type": "extension"}),
        ("overflow", {"type": "extension", "extension": ""}),
        ("overflow", {"type": "extension", "extension": 102}),
        ("overflow", {"type": "queue", "queue_id": "1"}),
        ("overflow", {"type": "queue", "queue_id": 0}),
        ("overflow", {"type": "hangup", "reason": "closed"}),
        ("overflow", "hangup"),
        ("overflow", None),
    ],
)
async def test_a_bad_queue_option_is_refused_naming_it(
    client: httpx.AsyncClient, stub: EngineStub, store: Store, field: str, value: Any
) -> None:
    assert_refused(await client.post("/api/queues", json={**QUEUE, field: value}), field)
    assert_refused(await client.patch(f"/api/queues/{T1_QUEUE}", json={field: value}), field)
    assert stub.applied == []
    async with store.transaction() as tx:
        assert (await tx.queues()).total == 2


#: (overflow as given, the error it gets: the field under `overflow`, message, type)
BAD_OVERFLOW_TARGETS: list[tuple[dict[str, Any], tuple[str, str, str]]] = [
    (
        {"type": "extension", "extension": "999"},
        ("extension", 'no extension "999" in tenant 1, the queue\'s', "extension_not_in_tenant"),
    ),
    (  # tenant 2 has a 201, tenant 1 does not
        {"type": "extension", "extension": "201"},
        ("extension", 'no extension "201" in tenant 1, the queue\'s', "extension_not_in_tenant"),
    ),
    (
        {"type": "queue", "queue_id": T2_QUEUE},
        ("queue_id", f"no queue {T2_QUEUE} in tenant 1, the queue's", "queue_not_in_tenant"),
    ),
    (
        {"type": "queue", "queue_id": 99},
        ("queue_id", "no queue 99 in tenant 1, the queue's", "queue_not_in_tenant"),
    ),
    (
        {"type": "queue", "queue_id": T1_QUEUE},
        ("queue_id", "a queue cannot overflow to itself", "overflow_to_self"),
    ),
]


@pytest.mark.parametrize(("overflow", "error"), BAD_OVERFLOW_TARGETS)
async def test_an_overflow_target_outside_the_tenant_is_refused(
    client: httpx.AsyncClient,
    stub: EngineStub,
    overflow: dict[str, Any],
    error: tuple[str, str, str],
) -> None:
    field, message, kind = error
    response = await client.patch(f"/api/queues/{T1_QUEUE}", json={"overflow": overflow})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "overflow", field], "msg": message, "type": kind}
    ]
    if kind != "overflow_to_self":  # a new queue has no id to be itself
        made = await client.post("/api/queues", json={**QUEUE, "overflow": overflow})
        assert made.json()["detail"] == response.json()["detail"]
    assert stub.applied == []


async def test_an_extension_overflow_reads_back_its_current_number(
    client: httpx.AsyncClient, store: Store
) -> None:
    overflow = {"type": "extension", "extension": "102"}
    await created(client, "/api/queues", {**QUEUE, "overflow": overflow})
    await client.patch(f"/api/extensions/{T1_EXT_102}", json={"number": "112"})
    read = (await client.get("/api/queues/3")).json()
    assert read["overflow"] == {"type": "extension", "extension": "112"}
    assert (await stored_queue(store, 3)).overflow == ExtensionTarget(ExtensionId(T1_EXT_102))


async def test_overflow_back_to_hangup(client: httpx.AsyncClient, stub: EngineStub) -> None:
    await created(client, "/api/queues", {**QUEUE, "overflow": {"type": "queue", "queue_id": 1}})
    patched = await client.patch("/api/queues/3", json={"overflow": {"type": "hangup"}})
    assert patched.json()["overflow"] == {"type": "hangup"}
    assert stub.applied[-1] == QueueSaved(NEW_QUEUE)
    assert NEW_QUEUE.overflow == HangupTarget()


async def test_deleting_a_queue_that_another_overflows_to_is_409(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    await created(client, "/api/queues", QUEUE)
    backup = {**QUEUE, "name": "Backup", "queue_number": "701"}
    await created(client, "/api/queues", {**backup, "overflow": {"type": "queue", "queue_id": 3}})
    await created(client, "/api/queues", {**backup, "name": "More", "queue_number": "702"})
    await client.patch("/api/queues/5", json={"overflow": {"type": "queue", "queue_id": 3}})
    applied = len(stub.applied)
    response = await client.delete("/api/queues/3")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "queue 3 is the overflow target of queues 4 (701 Backup) and 5 (702 More);"
        " change their overflow first"
    }
    assert len(stub.applied) == applied
    for queue_id in (4, 5):
        await client.patch(f"/api/queues/{queue_id}", json={"overflow": {"type": "hangup"}})
    assert (await client.delete("/api/queues/3")).status_code == 204


async def test_deleting_an_extension_that_a_queue_overflows_to_is_409(
    client: httpx.AsyncClient,
) -> None:
    overflow = {"type": "extension", "extension": "102"}
    await created(client, "/api/queues", {**QUEUE, "overflow": overflow})
    response = await client.delete(f"/api/extensions/{T1_EXT_102}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "extension 2 is the overflow target of queue 3 (700 Support);"
        " change their overflow first"
    }
    await client.patch("/api/queues/3", json={"overflow": {"type": "hangup"}})
    assert (await client.delete(f"/api/extensions/{T1_EXT_102}")).status_code == 204


# --- enrolment options ------------------------------------------------------------------------

ENROLMENT_OPTIONS: list[tuple[str, int]] = [
    ("penalty", 3),
    ("wrapup_time", 45),
    ("wrapup_time", 0),  # no rest at all, unlike the queue's
    ("max_no_answer", 2),
    ("busy_delay", 10),
    ("reject_delay", 20),
    ("no_answer_delay", 30),
]


@pytest.mark.parametrize(("field", "value"), ENROLMENT_OPTIONS)
async def test_an_enrolment_option_is_accepted_stored_applied_and_returned(
    client: httpx.AsyncClient, stub: EngineStub, store: Store, field: str, value: int
) -> None:
    path = f"/api/queues/{T1_QUEUE}/agents"
    enrolled = await created(client, path, {"extension_id": T1_EXT_102, field: value})
    bob = agent_out(T1_EXT_102, "102", "Bob", 1, **{field: value})
    assert enrolled == {**bob, "status": "logged_out", "state_since": None}
    expected = EnrolmentOptions(position=1, **{field: value})
    assert await stored_enrolment(store, T1_QUEUE, T1_EXT_102) == expected
    assert stub.applied == [AgentEnrolled(QueueId(T1_QUEUE), ExtensionId(T1_EXT_102), expected)]
    assert (await client.get(f"/api/queues/{T1_QUEUE}")).json()["agents"] == [
        agent_out(T1_EXT_101, "101", "Alice", 0),
        bob,
    ]
    assert (await client.get(path)).json()[1] == {
        **bob,
        "status": "logged_out",
        "state_since": None,
    }


@pytest.mark.parametrize(("field", "value"), ENROLMENT_OPTIONS)
async def test_an_enrolment_option_changes_live(
    client: httpx.AsyncClient, stub: EngineStub, store: Store, field: str, value: int
) -> None:
    path = f"/api/queues/{T1_QUEUE}/agents/{T1_EXT_101}"
    patched = await client.patch(path, json={field: value})
    assert patched.status_code == 200, patched.text
    alice = agent_out(T1_EXT_101, "101", "Alice", 0, **{field: value})
    assert patched.json() == {**alice, "status": "logged_out", "state_since": None}
    expected = EnrolmentOptions(position=0, **{field: value})
    assert await stored_enrolment(store, T1_QUEUE, T1_EXT_101) == expected
    assert stub.applied == [AgentEnrolled(QueueId(T1_QUEUE), ExtensionId(T1_EXT_101), expected)]
    assert (await client.get(f"/api/queues/{T1_QUEUE}")).json()["agents"] == [alice]


async def test_an_agents_wrapup_goes_back_to_the_queues_with_null(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    path = f"/api/queues/{T1_QUEUE}/agents/{T1_EXT_101}"
    await client.patch(path, json={"wrapup_time": 45, "penalty": 2})
    back = await client.patch(path, json={"wrapup_time": None})
    assert (back.json()["wrapup_time"], back.json()["penalty"]) == (None, 2)
    expected = EnrolmentOptions(penalty=2, position=0)
    assert await stored_enrolment(store, T1_QUEUE, T1_EXT_101) == expected
    assert stub.applied[-1] == AgentEnrolled(QueueId(T1_QUEUE), ExtensionId(T1_EXT_101), expected)


async def test_an_empty_agent_patch_changes_nothing(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    patched = await client.patch(f"/api/queues/{T1_QUEUE}/agents/{T1_EXT_101}", json={})
    assert patched.json() == {
        **agent_out(T1_EXT_101, "101", "Alice", 0),
        "status": "logged_out",
        "state_since": None,
    }
    assert stub.applied == []


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        (f"/api/queues/{T1_QUEUE}/agents/{T1_EXT_102}", "extension 2 is not in queue 1"),
        (f"/api/queues/{T1_QUEUE}/agents/99", "extension 99 is not in queue 1"),
        (f"/api/queues/9/agents/{T1_EXT_101}", "queue 9 not found"),
    ],
)
async def test_patching_an_agent_not_in_the_queue_is_404(
    client: httpx.AsyncClient, path: str, detail: str
) -> None:
    response = await client.patch(path, json={"penalty": 1})
    assert response.status_code == 404
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("penalty", -1),
        ("penalty", 1001),
        ("penalty", "1"),
        ("penalty", None),
        ("position", -1),
        ("position", 1.0),
        ("position", None),
        ("wrapup_time", -1),
        ("wrapup_time", 86_401),
        ("wrapup_time", "10"),
        ("max_no_answer", -1),
        ("max_no_answer", True),
        ("busy_delay", -1),
        ("reject_delay", 86_401),
        ("no_answer_delay", 2.5),
        ("skills", {"spanish": 5}),
    ],
)
async def test_a_bad_enrolment_option_is_refused_naming_it(
    client: httpx.AsyncClient, stub: EngineStub, field: str, value: Any
) -> None:
    agents = f"/api/queues/{T1_QUEUE}/agents"
    assert_refused(await client.post(agents, json={"extension_id": 2, field: value}), field)
    assert_refused(await client.patch(f"{agents}/{T1_EXT_101}", json={field: value}), field)
    assert stub.applied == []


async def test_positions_order_the_agents_and_the_engine_follows_the_store(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    agents = f"/api/queues/{T1_QUEUE}/agents"
    await client.patch(f"{agents}/{T1_EXT_101}", json={"position": 5})
    first = await created(client, agents, {"extension_id": T1_EXT_102, "position": 2})
    read = (await client.get(f"/api/queues/{T1_QUEUE}")).json()
    assert [a["id"] for a in read["agents"]] == [T1_EXT_102, T1_EXT_101]
    assert read["agents"][0] == agent_out(T1_EXT_102, "102", "Bob", first["position"])
    positions = [a["position"] for a in read["agents"]]
    assert positions == sorted(set(positions))
    # Whatever the store did to make room, the engine was told the positions it holds.
    told = {e.extension_id: e.options for e in stub.applied if isinstance(e, AgentEnrolled)}
    for extension_id in (T1_EXT_101, T1_EXT_102):
        assert told[ExtensionId(extension_id)] == await stored_enrolment(
            store, T1_QUEUE, extension_id
        )


async def test_the_engine_rings_the_lower_penalty_after_a_change(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    agents = f"/api/queues/{T1_QUEUE}/agents"
    await created(client, agents, {"extension_id": T1_EXT_102, "penalty": 0})
    await client.patch(f"{agents}/{T1_EXT_101}", json={"penalty": 1})
    for number in ("101", "102"):
        stub.feed(AgentPresenceChanged(T1, number, Presence.AVAILABLE))
    stub.feed(CallArrived(T1, CallId("c1"), "+100"))
    (call,) = (await client.get(f"/api/queues/{T1_QUEUE}/calls")).json()
    assert call["ringing"] == ["102"]


# --- skills -----------------------------------------------------------------------------------

BAD_SKILLS: list[Any] = [
    {"Spanish": 5},
    {"": 5},
    {"s" * 33: 5},
    {"spanish": 0},
    {"spanish": 11},
    {"spanish": "5"},
    {"spanish": 5.0},
    {"spanish": None},
    ["spanish"],
    {f"skill{i}": 1 for i in range(51)},
]


async def test_extension_skills_are_stored_applied_and_replaced(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    skills = {"spanish": 8, "billing": 5}
    made = await created(
        client, "/api/extensions", {"tenant_id": 1, "number": "103", "skills": skills}
    )
    assert made == {"id": 4, "tenant_id": 1, "number": "103", "name": "", "skills": skills}
    assert (await client.get("/api/extensions/4")).json() == made
    patched = await client.patch("/api/extensions/4", json={"skills": {"french": 3}})
    assert patched.json()["skills"] == {"french": 3}
    cleared = await client.patch("/api/extensions/4", json={"skills": {}})
    assert cleared.json()["skills"] == {}
    async with store.transaction() as tx:
        assert await tx.extension(ExtensionId(4)) == Extension(ExtensionId(4), T1, "103", "", {})
    carol = Extension(ExtensionId(4), T1, "103", "")
    assert stub.applied == [
        ExtensionSaved(replace(carol, skills=skills)),
        ExtensionSaved(replace(carol, skills={"french": 3})),
        ExtensionSaved(carol),
    ]


async def test_a_patch_keeps_skills_it_does_not_name(
    client: httpx.AsyncClient, store: Store
) -> None:
    await client.patch(f"/api/extensions/{T1_EXT_102}", json={"skills": {"billing": 4}})
    renamed = await client.patch(f"/api/extensions/{T1_EXT_102}", json={"name": "Robert"})
    assert renamed.json()["skills"] == {"billing": 4}


@pytest.mark.parametrize("skills", [*BAD_SKILLS, None])
async def test_bad_extension_skills_are_refused(
    client: httpx.AsyncClient, stub: EngineStub, skills: Any
) -> None:
    body = {"tenant_id": 1, "number": "103", "skills": skills}
    assert_refused(await client.post("/api/extensions", json=body), "skills")
    patch = await client.patch(f"/api/extensions/{T1_EXT_101}", json={"skills": skills})
    assert_refused(patch, "skills")
    assert stub.applied == []


async def test_route_skills_are_stored_applied_and_returned(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    body = {"tenant_id": 1, "did": "+1555", "queue_id": 1, "skills": {"spanish": 5}}
    made = await created(client, "/api/did-routes", body)
    assert made == {
        "id": 3,
        "tenant_id": 1,
        "did": "+1555",
        "queue_id": 1,
        "extension_id": None,
        "skills": {"spanish": 5},
    }
    assert (await client.get("/api/did-routes/3")).json() == made
    patched = await client.patch("/api/did-routes/3", json={"skills": {"billing": 2}})
    assert patched.json() == {**made, "skills": {"billing": 2}}
    async with store.transaction() as tx:
        stored = await tx.route(3)
    assert stored is not None
    route = DidRoute(T1, "+1555", QueueTarget(QueueId(1)))
    assert stored.route == replace(route, skills={"billing": 2})
    assert stub.applied == [
        DidRouteSaved(replace(route, skills={"spanish": 5})),
        DidRouteSaved(replace(route, skills={"billing": 2})),
    ]


async def test_a_route_to_an_extension_requires_no_skills(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    body = {"tenant_id": 1, "did": "+1555", "extension_id": 1, "skills": {"spanish": 5}}
    response = await client.post("/api/did-routes", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "skills"],
            "msg": "only a route to a queue can require skills; this one goes to extension 1"
            ' (give "skills": {} with it)',
            "type": "skills_need_queue_target",
        }
    ]
    await created(client, "/api/did-routes", {**body, "skills": {}})
    # Retargeted to an extension, a route with skills must drop them in the same patch.
    await client.patch(f"/api/did-routes/{T1_ROUTE}", json={"skills": {"spanish": 5}})
    retarget = await client.patch(f"/api/did-routes/{T1_ROUTE}", json={"extension_id": 1})
    assert error_fields(retarget.json()) == [("body", "skills")]
    dropped = await client.patch(
        f"/api/did-routes/{T1_ROUTE}", json={"extension_id": 1, "skills": {}}
    )
    assert dropped.json()["extension_id"] == 1
    assert dropped.json()["skills"] == {}
    assert stub.applied[-1] == DidRouteSaved(DidRoute(T1, "+100", ExtensionTarget(ExtensionId(1))))


@pytest.mark.parametrize("skills", [*BAD_SKILLS, None])
async def test_bad_route_skills_are_refused(
    client: httpx.AsyncClient, stub: EngineStub, skills: Any
) -> None:
    body = {"tenant_id": 1, "did": "+1555", "queue_id": 1, "skills": skills}
    assert_refused(await client.post("/api/did-routes", json=body), "skills")
    patch = await client.patch(f"/api/did-routes/{T1_ROUTE}", json={"skills": skills})
    assert_refused(patch, "skills")
    assert stub.applied == []


async def test_the_schema_shows_the_new_endpoint_and_options(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "patch" in schema["paths"]["/api/queues/{queue_id}/agents/{extension_id}"]
    queue = schema["components"]["schemas"]["QueueCreate"]["properties"]
    assert queue["max_len"]["default"] == 0
    assert queue["overflow"]["default"] == {"type": "hangup"}
