"""``/api/reports``: each queue's and each agent's figures per interval (docs/reports.md).

Read from the call and agent history on the store's reading connection, so a report
over a month neither waits for the daemon's commits nor holds them up. Intervals are
aligned in the tenant's time zone (its ``timezone`` setting). JSON by default, CSV
with ``?format=csv`` (one row per queue or agent and interval).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel

from ringmaster.api.auth import Caller, Principal
from ringmaster.api.context import Context, not_found, tenant_for
from ringmaster.api.schemas import MAX_ID
from ringmaster.engine.model import QueueId, Tenant, TenantId
from ringmaster.options import QUEUE_OPTIONS
from ringmaster.settings import ReportSettings
from ringmaster.store import StoreError
from ringmaster.store.reports import (
    AgentFigures,
    Interval,
    QueueFigures,
    interval_bounds,
)

router = APIRouter(prefix="/api/reports", tags=["reports"])

#: The service level threshold of a queue deleted since its calls: the option's default.
DEFAULT_SERVICE_LEVEL: int = next(o.default for o in QUEUE_OPTIONS if o.name == "service_level")

Format = Literal["json", "csv"]
_TenantParam = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_ID,
        description="The tenant reported on; a tenant token's own tenant when left out.",
    ),
]
_From = Annotated[
    AwareDatetime,
    Query(alias="from", description="ISO 8601 with an offset (or Z): the range's start."),
]
_To = Annotated[
    AwareDatetime,
    Query(description="ISO 8601 with an offset (or Z): the range's end (excluded)."),
]
_IntervalParam = Annotated[
    Interval,
    Query(description="15m, 30m, 1h or 1d, aligned on the tenant's local clock."),
]
_FormatParam = Annotated[Format, Query(description="json (default) or csv.")]


class QueueIntervalOut(BaseModel):
    """One queue's figures for one interval; null where the ratio has no calls to be over."""

    queue_id: int
    queue_number: str
    queue_name: str
    start: datetime
    end: datetime
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    overflowed: int
    rejected: int
    answered_within: int
    service_level_pct: float | None
    service_level_all_pct: float | None
    asa_s: float | None
    aht_s: float | None
    avg_wait_s: float | None
    max_wait_s: float | None
    wait_p90_s: float | None


class AgentIntervalOut(BaseModel):
    """One agent's figures for one interval."""

    extension: str
    start: datetime
    end: datetime
    answered: int
    talk_s: float
    rings_unanswered: int
    pause_s: dict[str, float]
    logged_in_s: float
    occupancy_pct: float | None


class _ReportOut(BaseModel):
    tenant_id: int
    timezone: str
    start: datetime
    end: datetime
    interval: Interval


class QueueReportOut(_ReportOut):
    """``GET /api/reports/queues``."""

    short_abandon_s: float
    service_level_default_s: int
    items: list[QueueIntervalOut]


class AgentReportOut(_ReportOut):
    """``GET /api/reports/agents``."""

    items: list[AgentIntervalOut]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _when(at: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at, zone)


def _queue_out(f: QueueFigures, zone: ZoneInfo) -> QueueIntervalOut:
    return QueueIntervalOut(
        queue_id=f.queue_id,
        queue_number=f.queue_number,
        queue_name=f.queue_name,
        start=_when(f.start, zone),
        end=_when(f.end, zone),
        offered=f.offered,
        answered=f.answered,
        abandoned=f.abandoned,
        short_abandoned=f.short_abandoned,
        overflowed=f.overflowed,
        rejected=f.rejected,
        answered_within=f.answered_within,
        service_level_pct=_pct(f.service_level_pct),
        service_level_all_pct=_pct(f.service_level_all_pct),
        asa_s=_s(f.asa_s),
        aht_s=_s(f.aht_s),
        avg_wait_s=_s(f.avg_wait_s),
        max_wait_s=_s(f.max_wait_s),
        wait_p90_s=_s(f.wait_p90_s),
    )


def _agent_out(f: AgentFigures, zone: ZoneInfo) -> AgentIntervalOut:
    return AgentIntervalOut(
        extension=f.extension,
        start=_when(f.start, zone),
        end=_when(f.end, zone),
        answered=f.answered,
        talk_s=round(f.talk_s, 3),
        rings_unanswered=f.rings_unanswered,
        pause_s={reason: round(s, 3) for reason, s in f.pause_s.items()},
        logged_in_s=round(f.logged_in_s, 3),
        occupancy_pct=_pct(f.occupancy_pct),
    )


def _refused(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


async def _tenant(context: Context, caller: Principal, tenant_id: int | None) -> Tenant:
    if tenant_id is None:
        if caller.tenant_id is None:
            raise _refused("tenant_id", "an admin token must name the tenant")
        tenant_id = caller.tenant_id
    async with context.read() as tx:
        return await tenant_for(tx, caller, tenant_id, field_name=None)


def _bounds(tenant: Tenant, since: datetime, until: datetime, interval: Interval) -> list[float]:
    try:
        return interval_bounds(
            since.timestamp(), until.timestamp(), ZoneInfo(tenant.timezone), interval
        )
    except StoreError as error:
        raise _refused("to", str(error)) from None


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], name: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get(
    "/queues",
    summary="Each queue's figures per interval",
    response_model=QueueReportOut,
    responses={200: {"content": {"text/csv": {}}}},
)
async def queue_report(
    request: Request,
    context: Context,
    caller: Caller,
    *,
    since: _From,
    to: _To,
    tenant_id: _TenantParam = None,
    interval: _IntervalParam = "1h",
    queue_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this queue.")] = None,
    format: _FormatParam = "json",
) -> Response:
    """Offered, answered, abandoned, service levels and waits, per queue and interval.

    Every queue with a call in the range, with every interval of the range. A visit
    counts in the interval it entered the queue in (docs/reports.md).
    """
    tenant = await _tenant(context, caller, tenant_id)
    bounds = _bounds(tenant, since, to, interval)
    settings: ReportSettings = request.app.state.reports
    default_level = DEFAULT_SERVICE_LEVEL
    if queue_id is not None:
        async with context.read() as tx:
            queue = await tx.queue(QueueId(queue_id))
        if queue is None or queue.tenant_id != tenant.tenant_id:
            not_found(f"queue {queue_id} not found")
    async with context.store.reports() as reader:
        figures = await reader.queues(
            tenant.tenant_id,
            bounds,
            queue_id=None if queue_id is None else QueueId(queue_id),
            short_abandon_s=settings.short_abandon_s,
            default_service_level=default_level,
        )
    head = {
        "tenant_id": tenant.tenant_id,
        "timezone": tenant.timezone,
        "interval": interval,
        "short_abandon_s": settings.short_abandon_s,
        "service_level_default_s": default_level,
    }
    # Built and serialised on a thread: a month by 15 minutes is thousands of rows,
    # and the daemon's turns share this event loop.
    return await asyncio.to_thread(_queue_answer, figures, bounds, head, format)


def _queue_answer(
    figures: list[QueueFigures], bounds: list[float], head: dict[str, Any], format: Format
) -> Response:
    zone = ZoneInfo(head["timezone"])
    items = [_queue_out(f, zone) for f in figures]
    if format == "csv":
        return _csv(
            [item.model_dump(mode="json") for item in items],
            list(QueueIntervalOut.model_fields),
            "queues",
        )
    report = QueueReportOut(
        start=_when(bounds[0], zone), end=_when(bounds[-1], zone), items=items, **head
    )
    return Response(report.model_dump_json(), media_type="application/json")


@router.get(
    "/agents",
    summary="Each agent's figures per interval",
    response_model=AgentReportOut,
    responses={200: {"content": {"text/csv": {}}}},
)
async def agent_report(
    context: Context,
    caller: Caller,
    *,
    since: _From,
    to: _To,
    tenant_id: _TenantParam = None,
    interval: _IntervalParam = "1h",
    format: _FormatParam = "json",
) -> Response:
    """Calls answered, talk, rings not answered, pauses by reason, logged-in time, occupancy.

    Every agent logged in at the range's start, or with activity or an answered call
    in it, with every interval of the range (docs/reports.md).
    """
    tenant = await _tenant(context, caller, tenant_id)
    bounds = _bounds(tenant, since, to, interval)
    async with context.store.reports() as reader:
        figures = await reader.agents(TenantId(tenant.tenant_id), bounds, now=context.clock())
    head = {"tenant_id": tenant.tenant_id, "timezone": tenant.timezone, "interval": interval}
    return await asyncio.to_thread(_agent_answer, figures, bounds, head, format)


def _agent_answer(
    figures: list[AgentFigures], bounds: list[float], head: dict[str, Any], format: Format
) -> Response:
    zone = ZoneInfo(head["timezone"])
    items = [_agent_out(f, zone) for f in figures]
    if format == "csv":
        reasons = sorted({reason for item in items for reason in item.pause_s})
        columns = [c for c in AgentIntervalOut.model_fields if c != "pause_s"]
        pause_columns = [f"pause_s:{reason}" if reason else "pause_s:" for reason in reasons]
        rows = []
        for item in items:
            row = item.model_dump(mode="json")
            row["pause_s"] = round(sum(item.pause_s.values(), 0.0), 3)
            for reason, column in zip(reasons, pause_columns, strict=True):
                row[column] = item.pause_s.get(reason, 0.0)
            rows.append(row)
        return _csv(rows, [*columns[:-2], "pause_s", *pause_columns, *columns[-2:]], "agents")
    report = AgentReportOut(
        start=_when(bounds[0], zone), end=_when(bounds[-1], zone), items=items, **head
    )
    return Response(report.model_dump_json(), media_type="application/json")
