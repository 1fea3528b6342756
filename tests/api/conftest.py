from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ringmaster.store import Store

from .helpers import (
    ADMIN_TOKEN,
    T1_TOKEN,
    EngineStub,
    api_client,
    app_for,
    seeded_store,
    stub_for,
    token_client,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await seeded_store(tmp_path)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def stub(store: Store) -> EngineStub:
    return await stub_for(store)


@pytest.fixture
async def client(stub: EngineStub, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client (no token configured, as on loopback)."""
    async with api_client(app_for(stub, store)) as client:
        yield client


@pytest.fixture
async def admin(stub: EngineStub, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """A client with an admin token (tokens configured, as beyond loopback)."""
    async with token_client(stub, store, ADMIN_TOKEN) as client:
        yield client


@pytest.fixture
async def tenant1(stub: EngineStub, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """A client with tenant 1's token."""
    async with token_client(stub, store, T1_TOKEN) as client:
        yield client
