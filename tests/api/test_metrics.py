"""``GET /metrics``: the text format, for an admin only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from ringmaster.api import create_app
from ringmaster.daemon.metrics import DaemonMetrics
from ringmaster.settings import ApiSettings
from ringmaster.store import Store

from .helpers import ADMIN_TOKEN, T1_TOKEN, EngineStub, api_client, app_for, token_settings


@asynccontextmanager
async def scraper(
    stub: EngineStub, store: Store, token: str | None, settings: ApiSettings | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    metrics = DaemonMetrics(stub.engine, clock=lambda: stub.now)
    app = create_app(
        stub,
        store,
        settings or token_settings(),
        clock=lambda: stub.now,
        metrics=metrics.registry,
    )
    async with api_client(app, token) as client:
        yield client


async def test_an_admin_scrapes_every_tenants_queues(stub: EngineStub, store: Store) -> None:
    async with scraper(stub, store, ADMIN_TOKEN) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert 'ringmaster_queue_calls_waiting{queue="1",tenant="1"} 0.0' in response.text
    assert 'ringmaster_queue_calls_waiting{queue="2",tenant="2"} 0.0' in response.text
    assert "ringmaster_mqtt_connected 0.0" in response.text


async def test_without_tokens_on_loopback_anyone_scrapes(stub: EngineStub, store: Store) -> None:
    async with scraper(stub, store, None, ApiSettings()) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("token", "code"), [(T1_TOKEN, 403), ("wrong", 401), (None, 401)])
async def test_a_tenant_token_or_none_is_refused(
    stub: EngineStub, store: Store, token: str | None, code: int
) -> None:
    async with scraper(stub, store, token) as client:
        response = await client.get("/metrics")
    assert response.status_code == code, response.text
    assert "ringmaster_" not in response.text


async def test_an_api_without_a_registry_serves_no_metrics(stub: EngineStub, store: Store) -> None:
    async with api_client(app_for(stub, store)) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404
