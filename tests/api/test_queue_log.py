"""``GET /api/queue-log``: text/plain queue_log lines of the stored history, tenant-scoped."""

from __future__ import annotations

import httpx

from ringmaster.engine.model import CallId, QueueId, TenantId
from ringmaster.engine.records import StateChanges
from ringmaster.history import HistoryWrite, RingStarted, VisitAnswered, VisitEnded, VisitOpened
from ringmaster.store import Store

from .helpers import NOW


async def _a_call_in_each_tenant(store: Store) -> None:
    """Tenant 1's call answered by 101, tenant 2's abandoned, as the daemon writes them."""
    async with store.snapshot() as tx:
        queue_of = {t: (await tx.queues(TenantId(t))).items[0].queue_id for t in (1, 2)}
    one, two = TenantId(1), TenantId(2)
    writes: list[HistoryWrite] = [
        VisitOpened(one, CallId("a1"), QueueId(queue_of[1]), NOW - 100, 1, "+1", "5551111"),
        VisitOpened(two, CallId("b1"), QueueId(queue_of[2]), NOW - 90, 1, "+2", "5552222"),
        RingStarted(one, CallId("a1"), "r1", "101", NOW - 99),
        VisitAnswered(one, CallId("a1"), "101", NOW - 95, "r1"),
        VisitEnded(two, CallId("b1"), "abandoned", NOW - 80),
        VisitEnded(one, CallId("a1"), "completed", NOW - 35, talk_s=60.0),
    ]
    await store.commit(StateChanges(), [], None, writes)


def _lines(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text.splitlines()


async def test_the_lines_of_every_tenant_in_time_order(
    client: httpx.AsyncClient, store: Store
) -> None:
    await _a_call_in_each_tenant(store)
    t = int(NOW)
    assert _lines(await client.get("/api/queue-log")) == [
        f"{t - 100}|a1|600|NONE|ENTERQUEUE||5551111|1",
        f"{t - 95}|a1|600|Local/101|CONNECT|5|r1|4",
        f"{t - 90}|b1|600|NONE|ENTERQUEUE||5552222|1",
        f"{t - 80}|b1|600|NONE|ABANDON|1|1|10",
        f"{t - 35}|a1|600|Local/101|COMPLETECALLER|5|60|1",
    ]


async def test_a_window_and_a_tenant(client: httpx.AsyncClient, store: Store) -> None:
    await _a_call_in_each_tenant(store)
    since, to = int(NOW - 95), int(NOW - 35)
    lines = _lines(
        await client.get("/api/queue-log", params={"tenant_id": 1, "from": since, "to": to})
    )
    assert [line.split("|")[4] for line in lines] == ["CONNECT"]  # to excludes its instant
    assert _lines(await client.get("/api/queue-log", params={"tenant_id": 2}))[1].endswith(
        "|b1|600|NONE|ABANDON|1|1|10"
    )


async def test_a_tenant_token_sees_its_own_lines_only(
    tenant1: httpx.AsyncClient, store: Store
) -> None:
    await _a_call_in_each_tenant(store)
    assert {line.split("|")[1] for line in _lines(await tenant1.get("/api/queue-log"))} == {"a1"}
    assert _lines(await tenant1.get("/api/queue-log", params={"tenant_id": 2})) == []


async def test_a_token_is_needed_once_tokens_are_set(
    admin: httpx.AsyncClient, store: Store
) -> None:
    await _a_call_in_each_tenant(store)
    assert (await admin.get("/api/queue-log", headers={"Authorization": ""})).status_code == 401
    assert len(_lines(await admin.get("/api/queue-log"))) == 5
