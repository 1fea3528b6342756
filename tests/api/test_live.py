"""``/api/live``: a tenant's board, and its stream of Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from ringmaster.api import ApiServer, create_app
from ringmaster.api.app import API_CONCURRENCY
from ringmaster.daemon.broker import free_port
from ringmaster.engine.events import AgentPresenceChanged, CallArrived
from ringmaster.engine.model import CallId, Presence, TenantId
from ringmaster.settings import ApiSettings
from ringmaster.store import Store

from .helpers import NOW, T1_QUEUE, T1_TOKEN, T2_TOKEN, EngineStub, token_client

WAIT_S = 10.0  # an upper bound on any wait, never a measured duration


async def test_the_board_has_the_tenants_queues_calls_and_agents(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    tenant = TenantId(1)
    stub.feed(AgentPresenceChanged(tenant, "102", Presence.PAUSED, "lunch"))
    stub.feed(CallArrived(tenant, CallId("c1"), "+100", caller_id="555", caller_name="Ann"))
    stub.now = NOW + 30
    response = await client.get("/api/live/1")
    assert response.status_code == 200, response.text
    board = response.json()
    assert board["tenant"] == {"id": 1, "name": "One", "timezone": "UTC"}
    assert board["at"] == "1970-01-12T13:47:10Z"
    (queue,) = board["queues"]
    assert {k: queue[k] for k in ("id", "name", "number", "status", "waiting")} == {
        "id": T1_QUEUE,
        "name": "Sales",
        "number": "600",
        "status": "active",
        "waiting": 1,
    }
    assert queue["longest_wait_s"] == 30.0
    assert queue["service_level_s"] == 20
    assert queue["agents"]["logged_out"] == 1
    assert queue["today"] == {
        "day": "1970-01-12",
        "offered": 0,
        "answered": 0,
        "abandoned": 0,
        "answered_within": 0,
        "service_level_pct": None,
    }
    assert [(c["call_id"], c["position"], c["state"], c["wait_s"]) for c in queue["calls"]] == [
        ("c1", 1, "queued", 30.0)
    ]
    # Bob (102) is in no queue: the board lists the queues' agents.
    assert board["agents"] == [
        {
            "extension_id": 1,
            "number": "101",
            "name": "Alice",
            "state": "logged_out",
            "reason": "",
            "state_since": None,
            "queues": [T1_QUEUE],
        }
    ]


async def test_a_tenant_token_sees_its_own_board_only(
    tenant1: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    assert (await tenant1.get("/api/live/1")).status_code == 200
    assert (await tenant1.get("/api/live/2")).json() == {"detail": "tenant 2 not found"}
    assert (await tenant1.get("/api/live/2")).status_code == 404
    assert (await tenant1.get("/api/live/2/stream")).status_code == 404
    assert (await tenant1.get("/api/live/9")).status_code == 404


@asynccontextmanager
async def served(
    stub: EngineStub, store: Store, settings: ApiSettings | None = None
) -> AsyncIterator[tuple[ApiServer, httpx.AsyncClient]]:
    """The API behind a real uvicorn server, and a client of it."""
    settings = settings or ApiSettings(port=free_port())
    server = ApiServer(create_app(stub, store, settings, clock=lambda: stub.now), settings)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", timeout=WAIT_S
        ) as client:
            yield server, client
    finally:
        await server.stop()


class Events:
    """The events of one open stream, read as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next_board(self) -> dict[str, Any]:
        """The next ``board`` event's data (comments and blank lines skipped)."""
        kind = None
        async with asyncio.timeout(WAIT_S):
            async for line in self._lines:
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind == "board":
                    board: dict[str, Any] = json.loads(line.removeprefix("data: "))
                    return board
        raise AssertionError("the stream ended")

    async def rest(self) -> list[str]:
        """What is left of the stream, until it ends."""
        async with asyncio.timeout(WAIT_S):
            return [line async for line in self._lines]


@asynccontextmanager
async def streaming(
    client: httpx.AsyncClient, tenant_id: int, token: str | None = None
) -> AsyncIterator[Events]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", f"/api/live/{tenant_id}/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


async def test_the_stream_sends_the_board_then_each_change(stub: EngineStub, store: Store) -> None:
    async with served(stub, store) as (_, client), streaming(client, 1) as events:
        first = await events.next_board()
        assert first["queues"][0]["waiting"] == 0
        stub.feed(CallArrived(TenantId(1), CallId("c1"), "+100"))
        changed = await events.next_board()
        assert [c["call_id"] for c in changed["queues"][0]["calls"]] == ["c1"]
        stub.feed(AgentPresenceChanged(TenantId(1), "101", Presence.AVAILABLE))
        ringing = await events.next_board()
        assert ringing["agents"][0]["state"] == "ringing"
        assert ringing["queues"][0]["calls"][0]["ringing"] == ["101"]


async def test_a_stream_sees_its_tenant_only(stub: EngineStub, store: Store) -> None:
    settings = ApiSettings.model_validate(
        {"port": free_port(), "tenant_tokens": {1: [T1_TOKEN], 2: [T2_TOKEN]}}
    )
    async with (
        served(stub, store, settings) as (_, client),
        streaming(client, 2, T2_TOKEN) as two,
        streaming(client, 1, T1_TOKEN) as one,
    ):
        await two.next_board()
        await one.next_board()
        stub.feed(CallArrived(TenantId(1), CallId("c1"), "+100"))
        stub.feed(CallArrived(TenantId(2), CallId("c2"), "+200"))
        seen_by_two = await two.next_board()
        assert seen_by_two["tenant"]["id"] == 2
        assert [c["call_id"] for q in seen_by_two["queues"] for c in q["calls"]] == ["c2"]
        seen_by_one = await one.next_board()
        assert [c["call_id"] for q in seen_by_one["queues"] for c in q["calls"]] == ["c1"]


async def test_open_streams_leave_room_for_requests(stub: EngineStub, store: Store) -> None:
    async with served(stub, store) as (_, client), AsyncExitStack() as streams:
        # More streams than requests are served at once: they must not take the places.
        opened = [
            await streams.enter_async_context(streaming(client, 1))
            for _ in range(API_CONCURRENCY + 1)
        ]
        for events in opened:
            await events.next_board()
        async with asyncio.timeout(WAIT_S):
            response = await client.get("/api/live/1")
        assert response.status_code == 200


async def test_streams_past_the_limit_are_refused_until_one_closes(
    stub: EngineStub, store: Store
) -> None:
    settings = ApiSettings(port=free_port(), max_streams=2)
    async with served(stub, store, settings) as (_, client):
        async with streaming(client, 1) as first, streaming(client, 1) as second:
            await first.next_board()
            await second.next_board()
            refused = await client.get("/api/live/1/stream")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert "api.max_streams" in refused.json()["detail"]
            # Plain requests are not streams: they are served.
            assert (await client.get("/api/live/1")).status_code == 200
        async with streaming(client, 1) as again:  # a place is free again
            await again.next_board()


async def test_streams_end_cleanly_when_the_server_stops(stub: EngineStub, store: Store) -> None:
    async with served(stub, store) as (server, client), streaming(client, 1) as events:
        await events.next_board()
        stopping = asyncio.create_task(server.stop())
        # Ended by the server, not cut when its graceful shutdown gives up on it.
        assert [line for line in await events.rest() if line] == []
        await stopping


async def test_a_stream_ends_when_its_tenants_shard_leaves_the_node(
    stub: EngineStub, store: Store
) -> None:
    async with served(stub, store) as (_, client), streaming(client, 1) as events:
        await events.next_board()
        # A cluster host that stops serving a tenant says the tenant changed.
        stub.served_elsewhere.add(TenantId(1))
        stub.live.changed([TenantId(1)])
        assert [line for line in await events.rest() if line] == []
        reconnected = await client.get("/api/live/1/stream")
        assert reconnected.status_code == 421
        assert "tenant 1 is served by another node" in reconnected.json()["detail"]


async def test_the_wallboard_page_needs_no_token_and_loads_from_the_daemon_only(
    stub: EngineStub, store: Store
) -> None:
    async with token_client(stub, store, None) as anonymous:
        assert (await anonymous.get("/api/live/1")).status_code == 401
        page = await anonymous.get("/wallboard")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        for asset, kind in (("wallboard.js", "text/javascript"), ("wallboard.css", "text/css")):
            answer = await anonymous.get(f"/wallboard/{asset}")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith(kind)
            assert f"/wallboard/{asset}" in page.text
        assert (await anonymous.get("/wallboard/index.html")).status_code == 404
        assert (await anonymous.get("/wallboard/..%2Fapp.py")).status_code == 404
