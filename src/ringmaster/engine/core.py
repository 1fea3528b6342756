"""The call-distribution engine: events and the time in, commands out.

`Engine.handle(event, now)` applies one event; `Engine.handle_timer(now)`
applies whatever fell due (ring timeouts, retry pauses, wrap-ups);
`Engine.next_deadline()` says when that next is. The service owns the clock
and the only timer; tests own a virtual clock.

How distribution works. A call waits in its queue's line, sorted best first.
Each queue keeps the set of its agents that could be rung right now (`free`).
Whenever something may pair a waiting call with a free agent (a call
arrives, a ring ends, an agent becomes free, a retry pause ends), the queues
concerned are marked and `_distribute` walks their lines together, best call
first across all of them, so that an agent enrolled in several queues is
offered the best waiting call of all of them. Between events no waiting call
that wants an agent has a free, untried one: that invariant is what lets each
event look only at the queues it touched.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, ClassVar

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    CancelRing,
    ClearQueueSnapshot,
    Command,
    PublishAgentState,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallCompleted,
    PublishCallQueued,
    PublishCallRejected,
    PublishCallRinging,
    PublishQueueSnapshot,
    QueueSnapshot,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallKey,
    CallPhase,
    CancelReason,
    DeviceState,
    DidRoute,
    Extension,
    ExtensionId,
    ExtensionTarget,
    Presence,
    QueueId,
    QueueStatus,
    RejectReason,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    LiveState,
    RingRecord,
    StateChanges,
)
from ringmaster.engine.state import AgentState, CallState, EngineBug, QueueState
from ringmaster.engine.strategies import STRATEGIES, QueueView, RandomSource

#: How long an ended call is remembered, so that a late duplicate of its
#: messages (QoS 1 redelivery after a crash, a PBX retry) changes nothing.
DEFAULT_ENDED_CALL_TTL = 120.0

# Deadline kinds, in the order they are handled when due at the same time.
_RING, _RETRY, _WRAPUP = 0, 1, 2
# (when, kind, tie-breaker, call, extension): the unique tie-breaker keeps
# heap comparisons from ever reaching the optional fields.
_Deadline = tuple[float, int, int, CallKey | None, ExtensionId | None]


class _GoldenRatioSequence:
    """A low-discrepancy sequence in [0, 1): spreads choices evenly, needs no seed."""

    def __init__(self) -> None:
        self._x = 0.0

    def random(self) -> float:
        self._x = (self._x + 0.6180339887498949) % 1.0
        return self._x


class Engine:
    """A sans-I/O automatic call distributor for many tenants."""

    def __init__(
        self,
        *,
        ended_call_ttl: float = DEFAULT_ENDED_CALL_TTL,
        rng: RandomSource | None = None,
    ) -> None:
        self._ended_call_ttl = ended_call_ttl
        # The `random` strategy's source. The service owns and seeds it; the
        # default is a fixed sequence, so an engine built without one is
        # still deterministic.
        self._rng: RandomSource = rng if rng is not None else _GoldenRatioSequence()
        # configuration
        self._tenants: dict[TenantId, Tenant] = {}
        self._extensions: dict[ExtensionId, Extension] = {}
        self._extension_ids: dict[tuple[TenantId, str], ExtensionId] = {}
        self._queues: dict[QueueId, QueueState] = {}
        self._queues_of: dict[ExtensionId, set[QueueId]] = {}
        self._routes: dict[tuple[TenantId, str], DidRoute] = {}
        # live state
        self._calls: dict[CallKey, CallState] = {}
        self._ended: OrderedDict[CallKey, CallState] = OrderedDict()
        self._agents: dict[ExtensionId, AgentState] = {}
        self._deadlines: list[_Deadline] = []
        self._deadline_count = 0
        self._seq = 0
        # work of the current event
        self._out: list[Command] = []
        self._to_distribute: set[QueueId] = set()
        self._touched: set[QueueId] = set()
        # what changed since the last take_changes()
        self._dirty_calls: set[CallKey] = set()
        self._dirty_agents: set[ExtensionId] = set()
        self._dirty_queues: set[QueueId] = set()
        self._dirty_stats: set[tuple[QueueId, ExtensionId]] = set()
        self._removed_calls: set[CallKey] = set()
        self._removed_agents: set[ExtensionId] = set()
        self._removed_queues: set[QueueId] = set()
        self._removed_stats: set[tuple[QueueId, ExtensionId]] = set()

    # --- the public surface --------------------------------------------------

    def handle(self, event: ev.Event, now: float) -> list[Command]:
        """Apply one event that happened at `now`; return what must be done."""
        handler = self._HANDLERS[type(event)]
        try:
            handler(self, event, now)
        except BaseException:
            # A bug: do not let this event's half-made commands leak into the next.
            self._out = []
            raise
        self._forget_ended(now)
        return self._finish(now)

    def handle_timer(self, now: float) -> list[Command]:
        """Apply every deadline that is due at `now`."""
        while self._deadlines and self._deadlines[0][0] <= now:
            _, kind, _, key, extension_id = heapq.heappop(self._deadlines)
            if kind == _RING and key is not None and extension_id is not None:
                self._ring_timed_out(key, extension_id, now)
            elif kind == _RETRY and key is not None:
                self._retry_due(key, now)
            elif kind == _WRAPUP and extension_id is not None:
                self._wrapup_due(extension_id, now)
        self._forget_ended(now)
        return self._finish(now)

    def next_deadline(self) -> float | None:
        """When `handle_timer` next has something to do, or None."""
        while self._deadlines and not self._is_live_deadline(self._deadlines[0]):
            heapq.heappop(self._deadlines)  # superseded: cheaper to drop lazily
        return self._deadlines[0][0] if self._deadlines else None

    def restore(self, live: LiveState, now: float) -> list[Command]:
        """Load live state saved by `take_changes` (configuration comes first).

        Returns what must be done now: rings that timed out while ringmaster
        was down are cancelled, and distribution resumes.
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
                self._count_status(agent, agent.status, -1)
                agent.restore(agent_record)
                self._count_status(agent, agent.status, +1)
                if agent.wrapup_until is not None:
                    self._add_deadline(agent.wrapup_until, _WRAPUP, None, agent.extension_id)
        for record in sorted(live.calls, key=lambda r: r.seq):
            self._restore_call(CallState.from_record(record), now)
        for agent in self._agents.values():
            self._refresh_agent(agent, now)
        self._to_distribute.update(self._queues)
        self._touched.update(self._queues)
        return self.handle_timer(now)

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
            call.to_record()
            for key in self._dirty_calls
            if (call := self._calls.get(key) or self._ended.get(key)) is not None
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
        )

    # --- calls -------------------------------------------------------------------

    def _call_arrived(self, event: ev.CallArrived, now: float) -> None:
        key = (event.tenant_id, event.call_id)
        if key in self._calls or key in self._ended:
            return  # a duplicate: the contract makes every inbound idempotent
        self._seq += 1
        call = CallState(
            tenant_id=event.tenant_id,
            call_id=event.call_id,
            phase=CallPhase.QUEUED,
            did=event.did,
            caller_id=event.caller_id,
            caller_name=event.caller_name,
            priority=event.priority,
            arrived_at=now,
            seq=self._seq,
        )
        route = self._routes.get((event.tenant_id, event.did))
        if route is None:
            self._reject(call, RejectReason.NO_ROUTE, now)
            return
        if isinstance(route.target, ExtensionTarget):
            extension = self._extensions.get(route.target.extension_id)
            if extension is None or extension.tenant_id != event.tenant_id:
                self._reject(call, RejectReason.NO_ROUTE, now)
                return
            call.phase = CallPhase.ROUTED
            self._end(call, now)
            self._out.append(RouteToExtension(call.tenant_id, call.call_id, extension.number))
            return
        queue = self._queues.get(route.target.queue_id)
        if queue is None or queue.config.tenant_id != event.tenant_id:
            self._reject(call, RejectReason.NO_ROUTE, now)
            return
        if queue.config.status is QueueStatus.INACTIVE:
            self._reject(call, RejectReason.QUEUE_INACTIVE, now)
            return
        call.queue_id = queue.queue_id
        self._calls[key] = call
        self._dirty_calls.add(key)
        self._removed_calls.discard(key)  # a call_id used again after it was forgotten
        insort(queue.line, call.line_entry)
        queue.offered += 1
        self._queue_changed(queue)
        self._out.append(
            PublishCallQueued(
                call.tenant_id,
                call.call_id,
                queue.queue_id,
                call.did,
                call.caller_id,
                position=bisect_left(queue.line, call.line_entry) + 1,
                at=now,
            )
        )

    def _ring_answered(self, event: ev.RingAnswered, now: float) -> None:
        call = self._known_call(event, now)
        if call is None:
            return
        extension_id = self._extension_ids.get((event.tenant_id, event.extension))
        if call.phase in (CallPhase.CONNECTED, CallPhase.COMPLETED) and (
            call.agent_id == extension_id
        ):
            return  # a duplicate of the answer we already have
        if extension_id is None or extension_id not in call.rings:
            # Contract: an answer from an extension that is not ringing for the
            # call changes nothing and is reported.
            self._out.append(
                RejectInput(
                    event,
                    f"extension {event.extension} is not ringing for call {event.call_id}",
                    now,
                )
            )
            return
        queue = self._queue_of(call)
        assert queue is not None  # an answerable call is in a queue's line
        for other in [e for e in call.rings if e != extension_id]:
            self._end_ring(call, other, CancelReason.ANSWERED_ELSEWHERE, now)
        del call.rings[extension_id]
        self._move(call, "answer")
        call.agent_id = extension_id
        call.answered_at = now
        call.retry_at = None
        self._leave_line(call, queue)
        queue.answered += 1
        self._queue_changed(queue)
        agent = self._agents[extension_id]
        agent.ringing_for = None
        agent.connected_to = call.key
        self._refresh_agent(agent, now)
        self._out.append(
            PublishCallAnswered(
                call.tenant_id,
                call.call_id,
                queue.queue_id,
                event.extension,
                wait_s=round(now - call.arrived_at, 3),
                at=now,
            )
        )

    def _ring_failed(self, event: ev.RingFailed, now: float) -> None:
        call = self._known_call(event, now)
        if call is None:
            return
        extension_id = self._extension_ids.get((event.tenant_id, event.extension))
        if extension_id is None or extension_id not in call.rings:
            # Usually a race with our own cancel (the PBX reports the failure
            # of a ring we already ended): nothing to do.
            return
        self._end_ring(call, extension_id, None, now)

    def _call_hung_up(self, event: ev.CallHungUp, now: float) -> None:
        call = self._known_call(event, now)
        if call is None or call.phase.is_final:
            return
        queue = self._queue_of(call)
        if call.phase is CallPhase.CONNECTED:
            self._move(call, "hangup")
            self._end(call, now)
            agent = self._agent_of(call)
            talk_s = now - (call.answered_at or now)
            if agent is not None:
                agent.connected_to = None
                wrapup = queue.config.wrapup_time if queue is not None else 0
                if wrapup > 0:
                    agent.wrapup_until = now + wrapup
                    self._dirty_agents.add(agent.extension_id)
                    self._add_deadline(agent.wrapup_until, _WRAPUP, None, agent.extension_id)
                self._refresh_agent(agent, now)
            if queue is not None and call.agent_id is not None:
                queue.completed += 1
                self._record_completed(queue, call.agent_id, talk_s, now)
                self._queue_changed(queue)
            number = self._former_number(call.agent_id) if call.agent_id is not None else ""
            self._out.append(
                PublishCallCompleted(
                    call.tenant_id,
                    call.call_id,
                    call.queue_id or QueueId(0),
                    number,
                    talk_s=round(talk_s, 3),
                    at=now,
                )
            )
            return
        for extension_id in list(call.rings):
            self._end_ring(call, extension_id, CancelReason.CALLER_HANGUP, now)
        self._move(call, "hangup")
        self._end(call, now)
        if queue is not None:
            self._leave_line(call, queue)
            queue.abandoned += 1
            self._queue_changed(queue)
            self._out.append(
                PublishCallAbandoned(
                    call.tenant_id,
                    call.call_id,
                    queue.queue_id,
                    wait_s=round(now - call.arrived_at, 3),
                    at=now,
                )
            )

    def _known_call(
        self, event: ev.RingAnswered | ev.RingFailed | ev.CallHungUp, now: float
    ) -> CallState | None:
        key = (event.tenant_id, event.call_id)
        call = self._calls.get(key) or self._ended.get(key)
        if call is None:
            self._out.append(RejectInput(event, f"unknown call {event.call_id}", now))
        return call

    def _reject(self, call: CallState, reason: RejectReason, now: float) -> None:
        call.phase = CallPhase.REJECTED
        self._end(call, now)
        self._out.append(RouteToHangup(call.tenant_id, call.call_id, reason.value))
        self._out.append(
            PublishCallRejected(call.tenant_id, call.call_id, call.did, reason.value, now)
        )

    def _move(self, call: CallState, happened: str) -> None:
        """Take one step of the call's life (`CALL_TRANSITIONS`); it is then stored."""
        call.move(happened)
        self._dirty_calls.add(call.key)

    def _end(self, call: CallState, now: float) -> None:
        """Move a call that reached a final phase to the remembered-ended calls."""
        call.ended_at = now
        self._calls.pop(call.key, None)
        self._ended[call.key] = call
        self._dirty_calls.add(call.key)

    def _forget_ended(self, now: float) -> None:
        horizon = now - self._ended_call_ttl
        while self._ended:
            key, call = next(iter(self._ended.items()))
            if (call.ended_at or 0.0) > horizon:
                break
            del self._ended[key]
            self._dirty_calls.discard(key)
            self._removed_calls.add(key)

    def _queue_of(self, call: CallState) -> QueueState | None:
        return self._queues.get(call.queue_id) if call.queue_id is not None else None

    def _agent_of(self, call: CallState) -> AgentState | None:
        return self._agents.get(call.agent_id) if call.agent_id is not None else None

    def _leave_line(self, call: CallState, queue: QueueState) -> None:
        entry = call.line_entry
        index = bisect_left(queue.line, entry)
        if index < len(queue.line) and queue.line[index] == entry:
            del queue.line[index]

    def _restore_call(self, call: CallState, now: float) -> None:
        key = call.key
        self._seq = max(self._seq, call.seq)
        if call.phase.is_final:
            self._ended[key] = call
            return
        self._calls[key] = call
        if call.phase is CallPhase.CONNECTED:
            agent = self._agent_of(call)
            if agent is not None:
                agent.connected_to = key
            return
        for ring in call.rings.values():
            agent = self._agents.get(ring.extension_id)
            if agent is not None:
                agent.ringing_for = key
            self._add_deadline(ring.deadline, _RING, key, ring.extension_id)
        if call.retry_at is not None:
            self._add_deadline(call.retry_at, _RETRY, key, None)
        queue = self._queue_of(call)
        if queue is None:
            self._leave(call, "queue_removed", now)  # its queue went while we were down
        else:
            insort(queue.line, call.line_entry)

    def _leave(self, call: CallState, reason: str, now: float) -> None:
        """Take a waiting call out of ringmaster's hands and hang it up."""
        for extension_id in list(call.rings):
            self._end_ring(call, extension_id, CancelReason.OVERFLOW, now)
        self._move(call, "leave")
        self._end(call, now)
        self._out.append(RouteToHangup(call.tenant_id, call.call_id, reason))

    def _add_deadline(
        self, at: float, kind: int, key: CallKey | None, extension_id: ExtensionId | None
    ) -> None:
        self._deadline_count += 1
        heapq.heappush(self._deadlines, (at, kind, self._deadline_count, key, extension_id))

    # --- rings ---------------------------------------------------------------------

    def _start_ring(
        self, call: CallState, queue: QueueState, agent: AgentState, now: float
    ) -> None:
        deadline = now + queue.config.timeout
        call.rings[agent.extension_id] = RingRecord(agent.extension_id, now, deadline)
        call.tried.add(agent.extension_id)
        self._move(call, "ring")
        self._dirty_calls.add(call.key)
        queue.last_rung = agent.extension_id
        self._dirty_queues.add(queue.queue_id)
        agent.ringing_for = call.key
        self._add_deadline(deadline, _RING, call.key, agent.extension_id)
        self._out.append(
            Ring(
                call.tenant_id,
                call.call_id,
                agent.number,
                queue.queue_id,
                queue.config.timeout,
                call.caller_id,
            )
        )
        self._out.append(
            PublishCallRinging(call.tenant_id, call.call_id, queue.queue_id, agent.number, now)
        )
        self._refresh_agent(agent, now)

    def _end_ring(
        self, call: CallState, extension_id: ExtensionId, cancel: CancelReason | None, now: float
    ) -> None:
        """End one ring; `cancel` says why we stop it, None if the PBX ended it."""
        call.rings.pop(extension_id)
        agent = self._agents.get(extension_id)
        number = agent.number if agent is not None else self._former_number(extension_id)
        if cancel is not None:
            self._out.append(CancelRing(call.tenant_id, call.call_id, number, cancel))
        if call.phase is CallPhase.RINGING:
            self._move(call, "ring_ended" if call.rings else "last_ring_ended")
        self._dirty_calls.add(call.key)
        if (queue := self._queue_of(call)) is not None:
            self._queue_changed(queue)
        if agent is not None and agent.ringing_for == call.key:
            agent.ringing_for = None
            self._refresh_agent(agent, now)

    def _former_number(self, extension_id: ExtensionId) -> str:
        extension = self._extensions.get(extension_id)
        return extension.number if extension is not None else ""

    def _ring_timed_out(self, key: CallKey, extension_id: ExtensionId, now: float) -> None:
        call = self._calls.get(key)
        if call is not None and extension_id in call.rings:
            self._end_ring(call, extension_id, CancelReason.TIMEOUT, now)

    def _retry_due(self, key: CallKey, now: float) -> None:
        call = self._calls.get(key)
        if call is None or call.retry_at is None or call.retry_at > now:
            return
        call.retry_at = None
        call.tried.clear()  # a new round
        self._dirty_calls.add(key)
        if (queue := self._queue_of(call)) is not None:
            self._queue_changed(queue)

    def _is_live_deadline(self, entry: _Deadline) -> bool:
        at, kind, _, key, extension_id = entry
        call = self._calls.get(key) if key is not None else None
        if kind == _RING:
            ring = call.rings.get(extension_id) if call and extension_id is not None else None
            return ring is not None and ring.deadline == at
        if kind == _RETRY:
            return call is not None and call.retry_at == at
        agent = self._agents.get(extension_id) if extension_id is not None else None
        return agent is not None and agent.wrapup_until == at

    # --- distribution -------------------------------------------------------------------

    def _distribute(self, now: float) -> None:
        while self._to_distribute:
            if not any(  # the common case in a busy centre: nobody free, or nobody waiting
                (queue := self._queues.get(q)) is not None and queue.free and queue.line
                for q in self._to_distribute
            ):
                self._to_distribute.clear()
                return
            queues = [self._queues[q] for q in self._to_distribute if q in self._queues]
            self._to_distribute.clear()
            # Only queues with a free agent can ring anyone; merging their lines
            # visits the best waiting call of all of them first.
            queues = [queue for queue in queues if queue.free and queue.line]
            # Offering a call only ever takes agents, never frees one, and
            # never changes a line, so the lines can be walked as they are.
            for entry in heapq.merge(*(queue.line for queue in queues)):
                call = self._calls[entry[3]]
                queue = self._queue_of(call)
                if queue is not None and queue.free:
                    self._offer(call, queue, now)
                    if not any(q.free for q in queues):
                        break

    def _offer(self, call: CallState, queue: QueueState, now: float) -> None:
        """Ring whoever the queue's strategy picks for `call`, if anyone."""
        strategy = STRATEGIES[queue.config.strategy]
        if call.phase is CallPhase.CONNECTED or (call.rings and not strategy.rings_all):
            return
        if not queue.free:
            return
        candidates = [e for e in queue.free if e not in call.tried]
        if not candidates:
            if call.rings or call.retry_at is not None:
                return
            # Every agent who could take the call was rung this round: pause
            # for the queue's `retry`, then start a new round.
            if queue.config.retry > 0:
                call.retry_at = now + queue.config.retry
                self._dirty_calls.add(call.key)
                self._add_deadline(call.retry_at, _RETRY, call.key, None)
                return
            call.tried.clear()
            candidates = list(queue.free)
        candidates.sort(key=queue.position.__getitem__)
        if strategy.rings_all:
            chosen = candidates
        else:
            view = QueueView(
                queue.enrolled, queue.position, queue.last_rung, queue.stats, self._rng
            )
            chosen = [strategy.choose(candidates, view)]
        for extension_id in chosen:
            self._start_ring(call, queue, self._agents[extension_id], now)

    # --- agents ----------------------------------------------------------------------------

    def _is_free(self, agent: AgentState, now: float) -> bool:
        # Contract: rung only while available by presence, not in use by
        # device state, not ringing for or connected to another call, and not
        # in wrap-up. A phone that is ringing or unregistered is not rung either.
        return (
            agent.presence is Presence.AVAILABLE
            and agent.device is DeviceState.IDLE
            and agent.ringing_for is None
            and agent.connected_to is None
            and (agent.wrapup_until is None or agent.wrapup_until <= now)
        )

    def _status_of(self, agent: AgentState, now: float) -> tuple[AgentStatus, str]:  # noqa: PLR0911
        if agent.connected_to is not None:
            return AgentStatus.BUSY, ""
        if agent.ringing_for is not None:
            return AgentStatus.RINGING, ""
        if agent.presence is Presence.LOGGED_OUT:
            return AgentStatus.LOGGED_OUT, agent.presence_reason
        if agent.presence is Presence.PAUSED:
            return AgentStatus.PAUSED, agent.presence_reason
        if agent.device is DeviceState.UNAVAILABLE:
            return AgentStatus.LOGGED_OUT, "device_unavailable"
        if agent.device is not DeviceState.IDLE:
            return AgentStatus.BUSY, ""
        if agent.wrapup_until is not None and agent.wrapup_until > now:
            return AgentStatus.WRAPUP, ""
        return AgentStatus.AVAILABLE, ""

    def _refresh_agent(self, agent: AgentState, now: float) -> None:
        """Bring the queues' free sets and the published status up to date."""
        free = self._is_free(agent, now)
        if free != agent.free:
            agent.free = free
            for queue_id in self._queues_of.get(agent.extension_id, ()):
                queue = self._queues.get(queue_id)
                if queue is None:
                    continue
                if free:
                    queue.free.add(agent.extension_id)
                    self._to_distribute.add(queue_id)
                else:
                    queue.free.discard(agent.extension_id)
        status, reason = self._status_of(agent, now)
        if status is not agent.status:
            self._count_status(agent, agent.status, -1)
            self._count_status(agent, status, +1)
            agent.status = status
            self._dirty_agents.add(agent.extension_id)
            self._out.append(PublishAgentState(agent.tenant_id, agent.number, status, now, reason))

    def _count_status(self, agent: AgentState, status: AgentStatus, delta: int) -> None:
        for queue_id in self._queues_of.get(agent.extension_id, ()):
            queue = self._queues.get(queue_id)
            if queue is not None:
                queue.status_counts[status] += delta
                self._touched.add(queue_id)

    def _wrapup_due(self, extension_id: ExtensionId, now: float) -> None:
        agent = self._agents.get(extension_id)
        if agent is not None and agent.wrapup_until is not None and agent.wrapup_until <= now:
            agent.wrapup_until = None
            self._dirty_agents.add(extension_id)
            self._refresh_agent(agent, now)

    def _agent_for(
        self, event: ev.AgentPresenceChanged | ev.DeviceStateChanged, now: float
    ) -> AgentState | None:
        extension_id = self._extension_ids.get((event.tenant_id, event.extension))
        if extension_id is None:
            self._out.append(RejectInput(event, f"unknown extension {event.extension}", now))
            return None
        return self._agents[extension_id]

    def _presence_changed(self, event: ev.AgentPresenceChanged, now: float) -> None:
        agent = self._agent_for(event, now)
        if agent is None:
            return
        if (agent.presence, agent.presence_reason) == (event.presence, event.reason):
            return
        agent.presence = event.presence
        agent.presence_reason = event.reason
        self._dirty_agents.add(agent.extension_id)
        if event.presence is not Presence.AVAILABLE:
            self._cancel_ring_of(agent, now)
        self._refresh_agent(agent, now)

    def _device_changed(self, event: ev.DeviceStateChanged, now: float) -> None:
        agent = self._agent_for(event, now)
        if agent is None or agent.device is event.state:
            return
        agent.device = event.state
        self._dirty_agents.add(agent.extension_id)
        # `in_use` and `ringing` while our ring is on are that very ring being
        # answered or ringing; only a phone that went away ends it.
        if event.state is DeviceState.UNAVAILABLE:
            self._cancel_ring_of(agent, now)
        self._refresh_agent(agent, now)

    def _cancel_ring_of(self, agent: AgentState, now: float) -> None:
        if agent.ringing_for is not None:
            call = self._calls[agent.ringing_for]
            self._end_ring(call, agent.extension_id, CancelReason.AGENT_UNAVAILABLE, now)

    def _record_completed(
        self, queue: QueueState, extension_id: ExtensionId, talk_s: float, now: float
    ) -> None:
        stats = queue.stats.get(extension_id) or AgentQueueStats(queue.queue_id, extension_id)
        queue.stats[extension_id] = replace(
            stats,
            last_call_ended_at=now,
            calls_completed=stats.calls_completed + 1,
            talk_time_s=stats.talk_time_s + talk_s,
        )
        self._dirty_stats.add((queue.queue_id, extension_id))
        self._removed_stats.discard((queue.queue_id, extension_id))

    # --- configuration -------------------------------------------------------------------

    def _tenant_saved(self, event: ev.TenantSaved, now: float) -> None:
        self._tenants[event.tenant.tenant_id] = event.tenant

    def _tenant_removed(self, event: ev.TenantRemoved, now: float) -> None:
        self._tenants.pop(event.tenant_id, None)
        for key in [k for k in self._routes if k[0] == event.tenant_id]:
            del self._routes[key]

    def _extension_saved(self, event: ev.ExtensionSaved, now: float) -> None:
        extension = event.extension
        old = self._extensions.get(extension.extension_id)
        if old is not None:
            del self._extension_ids[(old.tenant_id, old.number)]
        self._extensions[extension.extension_id] = extension
        self._extension_ids[(extension.tenant_id, extension.number)] = extension.extension_id
        agent = self._agents.get(extension.extension_id)
        if agent is None:
            agent = AgentState(extension.extension_id, extension.tenant_id, extension.number)
            self._agents[extension.extension_id] = agent
            self._count_status(agent, agent.status, +1)
            self._dirty_agents.add(extension.extension_id)
            self._removed_agents.discard(extension.extension_id)
        agent.number = extension.number

    def _extension_removed(self, event: ev.ExtensionRemoved, now: float) -> None:
        extension = self._extensions.get(event.extension_id)
        agent = self._agents.get(event.extension_id)
        if extension is None or agent is None:
            return
        self._cancel_ring_of(agent, now)
        # A connected call carries on: the PBX bridged it, and its hangup will
        # complete it. The agent simply stops existing for distribution.
        agent.presence = Presence.LOGGED_OUT
        self._refresh_agent(agent, now)
        self._count_status(agent, agent.status, -1)
        del self._agents[event.extension_id]
        del self._extensions[event.extension_id]
        del self._extension_ids[(extension.tenant_id, extension.number)]
        self._dirty_agents.discard(event.extension_id)
        self._removed_agents.add(event.extension_id)

    def _queue_saved(self, event: ev.QueueSaved, now: float) -> None:
        config = event.queue
        if config.strategy not in STRATEGIES:
            raise EngineBug(f"queue {config.queue_id}: unknown strategy {config.strategy!r}")
        queue = self._queues.get(config.queue_id)
        if queue is None:
            queue = QueueState(config)
            self._queues[config.queue_id] = queue
            self._dirty_queues.add(config.queue_id)
            self._removed_queues.discard(config.queue_id)
        queue.config = config
        self._queue_changed(queue)

    def _queue_removed(self, event: ev.QueueRemoved, now: float) -> None:
        queue = self._queues.get(event.queue_id)
        if queue is None:
            return
        for entry in list(queue.line):
            self._leave(self._calls[entry[3]], "queue_removed", now)
        queue.line.clear()
        for extension_id in list(queue.enrolled):
            self._unenrol(queue, extension_id, now)
        del self._queues[event.queue_id]
        self._touched.discard(event.queue_id)
        self._to_distribute.discard(event.queue_id)
        self._dirty_queues.discard(event.queue_id)
        self._removed_queues.add(event.queue_id)
        self._out.append(ClearQueueSnapshot(queue.config.tenant_id, event.queue_id))

    def _agent_enrolled(self, event: ev.AgentEnrolled, now: float) -> None:
        queue = self._queues.get(event.queue_id)
        if queue is None or event.extension_id in queue.position:
            return
        # In place: start-up replays every enrolment, and rebuilding the list
        # each time made that quadratic (3.8 s for 10,000 agents in one queue).
        queue.position[event.extension_id] = len(queue.enrolled)
        queue.enrolled.append(event.extension_id)
        self._queues_of.setdefault(event.extension_id, set()).add(event.queue_id)
        agent = self._agents.get(event.extension_id)
        if agent is not None:
            queue.status_counts[agent.status] += 1
            if agent.free:
                queue.free.add(event.extension_id)
        self._queue_changed(queue)

    def _agent_unenrolled(self, event: ev.AgentUnenrolled, now: float) -> None:
        queue = self._queues.get(event.queue_id)
        if queue is not None and event.extension_id in queue.position:
            self._unenrol(queue, event.extension_id, now)
            self._queue_changed(queue)

    def _unenrol(self, queue: QueueState, extension_id: ExtensionId, now: float) -> None:
        agent = self._agents.get(extension_id)
        if agent is not None and agent.ringing_for is not None:
            call = self._calls[agent.ringing_for]
            if call.queue_id == queue.queue_id:
                self._end_ring(call, extension_id, CancelReason.AGENT_UNAVAILABLE, now)
        queue.set_enrolled([e for e in queue.enrolled if e != extension_id])
        queue.free.discard(extension_id)
        if agent is not None:
            queue.status_counts[agent.status] -= 1
        self._queues_of[extension_id].discard(queue.queue_id)
        if queue.stats.pop(extension_id, None) is not None:
            self._removed_stats.add((queue.queue_id, extension_id))
            self._dirty_stats.discard((queue.queue_id, extension_id))

    def _did_route_saved(self, event: ev.DidRouteSaved, now: float) -> None:
        self._routes[(event.route.tenant_id, event.route.did)] = event.route

    def _did_route_removed(self, event: ev.DidRouteRemoved, now: float) -> None:
        self._routes.pop((event.tenant_id, event.did), None)

    # --- bookkeeping -------------------------------------------------------------------------

    def _queue_changed(self, queue: QueueState) -> None:
        self._to_distribute.add(queue.queue_id)
        self._touched.add(queue.queue_id)
        self._dirty_queues.add(queue.queue_id)

    def _finish(self, now: float) -> list[Command]:
        self._distribute(now)
        out, self._out = self._out, []
        return out

    _HANDLERS: ClassVar[dict[type, Callable[[Engine, Any, float], None]]] = {
        ev.CallArrived: _call_arrived,
        ev.RingAnswered: _ring_answered,
        ev.RingFailed: _ring_failed,
        ev.CallHungUp: _call_hung_up,
        ev.AgentPresenceChanged: _presence_changed,
        ev.DeviceStateChanged: _device_changed,
        ev.TenantSaved: _tenant_saved,
        ev.TenantRemoved: _tenant_removed,
        ev.ExtensionSaved: _extension_saved,
        ev.ExtensionRemoved: _extension_removed,
        ev.QueueSaved: _queue_saved,
        ev.QueueRemoved: _queue_removed,
        ev.AgentEnrolled: _agent_enrolled,
        ev.AgentUnenrolled: _agent_unenrolled,
        ev.DidRouteSaved: _did_route_saved,
        ev.DidRouteRemoved: _did_route_removed,
    }
