"""``/api/queues``: queues and their options, their agents, and their live waiting lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import MISSING

from ringmaster.api.auth import Caller, Principal
from ringmaster.api.context import (
    ApiContext,
    Context,
    ListQuery,
    conflict,
    invalid,
    not_found,
    queue_for,
    refuse_if_a_target,
    tenant_for,
)
from ringmaster.api.schemas import (
    AgentOut,
    EnrolmentCreate,
    EnrolmentUpdate,
    ExtensionOverflow,
    ExtensionOverflowOut,
    HangupOverflow,
    HangupOverflowOut,
    LiveAgentOut,
    Overflow,
    OverflowOut,
    Page,
    PathId,
    QueueCreate,
    QueueOut,
    QueueOverflow,
    QueueOverflowOut,
    QueueSnapshotOut,
    QueueUpdate,
    WaitingCallOut,
)
from ringmaster.engine.core import Engine
from ringmaster.engine.events import AgentEnrolled, AgentUnenrolled, QueueRemoved, QueueSaved
from ringmaster.engine.model import (
    AgentStatus,
    CallPhase,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    OverflowTarget,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    TenantId,
)
from ringmaster.engine.state import CallState
from ringmaster.options import ENROLMENT_OPTIONS, QUEUE_OPTIONS, engine_values, plain_values
from ringmaster.store import ConfigTransaction
from ringmaster.store import Page as StorePage

router = APIRouter(prefix="/api/queues", tags=["queues"])

# --- queue options: request <-> QueueConfig ------------------------------------------------


async def _overflow(
    tx: ConfigTransaction, tenant_id: TenantId, queue_id: QueueId | None, overflow: Overflow
) -> OverflowTarget:
    """The overflow target, checked to be in the queue's tenant (422 naming the field).

    Args:
        tx: The transaction to read in.
        tenant_id: The queue's tenant.
        queue_id: The queue, or None for one being created.
        overflow: As the request gave it.
    """
    match overflow:
        case HangupOverflow():
            return HangupTarget()
        case ExtensionOverflow(extension=number):
            extension = await tx.extension_by_number(tenant_id, number)
            if extension is None:
                invalid(
                    ("overflow", "extension"),
                    f'no extension "{number}" in tenant {tenant_id}, the queue\'s',
                    "extension_not_in_tenant",
                )
            return ExtensionTarget(extension.extension_id)
        case QueueOverflow(queue_id=target_id):
            if target_id == queue_id:
                # The call would leave the queue only to rejoin it at the back.
                invalid(
                    ("overflow", "queue_id"),
                    "a queue cannot overflow to itself",
                    "overflow_to_self",
                )
            # The same answer whether it does not exist or is another tenant's.
            target = await tx.queue(QueueId(target_id))
            if target is None or target.tenant_id != tenant_id:
                invalid(
                    ("overflow", "queue_id"),
                    f"no queue {target_id} in tenant {tenant_id}, the queue's",
                    "queue_not_in_tenant",
                )
            return QueueTarget(target.queue_id)


async def _overflow_out(tx: ConfigTransaction, target: OverflowTarget) -> OverflowOut:
    match target:
        case HangupTarget():
            return HangupOverflowOut(type="hangup")
        case QueueTarget():
            return QueueOverflowOut(type="queue", queue_id=target.queue_id)
        case ExtensionTarget():
            extension = await tx.extension(target.extension_id)
            # An extension that a queue overflows to cannot be deleted (409).
            assert extension is not None, f"overflow to missing extension {target.extension_id}"
            return ExtensionOverflowOut(type="extension", extension=extension.number)


# --- agents: enrolment options <-> responses -------------------------------------------------


def _agent_fields(extension: Extension, options: EnrolmentOptions) -> dict[str, Any]:
    assert options.position is not None, "the store resolves positions"
    return {
        "id": extension.extension_id,
        "number": extension.number,
        "name": extension.name,
        "position": options.position,
        **plain_values(ENROLMENT_OPTIONS, options),
    }


def agent_out(extension: Extension, options: EnrolmentOptions) -> AgentOut:
    """An agent as its queue's read lists it."""
    return AgentOut(**_agent_fields(extension, options))


def agent_key(queue_id: QueueId, extension_id: ExtensionId) -> str:
    """An agent's id in the audit trail: its enrolment's, as in its path."""
    return f"{queue_id}/{extension_id}"


async def live_agents(
    context: ApiContext,
    engine: Engine | None,
    enrolments: Sequence[tuple[Extension, EnrolmentOptions]],
) -> list[LiveAgentOut]:
    """The agents with their live state and, from the history, since when they are in it.

    Args:
        context: The API's context.
        engine: The live engine of their tenant (`ApiContext.engine_for`); None on a
            cluster node that does not run it, for a configuration write's answer: each
            agent's state is then the last its holder committed (the history's).
        enrolments: Extensions of one tenant with their options (in a queue, or any).
    """
    if not enrolments:
        return []
    tenant_id = enrolments[0][0].tenant_id
    async with context.store.history() as reader:
        latest = await reader.latest_states(tenant_id, [e.number for e, _ in enrolments])
    agents: list[LiveAgentOut] = []
    for extension, options in enrolments:
        recorded = latest.get(extension.number)
        if engine is not None:
            agent = engine.agent(extension.extension_id)
            state = AgentStatus.LOGGED_OUT if agent is None else agent.status
        else:
            state = AgentStatus.LOGGED_OUT if recorded is None else AgentStatus(recorded[0])
        # The history's last state is the live one unless rows were pruned or the
        # daemon's view moved on without a record: then "since when" is unknown.
        since = (
            datetime.fromtimestamp(recorded[1], UTC)
            if recorded is not None and recorded[0] == state.value
            else None
        )
        agents.append(
            LiveAgentOut(**_agent_fields(extension, options), status=state.value, state_since=since)
        )
    return agents


async def queue_out(tx: ConfigTransaction, queue: QueueConfig) -> QueueOut:
    """A queue as the API reads it, with its agents."""
    return QueueOut(
        id=queue.queue_id,
        tenant_id=queue.tenant_id,
        name=queue.name,
        queue_number=queue.queue_number,
        strategy=queue.strategy,
        timeout=queue.timeout,
        status=queue.status.value,
        overflow=await _overflow_out(tx, queue.overflow),
        **plain_values(QUEUE_OPTIONS, queue),
        agents=[agent_out(e, o) for e, o in await tx.enrolments(queue.queue_id)],
    )


async def _check_number_free(tx: ConfigTransaction, queue: QueueConfig) -> None:
    other = await tx.queue_by_number(queue.tenant_id, queue.queue_number)
    if other is not None and other.queue_id != queue.queue_id:
        conflict(
            f'queue_number: queue "{queue.queue_number}" already exists in tenant'
            f" {queue.tenant_id} (queue {other.queue_id})"
        )


@router.get("", summary="List queues")
async def list_queues(listing: ListQuery) -> Page[QueueOut]:
    """The queues the caller sees, by id, each with its options and agents."""
    return await listing.page(_queues_out, lambda queue: queue)


async def _queues_out(
    tx: ConfigTransaction, tenant_id: TenantId | None, /, *, limit: int, offset: int
) -> StorePage[QueueOut]:
    # Read as the API reads them in the page's own transaction: agents and overflow too.
    page = await tx.queues(tenant_id, limit=limit, offset=offset)
    return StorePage([await queue_out(tx, queue) for queue in page.items], page.total)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a queue")
async def create_queue(body: QueueCreate, context: Context, caller: Caller) -> QueueOut:
    """Create a queue; its queue_number must be free within the tenant.

    It starts with no agents (enrol them with ``POST /api/queues/{id}/agents``). An
    option left out gets the engine's default (see docs/options.md).
    """
    async with context.write(caller) as write:
        tenant = await tenant_for(write.tx, caller, body.tenant_id, field_name="tenant_id")
        if await write.tx.queue_by_number(tenant.tenant_id, body.queue_number) is not None:
            conflict(
                f'queue_number: queue "{body.queue_number}" already exists in tenant'
                f" {tenant.tenant_id}"
            )
        config = QueueConfig(
            queue_id=QueueId(0),  # the store assigns it
            tenant_id=tenant.tenant_id,
            name=body.name,
            queue_number=body.queue_number,
            strategy=body.strategy,
            timeout=body.timeout,
            status=QueueStatus(body.status),
            overflow=await _overflow(write.tx, tenant.tenant_id, None, body.overflow),
            **engine_values(QUEUE_OPTIONS, body),
        )
        queue = await write.tx.insert_queue(config)
        write.events.append(QueueSaved(queue))
        created = await queue_out(write.tx, queue)
        write.changed("queue", queue.queue_id, queue.tenant_id, None, created)
        return created


@router.get("/{queue_id}", summary="Read a queue")
async def read_queue(queue_id: PathId, context: Context, caller: Caller) -> QueueOut:
    """One queue, with every option and its agents in order."""
    async with context.read() as tx:
        return await queue_out(tx, await queue_for(tx, caller, queue_id))


@router.patch("/{queue_id}", summary="Change a queue")
async def update_queue(
    queue_id: PathId, body: QueueUpdate, context: Context, caller: Caller
) -> QueueOut:
    """Change a queue's settings and options; the next call sees them.

    Made inactive, a queue rejects new calls (``queue_inactive``) and keeps serving
    the calls already waiting in it.
    """
    async with context.write(caller) as write:
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
        if body.overflow is not MISSING:
            overflow = await _overflow(write.tx, old.tenant_id, old.queue_id, body.overflow)
            new = replace(new, overflow=overflow)
        new = replace(new, **engine_values(QUEUE_OPTIONS, body))
        if new == old:
            return await queue_out(write.tx, old)
        before = await queue_out(write.tx, old)
        await write.tx.update_queue(new)
        write.events.append(QueueSaved(new))
        after = await queue_out(write.tx, new)
        write.changed("queue", new.queue_id, new.tenant_id, before, after)
        return after


@router.delete("/{queue_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a queue")
async def delete_queue(queue_id: PathId, context: Context, caller: Caller) -> None:
    """Delete a queue (and its enrolments) that has no waiting call and no DID route.

    Nor may another queue overflow to it: change that queue's ``overflow`` first.
    """
    async with context.write(caller) as write:
        queue = await queue_for(write.tx, caller, queue_id)
        waiting = await _waiting_calls(context, write.tx, queue)
        if waiting:
            conflict(
                f"queue {queue_id} has {waiting} waiting call{'s' if waiting > 1 else ''};"
                " set its status to inactive and delete it once they are served"
            )
        await refuse_if_a_target(write.tx, QueueTarget(queue.queue_id), f"queue {queue_id}")
        before = await queue_out(write.tx, queue)
        await write.tx.delete_queue(queue.queue_id)
        write.events.append(QueueRemoved(queue.queue_id))
        write.changed("queue", queue.queue_id, queue.tenant_id, before, None)


async def _waiting_calls(context: ApiContext, tx: ConfigTransaction, queue: QueueConfig) -> int:
    """How many calls wait in the queue, by the engine that runs its tenant.

    On a cluster node that does not run it: the calls its holder last committed as
    waiting there (a call arriving meanwhile is the holder's to refuse once the queue
    is gone).
    """
    engine = context.host.engine_for(queue.tenant_id)
    if engine is not None:
        live = engine.queue(queue.queue_id)
        return 0 if live is None else len(live.line)
    waiting = (CallPhase.QUEUED, CallPhase.RINGING)
    calls = await tx.stored_calls(queue.tenant_id)
    return sum(1 for c in calls if c.queue_id == queue.queue_id and c.phase in waiting)


# --- agents ----------------------------------------------------------------------------------


async def _enrolled(
    tx: ConfigTransaction, caller: Principal, queue_id: int, extension_id: int
) -> tuple[QueueConfig, Extension, EnrolmentOptions]:
    """The queue, the extension and its enrolment options, if the agent is in the queue.

    Else a 404, which names both ids; so is a queue the caller does not see.
    """
    queue = await queue_for(tx, caller, queue_id)
    options = await tx.enrolment(queue.queue_id, ExtensionId(extension_id))
    extension = await tx.extension(ExtensionId(extension_id))
    if options is None or extension is None:
        not_found(f"extension {extension_id} is not in queue {queue_id}")
    return queue, extension, options


async def _stored_options(
    tx: ConfigTransaction, queue_id: QueueId, extension_id: ExtensionId
) -> EnrolmentOptions:
    """An enrolment's options as stored, its position resolved (it was just written)."""
    options = await tx.enrolment(queue_id, extension_id)
    assert options is not None, "written in this transaction"
    return options


async def _options_by_agent(
    tx: ConfigTransaction, queue_id: QueueId
) -> dict[ExtensionId, EnrolmentOptions]:
    return {e.extension_id: o for e, o in await tx.enrolments(queue_id)}


async def _others_moved(
    tx: ConfigTransaction,
    queue_id: QueueId,
    before: dict[ExtensionId, EnrolmentOptions],
    moved: ExtensionId,
) -> list[AgentEnrolled]:
    """AgentEnrolled for each other agent whose position changed as `moved` took its place.

    Whether the store shifts the others to make room is its business; the engine
    must see the positions the store now holds, whatever they are.
    """
    return [
        AgentEnrolled(queue_id, e.extension_id, o)
        for e, o in await tx.enrolments(queue_id)
        if e.extension_id != moved and before.get(e.extension_id) != o
    ]


@router.get("/{queue_id}/agents", summary="List a queue's agents, live")
async def list_agents(queue_id: PathId, context: Context, caller: Caller) -> list[LiveAgentOut]:
    """The queue's agents in order, each with its options and its live state."""
    async with context.read() as tx:
        queue = await queue_for(tx, caller, queue_id)
        enrolments = await tx.enrolments(queue.queue_id)
    return await live_agents(context, context.engine_for(queue.tenant_id), enrolments)


@router.post("/{queue_id}/agents", status_code=status.HTTP_201_CREATED, summary="Enrol an agent")
async def enrol_agent(
    queue_id: PathId, body: EnrolmentCreate, context: Context, caller: Caller
) -> LiveAgentOut:
    """Enrol an extension of the queue's tenant, with its options.

    Without a ``position`` it goes after the agents already in the queue. It can be
    rung on the next distribution, for a call already waiting too.
    """
    async with context.write(caller) as write:
        queue = await queue_for(write.tx, caller, queue_id)
        # On a cluster node that does not run the tenant, the state its holder stored.
        engine = context.host.engine_for(queue.tenant_id)
        extension = await write.tx.extension(ExtensionId(body.extension_id))
        if extension is None or extension.tenant_id != queue.tenant_id:
            # The same answer whether it does not exist or is another tenant's.
            invalid(
                "extension_id",
                f"no extension {body.extension_id} in tenant {queue.tenant_id}, the queue's",
                "extension_not_in_tenant",
            )
        options = EnrolmentOptions(
            position=None if body.position is MISSING else body.position,
            **engine_values(ENROLMENT_OPTIONS, body),
        )
        placed = options.position is not None
        before = await _options_by_agent(write.tx, queue.queue_id) if placed else {}
        if not await write.tx.enrol(queue.queue_id, extension.extension_id, options):
            conflict(f"extension_id: extension {body.extension_id} is already in queue {queue_id}")
        stored = await _stored_options(write.tx, queue.queue_id, extension.extension_id)
        write.events.append(AgentEnrolled(queue.queue_id, extension.extension_id, stored))
        if placed:
            write.events += await _others_moved(
                write.tx, queue.queue_id, before, extension.extension_id
            )
        write.changed(
            "agent",
            agent_key(queue.queue_id, extension.extension_id),
            queue.tenant_id,
            None,
            agent_out(extension, stored),
        )
    (agent,) = await live_agents(context, engine, [(extension, stored)])
    return agent


@router.patch("/{queue_id}/agents/{extension_id}", summary="Change an agent's options")
async def update_agent(
    queue_id: PathId, extension_id: PathId, body: EnrolmentUpdate, context: Context, caller: Caller
) -> LiveAgentOut:
    """Change how an enrolled agent takes the queue's calls; the next distribution sees it.

    Only the fields given change; ``"wrapup_time": null`` goes back to the queue's.
    """
    async with context.write(caller) as write:
        queue, extension, old = await _enrolled(write.tx, caller, queue_id, extension_id)
        engine = context.host.engine_for(queue.tenant_id)  # as enrol's
        agent_id = extension.extension_id
        new = replace(
            old,
            **{
                f.name: value
                for f in fields(EnrolmentOptions)
                if (value := getattr(body, f.name)) is not MISSING
            },
        )
        if new != old:
            moved = new.position != old.position
            before = await _options_by_agent(write.tx, queue.queue_id) if moved else {}
            # Position None keeps the agent where it is, whatever the store's numbering.
            updated = await write.tx.update_enrolment(
                queue.queue_id, agent_id, new if moved else replace(new, position=None)
            )
            assert updated, "enrolled: read in this transaction"
            new = await _stored_options(write.tx, queue.queue_id, agent_id)
            write.events.append(AgentEnrolled(queue.queue_id, agent_id, new))
            if moved:
                write.events += await _others_moved(write.tx, queue.queue_id, before, agent_id)
            write.changed(
                "agent",
                agent_key(queue.queue_id, agent_id),
                queue.tenant_id,
                agent_out(extension, old),
                agent_out(extension, new),
            )
    (agent,) = await live_agents(context, engine, [(extension, new)])
    return agent


@router.delete(
    "/{queue_id}/agents/{extension_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unenrol an agent",
)
async def unenrol_agent(
    queue_id: PathId, extension_id: PathId, context: Context, caller: Caller
) -> None:
    """Take an extension out of the queue; a ring of it for this queue is cancelled."""
    async with context.write(caller) as write:
        queue, extension, options = await _enrolled(write.tx, caller, queue_id, extension_id)
        agent_id = extension.extension_id
        removed = await write.tx.unenrol(queue.queue_id, agent_id)
        assert removed, "enrolled: read in this transaction"
        write.events.append(AgentUnenrolled(queue.queue_id, agent_id))
        write.changed(
            "agent",
            agent_key(queue.queue_id, agent_id),
            queue.tenant_id,
            agent_out(extension, options),
            None,
        )


# --- live calls -----------------------------------------------------------------------------


@router.get("/{queue_id}/calls", summary="List a queue's waiting calls, live")
async def list_calls(queue_id: PathId, context: Context, caller: Caller) -> list[WaitingCallOut]:
    """The calls waiting in the queue, next to be answered first."""
    async with context.read() as tx:
        queue = await queue_for(tx, caller, queue_id)
    return waiting_calls(context.engine_for(queue.tenant_id), queue.queue_id, context.clock())


def waiting_calls(engine: Engine, queue_id: QueueId, now: float) -> list[WaitingCallOut]:
    """The calls waiting in a queue now, next to be answered first (none if not applied yet).

    Args:
        engine: The live engine of the queue's tenant (`ApiContext.engine_for`).
        queue_id: The queue.
        now: Unix seconds, for their waits.
    """
    live = engine.queue(queue_id)
    calls: list[WaitingCallOut] = []
    # `line` is kept sorted best first: (-priority, arrived_at, seq, call key).
    for position, (_, _, _, (tenant_id, call_id)) in enumerate(live.line if live else [], 1):
        call = engine.call(tenant_id, call_id)
        if call is None:  # cannot happen: a call in a line is live
            continue
        calls.append(WaitingCallOut(**waiting_call_fields(engine, call, position, now)))
    return calls


def waiting_call_fields(
    engine: Engine, call: CallState, position: int, now: float
) -> dict[str, Any]:
    """A waiting call's fields as the live calls show it, at its `position` (1 is next)."""
    return {
        "call_id": call.call_id,
        "position": position,
        "priority": call.priority,
        "wait_s": round(max(0.0, now - call.arrived_at), 3),
        "state": "ringing" if call.phase is CallPhase.RINGING else "queued",
        "did": call.did,
        "caller_id": call.caller_id,
        "caller_name": call.caller_name,
        "ringing": [a.number for e in call.rings if (a := engine.agent(e)) is not None],
    }


@router.get("/{queue_id}/snapshot", summary="A queue's figures, live")
async def read_snapshot(queue_id: PathId, context: Context, caller: Caller) -> QueueSnapshotOut:
    """The queue's running figures now, as its retained MQTT snapshot (``state/queue/Q``).

    Calls waiting and the longest wait, agents by state, and the counters since the
    queue was created: offered, answered, abandoned, ..., and the service level over
    them (not today's).
    """
    async with context.read() as tx:
        queue = await queue_for(tx, caller, queue_id)
    engine = context.engine_for(queue.tenant_id)
    if engine.queue(queue.queue_id) is None:  # stored, not yet applied
        not_found(f"queue {queue_id} not found")
    snapshot = engine.snapshot(queue.queue_id, context.clock())
    return QueueSnapshotOut.model_validate(asdict(snapshot))
