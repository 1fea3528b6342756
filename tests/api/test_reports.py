"""``/api/reports``: the figures of history rows, in the tenant's time zone, as JSON and CSV,
within the caller's tenant."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import httpx
import pytest

from ringmaster.settings import ApiSettings
from ringmaster.store import Store

from .helpers import EngineStub, api_client, app_for, token_settings

#: 2026-11-01 00:00 in New York (EDT, -04:00): the clocks go back at 02:00 to 01:00.
B = datetime.fromisoformat("2026-11-01T00:00:00-04:00").timestamp()
RANGE = {"from": "2026-11-01T00:00:00-04:00", "to": "2026-11-01T03:00:00-05:00"}


def seed_history(store: Store) -> None:
    visit = (
        "INSERT INTO call_visits (tenant_id, call_id, visit, queue_id, queue_number,"
        " queue_name, did, caller_id, caller_name, priority, arrived_at, entered_at, position,"
        " answered_at, ended_at, outcome, agent_number, wait_s, talk_s)"
        " VALUES (?1, ?2, 1, ?3, '600', 'Sales', '+100', '', '', 0, ?4, ?4, ?5, ?6, ?7, ?8,"
        " ?9, ?10, ?11)"
    )
    assert store.path is not None  # the API's tests run on SQLite
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE tenants SET timezone = 'America/New_York' WHERE id = 1")
        db.executemany(
            visit,
            [
                # first hour (00:00-04): answered after 10 s (within 20), talked 100 s
                (1, "a", 1, B + 60, 1, B + 70, B + 170, "completed", "101", 10.0, 100.0),
                # the repeated hour (01:00-05): answered after 25 s, abandoned after 2 s
                (1, "b", 1, B + 7300, 1, B + 7325, B + 7425, "completed", "102", 25.0, 100.0),
                (1, "c", 1, B + 7400, 2, None, B + 7402, "abandoned", None, 2.0, None),
                # another tenant's call in the same hour
                (2, "z", 2, B + 60, 1, None, B + 90, "abandoned", None, 30.0, None),
            ],
        )
        db.executemany(
            "INSERT INTO agent_activity (tenant_id, extension, at, kind, reason, state)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (1, "101", B, "login", "", "available"),
                (1, "101", B + 1800, "pause", "training", "paused"),
                (1, "101", B + 3600, "unpause", "", "available"),
                (1, "101", B + 7200, "logout", "", "logged_out"),
            ],
        )


@pytest.fixture
async def seeded(store: Store, stub: EngineStub) -> Store:
    seed_history(store)
    stub.now = B + 4 * 3600
    return store


def blank(start: str, end: str) -> dict[str, Any]:
    return {
        "queue_id": 1,
        "queue_number": "600",
        "queue_name": "Sales",
        "start": start,
        "end": end,
        "offered": 0,
        "answered": 0,
        "abandoned": 0,
        "short_abandoned": 0,
        "overflowed": 0,
        "rejected": 0,
        "answered_within": 0,
        "service_level_pct": None,
        "service_level_all_pct": None,
        "asa_s": None,
        "aht_s": None,
        "avg_wait_s": None,
        "max_wait_s": None,
        "wait_p90_s": None,
    }


async def test_the_queue_report_in_the_tenants_time_zone(
    seeded: Store, client: httpx.AsyncClient
) -> None:
    response = await client.get("/api/reports/queues", params={"tenant_id": 1, **RANGE})
    assert response.status_code == 200, response.text
    report = response.json()
    assert {k: v for k, v in report.items() if k != "items"} == {
        "tenant_id": 1,
        "timezone": "America/New_York",
        "start": "2026-11-01T00:00:00-04:00",
        "end": "2026-11-01T03:00:00-05:00",
        "interval": "1h",
        "short_abandon_s": 5.0,
        "service_level_default_s": 20,
    }
    first = blank("2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00")
    first |= {"offered": 1, "answered": 1, "answered_within": 1, "service_level_pct": 100.0}
    first |= {"service_level_all_pct": 100.0, "asa_s": 10.0, "aht_s": 100.0}
    first |= {"avg_wait_s": 10.0, "max_wait_s": 10.0, "wait_p90_s": 10.0}
    # b answered after 25 s (not within 20); c abandoned after 2 s: a short abandon
    repeated = blank("2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00")
    repeated |= {"offered": 2, "answered": 1, "abandoned": 1, "short_abandoned": 1}
    repeated |= {"service_level_pct": 0.0, "service_level_all_pct": 0.0, "asa_s": 25.0}
    repeated |= {"aht_s": 100.0, "avg_wait_s": 13.5, "max_wait_s": 25.0, "wait_p90_s": 25.0}
    assert report["items"] == [
        first,
        blank("2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"),
        repeated,
        blank("2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"),
    ]


async def test_the_queue_report_as_csv(seeded: Store, client: httpx.AsyncClient) -> None:
    params: dict[str, Any] = {"tenant_id": 1, **RANGE, "interval": "1d", "format": "csv"}
    response = await client.get("/api/reports/queues", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    header, row = response.text.splitlines()
    assert header.split(",")[:8] == [
        "queue_id", "queue_number", "queue_name", "start", "end", "offered", "answered",
        "abandoned",
    ]  # fmt: skip
    # one interval, clipped to the range; SL 1/2, SL over all 1/2 (c is short); the
    # mean wait (10 + 25 + 2) / 3 = 12.333; a ratio over nothing would be empty
    assert row.split(",") == [
        "1", "600", "Sales", "2026-11-01T00:00:00-04:00", "2026-11-01T03:00:00-05:00",
        "3", "2", "1", "1", "0", "0", "1", "50.0", "50.0", "17.5", "100.0", "12.333",
        "25.0", "25.0",
    ]  # fmt: skip


async def test_the_agent_report_json_and_csv(seeded: Store, client: httpx.AsyncClient) -> None:
    params: dict[str, Any] = {"tenant_id": 1, **RANGE, "interval": "1h"}
    report = (await client.get("/api/reports/agents", params=params)).json()
    by_agent = [(i["extension"], i["start"][11:], i["answered"]) for i in report["items"]]
    assert by_agent == [
        ("101", "00:00:00-04:00", 1),
        ("101", "01:00:00-04:00", 0),
        ("101", "01:00:00-05:00", 0),
        ("101", "02:00:00-05:00", 0),
        ("102", "00:00:00-04:00", 0),
        ("102", "01:00:00-04:00", 0),
        ("102", "01:00:00-05:00", 1),
        ("102", "02:00:00-05:00", 0),
    ]
    first = report["items"][0]
    # logged in all hour, paused for training its second half, talked 100 s
    assert first | {"start": "", "end": ""} == {
        "extension": "101",
        "start": "",
        "end": "",
        "answered": 1,
        "talk_s": 100.0,
        "rings_unanswered": 0,
        "pause_s": {"training": 1800.0},
        "logged_in_s": 3600.0,
        "occupancy_pct": 5.56,
    }
    assert report["items"][2]["logged_in_s"] == 0.0  # out at 01:00-05:00
    csv = (await client.get("/api/reports/agents", params={**params, "format": "csv"})).text
    lines = csv.splitlines()
    assert lines[0] == (
        "extension,start,end,answered,talk_s,rings_unanswered,pause_s,pause_s:training,"
        "logged_in_s,occupancy_pct"
    )
    assert lines[1].split(",")[3:] == ["1", "100.0", "0", "1800.0", "1800.0", "3600.0", "5.56"]
    assert lines[5].split(",")[:1] + lines[5].split(",")[6:8] == ["102", "0.0", "0.0"]


BAD = [
    ({"from": "2026-11-01T00:00:00", "to": RANGE["to"]}, "from"),  # no offset
    ({"from": RANGE["from"], "to": "yesterday"}, "to"),
    ({"from": RANGE["to"], "to": RANGE["from"]}, "to"),  # empty
    ({**RANGE, "interval": "2h"}, "interval"),
    ({**RANGE, "format": "xml"}, "format"),
    ({"to": RANGE["to"]}, "from"),
]


@pytest.mark.parametrize(("params", "field"), BAD)
async def test_bad_queries_are_422_naming_the_parameter(
    seeded: Store, client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    for path in ("/api/reports/queues", "/api/reports/agents"):
        response = await client.get(path, params={"tenant_id": 1, **params})
        assert response.status_code == 422, response.text
        assert [e["loc"] for e in response.json()["detail"]] == [["query", field]]


async def test_a_tenant_token_reports_on_its_own_tenant_only(
    seeded: Store, stub: EngineStub
) -> None:
    app = app_for(stub, seeded, token_settings())
    async with api_client(app, "tenant-1-secret") as tenant1:
        own = await tenant1.get("/api/reports/queues", params=RANGE)
        assert own.status_code == 200
        assert {i["queue_id"] for i in own.json()["items"]} == {1}
        other = await tenant1.get("/api/reports/queues", params={"tenant_id": 2, **RANGE})
        assert (other.status_code, other.json()) == (404, {"detail": "tenant 2 not found"})
        queue = await tenant1.get("/api/reports/queues", params={"queue_id": 2, **RANGE})
        assert queue.status_code == 404
    async with api_client(app, "admin-secret") as admin:
        unnamed = await admin.get("/api/reports/agents", params=RANGE)
        assert unnamed.status_code == 422
        two = await admin.get("/api/reports/queues", params={"tenant_id": 2, **RANGE})
        assert [(i["queue_id"], i["abandoned"]) for i in two.json()["items"]] == [
            (2, 1),
            (2, 0),
            (2, 0),
            (2, 0),
        ]


async def test_the_short_abandon_threshold_is_the_setting(seeded: Store, stub: EngineStub) -> None:
    settings = ApiSettings.model_validate({"reports": {"short_abandon_s": 1}})
    async with api_client(app_for(stub, seeded, settings)) as client:
        params: dict[str, Any] = {"tenant_id": 1, **RANGE, "interval": "1d"}
        report = (await client.get("/api/reports/queues", params=params)).json()
    (day,) = report["items"]
    # c's 2 s is more than 1 s: no short abandon, and it counts against the SL over all
    assert report["short_abandon_s"] == 1.0
    assert (day["short_abandoned"], day["service_level_all_pct"]) == (0, 33.33)
