"""``/api/queues/{id}/agents``: since when each agent is in its state, from the agent history."""

from __future__ import annotations

import httpx

from ringmaster.engine import events as ev
from ringmaster.engine.model import Presence, TenantId
from ringmaster.engine.records import StateChanges
from ringmaster.history import HistoryRecorder
from ringmaster.store import Store

from .helpers import NOW, T1_QUEUE, EngineStub, created

T1 = TenantId(1)


async def turn(store: Store, stub: EngineStub, recorder: HistoryRecorder, event: ev.Event) -> None:
    """`event` handled at the stub's time and its history committed, as the service does."""
    commands = stub.engine.handle(event, stub.now)
    stub.engine.take_changes()
    await store.commit(StateChanges(), [], None, recorder.record(event, commands, stub.now))


async def since_by_number(client: httpx.AsyncClient) -> dict[str, tuple[str, str | None]]:
    response = await client.get(f"/api/queues/{T1_QUEUE}/agents")
    assert response.status_code == 200
    return {a["number"]: (a["status"], a["state_since"]) for a in response.json()}


async def test_state_since_is_the_time_of_the_recorded_change_to_the_live_state(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    await created(client, f"/api/queues/{T1_QUEUE}/agents", {"extension_id": 2})
    recorder = HistoryRecorder()
    stub.now = NOW + 5
    await turn(store, stub, recorder, ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    stub.now = NOW + 65
    await turn(store, stub, recorder, ev.AgentPresenceChanged(T1, "101", Presence.PAUSED))

    assert await since_by_number(client) == {
        "101": ("paused", "1970-01-12T13:47:45Z"),
        "102": ("logged_out", None),  # never changed: the history does not say since when
    }


async def test_state_since_is_null_when_the_last_recorded_state_is_not_the_live_one(
    client: httpx.AsyncClient, stub: EngineStub, store: Store
) -> None:
    recorder = HistoryRecorder()
    await turn(store, stub, recorder, ev.AgentPresenceChanged(T1, "101", Presence.AVAILABLE))
    assert await since_by_number(client) == {"101": ("available", "1970-01-12T13:46:40Z")}
    # A change the history did not record (as if its rows were pruned since).
    stub.feed(ev.AgentPresenceChanged(T1, "101", Presence.PAUSED))
    assert await since_by_number(client) == {"101": ("paused", None)}
