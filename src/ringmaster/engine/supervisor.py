"""A supervisor's requests: move, reprioritise, send or hang up a waiting call; ask for a presence.

Only a call not yet answered (waiting or ringing, a callback too) can be
acted on. A move, a send and a hangup take the overflow's path
(`calls._overflow_to`, reason `supervisor`): its rings are cancelled, it
leaves its line, `event/call/overflowed` says where it went. A request for a
call that is not waiting, or with a target that cannot take it, changes
nothing: the admin API checks first and answers why; the engine never raises.

Presence belongs to the PBX: a request for an agent's state is passed on
(`cmd/agent_state`) and ringmaster's view changes only on the PBX's
confirmation (`pbx/agent/state`).
"""

from __future__ import annotations

from ringmaster.engine import events as ev
from ringmaster.engine.base import EngineBase
from ringmaster.engine.commands import SetAgentState
from ringmaster.engine.model import (
    CallId,
    CallPhase,
    ExtensionTarget,
    HangupTarget,
    OverflowReason,
    QueueStatus,
    QueueTarget,
    TenantId,
)
from ringmaster.engine.state import CallState, QueueState

#: The priorities a call may have (the contract's `priority`).
PRIORITIES = range(10)


class SupervisorMixin(EngineBase):
    """What a supervisor asks of a waiting call, or of an agent's presence."""

    def waiting_call(
        self, tenant_id: TenantId, call_id: CallId
    ) -> tuple[CallState, QueueState] | None:
        """The call and its queue, if it waits (queued or ringing) in a queue's line."""
        call = self._calls.get((tenant_id, call_id))
        if call is None or call.phase not in (CallPhase.QUEUED, CallPhase.RINGING):
            return None
        queue = self._queue_of(call)
        return None if queue is None else (call, queue)

    def _move_call(self, event: ev.MoveCall, now: float) -> None:
        found = self.waiting_call(event.tenant_id, event.call_id)
        target = self._queues.get(event.queue_id)
        if (
            found is None
            or target is None
            or target.config.tenant_id != event.tenant_id
            or target.config.status is not QueueStatus.ACTIVE
            or target is found[1]
        ):
            return
        call, queue = found
        self._overflow_to(call, queue, OverflowReason.SUPERVISOR, QueueTarget(target.queue_id), now)

    def _set_call_priority(self, event: ev.SetCallPriority, now: float) -> None:
        found = self.waiting_call(event.tenant_id, event.call_id)
        if found is None or event.priority not in PRIORITIES:
            return
        call, queue = found
        if call.priority == event.priority:
            return
        old = queue.leave_line(call.line_entry)
        if old is None:
            return  # not in its line: a bug elsewhere, but no reason to fail the request
        call.priority = event.priority
        new = queue.join_line(call.line_entry, ringing=bool(call.rings))
        self._dirty_calls.add(call.key)
        self._queue_changed(queue)  # its next ring may go to this call now
        # Everyone between the old and the new place moved by one.
        self._announce_from(queue, min(old, new) + 1)

    def _send_call_to_extension(self, event: ev.SendCallToExtension, now: float) -> None:
        found = self.waiting_call(event.tenant_id, event.call_id)
        extension_id = self._extension_ids.get((event.tenant_id, event.extension))
        if found is None or extension_id is None:
            return
        call, queue = found
        target = ExtensionTarget(extension_id)
        self._overflow_to(call, queue, OverflowReason.SUPERVISOR, target, now)

    def _hang_up_call(self, event: ev.HangUpCall, now: float) -> None:
        found = self.waiting_call(event.tenant_id, event.call_id)
        if found is None:
            return
        call, queue = found
        self._overflow_to(call, queue, OverflowReason.SUPERVISOR, HangupTarget(), now)

    def _request_agent_state(self, event: ev.RequestAgentState, now: float) -> None:
        if (event.tenant_id, event.extension) not in self._extension_ids:
            return
        self._out.append(
            SetAgentState(event.tenant_id, event.extension, event.presence, event.reason)
        )
