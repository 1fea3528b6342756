"""Calls: arrival, the waiting line, overflow, callbacks, hangup and the end of a call.

A call arrives on a DID; its route sends it to an extension, or to a queue's
line, sorted best first, where it waits with the deadlines its queue's options
give it (`max_wait`, rule widenings, announcements). It leaves the line when it
is answered (`rings`), hangs up, overflows, or its queue goes. An ended call is
remembered for `ended_call_ttl`, so that a late duplicate of its messages
changes nothing; a `hangup` for a call not seen yet is remembered as an ended
call, so that its late `arrived` rings nobody.
"""

from __future__ import annotations

from bisect import bisect_left

from ringmaster.engine import events as ev
from ringmaster.engine.base import (
    DUE_ANNOUNCE,
    DUE_MAX_WAIT,
    DUE_PROGRESS,
    DUE_RETRY,
    DUE_RING,
    DUE_WIDEN,
    DUE_WRAPUP,
    MAX_EARLY_HANGUPS,
    EngineBase,
)
from ringmaster.engine.commands import (
    Announce,
    PublishCallAbandoned,
    PublishCallbackRequested,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    PublishCallRejected,
    RejectInput,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.model import (
    CallPhase,
    CancelReason,
    ExtensionId,
    ExtensionTarget,
    OverflowReason,
    OverflowTarget,
    QueueId,
    QueueStatus,
    QueueTarget,
    RejectReason,
)
from ringmaster.engine.records import AgentQueueStats
from ringmaster.engine.rules import MAX_OVERFLOW_HOPS, estimated_wait, is_empty, next_widening
from ringmaster.engine.state import CallState, QueueState


class CallsMixin(EngineBase):
    """The life of a call: arrival, its queue's line, overflow, hangup, the end."""

    def _call_arrived(self, event: ev.CallArrived, now: float) -> None:
        key = (event.tenant_id, event.call_id)
        early_hangup = key in self._early_hangups
        if key in self._calls or (key in self._ended and not early_hangup):
            return  # a duplicate: the contract makes every inbound idempotent
        if early_hangup:
            # The caller hung up before this (late) arrival reached us: the
            # call ends at once, rung for nobody (see `_call_hung_up`).
            del self._early_hangups[key]
            self._ended.discard(key)
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
        position = queue.join_line(entry, ringing=bool(call.rings)) + 1
        queue.offered += 1
        if call.is_callback:
            queue.callbacks += 1
        self._queue_changed(queue)
        # A call may join a queue that `leave_when_empty` says nobody can
        # serve (its `join_empty` let it in): it leaves at once, as one
        # already waiting would (Asterisk checks both while the caller waits).
        self._empty_check.add(queue.queue_id)
        if self._publish_events:
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
            self._add_deadline(call.entered_at + config.max_wait, DUE_MAX_WAIT, call.key, None)
        # Every arrival passes here: most queues have no rules to look through.
        has_rules = config.penalty_rules or config.skill_rules
        call.widen_at = next_widening(config, call.entered_at, now) if has_rules else None
        if call.widen_at is not None:
            self._add_deadline(call.widen_at, DUE_WIDEN, call.key, None)
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
            self._add_deadline(announce_at, DUE_ANNOUNCE, call.key, None)

    def _overflow(
        self, call: CallState, queue: QueueState, reason: OverflowReason, now: float
    ) -> None:
        """The call leaves `queue` (or is refused by it) for the queue's overflow target."""
        self._overflow_to(call, queue, reason, queue.config.overflow, now)

    def _overflow_to(
        self,
        call: CallState,
        queue: QueueState,
        reason: OverflowReason,
        target: OverflowTarget,
        now: float,
    ) -> None:
        """The call leaves `queue` (or is refused by it) for `target`.

        A supervisor's move is never cut as too many hops (a person chose it,
        it cannot loop), but it counts as a hop, as an overflow does.
        """
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
        if isinstance(target, QueueTarget):
            next_queue = self._queues.get(target.queue_id)
            if call.hops >= MAX_OVERFLOW_HOPS and reason is not OverflowReason.SUPERVISOR:
                reason = OverflowReason.TOO_MANY_HOPS
            elif (
                next_queue is not None
                and next_queue.config.tenant_id == call.tenant_id
                and next_queue.config.status is QueueStatus.ACTIVE
            ):
                self._tell_overflowed(
                    call, queue, reason, wait_s, now, to_queue=next_queue.queue_id
                )
                call.hops += 1
                call.tried.clear()
                call.retry_at = call.progress_at = call.announce_at = call.widen_at = None
                self._join(call, next_queue, now)
                return
        elif isinstance(target, ExtensionTarget):
            extension = self._extensions.get(target.extension_id)
            if extension is not None and extension.tenant_id == call.tenant_id:
                self._tell_overflowed(
                    call, queue, reason, wait_s, now, to_extension=extension.number
                )
                self._move(call, "leave")
                self._end(call, now)
                self._out.append(RouteToExtension(call.tenant_id, call.call_id, extension.number))
                return
        # A hangup: the target says so, or the target it names cannot take the call.
        if refused_on_arrival:
            self._reject(call, RejectReason(reason.value), now)
            return
        self._tell_overflowed(call, queue, reason, wait_s, now)
        self._move(call, "leave")
        self._end(call, now)
        self._out.append(RouteToHangup(call.tenant_id, call.call_id, reason.value))

    def _tell_overflowed(
        self,
        call: CallState,
        queue: QueueState,
        reason: OverflowReason,
        wait_s: float,
        now: float,
        *,
        to_queue: QueueId | None = None,
        to_extension: str | None = None,
    ) -> None:
        """event/call/overflowed: where the call went (a queue, an extension, or neither)."""
        if self._publish_events:
            self._out.append(
                PublishCallOverflowed(
                    call.tenant_id,
                    call.call_id,
                    queue.queue_id,
                    reason.value,
                    wait_s,
                    now,
                    to_queue=to_queue,
                    to_extension=to_extension,
                )
            )

    def _leave(self, call: CallState, reason: str, now: float) -> None:
        """Take a waiting call out of ringmaster's hands and hang it up."""
        for extension_id in list(call.rings):
            self._end_ring(call, extension_id, CancelReason.OVERFLOW, now)
        self._move(call, "leave")
        self._end(call, now)
        self._out.append(RouteToHangup(call.tenant_id, call.call_id, reason))

    def _reject(self, call: CallState, reason: RejectReason, now: float) -> None:
        call.phase = CallPhase.REJECTED
        self._end(call, now)
        self._out.append(RouteToHangup(call.tenant_id, call.call_id, reason.value))
        if self._publish_events:
            self._out.append(
                PublishCallRejected(call.tenant_id, call.call_id, call.did, reason.value, now)
            )

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

    def _leave_line(self, call: CallState, queue: QueueState) -> None:
        index = queue.leave_line(call.line_entry)
        if index is not None:
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
        if self._publish_events:
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
                    self._add_deadline(agent.wrapup_until, DUE_WRAPUP, None, agent.extension_id)
                self._refresh_agent(agent, now)
            # The agent's extension may be gone (removed during the call): the
            # number it had when it answered.
            number = agent.number if agent is not None else call.agent_number
            if self._publish_events:
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
            if self._publish_events:
                self._out.append(
                    PublishCallAbandoned(
                        call.tenant_id,
                        call.call_id,
                        queue.queue_id,
                        wait_s=round(now - call.arrived_at, 3),
                        at=now,
                    )
                )

    def _record_completed(
        self, queue: QueueState, extension_id: ExtensionId, talk_s: float, now: float
    ) -> None:
        stats = queue.stats.get(extension_id) or AgentQueueStats(queue.queue_id, extension_id)
        # Every field named: `dataclasses.replace` costs three times as much, once a call.
        queue.stats[extension_id] = AgentQueueStats(
            stats.queue_id,
            stats.extension_id,
            last_call_ended_at=now,
            calls_completed=stats.calls_completed + 1,
            talk_time_s=stats.talk_time_s + talk_s,
        )
        self._dirty_stats.add((queue.queue_id, extension_id))
        self._removed_stats.discard((queue.queue_id, extension_id))

    def _wrapup_time(self, queue: QueueState | None, extension_id: ExtensionId) -> int:
        if queue is None:
            return 0
        own = queue.option(extension_id).wrapup_time
        return own if own is not None else queue.config.wrapup_time

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
            self._ended.discard(oldest)
            self._dirty_calls.discard(oldest)
            self._removed_calls.add(oldest)

    def _forget_ended(self, now: float) -> None:
        for key in self._ended.forget(now - self._ended_call_ttl):
            self._early_hangups.pop(key, None)
            self._dirty_calls.discard(key)
            self._removed_calls.add(key)

    def _restore_call(self, call: CallState, now: float) -> None:
        key = call.key
        self._seq = max(self._seq, call.seq)
        if call.phase.is_final:
            self._ended.add(call)
            if call.hung_up_before_arrival:
                self._early_hangups[key] = None
            return
        self._calls[key] = call
        if call.phase is CallPhase.CONNECTED:
            agent = self._agent_of(call)
            if agent is not None:
                agent.connected_to = key
            return
        gone: list[ExtensionId] = []
        for ring in call.rings.values():
            agent = self._agents.get(ring.extension_id)
            if agent is None:
                gone.append(ring.extension_id)  # its extension was removed while we were down
                continue
            agent.ringing_for = key
            self._add_deadline(ring.deadline, DUE_RING, key, ring.extension_id)
        if call.retry_at is not None:
            self._add_deadline(call.retry_at, DUE_RETRY, key, None)
        if call.progress_at is not None:
            self._add_deadline(call.progress_at, DUE_PROGRESS, key, None)
        queue = self._queue_of(call)
        if queue is None:
            self._leave(call, "queue_removed", now)  # its queue went while we were down
        else:
            queue.join_line(call.line_entry, ringing=bool(call.rings))
            if call.is_callback:
                queue.callbacks += 1
            self._arm_waiting(call, queue, now, announce_from_now=False)
            # Nobody can answer such a ring: end it now rather than at its
            # timeout, so that the call rings others at once.
            for extension_id in gone:
                self._end_ring(call, extension_id, CancelReason.AGENT_UNAVAILABLE, now)
