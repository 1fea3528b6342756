"""``/api/live``: a tenant's board (its queues, agents and waiting calls) and its live stream.

The board is what the wallboard (``/wallboard``) shows: each queue's figures now
(as its snapshot), today's from the interval report (as ``ringmaster status``
computes them: the tenant's local day), its waiting calls, and every agent of the
tenant with its state and since when. The stream sends it whole as a Server-Sent
Event on connect and after every change of the tenant, coalesced (`MIN_INTERVAL_S`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, StreamingResponse

from ringmaster.api.auth import Caller, Principal
from ringmaster.api.context import ApiContext, Context, tenant_for
from ringmaster.api.queues import live_agents, waiting_calls
from ringmaster.api.reports import DEFAULT_SERVICE_LEVEL
from ringmaster.api.schemas import (
    MAX_PAGE,
    BoardAgentOut,
    BoardOut,
    BoardQueueOut,
    BoardTenantOut,
    BoardTodayOut,
    PathId,
)
from ringmaster.engine.core import Engine
from ringmaster.engine.model import (
    AgentStatus,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    QueueId,
    Tenant,
)
from ringmaster.settings import ReportSettings
from ringmaster.store.reports import QueueFigures, interval_bounds

router = APIRouter(prefix="/api/live", tags=["live"])
page_router = APIRouter(include_in_schema=False)

#: At most one board per stream this often: a busy tenant's changes are sent
#: together, none of them later than this.
MIN_INTERVAL_S = 0.25
#: A comment this often on a quiet stream, so that proxies and the browser keep it open.
KEEPALIVE_S = 15.0
#: How long a tenant's figures of the day are reused: a report per change of a
#: busy tenant would cost more than the rest of the board.
TODAY_TTL_S = 3.0

_PAGE_FILES = Path(__file__).parent / "wallboard"
_PAGE_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "wallboard.css": "text/css; charset=utf-8",
    "wallboard.js": "text/javascript; charset=utf-8",
}
#: The page talks to its own origin only: nothing it loads or calls leaves the daemon.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class _Day:
    fetched: float  # monotonic
    day: date
    figures: dict[QueueId, QueueFigures]


class TodayFigures:
    """Each tenant's queue figures of its local day, read at most every `TODAY_TTL_S`."""

    def __init__(self, settings: ReportSettings) -> None:
        self._settings = settings
        self._days: dict[int, _Day] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def refresh_at(self, tenant_id: int, asked: float) -> float | None:
        """When to read the board again for today's figures, if they may miss a change.

        Args:
            tenant_id: The tenant.
            asked: When (monotonic) the board was asked for: figures read before it
                may not count the change that asked for it.

        Returns:
            When the figures kept are due for a new read (monotonic), or None if they
            were read since `asked`.
        """
        cached = self._days.get(tenant_id)
        if cached is None or cached.fetched >= asked:
            return None
        return cached.fetched + TODAY_TTL_S

    async def of(
        self, context: ApiContext, tenant: Tenant, now: float
    ) -> tuple[date, dict[QueueId, QueueFigures]]:
        """The tenant's local day at `now`, and its queues' figures of it (by queue id)."""
        zone = ZoneInfo(tenant.timezone)
        day = datetime.fromtimestamp(now, zone).date()
        lock = self._locks.setdefault(tenant.tenant_id, asyncio.Lock())
        async with lock:  # streams of one tenant share one report
            cached = self._days.get(tenant.tenant_id)
            if (
                cached is not None
                and cached.day == day
                and time.monotonic() - cached.fetched < TODAY_TTL_S
            ):
                return day, cached.figures
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            after = day + timedelta(days=1)
            end = datetime(after.year, after.month, after.day, tzinfo=zone)
            bounds = interval_bounds(start.timestamp(), end.timestamp(), zone, "1d")
            async with context.store.reports() as reader:
                figures = await reader.queues(
                    tenant.tenant_id,
                    bounds,
                    short_abandon_s=self._settings.short_abandon_s,
                    default_service_level=DEFAULT_SERVICE_LEVEL,
                )
            by_queue = {f.queue_id: f for f in figures}  # a queue without a call is not there
            self._days[tenant.tenant_id] = _Day(time.monotonic(), day, by_queue)
            return day, by_queue


def _today(day: date, figures: QueueFigures | None) -> BoardTodayOut:
    if figures is None:  # no call today: not in the report
        return BoardTodayOut(
            day=day, offered=0, answered=0, abandoned=0, answered_within=0, service_level_pct=None
        )
    pct = figures.service_level_pct
    return BoardTodayOut(
        day=day,
        offered=figures.offered,
        answered=figures.answered,
        abandoned=figures.abandoned,
        answered_within=figures.answered_within,
        service_level_pct=None if pct is None else round(pct, 2),
    )


async def read_board(
    context: ApiContext, caller: Principal, tenant_id: int, today: TodayFigures
) -> BoardOut:
    """The tenant's board now; a 404 when the caller does not see the tenant.

    A 421 on a cluster node that does not serve the tenant (`ApiContext.engine_for`).

    Args:
        context: The API's context.
        caller: Who asks.
        tenant_id: The tenant.
        today: Where today's figures are read (and briefly kept).
    """
    async with context.read() as tx:
        tenant = await tenant_for(tx, caller, tenant_id, field_name=None)
        queues = (await tx.queues(tenant.tenant_id, limit=MAX_PAGE)).items
        enrolled = {q.queue_id: await tx.enrolments(q.queue_id) for q in queues}
    engine = context.engine_for(tenant.tenant_id)
    now = context.clock()
    day, figures = await today.of(context, tenant, now)
    board_queues: list[BoardQueueOut] = []
    for queue in queues:
        if engine.queue(queue.queue_id) is None:  # stored, not yet applied
            continue
        snapshot = engine.snapshot(queue.queue_id, now)
        board_queues.append(
            BoardQueueOut(
                id=queue.queue_id,
                name=queue.name,
                number=queue.queue_number,
                status=queue.status.value,
                waiting=snapshot.waiting,
                longest_wait_s=snapshot.longest_wait_s,
                service_level_s=snapshot.service_level_s,
                today=_today(day, figures.get(queue.queue_id)),
                agents=snapshot.agents,
                calls=waiting_calls(engine, queue.queue_id, now),
            )
        )
    return BoardOut(
        tenant=BoardTenantOut(id=tenant.tenant_id, name=tenant.name, timezone=tenant.timezone),
        at=datetime.fromtimestamp(now, UTC),
        queues=board_queues,
        agents=await _agents(context, engine, enrolled),
    )


async def _agents(
    context: ApiContext,
    engine: Engine,
    enrolled: dict[QueueId, list[tuple[Extension, EnrolmentOptions]]],
) -> list[BoardAgentOut]:
    """Every enrolled extension once, by number, with the queues it is in."""
    first: dict[ExtensionId, tuple[Extension, EnrolmentOptions]] = {}
    queues_of: dict[ExtensionId, list[int]] = {}
    for queue_id, enrolments in enrolled.items():
        for extension, options in enrolments:
            first.setdefault(extension.extension_id, (extension, options))
            queues_of.setdefault(extension.extension_id, []).append(queue_id)
    ordered = sorted(first.values(), key=lambda pair: (pair[0].number, pair[0].extension_id))
    agents: list[BoardAgentOut] = []
    for live in await live_agents(context, engine, ordered):
        agent = engine.agent(ExtensionId(live.id))
        paused = agent is not None and agent.status is AgentStatus.PAUSED
        agents.append(
            BoardAgentOut(
                extension_id=live.id,
                number=live.number,
                name=live.name,
                state=live.status,
                reason=agent.presence_reason if paused and agent is not None else "",
                state_since=live.state_since,
                queues=sorted(queues_of[ExtensionId(live.id)]),
            )
        )
    return agents


def _today_figures(request: Request) -> TodayFigures:
    today: TodayFigures = request.app.state.today
    return today


@router.get("/{tenant_id}", summary="A tenant's board, live")
async def board(tenant_id: PathId, request: Request, context: Context, caller: Caller) -> BoardOut:
    """What the wallboard shows (``/wallboard``): the tenant's queues, calls and agents.

    Every queue of the tenant with its figures now and today's and its waiting calls,
    and every agent with its state. Today's figures are the interval report's for the
    tenant's local day (reused for a few seconds).
    """
    return await read_board(context, caller, tenant_id, _today_figures(request))


@router.get(
    "/{tenant_id}/stream",
    summary="A tenant's board, as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    tenant_id: PathId, request: Request, context: Context, caller: Caller
) -> StreamingResponse:
    """The board as it changes: ``event: board`` with the whole board, as the GET has it.

    One at once, then one after every change of the tenant, at most 4 a second; a
    comment every 15 s when nothing changes. It ends when the daemon stops, or on a
    cluster node that no longer serves the tenant: reconnect (to its shard's holder).
    """
    today = _today_figures(request)
    feed = context.host.live
    seen = feed.version(tenant_id)
    asked = time.monotonic()
    first = await read_board(context, caller, tenant_id, today)  # a 404 or 421 before streaming
    return StreamingResponse(
        _events(context, caller, tenant_id, today, first=first, seen=seen, asked=asked),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(board: BoardOut) -> str:
    return f"event: board\ndata: {board.model_dump_json()}\n\n"


async def _events(
    context: ApiContext,
    caller: Principal,
    tenant_id: int,
    today: TodayFigures,
    *,
    first: BoardOut,
    seen: int,
    asked: float,
) -> AsyncIterator[str]:
    feed = context.host.live
    yield _event(first)
    sent = time.monotonic()
    refresh_at = today.refresh_at(tenant_id, asked)
    while True:
        wait_s = KEEPALIVE_S if refresh_at is None else max(0.0, refresh_at - time.monotonic())
        try:
            async with asyncio.timeout(wait_s):
                seen = await feed.wait(tenant_id, seen)
        except TimeoutError:
            if refresh_at is None:
                yield ": keepalive\n\n"
                continue
        if feed.closed:  # the daemon stops
            return
        asked = time.monotonic()
        # Changes close together go in one board, none of them held longer than this.
        await asyncio.sleep(max(0.0, sent + MIN_INTERVAL_S - asked))
        seen = feed.version(tenant_id)
        try:
            board = await read_board(context, caller, tenant_id, today)
        except HTTPException:
            # The tenant is gone, or its shard moved to another node: the client's
            # reconnection gets the 404 or the 421.
            return
        yield _event(board)
        sent = time.monotonic()
        refresh_at = today.refresh_at(tenant_id, asked)


# --- the page ----------------------------------------------------------------------------


def _page_file(name: str) -> FileResponse:
    return FileResponse(
        _PAGE_FILES / name, media_type=_PAGE_TYPES[name], headers=dict(_PAGE_HEADERS)
    )


@page_router.get("/wallboard")
async def wallboard_page() -> FileResponse:
    """The wallboard page (no token: it asks for one, and its data calls send it)."""
    return _page_file("index.html")


@page_router.get("/wallboard/{name}")
async def wallboard_asset(name: str) -> FileResponse:
    """The page's stylesheet and script."""
    if name not in _PAGE_TYPES or name == "index.html":
        raise HTTPException(404, "not found")
    return _page_file(name)


def stream_path(path: str) -> bool:
    """Whether `path` is a live stream's, which lasts as long as its client watches."""
    return path.startswith("/api/live/") and path.endswith("/stream")
