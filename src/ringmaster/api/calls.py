"""``/api/calls``: the call history, one row per visit of a call to a queue (docs/history.md).

Read on the store's reading connection, like every other read: never waiting for,
nor holding up, the daemon's commits. A tenant token sees its own tenant's calls
only; another tenant's call is reported exactly like an unknown one. JSON by
default; ``?format=csv`` answers ``text/csv``, one row per visit under a header line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime

from ringmaster.api.auth import Caller
from ringmaster.api.context import Context, hidden_list, list_filter, not_found
from ringmaster.api.schemas import (
    DEFAULT_PAGE,
    MAX_ID,
    CallHistoryOut,
    Limit,
    Offset,
    Page,
    RingOut,
    TenantFilter,
    VisitOut,
    VisitOutcomeName,
    VisitWithRings,
)
from ringmaster.engine.model import CallId, QueueId, TenantId
from ringmaster.store.history import RingRow, VisitFilter, VisitRow

router = APIRouter(prefix="/api/calls", tags=["calls"])

Format = Annotated[
    Literal["json", "csv"],
    Query(description="`csv`: `text/csv`, one row per visit under a header line."),
]
_CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}
_CSV_COLUMNS = tuple(VisitOut.model_fields)


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _fields(visit: VisitRow) -> dict[str, Any]:
    return {
        name: _time(getattr(visit, name)) if name.endswith("_at") else getattr(visit, name)
        for name in _CSV_COLUMNS
    }


def visit_out(visit: VisitRow) -> VisitOut:
    """A stored visit as the API reads it."""
    return VisitOut.model_validate(_fields(visit))


def _ring_out(ring: RingRow) -> RingOut:
    return RingOut(
        ring_id=ring.ring_id,
        extension=ring.extension,
        started_at=datetime.fromtimestamp(ring.started_at, UTC),
        ended_at=_time(ring.ended_at),
        outcome=ring.outcome,  # type: ignore[arg-type]  # the store holds what we wrote
        cancel_reason=ring.cancel_reason,
    )


def _csv(visits: Sequence[VisitOut], headers: dict[str, str] | None = None) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for visit in visits:
        row = visit.model_dump(mode="json")
        writer.writerow(["" if row[c] is None else row[c] for c in _CSV_COLUMNS])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _unix(instant: datetime | None) -> float | None:
    return None if instant is None else instant.timestamp()


@router.get(
    "",
    summary="List calls' visits to queues",
    response_model=Page[VisitOut],
    responses=_CSV,  # type: ignore[arg-type]
)
async def list_calls(
    context: Context,
    caller: Caller,
    *,
    tenant_id: TenantFilter = None,
    queue_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only visits to this queue.")
    ] = None,
    since: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Visits entered from this instant (ISO 8601 with a zone)."),
    ] = None,
    to: Annotated[
        AwareDatetime | None,
        Query(description="Visits entered before this instant (excluded; with a zone)."),
    ] = None,
    outcome: Annotated[
        VisitOutcomeName | None, Query(description="Only visits that ended so.")
    ] = None,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
    format: Format = "json",
) -> Any:
    """The visits the caller sees, by the time they entered their queue, oldest first.

    A call that overflowed has a visit per queue; one still waiting has an open visit
    (no outcome). CSV answers carry the list's size in ``X-Total-Count``.
    """
    if hidden_list(caller, tenant_id):
        items: list[VisitOut] = []
        total = 0
    else:
        where = VisitFilter(
            list_filter(caller, tenant_id),
            None if queue_id is None else QueueId(queue_id),
            _unix(since),
            _unix(to),
            outcome,
        )
        async with context.store.history() as reader:
            page = await reader.visits(where, limit=limit, offset=offset)
        items = [visit_out(v) for v in page.items]
        total = page.total
    if format == "csv":
        return _csv(items, {"X-Total-Count": str(total)})
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{tenant_id}/{call_id}",
    summary="A call's history",
    response_model=CallHistoryOut,
    responses=_CSV,  # type: ignore[arg-type]
)
async def get_call(
    context: Context,
    caller: Caller,
    tenant_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The call's tenant.")],
    call_id: Annotated[
        str, Path(min_length=1, max_length=128, description="The PBX's id of the call.")
    ],
    format: Format = "json",
) -> Any:
    """The call's visits in order (its overflow path), each with its rings; 404 unknown."""
    visits: list[VisitRow] = []
    if caller.sees(tenant_id):
        async with context.store.history() as reader:
            visits = await reader.call(TenantId(tenant_id), CallId(call_id))
    if not visits:
        not_found(f"call {call_id} of tenant {tenant_id} not found")
    if format == "csv":
        return _csv([visit_out(v) for v in visits])
    return CallHistoryOut(
        tenant_id=tenant_id,
        call_id=call_id,
        visits=[
            VisitWithRings.model_validate({**_fields(v), "rings": [_ring_out(r) for r in v.rings]})
            for v in visits
        ],
    )
