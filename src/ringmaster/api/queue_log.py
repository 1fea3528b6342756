"""``/api/queue-log``: the history as Asterisk's queue_log, for the tools that read it.

The lines are rendered from the stored history (`ringmaster.queue_log`), the same
as the daemon appends to ``history.queue_log_file``; docs/queue_log.md maps each
ringmaster outcome to its Asterisk event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from ringmaster.api.auth import Caller
from ringmaster.api.context import Context, hidden_list, list_filter
from ringmaster.api.schemas import TenantFilter
from ringmaster.queue_log import DEFAULT_AGENT_FORMAT

router = APIRouter(prefix="/api/queue-log", tags=["history"])

Instant = Annotated[
    datetime | None,
    Query(description="ISO 8601 (UTC unless it gives an offset) or Unix seconds."),
]


def _unix(instant: datetime | None, default: float) -> float:
    if instant is None:
        return default
    return (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).timestamp()


@router.get(
    "",
    summary="The history as Asterisk's queue_log",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "queue_log lines"}},
)
async def queue_log(
    request: Request,
    context: Context,
    caller: Caller,
    *,
    tenant_id: TenantFilter = None,
    since: Annotated[Instant, Query(alias="from")] = None,
    to: Annotated[Instant, Query(description="Events before this instant (excluded).")] = None,
) -> PlainTextResponse:
    """Lines ``epoch|callid|queuename|agent|EVENT|data...``, one per event, in time order.

    A tenant token sees its own tenant's lines only; an admin sees every tenant's
    unless it names one. `from` includes its instant, `to` excludes it (default:
    everything kept until now).
    """
    if hidden_list(caller, tenant_id):
        return PlainTextResponse("")
    agent_format = getattr(request.app.state, "queue_log_agent", DEFAULT_AGENT_FORMAT)
    until = _unix(to, context.clock() + 1.0)
    async with context.store.queue_log() as reader:
        lines = await reader.lines(
            list_filter(caller, tenant_id), _unix(since, 0.0), until, agent_format=agent_format
        )
    return PlainTextResponse("".join(f"{line.text}\n" for line in lines))
