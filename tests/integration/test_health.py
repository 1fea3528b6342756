"""``/healthz`` and ``/readyz`` of a daemon on a real mosquitto that comes and goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from ringmaster.daemon.broker import MosquittoProcess, free_port, start_mosquitto
from ringmaster.daemon.service import Service
from ringmaster.settings import load_settings

from .pbx import WAIT_S, new_store

pytestmark = pytest.mark.integration


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait, bounded, until `condition` holds (a condition, not a timing assertion)."""
    async with asyncio.timeout(WAIT_S):
        while not await condition():  # noqa: ASYNC110 (polls state that has no event)
            await asyncio.sleep(0.02)


@asynccontextmanager
async def own_broker(tmp_path: Path) -> AsyncIterator[MosquittoProcess]:
    """A broker of this test's own, to stop and start: the session's is shared."""
    broker = await asyncio.to_thread(start_mosquitto, tmp_path / "broker")
    try:
        yield broker
    finally:
        await asyncio.to_thread(broker.close)


def service_on(broker: MosquittoProcess, prefix: str, db: Path, api_port: int) -> Service:
    settings = load_settings(
        None,
        mqtt={"url": broker.url, "topic_prefix": prefix, "client_id": f"ringmaster-{prefix}"},
        database={"path": db},
        api={"enabled": True, "port": api_port},
    )
    return Service(settings)


async def readiness(api: httpx.AsyncClient) -> tuple[int, list[str]]:
    response = await api.get("/readyz")
    return response.status_code, response.json()["reasons"]


async def test_readyz_is_503_while_the_broker_is_down_and_200_once_it_is_back(
    tmp_path: Path,
) -> None:
    prefix, db = await new_store(tmp_path, "ringall")
    port = free_port()
    async with own_broker(tmp_path) as broker:
        service = service_on(broker, prefix, db, port)
        task = asyncio.create_task(service.run())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
                async with asyncio.timeout(WAIT_S):
                    await service.ready.wait()
                assert await readiness(api) == (200, [])
                assert (await api.get("/healthz")).json() == {"status": "ok"}

                await asyncio.to_thread(broker.stop)
                await until(lambda: _status_is(api, 503))
                assert await readiness(api) == (503, ["mqtt: not connected"])
                # The loop still turns: alive, only not ready.
                assert (await api.get("/healthz")).status_code == 200

                await asyncio.to_thread(broker.start)
                await until(lambda: _status_is(api, 200))
                assert await readiness(api) == (200, [])
        finally:
            service.stop()
            async with asyncio.timeout(WAIT_S):
                await task


async def test_before_the_first_connection_the_daemon_is_not_ready(tmp_path: Path) -> None:
    prefix, db = await new_store(tmp_path, "ringall")
    port = free_port()
    async with own_broker(tmp_path) as broker:
        await asyncio.to_thread(broker.stop)
        service = service_on(broker, prefix, db, port)
        task = asyncio.create_task(service.run())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
                # Loaded, but no broker to subscribe to: the API is not even
                # listening yet (a probe's connection is refused: not ready).
                await until(lambda: _reasons_are(service, ["mqtt: not connected"]))
                with pytest.raises(httpx.ConnectError):
                    await api.get("/readyz")

                await asyncio.to_thread(broker.start)
                async with asyncio.timeout(WAIT_S):
                    await service.ready.wait()
                assert await readiness(api) == (200, [])
        finally:
            service.stop()
            async with asyncio.timeout(WAIT_S):
                await task
    assert service.not_ready() == ["mqtt: not connected", "stopping"]


async def _status_is(api: httpx.AsyncClient, code: int) -> bool:
    return (await api.get("/readyz")).status_code == code


async def _reasons_are(service: Service, reasons: list[str]) -> bool:
    return service.not_ready() == reasons
