"""``/api/calls``: the call history as the API reads it, JSON and CSV, tenant-scoped."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    CancelRing,
    Command,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallCompleted,
    PublishCallQueued,
    PublishCallRinging,
)
from ringmaster.engine.model import CallId, CancelReason, QueueId, TenantId
from ringmaster.engine.records import StateChanges
from ringmaster.history import HistoryRecorder
from ringmaster.store import Store

from .helpers import NOW, T1_EXT_101, T1_QUEUE, T2_QUEUE

T1, T2 = TenantId(1), TenantId(2)
C1, C2 = CallId("c1"), CallId("c2")
Q1, Q2 = QueueId(T1_QUEUE), QueueId(T2_QUEUE)


@pytest.fixture(autouse=True)
async def calls(store: Store) -> None:
    """Tenant 1: c1 answered by 101 after 12 s and talked 30 s; c2 abandoned after 8 s.
    Tenant 2: its own c1, abandoned after 5 s."""
    recorder = HistoryRecorder()
    turns: list[tuple[float, ev.Event | None, list[Command]]] = [
        (
            NOW,
            ev.CallArrived(T1, C1, "+100", "5550001", "Ann", priority=2),
            [
                PublishCallQueued(T1, C1, Q1, "+100", "5550001", 1, NOW),
                PublishCallRinging(T1, C1, Q1, "101", NOW, "1.1"),
            ],
        ),
        (
            NOW + 12,
            ev.RingAnswered(T1, C1, "101"),
            [PublishCallAnswered(T1, C1, Q1, "101", 12.0, NOW + 12)],
        ),
        (
            NOW + 42,
            ev.CallHungUp(T1, C1),
            [PublishCallCompleted(T1, C1, Q1, "101", 30.0, NOW + 42)],
        ),
        (
            NOW + 50,
            ev.CallArrived(T1, C2, "+100", "5550002"),
            [
                PublishCallQueued(T1, C2, Q1, "+100", "5550002", 1, NOW + 50),
                PublishCallRinging(T1, C2, Q1, "101", NOW + 50, "2.1"),
            ],
        ),
        (
            NOW + 58,
            ev.CallHungUp(T1, C2),
            [
                CancelRing(T1, C2, "101", CancelReason.CALLER_HANGUP, "2.1"),
                PublishCallAbandoned(T1, C2, Q1, 8.0, NOW + 58),
            ],
        ),
        (
            NOW + 60,
            ev.CallArrived(T2, C1, "+200", "5550003"),
            [PublishCallQueued(T2, C1, Q2, "+200", "5550003", 1, NOW + 60)],
        ),
        (
            NOW + 65,
            ev.CallHungUp(T2, C1),
            [PublishCallAbandoned(T2, C1, Q2, 5.0, NOW + 65)],
        ),
    ]
    for now, event, commands in turns:
        await store.commit(StateChanges(), [], None, recorder.record(event, commands, now))


C1_VISIT = {
    "tenant_id": 1,
    "call_id": "c1",
    "visit": 1,
    "queue_id": T1_QUEUE,
    "queue_number": "600",
    "queue_name": "Sales",
    "did": "+100",
    "caller_id": "5550001",
    "caller_name": "Ann",
    "priority": 2,
    "arrived_at": "1970-01-12T13:46:40Z",
    "entered_at": "1970-01-12T13:46:40Z",
    "position": 1,
    "callback_number": None,
    "answered_at": "1970-01-12T13:46:52Z",
    "ended_at": "1970-01-12T13:47:22Z",
    "outcome": "completed",
    "reason": "",
    "overflow_queue_id": None,
    "overflow_extension": None,
    "agent_extension_id": T1_EXT_101,
    "agent_number": "101",
    "wait_s": 12.0,
    "talk_s": 30.0,
}


def ids(page: httpx.Response) -> list[tuple[int, str]]:
    assert page.status_code == 200, page.text
    return [(v["tenant_id"], v["call_id"]) for v in page.json()["items"]]


async def test_the_list_is_every_visit_oldest_first(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/calls")
    assert ids(page) == [(1, "c1"), (1, "c2"), (2, "c1")]
    assert page.json()["items"][0] == C1_VISIT
    assert (page.json()["total"], page.json()["limit"], page.json()["offset"]) == (3, 100, 0)
    second = await client.get("/api/calls", params={"limit": 1, "offset": 1})
    assert ids(second) == [(1, "c2")]
    assert second.json()["total"] == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tenant_id": 1}, [(1, "c1"), (1, "c2")]),
        ({"queue_id": T2_QUEUE}, [(2, "c1")]),
        ({"outcome": "abandoned"}, [(1, "c2"), (2, "c1")]),
        ({"tenant_id": 1, "outcome": "abandoned"}, [(1, "c2")]),
        # `from` included, `to` excluded, on the time the call entered the queue.
        ({"from": "1970-01-12T13:47:30Z"}, [(1, "c2"), (2, "c1")]),
        ({"to": "1970-01-12T13:47:30Z"}, [(1, "c1")]),
        ({"from": "1970-01-12T15:47:30+02:00", "to": "1970-01-12T13:47:40Z"}, [(1, "c2")]),
    ],
)
async def test_the_list_filters(
    client: httpx.AsyncClient, params: dict[str, str | int], expected: list[tuple[int, str]]
) -> None:
    assert ids(await client.get("/api/calls", params=params)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"from": "1970-01-12T13:47:30"},  # no zone: which day's 13:47 would it be?
        {"to": "yesterday"},
        {"outcome": "lost"},
        {"format": "xml"},
        {"queue_id": 0},
    ],
)
async def test_a_bad_filter_is_a_422(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    assert (await client.get("/api/calls", params=params)).status_code == 422


async def test_a_call_with_its_rings(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/calls/1/c1")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "tenant_id": 1,
        "call_id": "c1",
        "visits": [
            {
                **C1_VISIT,
                "rings": [
                    {
                        "ring_id": "1.1",
                        "extension": "101",
                        "started_at": "1970-01-12T13:46:40Z",
                        "ended_at": "1970-01-12T13:46:52Z",
                        "outcome": "answered",
                        "cancel_reason": "",
                    }
                ],
            }
        ],
    }
    abandoned = (await client.get("/api/calls/1/c2")).json()["visits"][0]["rings"]
    assert [(r["outcome"], r["cancel_reason"]) for r in abandoned] == [
        ("cancelled", "caller_hangup")
    ]


async def test_an_unknown_call_is_a_404(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/calls/1/nope")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "call nope of tenant 1 not found"}


async def test_a_tenant_token_sees_its_own_calls_only(tenant1: httpx.AsyncClient) -> None:
    assert ids(await tenant1.get("/api/calls")) == [(1, "c1"), (1, "c2")]
    assert ids(await tenant1.get("/api/calls", params={"tenant_id": 2})) == []
    assert (await tenant1.get("/api/calls/1/c1")).status_code == 200
    # Another tenant's call is reported exactly like an unknown one.
    other = await tenant1.get("/api/calls/2/c1")
    assert other.status_code == 404
    assert other.json() == {"detail": "call c1 of tenant 2 not found"}
    csv_answer = await tenant1.get("/api/calls", params={"format": "csv", "tenant_id": 2})
    assert csv_answer.text.splitlines()[1:] == []


async def test_an_admin_token_sees_every_tenants_calls(admin: httpx.AsyncClient) -> None:
    assert ids(await admin.get("/api/calls")) == [(1, "c1"), (1, "c2"), (2, "c1")]
    assert (await admin.get("/api/calls/2/c1")).status_code == 200


async def test_without_a_token_where_tokens_are_set_is_a_401(
    admin: httpx.AsyncClient,
) -> None:
    answer = await admin.get("/api/calls", headers={"Authorization": ""})
    assert answer.status_code == 401


async def test_csv_is_one_row_per_visit_under_a_header(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/calls", params={"format": "csv", "tenant_id": 1})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["x-total-count"] == "2"
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == list(C1_VISIT)
    assert rows[1] == ["" if v is None else str(v) for v in C1_VISIT.values()]
    assert [row[1] for row in rows[1:]] == ["c1", "c2"]
    one = await client.get("/api/calls/1/c1", params={"format": "csv"})
    assert one.headers["content-type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(one.text))) == rows[:2]
