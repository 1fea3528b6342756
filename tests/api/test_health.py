"""``/healthz`` and ``/readyz``: what probes get, with and without tokens configured."""

from __future__ import annotations

import httpx
import pytest

from ringmaster.store import Store

from .helpers import ADMIN_TOKEN, EngineStub, token_client


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_daemon_is_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "reasons": []}


async def test_readyz_answers_503_with_every_reason(
    client: httpx.AsyncClient, stub: EngineStub
) -> None:
    stub.reasons = ["mqtt: not connected", "stopping"]
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "reasons": ["mqtt: not connected", "stopping"],
    }
    stub.reasons = []
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.parametrize("token", [None, "wrong", ADMIN_TOKEN])
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_need_no_token_and_ignore_one(
    stub: EngineStub, store: Store, path: str, token: str | None
) -> None:
    # Tokens configured, as beyond loopback: a probe still gets its answer, and a
    # wrong token is neither refused nor counted as a failed authentication.
    async with token_client(stub, store, token) as client:
        for _ in range(15):  # past the default limit on failed authentications
            response = await client.get(path)
            assert response.status_code == 200, response.text
        assert (await client.get("/api/queues")).status_code == (
            200 if token == ADMIN_TOKEN else 401
        )


async def test_the_probes_are_in_the_schema_with_their_answers(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    for path in ("/healthz", "/readyz"):
        assert "security" not in paths[path]["get"]
