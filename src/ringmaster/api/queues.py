"""``/api/queues``: queues, their agents, and their live waiting lines."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, status
from pydantic import MISSING

from ringmaster.api.auth import Caller
from ringmaster.api.context import (
    ApiContext,
    Context,
    conflict,
    hidden_list,
    invalid,
    list_filter,
    names,
    not_found,
    queue_for,
    tenant_for,
)
from ringmaster.api.schemas import (
    DEFAULT_PAGE,
    AgentOut,
    EnrolmentCreate,
    Limit,
    LiveAgentOut,
    Offset,
    Page,
    PathId,
    QueueCreate,
    QueueOut,
    QueueUpdate,
    TenantFilter,
    WaitingCallOut,
)
from ringmaster.engine.events import AgentEnrolled, AgentUnenrolled, QueueRemoved, QueueSaved
from ringmaster.engine.model import (
    AgentStatus,
    CallPhase,
    Extension,
    ExtensionId,
    QueueConfig,
    QueueStatus,
    QueueTarget,
)
from ringmaster.store import ConfigTransaction

router = APIRouter(prefix="/api/queues", tags=["queues"])


def _agent(extension: Extension) -> AgentOut:
    return AgentOut(id=extension.extension_id, number=extension.number, name=extension.name)


async def _out(tx: ConfigTransaction, queue: QueueConfig) -> QueueOut:
    return QueueOut(
        id=queue.queue_id,
        tenant_id=queue.tenant_id,
        name=queue.name,
        queue_number=queue.queue_number,
        strategy=queue.strategy,
        timeout=queue.timeout,
        status=queue.status.value,
        agents=[_agent(e) for e in await tx.enrolled(queue.queue_id)],
    )


def _live_agent(context: ApiContext, extension: Extension) -> LiveAgentOut:
    agent = context.engine.agent(extension.extension_id)
    state = AgentStatus.LOGGED_OUT if agent is None else agent.status
    return LiveAgentOut(
        id=extension.extension_id,
        number=extension.number,
        name=extension.name,
        status=state.value,
    )


async def _check_number_free(tx: ConfigTransaction, queue: QueueConfig) -> None:
    other = await tx.queue_by_number(queue.tenant_id, queue.queue_number)
    if other is not None and other.queue_id != queue.queue_id:
        conflict(
            f'queue_number: queue "{queue.queue_number}" already exists in tenant'
            f" {queue.tenant_id} (queue {other.queue_id})"
        )


@router.get("", summary="List queues")
async def list_queues(
    context: Context,
    caller: Caller,
    tenant_id: TenantFilter = None,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
) -> Page[QueueOut]:
    """The queues the caller sees, by id, each with its agents."""
    if hidden_list(caller, tenant_id):
        return Page(items=[], total=0, limit=limit, offset=offset)
    async with context.read() as tx:
        page = await tx.queues(list_filter(caller, tenant_id), limit=limit, offset=offset)
        items = [await _out(tx, q) for q in page.items]
    return Page(items=items, total=page.total, limit=limit, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a queue")
async def create_queue(body: QueueCreate, context: Context, caller: Caller) -> QueueOut:
    """Create a queue; its queue_number must be free within the tenant.

    It starts with no agents (enrol them with ``POST /api/queues/{id}/agents``), a
    ``retry`` of 5 s and no wrap-up time.
    """
    async with context.write() as write:
        tenant = await tenant_for(write.tx, caller, body.tenant_id, field_name="tenant_id")
        if await write.tx.queue_by_number(tenant.tenant_id, body.queue_number) is not None:
            conflict(
                f'queue_number: queue "{body.queue_number}" already exists in tenant'
                f" {tenant.tenant_id}"
            )
        queue = await write.tx.insert_queue(
            tenant.tenant_id,
            body.queue_number,
            name=body.name,
            strategy=body.strategy,
            timeout=body.timeout,
            status=QueueStatus(body.status),
        )
        write.events.append(QueueSaved(queue))
        return await _out(write.tx, queue)


@router.get("/{queue_id}", summary="Read a queue")
async def read_queue(queue_id: PathId, context: Context, caller: Caller) -> QueueOut:
    """One queue, with its agents in enrolment order."""
    async with context.read() as tx:
        return await _out(tx, await queue_for(tx, caller, queue_id))


@router.patch("/{queue_id}", summary="Change a queue")
async def update_queue(
    queue_id: PathId, body: QueueUpdate, context: Context, caller: Caller
) -> QueueOut:
    """Change a queue's settings; the next call sees them.

    Made inactive, a queue rejects new calls (``queue_inactive``) and keeps serving
    the calls already waiting in it.
    """
    async with context.write() as write:
        old = await queue_for(write.tx, caller, queue_id)
        new = old
        if body.name is not MISSING:
            new = replace(new, name=body.name)
        if body.queue_number is not MISSING:
            new = replace(new, queue_number=body.queue_number)
            await _check_number_free(write.tx, new)
        if body.strategy is not MISSING:
            new = replace(new, strategy=body.strategy)
        if body.timeout is not MISSING:
            new = replace(new, timeout=body.timeout)
        if body.status is not MISSING:
            new = replace(new, status=QueueStatus(body.status))
        if new != old:
            await write.tx.update_queue(new)
            write.events.append(QueueSaved(new))
        return await _out(write.tx, new)


@router.delete("/{queue_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a queue")
async def delete_queue(queue_id: PathId, context: Context, caller: Caller) -> None:
    """Delete a queue (and its enrolments) that has no waiting call and no DID route."""
    async with context.write() as write:
        queue = await queue_for(write.tx, caller, queue_id)
        live = context.engine.queue(queue.queue_id)
        waiting = 0 if live is None else len(live.line)
        if waiting:
            conflict(
                f"queue {queue_id} has {waiting} waiting call{'s' if waiting > 1 else ''};"
                " set its status to inactive and delete it once they are served"
            )
        routes = await write.tx.routes_to(QueueTarget(queue.queue_id))
        if routes:
            listed = names([f"{r.id} ({r.route.did})" for r in routes])
            conflict(f"queue {queue_id} is the target of DID routes {listed}")
        await write.tx.delete_queue(queue.queue_id)
        write.events.append(QueueRemoved(queue.queue_id))


# --- agents ----------------------------------------------------------------------------------


@router.get("/{queue_id}/agents", summary="List a queue's agents, live")
async def list_agents(queue_id: PathId, context: Context, caller: Caller) -> list[LiveAgentOut]:
    """The queue's agents in enrolment order, each with its live state."""
    async with context.read() as tx:
        queue = await queue_for(tx, caller, queue_id)
        enrolled = await tx.enrolled(queue.queue_id)
    return [_live_agent(context, e) for e in enrolled]


@router.post("/{queue_id}/agents", status_code=status.HTTP_201_CREATED, summary="Enrol an agent")
async def enrol_agent(
    queue_id: PathId, body: EnrolmentCreate, context: Context, caller: Caller
) -> LiveAgentOut:
    """Enrol an extension of the queue's tenant, after the agents already in it.

    It can be rung on the next distribution, for a call already waiting too.
    """
    async with context.write() as write:
        queue = await queue_for(write.tx, caller, queue_id)
        extension = await write.tx.extension(ExtensionId(body.extension_id))
        if extension is None or extension.tenant_id != queue.tenant_id:
            # The same answer whether it does not exist or is another tenant's.
            invalid(
                "extension_id",
                f"no extension {body.extension_id} in tenant {queue.tenant_id}, the queue's",
                "extension_not_in_tenant",
            )
        if not await write.tx.enrol(queue.queue_id, extension.extension_id):
            conflict(f"extension_id: extension {body.extension_id} is already in queue {queue_id}")
        write.events.append(AgentEnrolled(queue.queue_id, extension.extension_id))
    return _live_agent(context, extension)


@router.delete(
    "/{queue_id}/agents/{extension_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unenrol an agent",
)
async def unenrol_agent(
    queue_id: PathId, extension_id: PathId, context: Context, caller: Caller
) -> None:
    """Take an extension out of the queue; a ring of it for this queue is cancelled."""
    async with context.write() as write:
        queue = await queue_for(write.tx, caller, queue_id)
        if not await write.tx.unenrol(queue.queue_id, ExtensionId(extension_id)):
            not_found(f"extension {extension_id} is not in queue {queue_id}")
        write.events.append(AgentUnenrolled(queue.queue_id, ExtensionId(extension_id)))


# --- live calls -----------------------------------------------------------------------------


@router.get("/{queue_id}/calls", summary="List a queue's waiting calls, live")
async def list_calls(queue_id: PathId, context: Context, caller: Caller) -> list[WaitingCallOut]:
    """The calls waiting in the queue, next to be answered first."""
    async with context.read() as tx:
        queue = await queue_for(tx, caller, queue_id)
    engine = context.engine
    live = engine.queue(queue.queue_id)
    now = context.clock()
    calls: list[WaitingCallOut] = []
    # `line` is kept sorted best first: (-priority, arrived_at, seq, call key).
    for position, (_, _, _, (tenant_id, call_id)) in enumerate(live.line if live else [], 1):
        call = engine.call(tenant_id, call_id)
        if call is None:  # cannot happen: a call in a line is live
            continue
        ringing = [a.number for e in call.rings if (a := engine.agent(e)) is not None]
        calls.append(
            WaitingCallOut(
                call_id=call.call_id,
                position=position,
                priority=call.priority,
                wait_s=round(max(0.0, now - call.arrived_at), 3),
                state="ringing" if call.phase is CallPhase.RINGING else "queued",
                did=call.did,
                caller_id=call.caller_id,
                caller_name=call.caller_name,
                ringing=ringing,
            )
        )
    return calls
