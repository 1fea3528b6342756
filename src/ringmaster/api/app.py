"""The admin API application, and the uvicorn server that runs it inside the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringmaster import __version__
from ringmaster.api import (
    audit,
    calls,
    cluster,
    did_routes,
    extensions,
    health,
    live,
    provisioning,
    queue_log,
    queues,
    reports,
    supervisor,
    tenants,
)
from ringmaster.api.auth import Authenticator
from ringmaster.api.context import ApiContext, EngineHost, misdirected
from ringmaster.api.metrics import router as metrics_router
from ringmaster.api.schemas import Error
from ringmaster.api.served import NotServedHere
from ringmaster.settings import ApiSettings, ClusterSettings
from ringmaster.store import Store

_log = structlog.get_logger("ringmaster.api")

_DESCRIPTION = """\
Manage tenants, extensions, queues, queue agents and DID routes, and watch queues live.

Every change is stored with its audit record (`GET /api/audit`), then applied to the
running engine: it takes effect on the next call, without a restart. Authenticate with
`Authorization: Bearer <token>` (an admin token, or a tenant token that sees its own
tenant only). See `docs/api.md`.
"""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "The body cannot be decoded (say, not UTF-8)"},
    401: {"model": Error, "description": "Missing or unknown bearer token"},
    404: {"model": Error, "description": "No such resource (or another tenant's)"},
    409: {"model": Error, "description": "Conflicts with the stored configuration"},
    413: {"model": Error, "description": "The body is larger than `api.max_body_bytes`"},
    429: {
        "model": Error,
        "description": "Too many failed authentications from this address (see Retry-After)",
    },
}
#: What needs a tenant's live engine: on a cluster node, only the holder of its shard has it.
_LIVE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    421: {
        "model": Error,
        "description": "Another node of the cluster serves the tenant (see `GET /api/cluster`)",
    },
}


def create_app(
    host: EngineHost,
    store: Store,
    settings: ApiSettings,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    metrics: CollectorRegistry | None = None,
    cluster_settings: ClusterSettings | None = None,
) -> FastAPI:
    """Build the admin API.

    Args:
        host: The running service (its engines, `apply` and `act`).
        store: The open store, shared with the service.
        settings: The API settings (tokens, abuse limits).
        clock: Wall-clock time, for the live views' waiting times and the audit trail.
        monotonic: Monotonic time, for the limit on failed authentications.
        metrics: The daemon's Prometheus registry, served on ``/metrics`` (admin
            only); None serves no ``/metrics``.
        cluster_settings: The daemon's ``[cluster]`` settings, for ``/api/cluster``;
            None is no cluster (``shards = 0``).

    Returns:
        The FastAPI application; OpenAPI at ``/openapi.json``, docs at ``/docs``.
    """
    app = FastAPI(
        title="Ringmaster admin API",
        version=__version__,
        description=_DESCRIPTION,
        docs_url=None,  # FastAPI's own pages load their scripts from a CDN: see _include_docs
        redoc_url=None,
    )
    app.state.context = ApiContext(host=host, store=store, clock=clock)
    app.state.authenticator = Authenticator(settings, clock=monotonic)
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    app.add_exception_handler(NotServedHere, _not_served_here)
    app.include_router(
        tenants.router,
        responses={**_ERRORS, 403: {"model": Error, "description": "Needs an admin token"}},
    )
    for module in (extensions, did_routes, calls):
        app.include_router(module.router, responses=_ERRORS)
    for module in (queues, supervisor):
        app.include_router(module.router, responses=_LIVE_ERRORS)
    app.include_router(audit.router, responses={code: _ERRORS[code] for code in (401, 429)})
    app.include_router(queue_log.router, responses={code: _ERRORS[code] for code in (401, 429)})
    app.include_router(reports.router, responses=_ERRORS)
    app.include_router(
        provisioning.router, responses={code: _ERRORS[code] for code in (401, 413, 429)}
    )
    app.state.reports = settings.reports
    app.state.cluster = cluster_settings if cluster_settings is not None else ClusterSettings()
    app.include_router(
        cluster.router,
        responses={
            **{code: _ERRORS[code] for code in (401, 429)},
            403: {"model": Error, "description": "Needs an admin token"},
        },
    )
    app.include_router(live.router, responses=_LIVE_ERRORS)
    app.include_router(live.page_router)
    app.state.today = live.TodayFigures(settings.reports)
    _include_probes(app)
    _include_metrics(app, metrics)
    _include_docs(app)
    return app


async def _not_served_here(request: Request, error: Exception) -> Response:
    """A host's `NotServedHere` (the shard moved during the request): the same 421."""
    assert isinstance(error, NotServedHere), error
    return await http_exception_handler(request, misdirected(error.tenant_id))


#: Where Swagger UI's and ReDoc's files are served from, out of the package
#: (``api/static/docs``, see its README: which versions, and how to refresh them).
DOCS_ASSETS = "/static/docs"
#: The pages may load nothing from another host. ReDoc's side menu draws Redocly's
#: logo from their CDN whatever its options say: refused here, the image hides itself.
#: Inline script and style: Swagger UI's start-up script and both pages' styles.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self' data:; connect-src 'self';"
    " worker-src 'self' blob:; frame-ancestors 'self'"
)


def _include_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc``, whose files the daemon serves itself.

    As FastAPI's own pages, without a token (the schema at ``/openapi.json`` needs
    none either), but nothing is fetched from another host: the API's documentation
    reads the same on a machine without internet.
    """
    app.mount(
        DOCS_ASSETS,
        StaticFiles(packages=[("ringmaster.api", "static/docs")]),
        name="docs-assets",
    )
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/swagger-ui/favicon-32x32.png",
            # Swagger UI would send the schema to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page


def _include_probes(app: FastAPI) -> None:
    """``/healthz`` and ``/readyz``, without a token (see `ringmaster.api.health`)."""
    app.include_router(health.router)


def _include_metrics(app: FastAPI, registry: CollectorRegistry | None) -> None:
    if registry is not None:
        app.state.metrics = registry
        app.include_router(metrics_router, responses={code: _ERRORS[code] for code in (401, 429)})


#: Requests handled at once; the others wait their turn, idle. A request's steps
#: share the event loop with the daemon's turns: with 50 requests in progress,
#: each await of a turn waited behind the next step of all 50 (tenants' calls
#: went from 50 ms to 700 ms arrival->ring p99 during 1,000 requests, 50 at a time).
API_CONCURRENCY = 4


class _Bounded:
    """ASGI middleware: at most `limit` HTTP requests inside the app at once.

    Live streams are not counted: each lasts as long as its wallboard is open, and
    spends its time waiting for the next change. They have a limit of their own,
    `streams`, past which one more is answered 503: each holds a connection and
    builds a board on every change of its tenant.
    """

    def __init__(self, app: ASGIApp, limit: int, streams: int) -> None:
        self._app = app
        self._free = asyncio.Semaphore(limit)
        self._streams = streams
        self._open_streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
        elif live.stream_path(scope["path"]):
            await self._stream(scope, receive, send)
        else:
            async with self._free:
                await self._app(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._open_streams >= self._streams:
            await _answer(
                send,
                503,
                f"too many live streams open ({self._streams}): close a wallboard, or raise"
                " api.max_streams",
                [(b"retry-after", b"5")],
            )
            return
        self._open_streams += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._open_streams -= 1


async def _answer(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `status` with ``{"detail": detail}``, outside the app (a middleware's refusal)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyLimit:
    """ASGI middleware: a request body past `limit` bytes is answered 413.

    A declared Content-Length past it is refused before the body is read; a body
    without one (chunked) is counted as it arrives, and once past the limit the app
    sees the client gone and the 413 is what the client gets. The connection is not
    closed: uvicorn reads and discards the rest of the body, as closing a socket
    with unread data resets it, and a client still sending would see the reset,
    not the 413.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        # The server has already refused a Content-Length that is not a number.
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            await self._refuse(send)
            return
        received = 0
        refused = False
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > self._limit:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app makes of it, it is not
            started = True
            await send(message)

        await self._app(scope, counted, guarded)

    async def _refuse(self, send: Send) -> None:
        await _answer(send, 413, f"the request body is larger than {self._limit} bytes")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The service owns SIGTERM and SIGINT (Service.stop), and stops this server
        # itself; uvicorn taking them over would stop the API but not the daemon.
        yield


class ApiServer:
    """Uvicorn serving an app as a task of the running event loop.

    Args:
        app: The ASGI application.
        settings: Where to listen.
    """

    def __init__(self, app: FastAPI, settings: ApiSettings) -> None:
        self._settings = settings
        self._app = app
        config = uvicorn.Config(
            _Bounded(app, API_CONCURRENCY, settings.max_streams),
            log_config=None,  # uvicorn's loggers propagate to the root: structlog's handler
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
            # The client address is the TCP peer's: the failed-authentication limit
            # counts per address, and on loopback anyone on the host could forge
            # X-Forwarded-For, which uvicorn believes from 127.0.0.1 by default.
            proxy_headers=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The port listened on (useful with port 0)."""
        assert self._socket is not None, "start() first"
        port: int = self._socket.getsockname()[1]
        return port

    async def start(self) -> None:
        """Listen and serve in a task; returns once the socket accepts connections.

        Raises:
            OSError: The address cannot be bound (say, the port is taken).
        """
        # Bound here rather than by uvicorn, which answers a bind error with sys.exit().
        host, port = self._settings.host, self._settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(self._server.config.backlog)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="api")
        _log.info("api.listening", host=host, port=self.port)

    async def stop(self) -> None:
        """Finish the requests in flight (5 s at most) and stop. Safe to call twice."""
        if self._task is None:
            return
        task, self._task = self._task, None
        # Live streams end now, rather than hold the graceful shutdown to its timeout.
        context: ApiContext = self._app.state.context
        context.host.live.close()
        self._server.should_exit = True
        await task
        if self._socket is not None:
            self._socket.close()
