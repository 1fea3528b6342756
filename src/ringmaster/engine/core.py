"""The call-distribution engine: events and the time in, commands out.

`Engine.handle(event, now)` applies one event; `Engine.handle_timer(now)`
applies whatever fell due (ring timeouts, retry pauses, wrap-ups);
`Engine.next_deadline()` says when that next is. The service owns the clock
and the only timer; tests own a virtual clock.

`Engine` is assembled here from one mixin per concern, each in its module:
`calls` (arrival, the waiting line, overflow, hangup), `rings` (a ring's
start and every way it ends, races with the PBX included), `distribution`
(which waiting call rings which free agent, rounds and pauses), `agents`
(presence, device, free or not, the queues' counts), `configuration` (the
operator's changes), `deadlines` (what falls due) and `supervisor` (what a
supervisor asks of a waiting call or a presence). They share the state
and the small steps of `base.EngineBase`. This module holds the public
surface: the dispatch of events, the timer, restoring, and what the service,
the store and the wallboard read.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from ringmaster.engine import events as ev
from ringmaster.engine.agents import AgentsMixin
from ringmaster.engine.base import (
    CALL_DEADLINES,
    DEFAULT_ENDED_CALL_TTL,
    DUE_RING,
    DUE_SKIP,
    DUE_WRAPUP,
    MAX_EARLY_HANGUPS,
)
from ringmaster.engine.calls import CallsMixin
from ringmaster.engine.commands import Command, PublishQueueSnapshot, QueueSnapshot
from ringmaster.engine.configuration import ConfigurationMixin
from ringmaster.engine.deadlines import DeadlinesMixin
from ringmaster.engine.distribution import DistributionMixin
from ringmaster.engine.model import AgentStatus, CallId, CallKey, ExtensionId, QueueId, TenantId
from ringmaster.engine.records import CallRecord, LiveState, StateChanges
from ringmaster.engine.rings import RingsMixin
from ringmaster.engine.state import AgentState, CallState, QueueState
from ringmaster.engine.supervisor import SupervisorMixin

__all__ = ["DEFAULT_ENDED_CALL_TTL", "MAX_EARLY_HANGUPS", "Engine"]


class Engine(
    CallsMixin,
    RingsMixin,
    DistributionMixin,
    AgentsMixin,
    ConfigurationMixin,
    DeadlinesMixin,
    SupervisorMixin,
):
    """A sans-I/O automatic call distributor for many tenants."""

    # --- the public surface --------------------------------------------------

    def handle(self, event: ev.Event, now: float) -> list[Command]:
        """Apply one event that happened at `now`; return what must be done."""
        handler = self._HANDLERS[type(event)]
        try:
            handler(self, event, now)
        except BaseException:
            # A bug: do not let this event's half-made commands leak into the next.
            self._out = []
            self._rings_ended.clear()
            raise
        self._forget_ended(now)
        return self._finish(now)

    def handle_timer(self, now: float) -> list[Command]:
        """Apply every deadline that is due at `now`."""
        while self._deadlines and self._deadlines[0][0] <= now:
            entry = heapq.heappop(self._deadlines)
            if not self._is_live_deadline(entry):
                continue
            _, kind, _, _, key, extension_id = entry
            if kind == DUE_RING and extension_id is None:
                self._rings_timed_out(entry, now)
            elif kind in CALL_DEADLINES:
                assert key is not None
                self._call_deadline_due(kind, key, extension_id, now)
            elif extension_id is not None:
                self._agent_rested(extension_id, now)
        self._forget_ended(now)
        return self._finish(now)

    def next_deadline(self) -> float | None:
        """When `handle_timer` next has something to do, or None."""
        while self._deadlines and not self._is_live_deadline(self._deadlines[0]):
            heapq.heappop(self._deadlines)  # superseded: cheaper to drop lazily
        return self._deadlines[0][0] if self._deadlines else None

    def restore(self, live: LiveState, now: float) -> list[Command]:
        """Load live state saved by `take_changes` (configuration comes first).

        Returns what must be done now: distribution resumes. Deadlines that
        passed while ringmaster was down are not applied: the caller applies
        them with `handle_timer` once it has handled the messages that may
        have overtaken them (an answer to a ring whose timeout passed since).
        """
        for queue_memory in live.queues:
            if queue_memory.queue_id in self._queues:
                self._queues[queue_memory.queue_id].restore_memory(queue_memory)
        for stats in live.agent_stats:
            if stats.queue_id in self._queues:
                self._queues[stats.queue_id].stats[stats.extension_id] = stats
        for agent_record in live.agents:
            agent = self._agents.get(agent_record.extension_id)
            if agent is not None:
                self._count_status(agent, -1)
                agent.restore(agent_record)
                self._count_status(agent, +1)
                if agent.wrapup_until is not None:
                    self._add_deadline(agent.wrapup_until, DUE_WRAPUP, None, agent.extension_id)
                if agent.skip_until is not None:
                    self._add_deadline(agent.skip_until, DUE_SKIP, None, agent.extension_id)
        # Live calls in arrival order; ended calls oldest end first, the order
        # `_forget_ended` walks them in (arrival order would let one call that
        # ended late keep every other ended call for as long as it stays).
        ended = sorted(
            (r for r in live.calls if r.phase.is_final), key=lambda r: (r.ended_at or 0.0, r.seq)
        )
        waiting = sorted((r for r in live.calls if not r.phase.is_final), key=lambda r: r.seq)
        for record in (*ended, *waiting):
            self._restore_call(CallState.from_record(record), now)
        for agent in self._agents.values():
            self._refresh_agent(agent, now)
        self._to_distribute.update(self._queues)
        self._touched.update(self._queues)
        self._empty_check.update(self._queues)
        return self._finish(now)

    def take_snapshots(self, now: float) -> list[PublishQueueSnapshot]:
        """The wallboard snapshot of every queue that changed since the last call.

        A pull, like `take_changes`, rather than a command per event: a retained
        topic needs only its latest value, so the service asks once per turn and
        a simulation need not ask at all.
        """
        snapshots = [
            PublishQueueSnapshot(queue.config.tenant_id, self.snapshot(queue_id, now), now)
            for queue_id in sorted(self._touched)
            if (queue := self._queues.get(queue_id)) is not None
        ]
        self._touched.clear()
        return snapshots

    def take_changes(self) -> StateChanges:
        """What changed since the last call, as records for the store."""
        calls = tuple(
            record for key in self._dirty_calls if (record := self._call_record(key)) is not None
        )
        agents = tuple(self._agents[e].to_record() for e in self._dirty_agents if e in self._agents)
        queues = tuple(
            self._queues[q].memory_record() for q in self._dirty_queues if q in self._queues
        )
        stats = tuple(
            self._queues[q].stats[e]
            for q, e in self._dirty_stats
            if q in self._queues and e in self._queues[q].stats
        )
        changes = StateChanges(
            live=LiveState(calls=calls, agents=agents, queues=queues, agent_stats=stats),
            calls_removed=tuple(self._removed_calls),
            agents_removed=tuple(self._removed_agents),
            queues_removed=tuple(self._removed_queues),
            agent_stats_removed=tuple(self._removed_stats),
        )
        for dirty in (
            self._dirty_calls,
            self._dirty_agents,
            self._dirty_queues,
            self._dirty_stats,
            self._removed_calls,
            self._removed_agents,
            self._removed_queues,
            self._removed_stats,
        ):
            dirty.clear()
        return changes

    def _call_record(self, key: CallKey) -> CallRecord | None:
        call = self._calls.get(key)
        return call.to_record() if call is not None else self._ended.record(key)

    # read-only views, for the service, the admin API and the tests

    def call(self, tenant_id: TenantId, call_id: CallId) -> CallState | None:
        """A live call, or one ended in the last `ended_call_ttl` seconds."""
        key = (tenant_id, call_id)
        return self._calls.get(key) or self._ended.get(key)

    def calls(self) -> Iterable[CallState]:
        """The calls being handled now (waiting, ringing or connected)."""
        return self._calls.values()

    def agent(self, extension_id: ExtensionId) -> AgentState | None:
        """An extension as an agent, or None if it does not exist."""
        return self._agents.get(extension_id)

    def agents(self) -> Iterable[AgentState]:
        """Every existing extension as an agent."""
        return self._agents.values()

    def queue(self, queue_id: QueueId) -> QueueState | None:
        """A queue, or None if it does not exist."""
        return self._queues.get(queue_id)

    def queues(self) -> Iterable[QueueState]:
        """Every queue."""
        return self._queues.values()

    def snapshot(self, queue_id: QueueId, now: float) -> QueueSnapshot:
        """The wallboard view of a queue at `now`."""
        queue = self._queues[queue_id]
        config = queue.config
        return QueueSnapshot(
            queue_id=queue_id,
            name=config.name,
            queue_number=config.queue_number,
            strategy=config.strategy,
            status=config.status.value,
            waiting=len(queue.line),
            longest_wait_s=round(now - queue.oldest_arrival(now), 3),
            agents={status.value: queue.status_counts[status] for status in AgentStatus},
            offered=queue.offered,
            answered=queue.answered,
            abandoned=queue.abandoned,
            completed=queue.completed,
            overflowed=queue.overflowed,
            service_level_s=config.service_level,
            answered_within=queue.answered_within,
            abandoned_within=queue.abandoned_within,
            service_level_pct=(
                round(100 * queue.answered_within / queue.answered, 1) if queue.answered else None
            ),
            callbacks=queue.callbacks,
        )

    # --- bookkeeping ------------------------------------------------------------

    def _finish(self, now: float) -> list[Command]:
        # Leaving empty queues, ringing agents and ending rounds change each
        # other's inputs: go round until none has anything left to do.
        while True:
            self._leave_empty_queues(now)
            self._distribute(now)
            self._close_rounds(now)
            if not self._empty_check and not self._to_distribute:
                break
        out, self._out = self._out, []
        return out

    _HANDLERS: ClassVar[dict[type, Callable[[Engine, Any, float], None]]] = {
        ev.CallArrived: CallsMixin._call_arrived,
        ev.RingAnswered: RingsMixin._ring_answered,
        ev.RingFailed: RingsMixin._ring_failed,
        ev.CallHungUp: CallsMixin._call_hung_up,
        ev.CallbackRequested: CallsMixin._callback_requested,
        ev.AgentPresenceChanged: AgentsMixin._presence_changed,
        ev.DeviceStateChanged: AgentsMixin._device_changed,
        ev.TenantSaved: ConfigurationMixin._tenant_saved,
        ev.TenantRemoved: ConfigurationMixin._tenant_removed,
        ev.ExtensionSaved: ConfigurationMixin._extension_saved,
        ev.ExtensionRemoved: ConfigurationMixin._extension_removed,
        ev.QueueSaved: ConfigurationMixin._queue_saved,
        ev.QueueRemoved: ConfigurationMixin._queue_removed,
        ev.AgentEnrolled: ConfigurationMixin._agent_enrolled,
        ev.AgentUnenrolled: ConfigurationMixin._agent_unenrolled,
        ev.DidRouteSaved: ConfigurationMixin._did_route_saved,
        ev.DidRouteRemoved: ConfigurationMixin._did_route_removed,
        ev.MoveCall: SupervisorMixin._move_call,
        ev.SetCallPriority: SupervisorMixin._set_call_priority,
        ev.SendCallToExtension: SupervisorMixin._send_call_to_extension,
        ev.HangUpCall: SupervisorMixin._hang_up_call,
        ev.RequestAgentState: SupervisorMixin._request_agent_state,
    }
