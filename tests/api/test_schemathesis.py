"""Property-based: Schemathesis throws schema-derived requests at every operation.

No request may get a 5xx, and every response must match the OpenAPI schema
(documented status code, content type and body). Bounded so the whole run stays
well under a minute.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.case import Case

from ringmaster.store import Store

from .helpers import app_for, seeded_store, stub_for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class LazyApp:
    """The admin API over a seeded store, built on the first request.

    Schemathesis loads the schema at import time (before any fixture) and runs the
    app on its own event-loop thread; the store (aiosqlite: one thread, a future
    per call) and the engine are tied to no loop, and requests come one at a time.
    (`schemathesis.pytest.from_fixture` would be tidier, but fails under pytest 9.)
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="ringmaster-schemathesis-")
        self._app: FastAPI | None = None
        self.store: Store | None = None

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return  # no lifespan: returning at once tells the server so
        if self._app is None:
            self.store = await seeded_store(Path(self._folder.name))
            self._app = app_for(await stub_for(self.store), self.store)
        await self._app(scope, receive, send)

    def close(self) -> None:
        if self.store is not None:
            asyncio.run(self.store.close())
        self._folder.cleanup()


APP = LazyApp()
# `POST /api/provision` takes a file as TOML: random text, sent as plain text is.
schemathesis.serializer.alias("application/toml", "text/plain")
# A live stream never ends by itself: a client reads it as long as it watches
# (tests/api/test_live.py reads it through a real server).
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(
    path="/api/live/{tenant_id}/stream"
)


@pytest.fixture(scope="module", autouse=True)
def _close_app() -> Iterator[None]:
    yield
    APP.close()


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases on every run: CI failures reproduce locally
)
def test_api_conforms_to_its_schema(case: Case[Any]) -> None:
    case.call_and_validate(
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ]
    )
