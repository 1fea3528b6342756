"""A supervisor's controls: an agent's presence; move, reprioritise, send or hang up a call.

Nothing here is configuration: each request goes to the engine in its turn loop
(`EngineHost.act`), and what the engine decides is stored and published in that
turn (docs/mqtt.md, "Supervisor actions"). Presence stays the PBX's: a presence
request is passed on as ``cmd/agent_state`` and the agent's state changes only
when the PBX confirms it.

Each request is checked against the engine's state first, so that the answer
says why nothing happened: 404 for a call or extension the caller cannot see or
that is not known (an ended call too), 409 for a call already answered, 422 for
a target that cannot take the call; 421 on a cluster node that does not serve
the tenant now (docs/api.md, "Cluster"). The engine's commands then say what did
happen: a call answered between the check and the turn is a 409 too. Each
action that changed something is written to the audit trail (the caller's token
name, the call or extension as it was and as it is) and logged.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple, NoReturn

from fastapi import APIRouter, Body, Path, status
from pydantic import BaseModel

from ringmaster.api.auth import Caller, Principal
from ringmaster.api.context import ApiContext, Context, conflict, invalid, log_change, not_found
from ringmaster.api.queues import waiting_call_fields
from ringmaster.api.schemas import (
    MAX_ID,
    CallPriorityRequest,
    HangUpCallRequest,
    LiveCallOut,
    MoveCallRequest,
    PresenceRequest,
    PresenceRequestOut,
    RoutedCallOut,
    RoutedOut,
    SendCallRequest,
)
from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command, RouteToExtension, RouteToHangup, SetAgentState
from ringmaster.engine.core import Engine
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallPhase,
    ExtensionId,
    Presence,
    QueueId,
    QueueStatus,
    TenantId,
)
from ringmaster.store import AuditAction, AuditRecord

router = APIRouter(tags=["supervisor"])

TenantPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The tenant.")]
CallPath = Annotated[
    str, Path(min_length=1, max_length=128, description="The PBX's id of the call.")
]
NumberPath = Annotated[
    str, Path(min_length=1, max_length=20, description="The agent's extension number.")
]
CallAnswer = LiveCallOut | RoutedCallOut


# --- presence --------------------------------------------------------------------------------


@router.post(
    "/api/agents/{tenant_id}/{extension}/presence",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask the PBX to pause, unpause or log out an agent",
)
async def request_presence(
    tenant_id: TenantPath,
    extension: NumberPath,
    body: PresenceRequest,
    context: Context,
    caller: Caller,
) -> PresenceRequestOut:
    """Publish ``cmd/agent_state`` for the PBX; the agent's state changes when it confirms.

    202: the request is on its way. `state` is Ringmaster's view now, which the request
    has not changed (the PBX's ``pbx/agent/state`` will).
    """
    found = None
    if caller.sees(tenant_id):
        async with context.read() as tx:
            found = await tx.extension_by_number(TenantId(tenant_id), extension)
    if found is None:
        not_found(f"extension {extension} of tenant {tenant_id} not found")
    engine = context.engine_for(tenant_id)
    reason = body.reason if body.state == "paused" else ""
    before = _agent_status(engine, found.extension_id)
    commands = await context.host.act(
        ev.RequestAgentState(TenantId(tenant_id), extension, Presence(body.state), reason)
    )
    if not any(isinstance(c, SetAgentState) for c in commands):
        not_found(f"extension {extension} of tenant {tenant_id} not found")  # removed meanwhile
    answer = PresenceRequestOut(
        tenant_id=tenant_id,
        extension=extension,
        requested=body.state,
        reason=reason,
        state=_agent_status(engine, found.extension_id),
    )
    await _audit(
        context,
        caller,
        tenant_id=tenant_id,
        action="presence",
        resource="extension",
        resource_id=str(found.extension_id),
        before={"state": before},
        after=answer,
    )
    return answer


def _agent_status(engine: Engine, extension_id: ExtensionId) -> str:
    agent = engine.agent(extension_id)
    return (AgentStatus.LOGGED_OUT if agent is None else agent.status).value


# --- calls -------------------------------------------------------------------------------------


@router.post("/api/calls/{tenant_id}/{call_id}/move", summary="Move a waiting call")
async def move_call(
    tenant_id: TenantPath,
    call_id: CallPath,
    body: MoveCallRequest,
    context: Context,
    caller: Caller,
) -> CallAnswer:
    """Move a waiting (queued or ringing) call to another active queue of its tenant.

    Its rings are cancelled and it waits in the other queue from now on. 422 for a
    queue that is unknown, another tenant's, inactive or the call's own.
    """
    before = _waiting(context, caller, tenant_id, call_id)
    async with context.read() as tx:
        target = await tx.queue(QueueId(body.queue_id))
    if target is None or target.tenant_id != tenant_id:
        invalid("queue_id", f"queue {body.queue_id} not found in tenant {tenant_id}", "not_found")
    if target.status is not QueueStatus.ACTIVE:
        invalid("queue_id", f"queue {body.queue_id} is inactive", "queue_inactive")
    if before.engine.queue(target.queue_id) is None:  # stored, not yet applied
        invalid("queue_id", f"queue {body.queue_id} not found in tenant {tenant_id}", "not_found")
    if target.queue_id == before.call.queue_id:
        invalid("queue_id", f"the call already waits in queue {body.queue_id}", "same_queue")
    event = ev.MoveCall(TenantId(tenant_id), CallId(call_id), target.queue_id)
    return await _act(context, caller, event, "move", before)


@router.post(
    "/api/calls/{tenant_id}/{call_id}/priority", summary="Change a waiting call's priority"
)
async def set_call_priority(
    tenant_id: TenantPath,
    call_id: CallPath,
    body: CallPriorityRequest,
    context: Context,
    caller: Caller,
) -> CallAnswer:
    """Give a waiting call a priority from 0 to 9 (higher is answered first).

    Its place in the line changes at once; the queue's next ring may go to it.
    """
    before = _waiting(context, caller, tenant_id, call_id)
    event = ev.SetCallPriority(TenantId(tenant_id), CallId(call_id), body.priority)
    return await _act(context, caller, event, "priority", before)


@router.post("/api/calls/{tenant_id}/{call_id}/send", summary="Send a waiting call to an extension")
async def send_call(
    tenant_id: TenantPath,
    call_id: CallPath,
    body: SendCallRequest,
    context: Context,
    caller: Caller,
) -> CallAnswer:
    """Send a waiting call to an extension of its tenant (``cmd/route``); it ends here.

    422 for an extension number the tenant does not have.
    """
    before = _waiting(context, caller, tenant_id, call_id)
    async with context.read() as tx:
        extension = await tx.extension_by_number(TenantId(tenant_id), body.extension)
    if extension is None:
        invalid(
            "extension", f"extension {body.extension} not found in tenant {tenant_id}", "not_found"
        )
    event = ev.SendCallToExtension(TenantId(tenant_id), CallId(call_id), extension.number)
    return await _act(context, caller, event, "send", before)


@router.post("/api/calls/{tenant_id}/{call_id}/hangup", summary="Hang a waiting call up")
async def hang_up_call(
    tenant_id: TenantPath,
    call_id: CallPath,
    context: Context,
    caller: Caller,
    body: Annotated[HangUpCallRequest | None, Body()] = None,
) -> CallAnswer:
    """Hang a waiting call up (``cmd/route`` with a hangup, reason ``supervisor``)."""
    before = _waiting(context, caller, tenant_id, call_id)
    event = ev.HangUpCall(TenantId(tenant_id), CallId(call_id))
    return await _act(context, caller, event, "hangup", before)


class _Waiting(NamedTuple):
    """A call as it waits now, and the live engine of its tenant."""

    engine: Engine
    call: LiveCallOut


def _waiting(context: ApiContext, caller: Principal, tenant_id: int, call_id: str) -> _Waiting:
    """The call as it waits now, with its tenant's engine.

    Else 404 (unknown, ended, not the caller's), 409 (answered), or 421 on a cluster
    node that does not serve the tenant (which cannot know the call).
    """
    if caller.sees(tenant_id):
        engine = context.engine_for(tenant_id)
        call = engine.call(TenantId(tenant_id), CallId(call_id))
        if call is not None and call.phase is CallPhase.CONNECTED:
            conflict(f"call {call_id} is answered: only a waiting call can be changed")
        live = _live(context, engine, tenant_id, call_id)
        if live is not None:
            return _Waiting(engine, live)
    not_found(f"call {call_id} of tenant {tenant_id} not found")


def _live(context: ApiContext, engine: Engine, tenant_id: int, call_id: str) -> LiveCallOut | None:
    """The call as the queue's live calls show it, if it waits in a queue's line."""
    found = engine.waiting_call(TenantId(tenant_id), CallId(call_id))
    if found is None:
        return None
    call, queue = found
    position = bisect_left(queue.line, call.line_entry) + 1
    fields = waiting_call_fields(engine, call, position, context.clock())
    return LiveCallOut(**fields, tenant_id=tenant_id, queue_id=queue.queue_id)


async def _act(
    context: ApiContext,
    caller: Principal,
    event: ev.MoveCall | ev.SetCallPriority | ev.SendCallToExtension | ev.HangUpCall,
    action: AuditAction,
    before: _Waiting,
) -> CallAnswer:
    """Hand the request to the engine; answer with the call as it is, or why nothing changed.

    The engine `before` was read from took the turn, unless the host's `act` raised
    `NotServedHere` (a 421, and nothing recorded).
    """
    commands = await context.host.act(event)
    answer = _answer(context, before.engine, event, commands)
    await _audit(
        context,
        caller,
        tenant_id=event.tenant_id,
        action=action,
        resource="call",
        resource_id=event.call_id,
        before=before.call.model_dump(mode="json"),
        after=answer,
    )
    return answer


def _answer(
    context: ApiContext,
    engine: Engine,
    event: ev.MoveCall | ev.SetCallPriority | ev.SendCallToExtension | ev.HangUpCall,
    commands: Sequence[Command],
) -> CallAnswer:
    """What the request did, from the engine's commands and the call's state after them."""
    tenant_id, call_id = event.tenant_id, event.call_id
    for command in commands:
        if isinstance(command, RouteToExtension | RouteToHangup) and command.call_id == call_id:
            # Sent or hung up; a moved call may be too, by the other queue's overflow.
            routed = (
                RoutedOut(type="extension", extension=command.extension)
                if isinstance(command, RouteToExtension)
                else RoutedOut(type="hangup", reason=command.reason)
            )
            return RoutedCallOut(tenant_id=tenant_id, call_id=call_id, routed=routed)
    live = _live(context, engine, tenant_id, call_id)
    if live is not None:
        if isinstance(event, ev.MoveCall) and live.queue_id == event.queue_id:
            return live
        if isinstance(event, ev.SetCallPriority) and live.priority == event.priority:
            return live
    _refused(engine, tenant_id, call_id)


def _refused(engine: Engine, tenant_id: TenantId, call_id: CallId) -> NoReturn:
    """The call changed between the check and the engine's turn: say how."""
    call = engine.call(tenant_id, call_id)
    if call is not None and call.phase in (CallPhase.CONNECTED, CallPhase.COMPLETED):
        conflict(f"call {call_id} was answered meanwhile: only a waiting call can be changed")
    if call is None or call.phase.is_final:
        not_found(f"call {call_id} of tenant {tenant_id} ended meanwhile")
    conflict(f"call {call_id} changed meanwhile; nothing was done")


async def _audit(
    context: ApiContext,
    caller: Principal,
    *,
    tenant_id: int,
    action: AuditAction,
    resource: str,
    resource_id: str,
    before: dict[str, Any],
    after: BaseModel,
) -> None:
    """Write the action to the audit trail in a transaction of its own, then log it."""
    record = AuditRecord(
        at=context.clock(),
        actor=caller.name,
        tenant_id=TenantId(tenant_id),
        action=action,
        resource=resource,
        resource_id=resource_id,
        before=before,
        after=after.model_dump(mode="json"),
    )
    async with context.writes, context.store.transaction() as tx:
        record_id = await tx.insert_audit(record)
    log_change(record, record_id)
