from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ringmaster.store import Store

from .helpers import EngineStub, api_client, app_for, seeded_store, stub_for


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
