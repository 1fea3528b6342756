"""Abuse limits: failed authentications per client address, and request body sizes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ringmaster.api import ApiServer, create_app
from ringmaster.api.auth import FailureLimiter, client_key
from ringmaster.daemon.broker import free_port
from ringmaster.settings import ApiSettings
from ringmaster.store import Store

from .helpers import ADMIN_TOKEN, T1_TOKEN, EngineStub


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def limited_settings(**values: Any) -> ApiSettings:
    return ApiSettings.model_validate(
        {"admin_tokens": [ADMIN_TOKEN], "tenant_tokens": {1: [T1_TOKEN]}, **values}
    )


@asynccontextmanager
async def client_at(
    app: FastAPI, address: str, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling from `address`."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client


# --- failed authentications ------------------------------------------------------------


def test_a_bucket_of_failures_per_address_refills_evenly() -> None:
    clock = Clock()
    limiter = FailureLimiter(per_minute=3, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("198.51.100.7") is None
        limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") == pytest.approx(20.0)
    assert limiter.retry_after("198.51.100.8") is None  # another address: its own bucket
    clock.now += 15
    assert limiter.retry_after("198.51.100.7") == pytest.approx(5.0)
    clock.now += 5
    assert limiter.retry_after("198.51.100.7") is None  # one failure refilled
    limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") == pytest.approx(20.0)
    clock.now += 60
    assert limiter.retry_after("198.51.100.7") is None
    assert limiter.tracked == 0  # a full bucket is forgotten


def test_the_failures_kept_are_bounded_however_many_addresses_fail() -> None:
    limiter = FailureLimiter(per_minute=1, clock=Clock(), max_addresses=100)
    addresses = [f"10.0.{n // 256}.{n % 256}" for n in range(1000)]
    for address in addresses:
        limiter.failed(address)
    assert limiter.tracked == 100
    # The least recently failed are forgotten first.
    assert limiter.retry_after(addresses[0]) is None
    assert limiter.retry_after(addresses[-100]) == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("192.0.2.1", "192.0.2.2", False),
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64: one holder
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:192.0.2.1", "192.0.2.1", True),
        ("testclient", "testclient", True),  # not an IP address: taken as it is
    ],
)
def test_a_client_address_is_an_ipv4_address_or_an_ipv6_slash_64(
    one: str, other: str, same: bool
) -> None:
    assert (client_key(one) == client_key(other)) is same


async def test_past_the_limit_an_address_gets_429_with_retry_after(
    stub: EngineStub, store: Store
) -> None:
    clock = Clock()
    app = create_app(stub, store, limited_settings(auth_failures_per_minute=3), monotonic=clock)
    async with (
        client_at(app, "198.51.100.7", "wrong") as guesser,
        client_at(app, "198.51.100.7", ADMIN_TOKEN) as neighbour,
        client_at(app, "203.0.113.5", T1_TOKEN) as elsewhere,
    ):
        assert [(await guesser.get("/api/queues")).status_code for _ in range(3)] == [401] * 3
        refused = await guesser.get("/api/queues")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "20"
        assert refused.json() == {
            "detail": "too many failed authentications from this address; retry in 20 s"
        }
        # Not even a valid token is tried from there, or guessing would go on.
        assert (await neighbour.get("/api/queues")).status_code == 429
        # Other addresses, and the schema, are unaffected.
        assert (await elsewhere.get("/api/queues")).status_code == 200
        assert (await guesser.get("/openapi.json")).status_code == 200
        clock.now += 20
        assert (await neighbour.get("/api/queues")).status_code == 200
        assert (await guesser.get("/api/queues")).status_code == 401
        assert (await neighbour.get("/api/queues")).status_code == 429


async def test_successful_requests_take_nothing_from_the_limit(
    stub: EngineStub, store: Store
) -> None:
    app = create_app(stub, store, limited_settings(auth_failures_per_minute=2), monotonic=Clock())
    async with (
        client_at(app, "198.51.100.7", ADMIN_TOKEN) as admin,
        client_at(app, "198.51.100.7") as tokenless,
    ):
        for _ in range(20):
            assert (await admin.get("/api/tenants")).status_code == 200
        assert [(await tokenless.get("/api/queues")).status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]


async def test_an_open_api_on_loopback_has_no_failures_to_count(
    stub: EngineStub, store: Store
) -> None:
    app = create_app(stub, store, ApiSettings(auth_failures_per_minute=1), monotonic=Clock())
    async with client_at(app, "127.0.0.1", "anything") as local:
        for _ in range(3):
            assert (await local.get("/api/queues")).status_code == 200


# --- request bodies ----------------------------------------------------------------------


def body_of(size: int) -> bytes:
    """A tenant as JSON, padded with spaces to `size` bytes."""
    body = json.dumps({"name": "Padded"}).encode()
    return body + b" " * (size - len(body))


async def chunks(body: bytes, size: int = 300) -> AsyncIterator[bytes]:
    """`body` streamed: sent chunked, without Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@asynccontextmanager
async def served(
    stub: EngineStub, store: Store, settings: ApiSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """The API behind a real uvicorn server on `settings.port`, and a client of it."""
    server = ApiServer(create_app(stub, store, settings), settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            yield client
    finally:
        await server.stop()


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_body_past_the_limit_is_413_and_changes_nothing(
    stub: EngineStub, store: Store, streamed: bool
) -> None:
    app = create_app(stub, store, ApiSettings(max_body_bytes=1024))
    headers = {"Content-Type": "application/json"}
    async with client_at(app, "127.0.0.1") as client:
        body = body_of(1025)
        # Streamed: no Content-Length, the body counted as it arrives.
        content: bytes | AsyncIterator[bytes] = chunks(body) if streamed else body
        response = await client.post("/api/tenants", content=content, headers=headers)
        assert response.status_code == 413
        assert response.json() == {"detail": "the request body is larger than 1024 bytes"}
        assert (await client.get("/api/tenants")).json()["total"] == 2
        assert stub.applied == []
        at_limit = chunks(body_of(1024)) if streamed else body_of(1024)
        created = await client.post("/api/tenants", content=at_limit, headers=headers)
        assert created.status_code == 201, created.text


async def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_read(
    stub: EngineStub, store: Store
) -> None:
    app = create_app(stub, store, ApiSettings(max_body_bytes=1024))
    received: list[str] = []
    responses: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        responses.append(message)

    async def receive() -> dict[str, Any]:
        received.append("read")
        return {"type": "http.request", "body": b"x" * 2048, "more_body": False}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/tenants",
        "raw_path": b"/api/tenants",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", b"2048"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 40000),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    assert responses[0]["status"] == 413
    assert received == []  # refused on the header alone


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_real_server_answers_an_oversized_body_413(
    stub: EngineStub, store: Store, streamed: bool
) -> None:
    # Through uvicorn's HTTP/1.1: the client, still sending, must get the 413, not a
    # reset, and the server go on serving.
    settings = ApiSettings(port=free_port(), max_body_bytes=1024)
    async with served(stub, store, settings) as client:
        body = body_of(256 * 1024)
        response = await client.post(
            "/api/tenants",
            content=chunks(body) if streamed else body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        again = await client.get("/api/tenants")
        assert again.json()["total"] == 2


async def test_a_forwarded_for_header_does_not_choose_the_address_counted(
    stub: EngineStub, store: Store
) -> None:
    # Anyone on the host reaches the API from 127.0.0.1, where uvicorn would by
    # default believe X-Forwarded-For: each guess could then claim a new address.
    settings = limited_settings(port=free_port(), auth_failures_per_minute=1)
    async with served(stub, store, settings) as client:
        statuses = [
            (
                await client.get("/api/queues", headers={"X-Forwarded-For": f"192.0.2.{n}"})
            ).status_code
            for n in range(1, 4)
        ]
    assert statuses == [401, 429, 429]
