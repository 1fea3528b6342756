"""An admin API over a real SQLite store and a real engine, without MQTT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from ringmaster.api import create_app
from ringmaster.api.feed import LiveFeed
from ringmaster.api.provisioning import provision
from ringmaster.api.served import NotServedHere
from ringmaster.engine.commands import Command
from ringmaster.engine.core import Engine
from ringmaster.engine.events import ConfigEvent, Event, SupervisorEvent
from ringmaster.engine.model import TenantId
from ringmaster.settings import ApiSettings
from ringmaster.store import Store

NOW = 1_000_000.0

SEED = """
[[tenant]]
id = 1
name = "One"

[[tenant]]
id = 2
name = "Two"

[[extension]]
tenant_id = 1
number = "101"
name = "Alice"

[[extension]]
tenant_id = 1
number = "102"
name = "Bob"

[[extension]]
tenant_id = 2
number = "201"
name = "Zed"

[[queue]]
tenant_id = 1
queue_number = "600"
name = "Sales"
strategy = "ringall"
timeout = 15
agents = ["101"]

[[queue]]
tenant_id = 2
queue_number = "600"
name = "Other sales"
strategy = "ringall"
timeout = 15
agents = ["201"]

[[did_route]]
tenant_id = 1
did = "+100"
queue = "600"

[[did_route]]
tenant_id = 2
did = "+200"
queue = "600"
"""
# Ids, as provisioning assigns them in file order.
T1_EXT_101, T1_EXT_102, T2_EXT_201 = 1, 2, 3
T1_QUEUE, T2_QUEUE = 1, 2
T1_ROUTE, T2_ROUTE = 1, 2

#: A queue body with the six documented fields.
QUEUE: dict[str, Any] = {
    "tenant_id": 1,
    "name": "Support",
    "queue_number": "700",
    "strategy": "ringall",
    "timeout": 20,
    "status": "active",
}

#: What a queue read shows for options never set: the engine's defaults.
QUEUE_OPTION_DEFAULTS: dict[str, Any] = {
    "retry": 5,
    "wrapup_time": 0,
    "max_len": 0,
    "max_wait": 0,
    "overflow": {"type": "hangup"},
    "join_empty": [],
    "leave_when_empty": [],
    "weight": 0,
    "service_level": 20,
    "announce_frequency": 0,
    "ring_progressive_delay": 10,
    "penalty_rules": [],
    "skill_rules": [],
    "ring_in_use": False,
}
#: And an enrolment's (its position aside).
AGENT_OPTION_DEFAULTS: dict[str, Any] = {
    "penalty": 0,
    "wrapup_time": None,
    "max_no_answer": 0,
    "busy_delay": 0,
    "reject_delay": 0,
    "no_answer_delay": 0,
}


def agent_out(
    extension_id: int, number: str, name: str, position: int, **options: Any
) -> dict[str, Any]:
    """An agent as a queue read shows it: the extension, then its enrolment options."""
    return {
        "id": extension_id,
        "number": number,
        "name": name,
        **AGENT_OPTION_DEFAULTS,
        "position": position,
        **options,
    }


ADMIN_TOKEN = "admin-secret"
T1_TOKEN = "tenant-1-secret"
T2_TOKEN = "tenant-2-secret"


class EngineStub:
    """Stands in for the Service: applies configuration events to a real engine at once.

    Or for a cluster node: the tenants in `served_elsewhere` are another node's shards,
    whose live engine this host does not have.
    """

    def __init__(self) -> None:
        self.engine = Engine()
        self.applied: list[ConfigEvent] = []
        self.now = NOW
        #: What `/readyz` answers: why the daemon would not be ready.
        self.reasons: list[str] = []
        self.live = LiveFeed()
        #: Supervisors' requests and the engine's commands for each.
        self.acted: list[tuple[SupervisorEvent, list[Command]]] = []
        #: Events the engine takes before the next request (a race with the PBX).
        self.before_act: list[Event] = []
        #: Tenants whose shard another node holds.
        self.served_elsewhere: set[TenantId] = set()
        #: Tenants whose shard this node loses before the next request's turn.
        self.lost_before_act: set[TenantId] = set()

    def engine_for(self, tenant_id: TenantId) -> Engine | None:
        return None if tenant_id in self.served_elsewhere else self.engine

    def not_ready(self) -> list[str]:
        return list(self.reasons)

    def feed(self, event: Event) -> None:
        commands = self.engine.handle(event, self.now)
        self.engine.take_changes()
        tenant_id = getattr(event, "tenant_id", None)
        self.live.changed(
            {t for c in commands if (t := getattr(c, "tenant_id", None)) is not None}
            | ({tenant_id} if tenant_id is not None else set())
        )

    async def apply(self, events: list[ConfigEvent]) -> None:
        for event in events:
            self.feed(event)
        self.applied += events
        self.live.changed_all()

    async def act(self, event: SupervisorEvent) -> list[Command]:
        # What the PBX said while the request waited for its turn, first.
        for meanwhile in self.before_act:
            self.feed(meanwhile)
        self.before_act.clear()
        self.served_elsewhere |= self.lost_before_act
        self.lost_before_act.clear()
        if event.tenant_id in self.served_elsewhere:
            raise NotServedHere(event.tenant_id)
        commands = self.engine.handle(event, self.now)
        self.engine.take_changes()
        self.acted.append((event, commands))
        self.live.changed([event.tenant_id])
        return commands


async def seeded_store(tmp_path: Path, seed: str = SEED) -> Store:
    config = tmp_path / "seed.toml"
    config.write_text(seed)
    store = await Store.open(tmp_path / "api.sqlite3")
    await provision(config, store, clock=lambda: NOW)
    return store


async def stub_for(store: Store) -> EngineStub:
    stub = EngineStub()
    for event in await store.load_config():
        stub.feed(event)
    return stub


def token_settings() -> ApiSettings:
    return ApiSettings.model_validate(
        {"admin_tokens": [ADMIN_TOKEN], "tenant_tokens": {1: [T1_TOKEN], 2: [T2_TOKEN]}}
    )


@asynccontextmanager
async def api_client(app: FastAPI, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client


def token_client(
    stub: EngineStub, store: Store, token: str | None
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client sending `token`, of an API with the test tokens configured."""
    return api_client(app_for(stub, store, token_settings()), token)


def app_for(stub: EngineStub, store: Store, settings: ApiSettings | None = None) -> FastAPI:
    return create_app(stub, store, settings or ApiSettings(), clock=lambda: stub.now)


async def created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body`, expect 201, return the resource."""
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def error_fields(body: dict[str, Any]) -> list[tuple[str, ...]]:
    """The locations of a 422 body's errors."""
    return [tuple(str(p) for p in e["loc"]) for e in body["detail"]]


def invalid_fields(response: httpx.Response) -> list[tuple[str, ...]]:
    """The locations of the errors of `response`, which must be a 422."""
    assert response.status_code == 422, response.text
    return error_fields(response.json())
