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

Races with the PBX (docs/mqtt.md). Every ring has a `ring_id`, so that a late
message about an older ring never ends a newer one. The PBX is the truth about
the bridge: an `answered` for a ring ringmaster had already cancelled is still
honoured while the call waits (`_answer_refused`), so a call remembers its
latest ended rings. A `hangup` for a call not seen yet is remembered as an
ended call, so that its late `arrived` rings nobody.
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
    Announce,
    CancelRing,
    ClearQueueSnapshot,
    Command,
    Originate,
    PublishAgentState,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallbackRequested,
    PublishCallCompleted,
    PublishCallOverflowed,
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
from ringmaster.engine.free_agents import RankedFreeAgents
from ringmaster.engine.model import (
    AgentCondition,
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
    OverflowReason,
    Presence,
    QueueId,
    QueueStatus,
    QueueTarget,
    RejectReason,
    RingFailure,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    EndedRing,
    LiveState,
    RingRecord,
    StateChanges,
)
from ringmaster.engine.rules import (
    MAX_OVERFLOW_HOPS,
    condition_of,
    estimated_wait,
    has_skills,
    is_empty,
    next_widening,
    penalty_limit,
    skills_lowered_by,
    smoothed_interval,
)
from ringmaster.engine.state import (
    MAX_ENDED_RINGS,
    AgentState,
    CallState,
    EngineBug,
    QueueState,
)
from ringmaster.engine.strategies import (
    STRATEGIES,
    QueueView,
    RandomSource,
    RankedStrategy,
    Strategy,
)

#: `EndedRing.how` of a ring the PBX reported failed (the others are CancelReasons).
_RING_FAILED = "ring_failed"

#: How long an ended call is remembered, so that a late duplicate of its
#: messages (QoS 1 redelivery after a crash, a PBX retry) changes nothing.
DEFAULT_ENDED_CALL_TTL = 120.0

#: How many hangups for calls it never saw arrive ringmaster remembers at most
#: (each for `ended_call_ttl`, as an ended call), so that a flood of bogus
#: hangups cannot grow its memory, or its store, without bound.
MAX_EARLY_HANGUPS = 10_000

# Deadline kinds, in the order they are handled when due at the same time.
# Calls: a ring's timeout, the end of a retry pause, `max_wait`, a penalty or
# skill rule widening, the next periodic announcement, `ringprogressive`'s next
# ring. Agents: the end of a wrap-up, or of a skip after a failed ring.
_RING, _RETRY, _MAX_WAIT, _WIDEN, _ANNOUNCE, _PROGRESS, _WRAPUP, _SKIP = range(8)
_CALL_DEADLINES = frozenset({_RING, _RETRY, _MAX_WAIT, _WIDEN, _ANNOUNCE, _PROGRESS})
# (when, kind, call's arrival order, extension, call, extension). Deadlines due
# at the same time are handled by kind, then by the call's arrival order (its
# `seq`), then by extension: an order that a restart rebuilds exactly, as the
# order they were set in is not, so that the commands after a restart are the
# very ones that would have come without it.
_Deadline = tuple[float, int, int, int, CallKey | None, ExtensionId | None]


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
        #: The ended calls that are hangups of calls never seen to arrive
        #: (`CallState.hung_up_before_arrival`), oldest first.
        self._early_hangups: OrderedDict[CallKey, None] = OrderedDict()
        self._agents: dict[ExtensionId, AgentState] = {}
        self._deadlines: list[_Deadline] = []
        self._seq = 0
        self._enrol_seq = 0
        # work of the current event
        self._out: list[Command] = []
        self._to_distribute: set[QueueId] = set()
        self._touched: set[QueueId] = set()
        #: Queues whose agents' conditions changed: `leave_when_empty` looks.
        self._empty_check: set[QueueId] = set()
        #: Calls whose last ring ended: is their round over (`_close_rounds`)?
        self._rings_ended: set[CallKey] = set()
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
            if kind in _CALL_DEADLINES:
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
                    self._add_deadline(agent.wrapup_until, _WRAPUP, None, agent.extension_id)
                if agent.skip_until is not None:
                    self._add_deadline(agent.skip_until, _SKIP, None, agent.extension_id)
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
            overflowed=queue.overflowed,
            service_level_s=config.service_level,
            answered_within=queue.answered_within,
            abandoned_within=queue.abandoned_within,
            service_level_pct=(
                round(100 * queue.answered_within / queue.answered, 1) if queue.answered else None
            ),
            callbacks=queue.callbacks,
        )

    # --- calls -------------------------------------------------------------------

    def _call_arrived(self, event: ev.CallArrived, now: float) -> None:
        key = (event.tenant_id, event.call_id)
        early_hangup = key in self._early_hangups
        if key in self._calls or (key in self._ended and not early_hangup):
            return  # a duplicate: the contract makes every inbound idempotent
        if early_hangup:
            # The caller hung up before this (late) arrival reached us: the
            # call ends at once, rung for nobody (see `_call_hung_up`).
            del self._early_hangups[key]
            del self._ended[key]
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
        route = None if early_hangup else self._routes.get((event.tenant_id, event.did))
        if route is None:
            reason = RejectReason.CALLER_HANGUP if early_hangup else RejectReason.NO_ROUTE
            self._reject(call, reason, now)
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
        # The arrival's own requirements add to (and outrank) its route's.
        call.skills = {**route.skills, **event.skills} if event.skills else route.skills
        self._join(call, queue, now)

    def _join(self, call: CallState, queue: QueueState, now: float) -> None:
        """Put a call that is in no line (it arrived, or overflowed) in `queue`'s line."""
        config = queue.config
        if config.max_len and len(queue.line) >= config.max_len:
            self._overflow(call, queue, OverflowReason.QUEUE_FULL, now)
            return
        if config.join_empty and is_empty(queue.condition_counts, config.join_empty):
            self._overflow(call, queue, OverflowReason.QUEUE_EMPTY, now)
            return
        key = call.key
        call.queue_id = queue.queue_id
        call.entered_at = now
        self._calls[key] = call
        self._dirty_calls.add(key)
        self._removed_calls.discard(key)  # a call_id used again after it was forgotten
        entry = call.line_entry
        insort(queue.line, entry)
        position = bisect_left(queue.line, entry) + 1
        queue.offered += 1
        if call.is_callback:
            queue.callbacks += 1
        self._queue_changed(queue)
        # A call may join a queue that `leave_when_empty` says nobody can
        # serve (its `join_empty` let it in): it leaves at once, as one
        # already waiting would (Asterisk checks both while the caller waits).
        self._empty_check.add(queue.queue_id)
        self._out.append(
            PublishCallQueued(
                call.tenant_id,
                call.call_id,
                queue.queue_id,
                call.did,
                call.caller_id,
                position=position,
                at=now,
            )
        )
        self._arm_waiting(call, queue, now, announce_from_now=True)
        self._announce_from(queue, position)  # those behind moved back one place

    def _arm_waiting(
        self, call: CallState, queue: QueueState, now: float, *, announce_from_now: bool
    ) -> None:
        """Set the deadlines a waiting call has from its queue's options."""
        config = queue.config
        if config.max_wait and not call.is_callback:
            self._add_deadline(call.entered_at + config.max_wait, _MAX_WAIT, call.key, None)
        # Every arrival passes here: most queues have no rules to look through.
        has_rules = config.penalty_rules or config.skill_rules
        call.widen_at = next_widening(config, call.entered_at, now) if has_rules else None
        if call.widen_at is not None:
            self._add_deadline(call.widen_at, _WIDEN, call.key, None)
        wanted = config.announce_frequency > 0 and not call.is_callback
        if not wanted:
            announce_at = None
        elif announce_from_now or call.announce_at is None:
            announce_at = now + config.announce_frequency
        else:
            # A frequency made shorter applies at once: the caller does not
            # wait out the old, longer period first.
            announce_at = min(call.announce_at, now + config.announce_frequency)
        if announce_at != call.announce_at:
            call.announce_at = announce_at
            self._dirty_calls.add(call.key)
        if announce_at is not None:
            self._add_deadline(announce_at, _ANNOUNCE, call.key, None)

    def _overflow(
        self, call: CallState, queue: QueueState, reason: OverflowReason, now: float
    ) -> None:
        """The call leaves `queue` (or is refused by it) for the queue's overflow target."""
        waiting = call.queue_id == queue.queue_id
        refused_on_arrival = not waiting and call.queue_id is None and call.hops == 0
        wait_s = round(now - call.entered_at, 3) if waiting else 0.0
        if waiting:
            for extension_id in list(call.rings):
                self._end_ring(call, extension_id, CancelReason.OVERFLOW, now)
            self._leave_line(call, queue)
            call.queue_id = None
        queue.overflowed += 1
        self._queue_changed(queue)
        target = queue.config.overflow
        if isinstance(target, QueueTarget):
            next_queue = self._queues.get(target.queue_id)
            if call.hops >= MAX_OVERFLOW_HOPS:
                reason = OverflowReason.TOO_MANY_HOPS
            elif (
                next_queue is not None
                and next_queue.config.tenant_id == call.tenant_id
                and next_queue.config.status is QueueStatus.ACTIVE
            ):
                self._out.append(
                    PublishCallOverflowed(
                        call.tenant_id,
                        call.call_id,
                        queue.queue_id,
                        reason.value,
                        wait_s,
                        now,
                        to_queue=next_queue.queue_id,
                    )
                )
                call.hops += 1
                call.tried.clear()
                call.retry_at = call.progress_at = call.announce_at = call.widen_at = None
                self._join(call, next_queue, now)
                return
        elif isinstance(target, ExtensionTarget):
            extension = self._extensions.get(target.extension_id)
            if extension is not None and extension.tenant_id == call.tenant_id:
                self._out.append(
                    PublishCallOverflowed(
                        call.tenant_id,
                        call.call_id,
                        queue.queue_id,
                        reason.value,
                        wait_s,
                        now,
                        to_extension=extension.number,
                    )
                )
                self._move(call, "leave")
                self._end(call, now)
                self._out.append(RouteToExtension(call.tenant_id, call.call_id, extension.number))
                return
        # A hangup: the target says so, or the target it names cannot take the call.
        if refused_on_arrival:
            self._reject(call, RejectReason(reason.value), now)
            return
        self._out.append(
            PublishCallOverflowed(
                call.tenant_id, call.call_id, queue.queue_id, reason.value, wait_s, now
            )
        )
        self._move(call, "leave")
        self._end(call, now)
        self._out.append(RouteToHangup(call.tenant_id, call.call_id, reason.value))

    def _callback_requested(self, event: ev.CallbackRequested, now: float) -> None:
        call = self._known_call(event, now)
        if call is None or call.callback_number == event.number:
            return  # unknown (reported), or a duplicate
        queue = self._queue_of(call)
        if queue is None or call.phase not in (CallPhase.QUEUED, CallPhase.RINGING):
            self._out.append(
                RejectInput(event, f"call {event.call_id} is not waiting in a queue", now)
            )
            return
        if not call.is_callback:
            queue.callbacks += 1
        call.callback_number = event.number
        self._dirty_calls.add(call.key)
        # A callback keeps its place for as long as it takes: no more
        # announcements (nobody is listening) and no `max_wait`.
        call.announce_at = None
        self._touched.add(queue.queue_id)
        self._out.append(
            PublishCallbackRequested(
                call.tenant_id,
                call.call_id,
                queue.queue_id,
                event.number,
                bisect_left(queue.line, call.line_entry) + 1,
                now,
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
        refusal = self._answer_refused(call, extension_id, event)
        if refusal is not None:
            self._out.append(RejectInput(event, refusal, now))
            return
        assert extension_id is not None
        queue = self._queue_of(call)
        assert queue is not None  # an answerable call is in a queue's line
        agent = self._agents[extension_id]
        if agent.ringing_for is not None and agent.ringing_for != call.key:
            # A late answer (see `_answer_refused`): the agent was rung for
            # another call meanwhile. The PBX bridged them to this one, so that
            # ring cannot be answered: the other call moves on.
            self._end_ring(
                self._calls[agent.ringing_for], extension_id, CancelReason.AGENT_UNAVAILABLE, now
            )
        for other in [e for e in call.rings if e != extension_id]:
            self._end_ring(call, other, CancelReason.ANSWERED_ELSEWHERE, now)
        call.rings.pop(extension_id, None)  # none on a late answer
        call.ended_rings = ()  # answers to them are refused from now on
        self._move(call, "answer")
        call.agent_id = extension_id
        call.answered_at = now
        call.retry_at = call.progress_at = call.announce_at = call.widen_at = None
        # The answer updates the estimated wait before the callers behind are
        # told their new places, so that what they are told counts it.
        if queue.last_answer_at is not None:
            queue.answer_interval_s = smoothed_interval(
                queue.answer_interval_s, now - queue.last_answer_at
            )
        queue.last_answer_at = now
        self._leave_line(call, queue)
        queue.answered += 1
        if now - call.entered_at <= queue.config.service_level:
            queue.answered_within += 1
        queue.last_answered = extension_id
        self._queue_changed(queue)
        agent.ringing_for = None
        agent.connected_to = call.key
        if agent.unanswered:
            agent.unanswered = 0
            self._dirty_agents.add(extension_id)
        self._refresh_agent(agent, now)
        if call.is_callback:
            # The agent is on the line: now the PBX calls the customer back.
            self._out.append(
                Originate(call.tenant_id, call.call_id, event.extension, call.callback_number)
            )
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

    def _answer_refused(
        self, call: CallState, extension_id: ExtensionId | None, event: ev.RingAnswered
    ) -> str | None:
        """Why an `answered` cannot connect the call (None: it can).

        The PBX is the truth about the bridge. An answer for the extension's
        ring on now is taken, as in v1. So is a late answer: one for a ring of
        this call that ringmaster itself ended (cancelled for `timeout`,
        `agent_unavailable`, ...) while the call is still waiting, because the
        PBX bridged it before our cancel reached it (after a restart, or behind
        a backlog), unless the agent is connected to another call meanwhile.
        A ring the PBX reported failed, a call already connected or ended, or
        a `ring_id` that names no ring of this extension for the call: refused.
        """
        not_ringing = f"extension {event.extension} is not ringing for call {event.call_id}"
        if extension_id is None:
            return not_ringing
        ring = call.rings.get(extension_id)
        ended = [e for e in call.ended_rings if e.extension_id == extension_id]
        if event.ring_id is not None:
            named = ring is not None and ring.ring_id == event.ring_id
            if not named and not any(e.ring_id == event.ring_id for e in ended):
                return (
                    f"ring {event.ring_id} is not a ring of extension {event.extension}"
                    f" for call {event.call_id}"
                )
        if ring is not None:
            # On now: an answer naming an older ring of this same extension
            # is this extension's answer all the same.
            return None
        late = (
            next((e for e in ended if e.ring_id == event.ring_id), None)
            if event.ring_id is not None
            else (ended[-1] if ended else None)
        )
        agent = self._agents.get(extension_id)
        if (
            late is None
            or late.how == _RING_FAILED
            or call.phase not in (CallPhase.QUEUED, CallPhase.RINGING)
            or agent is None
            or agent.connected_to is not None
        ):
            return not_ringing
        return None

    def _ring_failed(self, event: ev.RingFailed, now: float) -> None:
        call = self._known_call(event, now)
        if call is None:
            return
        extension_id = self._extension_ids.get((event.tenant_id, event.extension))
        ring = call.rings.get(extension_id) if extension_id is not None else None
        if ring is None or (event.ring_id is not None and event.ring_id != ring.ring_id):
            # Usually a race with our own cancel (the PBX reports the failure
            # of a ring we already ended), or the failure of an older ring of
            # this extension for this call: nothing to do. A newer ring goes on.
            return
        assert extension_id is not None
        self._ring_unanswered(call, extension_id, event.reason, now)
        self._end_ring(call, extension_id, None, now)

    def _ring_unanswered(
        self, call: CallState, extension_id: ExtensionId, failure: RingFailure, now: float
    ) -> None:
        """Apply the enrolment's delays and `max_no_answer` to a ring that failed."""
        queue = self._queue_of(call)
        agent = self._agents.get(extension_id)
        if queue is None or agent is None:
            return
        if call.retry_at is not None and call.retry_at < now + queue.config.retry:
            # The ring was started during the pause (its agent became free,
            # untried) and ended unanswered before the pause did: the pause
            # lasts `retry` from this ring's end too, or the new round would
            # ring the agent again sooner than that (issue 9, item 5).
            call.retry_at = now + queue.config.retry
            self._dirty_calls.add(call.key)
            self._add_deadline(call.retry_at, _RETRY, call.key, None)
        options = queue.option(extension_id)
        delay = {
            RingFailure.BUSY: options.busy_delay,
            RingFailure.REJECTED: options.reject_delay,
            RingFailure.NO_ANSWER: options.no_answer_delay,
        }.get(failure, 0)
        if delay > 0 and (agent.skip_until is None or agent.skip_until < now + delay):
            agent.skip_until = now + delay
            self._add_deadline(agent.skip_until, _SKIP, None, extension_id)
            self._dirty_agents.add(extension_id)
        if failure is not RingFailure.NO_ANSWER:
            return
        agent.unanswered += 1
        self._dirty_agents.add(extension_id)
        if options.max_no_answer and agent.unanswered >= options.max_no_answer:
            # Autopause: the ring that ends next publishes the paused state.
            agent.unanswered = 0
            agent.presence = Presence.PAUSED
            agent.presence_reason = "no_answer"

    def _call_hung_up(self, event: ev.CallHungUp, now: float) -> None:
        call = self._known_call(event, now)
        if call is None:
            self._remember_early_hangup(event, now)
            return
        if call.phase.is_final:
            return
        if call.is_callback and call.phase is not CallPhase.CONNECTED:
            return  # the caller's leg went, as a callback's does: the call waits on
        queue = self._queue_of(call)
        if call.phase is CallPhase.CONNECTED:
            self._move(call, "hangup")
            self._end(call, now)
            agent = self._agent_of(call)
            talk_s = now - (call.answered_at or now)
            if queue is not None and call.agent_id is not None:
                # Before the agent is freed: its rank among the free agents
                # (`leastrecent` and kin) is taken from these figures.
                queue.completed += 1
                self._record_completed(queue, call.agent_id, talk_s, now)
                self._queue_changed(queue)
            if agent is not None:
                agent.connected_to = None
                agent.last_call_ended_at = now
                self._dirty_agents.add(agent.extension_id)
                wrapup = self._wrapup_time(queue, agent.extension_id)
                if wrapup > 0:
                    agent.wrapup_until = now + wrapup
                    self._dirty_agents.add(agent.extension_id)
                    self._add_deadline(agent.wrapup_until, _WRAPUP, None, agent.extension_id)
                self._refresh_agent(agent, now)
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
            if now - call.entered_at <= queue.config.service_level:
                queue.abandoned_within += 1
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

    def _remember_early_hangup(self, event: ev.CallHungUp, now: float) -> None:
        """Remember a hangup for a call we do not know, as an ended call.

        The PBX may publish a call's `hangup` before it (re)publishes its
        `arrived`, e.g. after a broker outage. Without this the late arrival
        would queue, and ring agents for, a caller who is gone. The hangup
        is reported as an unknown call (v1), then kept as an abandoned call
        that never arrived (`seq` 0) for `ended_call_ttl`, and stored like
        one, so that it survives a restart; at most `MAX_EARLY_HANGUPS` of
        them, the oldest forgotten first.
        """
        call = CallState(
            tenant_id=event.tenant_id,
            call_id=event.call_id,
            phase=CallPhase.ABANDONED,
            did="",
            caller_id="",
            caller_name="",
            priority=0,
            arrived_at=now,
            seq=0,
            entered_at=now,
        )
        self._end(call, now)
        self._removed_calls.discard(call.key)  # a call_id used again after it was forgotten
        self._early_hangups[call.key] = None
        while len(self._early_hangups) > MAX_EARLY_HANGUPS:
            oldest, _ = self._early_hangups.popitem(last=False)
            del self._ended[oldest]
            self._dirty_calls.discard(oldest)
            self._removed_calls.add(oldest)

    def _wrapup_time(self, queue: QueueState | None, extension_id: ExtensionId) -> int:
        if queue is None:
            return 0
        own = queue.option(extension_id).wrapup_time
        return own if own is not None else queue.config.wrapup_time

    def _known_call(
        self,
        event: ev.RingAnswered | ev.RingFailed | ev.CallHungUp | ev.CallbackRequested,
        now: float,
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
        call.ended_rings = ()  # an ended call takes no answer
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
            self._early_hangups.pop(key, None)
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
            if call.is_callback:
                queue.callbacks -= 1
            self._announce_from(queue, index + 1)  # those behind moved up one place

    def _announce_from(self, queue: QueueState, position: int) -> None:
        """Tell each caller from `position` on (1-based) their new place."""
        if not queue.config.announce_frequency:
            return
        for index in range(position - 1, len(queue.line)):
            self._announce(self._calls[queue.line[index][3]], queue, index + 1)

    def _announce(self, call: CallState, queue: QueueState, position: int) -> None:
        if call.is_callback:
            return
        wait = estimated_wait(position, len(queue.free), queue.answer_interval_s)
        self._out.append(Announce(call.tenant_id, call.call_id, queue.queue_id, position, wait))

    def _restore_call(self, call: CallState, now: float) -> None:
        key = call.key
        self._seq = max(self._seq, call.seq)
        if call.phase.is_final:
            self._ended[key] = call
            if call.hung_up_before_arrival:
                self._early_hangups[key] = None
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
        if call.progress_at is not None:
            self._add_deadline(call.progress_at, _PROGRESS, key, None)
        queue = self._queue_of(call)
        if queue is None:
            self._leave(call, "queue_removed", now)  # its queue went while we were down
        else:
            insort(queue.line, call.line_entry)
            if call.is_callback:
                queue.callbacks += 1
            self._arm_waiting(call, queue, now, announce_from_now=False)

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
        call = self._calls.get(key) if key is not None else None
        seq = call.seq if call is not None else 0
        extension = extension_id if extension_id is not None else 0
        heapq.heappush(self._deadlines, (at, kind, seq, extension, key, extension_id))

    # --- rings ---------------------------------------------------------------------

    def _start_ring(
        self, call: CallState, queue: QueueState, agent: AgentState, now: float
    ) -> None:
        deadline = now + queue.config.timeout
        # Deterministic and unique among the call's rings (and across calls:
        # `seq` is the call's arrival order), so that a message about an
        # older ring can be told from one about the ring on now.
        call.rings_started += 1
        ring_id = f"{call.seq}.{call.rings_started}"
        call.rings[agent.extension_id] = RingRecord(agent.extension_id, now, deadline, ring_id)
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
                # A callback shows the agent the number they are about to call.
                call.callback_number or call.caller_id,
                ring_id,
            )
        )
        self._out.append(
            PublishCallRinging(
                call.tenant_id, call.call_id, queue.queue_id, agent.number, now, ring_id
            )
        )
        self._refresh_agent(agent, now)

    def _end_ring(
        self, call: CallState, extension_id: ExtensionId, cancel: CancelReason | None, now: float
    ) -> None:
        """End one ring; `cancel` says why we stop it, None if the PBX ended it."""
        ring = call.rings.pop(extension_id)
        how = cancel.value if cancel is not None else _RING_FAILED
        call.ended_rings = (
            *call.ended_rings[1 - MAX_ENDED_RINGS :],
            EndedRing(extension_id, ring.ring_id, how),
        )
        agent = self._agents.get(extension_id)
        number = agent.number if agent is not None else self._former_number(extension_id)
        if cancel is not None:
            self._out.append(CancelRing(call.tenant_id, call.call_id, number, cancel, ring.ring_id))
        if call.phase is CallPhase.RINGING:
            self._move(call, "ring_ended" if call.rings else "last_ring_ended")
        if not call.rings:
            self._rings_ended.add(call.key)
        self._dirty_calls.add(call.key)
        if (queue := self._queue_of(call)) is not None:
            self._queue_changed(queue)
        if agent is not None and agent.ringing_for == call.key:
            agent.ringing_for = None
            self._refresh_agent(agent, now)

    def _former_number(self, extension_id: ExtensionId) -> str:
        extension = self._extensions.get(extension_id)
        return extension.number if extension is not None else ""

    def _call_deadline_due(
        self, kind: int, key: CallKey, extension_id: ExtensionId | None, now: float
    ) -> None:
        """A live deadline of a waiting call fell due (`_is_live_deadline` checked it)."""
        call = self._calls[key]
        queue = self._queue_of(call)
        assert queue is not None  # only waiting calls have live deadlines
        if kind == _RING:
            assert extension_id is not None
            self._ring_unanswered(call, extension_id, RingFailure.NO_ANSWER, now)
            self._end_ring(call, extension_id, CancelReason.TIMEOUT, now)
        elif kind == _RETRY:
            call.retry_at = None
            # A new round. An agent rung during the pause (it became free,
            # untried) and still ringing has had its ring in this round: left
            # out of `tried`, it would be rung again the instant that ring
            # timed out, with no pause at all (issue 9, item 5).
            call.tried = set(call.rings)
            self._dirty_calls.add(key)
            self._queue_changed(queue)
        elif kind == _MAX_WAIT:
            self._overflow(call, queue, OverflowReason.MAX_WAIT, now)
        elif kind == _WIDEN:
            # More agents may take the call now: offer it again.
            call.widen_at = next_widening(queue.config, call.entered_at, now)
            if call.widen_at is not None:
                self._add_deadline(call.widen_at, _WIDEN, key, None)
            self._to_distribute.add(queue.queue_id)
        elif kind == _ANNOUNCE:
            self._announce(call, queue, bisect_left(queue.line, call.line_entry) + 1)
            call.announce_at = now + queue.config.announce_frequency
            self._dirty_calls.add(key)
            self._add_deadline(call.announce_at, _ANNOUNCE, key, None)
        elif kind == _PROGRESS:
            self._to_distribute.add(queue.queue_id)

    def _is_live_deadline(self, entry: _Deadline) -> bool:  # noqa: PLR0911
        at, kind, _, _, key, extension_id = entry
        if kind in _CALL_DEADLINES:
            call = self._calls.get(key) if key is not None else None
            if call is None or call.phase not in (CallPhase.QUEUED, CallPhase.RINGING):
                return False
            if kind == _RING:
                ring = call.rings.get(extension_id) if extension_id is not None else None
                return ring is not None and ring.deadline == at
            if kind == _RETRY:
                return call.retry_at == at
            if kind == _MAX_WAIT:
                queue = self._queue_of(call)
                return (
                    queue is not None
                    and not call.is_callback
                    and queue.config.max_wait > 0
                    and call.entered_at + queue.config.max_wait == at
                )
            if kind == _WIDEN:
                return call.widen_at == at
            if kind == _ANNOUNCE:
                return call.announce_at == at
            return call.progress_at == at
        agent = self._agents.get(extension_id) if extension_id is not None else None
        if agent is None:
            return False
        return (agent.wrapup_until if kind == _WRAPUP else agent.skip_until) == at

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
            # Only queues with a free agent can ring anyone. Heavier queues
            # first (`weight`); within a weight, merging the lines visits the
            # best waiting call of all of them first.
            queues = [queue for queue in queues if queue.free and queue.line]
            for weight in sorted({queue.config.weight for queue in queues}, reverse=True):
                if not self._offer_lines(
                    [queue for queue in queues if queue.config.weight == weight], queues, now
                ):
                    break

    def _offer_lines(
        self, lines_of: list[QueueState], all_queues: list[QueueState], now: float
    ) -> bool:
        """Offer the calls of these queues' lines, best first; False once nobody is free."""
        # Offering a call only ever takes agents, never frees one, and never
        # changes a line, so the lines can be walked as they are.
        for entry in heapq.merge(*(queue.line for queue in lines_of)):
            call = self._calls[entry[3]]
            queue = self._queue_of(call)
            if queue is not None and queue.free:
                self._offer(call, queue, now)
                if not any(q.free for q in all_queues):
                    return False
        return True

    def _offer(self, call: CallState, queue: QueueState, now: float) -> None:
        """Ring whoever the queue's strategy picks for `call`, if anyone."""
        strategy = STRATEGIES[queue.config.strategy]
        if not queue.free or not self._wants_ring(call, strategy, now):
            return
        if queue.ranked is not None and self._offer_best_ranked(call, queue, now):
            return
        eligible = self._eligible(call, queue, now)
        if not eligible:
            return
        candidates = [e for e in eligible if e not in call.tried]
        if not candidates:
            if call.rings or call.retry_at is not None or not self._end_round(call, queue, now):
                return
            candidates = eligible
        if strategy.tiers_by_penalty and queue.options:
            candidates = self._lowest_tier(call, queue, candidates)
            if not candidates:
                return  # a lower tier rings (ringall, ringprogressive): add no higher one
        if strategy.rings_all:
            chosen = candidates
        else:
            chosen = [strategy.choose(candidates, self._view(queue))]
        for extension_id in chosen:
            self._start_ring(call, queue, self._agents[extension_id], now)
        if strategy.rings_progressively:
            self._next_progress(call, queue, now)

    @staticmethod
    def _wants_ring(call: CallState, strategy: Strategy, now: float) -> bool:
        """Whether the call may ring one more agent now."""
        if call.phase is CallPhase.CONNECTED:
            return False
        if not call.rings or strategy.rings_all:
            return True
        # One ring at a time, unless `ringprogressive` is due to add the next.
        due = call.progress_at is not None and call.progress_at <= now
        return strategy.rings_progressively and due

    def _offer_best_ranked(self, call: CallState, queue: QueueState, now: float) -> bool:
        """Ring the best-ranked free agent the call accepts; False if there is none.

        The same choice as ranking the eligible agents (lowest tier, then the
        strategy's rank, then enrolment order), read off the queue's ordered
        free agents, so it costs the agents skipped rather than all free ones.
        When nobody untried is left, the caller goes on to end the round.
        """
        assert queue.ranked is not None
        accepts = self._acceptor(call, queue, now)
        tried = call.tried
        cap = None
        if call.rings:  # `ringprogressive` adding a ring: no higher tier than those ringing
            cap = min(queue.option(e).penalty for e in call.rings)
        options = queue.options

        def takes(extension_id: ExtensionId) -> bool:
            if extension_id in tried:
                return False
            if cap is not None and options[extension_id].penalty > cap:
                return False
            return accepts is None or accepts(extension_id)

        chosen = queue.ranked.first(takes)
        if chosen is None:
            return False
        self._start_ring(call, queue, self._agents[chosen], now)
        if STRATEGIES[queue.config.strategy].rings_progressively:
            self._next_progress(call, queue, now)
        return True

    def _next_progress(self, call: CallState, queue: QueueState, now: float) -> None:
        call.progress_at = now + queue.config.ring_progressive_delay
        self._add_deadline(call.progress_at, _PROGRESS, call.key, None)

    def _view(self, queue: QueueState) -> QueueView:
        return QueueView(
            enrolled=queue.enrolled,
            position=queue.position,
            last_rung=queue.last_rung,
            stats=queue.stats,
            rng=self._rng,
            last_answered=queue.last_answered,
            options=queue.options,
            last_call_ended=self._last_call_ended,
        )

    def _end_round(self, call: CallState, queue: QueueState, now: float) -> bool:
        """Every agent who could take the call was rung: pause for the queue's `retry`.

        Returns True when the queue has no pause and the new round begins now.
        """
        if queue.config.retry > 0:
            call.retry_at = now + queue.config.retry
            self._dirty_calls.add(call.key)
            self._add_deadline(call.retry_at, _RETRY, call.key, None)
            return False
        call.tried.clear()
        self._dirty_calls.add(call.key)
        return True

    def _close_rounds(self, now: float) -> None:
        """Start the `retry` pause of calls whose round ended with nobody left to ring.

        `_offer` finds a round over only when it has a free agent to look at.
        When the last agent tried is not free as its ring ends (a delay after
        the failure, a pause, `max_no_answer`), nobody may be free at all; the
        pause must still start now, or it would start only when that agent
        came back, and hold the call back from them `retry` seconds more.
        """
        ended, self._rings_ended = self._rings_ended, set()
        for key in ended:
            call = self._calls.get(key)
            if call is None or call.phase is not CallPhase.QUEUED or call.retry_at is not None:
                continue
            queue = self._queue_of(call)
            if queue is None or not call.tried:
                continue
            accepts = self._acceptor(call, queue, now)
            over = not any(
                e not in call.tried and (accepts is None or accepts(e)) for e in queue.free
            )
            if over and self._end_round(call, queue, now):
                self._to_distribute.add(queue.queue_id)  # no pause: a new round now

    def _eligible(self, call: CallState, queue: QueueState, now: float) -> list[ExtensionId]:
        """The queue's free agents who may take this call now, in enrolment order."""
        accepts = self._acceptor(call, queue, now)
        eligible = queue.free if accepts is None else filter(accepts, queue.free)
        return sorted(eligible, key=queue.position.__getitem__)

    def _acceptor(
        self, call: CallState, queue: QueueState, now: float
    ) -> Callable[[ExtensionId], bool] | None:
        """Whether a free agent of the queue may take this call now; None: any may."""
        config = queue.config
        limit = penalty_limit(config, call.entered_at, now) if config.penalty_rules else None
        required = call.skills
        if limit is None and not required:
            return None
        lowered = skills_lowered_by(config, call.entered_at, now) if required else 0
        options = queue.options
        extensions = self._extensions

        def accepts(extension_id: ExtensionId) -> bool:
            if limit is not None and options[extension_id].penalty > limit:
                return False
            return not required or has_skills(extensions[extension_id].skills, required, lowered)

        return accepts

    def _lowest_tier(
        self, call: CallState, queue: QueueState, candidates: list[ExtensionId]
    ) -> list[ExtensionId]:
        """The candidates of the lowest penalty, counting the agents already ringing."""
        lowest = min(queue.option(e).penalty for e in (*candidates, *call.rings))
        return [e for e in candidates if queue.option(e).penalty == lowest]

    def _last_call_ended(self, extension_id: ExtensionId) -> float | None:
        agent = self._agents.get(extension_id)
        return agent.last_call_ended_at if agent is not None else None

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
            and (agent.skip_until is None or agent.skip_until <= now)
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
                self._set_free(queue, agent.extension_id, free)
                if free:
                    self._to_distribute.add(queue_id)
        status, reason = self._status_of(agent, now)
        condition = condition_of(status, reason)
        if status is not agent.status or condition is not agent.condition:
            published = status is not agent.status
            self._recount(agent, status, condition)
            self._dirty_agents.add(agent.extension_id)
            if published:
                self._out.append(
                    PublishAgentState(agent.tenant_id, agent.number, status, now, reason)
                )

    def _set_free(self, queue: QueueState, extension_id: ExtensionId, free: bool) -> None:
        """Add an agent to the queue's free agents (ranked, if it ranks) or take it out."""
        if free:
            queue.free.add(extension_id)
            if queue.ranked is not None:
                queue.ranked.add(extension_id, self._rank(queue, extension_id))
        else:
            queue.free.discard(extension_id)
            if queue.ranked is not None:
                queue.ranked.discard(extension_id)

    def _rank(self, queue: QueueState, extension_id: ExtensionId) -> tuple[float, ...]:
        strategy = STRATEGIES[queue.config.strategy]
        assert isinstance(strategy, RankedStrategy)
        return (
            queue.option(extension_id).penalty,
            strategy.rank(extension_id, self._view(queue)),
            *queue.order_key[extension_id],
        )

    def _rank_free_agents(self, queue: QueueState) -> None:
        """Keep the queue's free agents in its strategy's order, if it has a fixed one."""
        strategy = STRATEGIES[queue.config.strategy]
        if not isinstance(strategy, RankedStrategy) or not strategy.tiers_by_penalty:
            queue.ranked = None
            return
        queue.ranked = RankedFreeAgents()
        for extension_id in queue.free:
            queue.ranked.add(extension_id, self._rank(queue, extension_id))

    def _recount(
        self, agent: AgentState, status: AgentStatus, condition: AgentCondition | None
    ) -> None:
        """Move the agent's counts in each of its queues to its new status and condition."""
        old_status, old_condition = agent.status, agent.condition
        agent.status, agent.condition = status, condition
        # Every ring starts and ends here (available <-> ringing), and neither
        # changes the condition: only the status counts move, in one pass.
        condition_changed = condition is not old_condition
        for queue_id in self._queues_of.get(agent.extension_id, ()):
            queue = self._queues.get(queue_id)
            if queue is None:
                continue
            counts = queue.status_counts
            counts[old_status] -= 1
            counts[status] += 1
            self._touched.add(queue_id)
            if condition_changed:
                conditions = queue.condition_counts
                conditions[old_condition] -= 1
                conditions[condition] += 1
                self._empty_check.add(queue_id)

    def _count_status(self, agent: AgentState, delta: int) -> None:
        for queue_id in self._queues_of.get(agent.extension_id, ()):
            queue = self._queues.get(queue_id)
            if queue is not None:
                self._count_in(queue, agent, delta)

    def _count_in(self, queue: QueueState, agent: AgentState, delta: int) -> None:
        queue.status_counts[agent.status] += delta
        queue.condition_counts[agent.condition] += delta
        self._touched.add(queue.queue_id)
        self._empty_check.add(queue.queue_id)

    def _agent_rested(self, extension_id: ExtensionId, now: float) -> None:
        """A wrap-up or a skip after a failed ring is over (`_is_live_deadline` checked)."""
        agent = self._agents[extension_id]
        if agent.wrapup_until is not None and agent.wrapup_until <= now:
            agent.wrapup_until = None
        if agent.skip_until is not None and agent.skip_until <= now:
            agent.skip_until = None
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
            self._count_status(agent, +1)
            self._dirty_agents.add(extension.extension_id)
            self._removed_agents.discard(extension.extension_id)
        agent.number = extension.number
        if old is not None and old.skills != extension.skills:
            # New skills may let a waiting call ring the agent: a change
            # takes effect at once, not at the next event of its queues.
            self._to_distribute.update(self._queues_of.get(extension.extension_id, ()))

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
        self._count_status(agent, -1)
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
        old, queue.config = queue.config, config
        if queue.ranked is None or old.strategy != config.strategy:
            self._rank_free_agents(queue)
        self._queue_changed(queue)
        self._empty_check.add(config.queue_id)
        if old is not config and queue.line:
            # Waiting calls follow the new options from now on.
            for entry in queue.line:
                self._arm_waiting(self._calls[entry[3]], queue, now, announce_from_now=False)

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
        if queue is None:
            return
        known = event.extension_id in queue.position
        if known and queue.options.get(event.extension_id) == event.options:
            return
        self._enrol_seq += 1
        queue.enrol(event.extension_id, event.options, self._enrol_seq)
        self._queue_changed(queue)  # new options may let a waiting call ring
        if known:
            if event.extension_id in queue.free:
                self._set_free(queue, event.extension_id, True)  # re-ranked: new penalty, place
            return
        self._queues_of.setdefault(event.extension_id, set()).add(event.queue_id)
        agent = self._agents.get(event.extension_id)
        if agent is not None:
            self._count_in(queue, agent, +1)
            if agent.free:
                self._set_free(queue, event.extension_id, True)

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
        queue.unenrol(extension_id)
        if agent is not None:
            self._count_in(queue, agent, -1)
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

    def _leave_empty_queues(self, now: float) -> None:
        """`leave_when_empty`: waiting calls leave a queue where nobody could take them."""
        checks, self._empty_check = self._empty_check, set()
        for queue_id in checks:
            queue = self._queues.get(queue_id)
            if queue is None or not queue.line or not queue.config.leave_when_empty:
                continue
            if is_empty(queue.condition_counts, queue.config.leave_when_empty):
                for entry in list(queue.line):
                    call = self._calls[entry[3]]
                    if not call.is_callback:  # a callback keeps its place
                        self._overflow(call, queue, OverflowReason.QUEUE_EMPTY, now)

    _HANDLERS: ClassVar[dict[type, Callable[[Engine, Any, float], None]]] = {
        ev.CallArrived: _call_arrived,
        ev.RingAnswered: _ring_answered,
        ev.RingFailed: _ring_failed,
        ev.CallHungUp: _call_hung_up,
        ev.CallbackRequested: _callback_requested,
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
