"""Rings: starting one, and every way one ends (answered, failed, timed out, cancelled).

Races with the PBX (docs/mqtt.md). Every ring has a `ring_id`, so that a late
message about an older ring never ends a newer one. The PBX is the truth about
the bridge: an `answered` for a ring ringmaster had already cancelled is still
honoured while the call waits (`_answer_refused`), so a call remembers its
latest ended rings.
"""

from __future__ import annotations

import heapq

from ringmaster.engine import events as ev
from ringmaster.engine.base import (
    DUE_RETRY,
    DUE_RING,
    DUE_SKIP,
    RING_FAILED,
    RINGS_STARTED,
    EngineBase,
)
from ringmaster.engine.commands import (
    CancelRing,
    Originate,
    PublishCallAnswered,
    PublishCallRinging,
    RejectInput,
    Ring,
)
from ringmaster.engine.model import CallPhase, CancelReason, ExtensionId, Presence, RingFailure
from ringmaster.engine.records import EndedRing, RingRecord
from ringmaster.engine.rules import smoothed_interval
from ringmaster.engine.state import MAX_ENDED_RINGS, AgentState, CallState, QueueState


class RingsMixin(EngineBase):
    """A ring's life: started, answered, failed, timed out or cancelled."""

    def _start_rings(
        self, call: CallState, queue: QueueState, agents: list[AgentState], now: float
    ) -> None:
        """Ring each of the agents for the call, in this order (`ringall`: all at once)."""
        if not agents:
            return
        config = queue.config
        queue_id, timeout = config.queue_id, config.timeout
        deadline = now + timeout
        key, seq, rings = call.key, call.seq, call.rings
        if not rings:
            queue.ring_started(call.line_entry)
        self._move(call, "ring")
        queue.last_rung = agents[-1].extension_id
        self._dirty_queues.add(queue_id)
        # A callback shows the agent the number they are about to call.
        shown = call.callback_number or call.caller_id
        # One timeout for all the rings started here, which share it: an
        # answer to a `ringall` call leaves one void entry in the heap, not 12
        # (`DeadlinesMixin._rings_timed_out` ends them in extension order, as
        # one entry per ring would).
        heapq.heappush(self._deadlines, (deadline, DUE_RING, seq, RINGS_STARTED, key, None))
        out = self._out
        for agent in agents:
            # Deterministic and unique among the call's rings (and across calls:
            # `seq` is the call's arrival order), so that a message about an
            # older ring can be told from one about the ring on now.
            call.rings_started += 1
            ring_id = f"{seq}.{call.rings_started}"
            extension_id = agent.extension_id
            rings[extension_id] = RingRecord(extension_id, now, deadline, ring_id, agent.number)
            call.tried.add(extension_id)
            agent.ringing_for = key
            out.append(
                Ring(call.tenant_id, call.call_id, agent.number, queue_id, timeout, shown, ring_id)
            )
            if self._publish_events:
                out.append(
                    PublishCallRinging(
                        call.tenant_id, call.call_id, queue_id, agent.number, now, ring_id
                    )
                )
            self._refresh_ring_edge(agent, now)

    def _end_ring(
        self, call: CallState, extension_id: ExtensionId, cancel: CancelReason | None, now: float
    ) -> None:
        """End one ring; `cancel` says why we stop it, None if the PBX ended it."""
        ring = call.rings.pop(extension_id)
        how = cancel.value if cancel is not None else RING_FAILED
        call.ended_rings = (
            *call.ended_rings[1 - MAX_ENDED_RINGS :],
            EndedRing(extension_id, ring.ring_id, how),
        )
        agent = self._agents.get(extension_id)
        # An extension removed while ringmaster was down is gone at restore:
        # the cancel names the number that was rung.
        number = agent.number if agent is not None else ring.number
        if cancel is not None:
            self._out.append(CancelRing(call.tenant_id, call.call_id, number, cancel, ring.ring_id))
        key = call.key
        if call.phase is CallPhase.RINGING:
            call.move("ring_ended" if call.rings else "last_ring_ended")
        self._dirty_calls.add(key)
        if (queue := self._queue_of(call)) is not None:
            if not call.rings:
                queue.rings_over(call.line_entry)
            self._queue_changed(queue)
        if not call.rings:
            self._rings_ended.add(key)
        if agent is not None and agent.ringing_for == key:
            agent.ringing_for = None
            self._refresh_ring_edge(agent, now)

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
        if extension_id in call.rings:
            self._cancel_rings_but(call, extension_id, queue, now)
        else:  # a late answer: its call may have no ring left
            for other in list(call.rings):
                self._end_ring(call, other, CancelReason.ANSWERED_ELSEWHERE, now)
        call.rings.pop(extension_id, None)  # none on a late answer
        call.ended_rings = ()  # answers to them are refused from now on
        self._move(call, "answer")
        call.agent_id = extension_id
        call.agent_number = agent.number
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
        if self._publish_events:
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

    def _cancel_rings_but(
        self, call: CallState, answered: ExtensionId, queue: QueueState, now: float
    ) -> None:
        """End each of the call's rings but the `answered` one, which is on.

        `_end_ring` for each, less what the answer makes moot: the call keeps
        a ring, so its phase stays and no round ends, and the ended rings it
        would remember are forgotten at the answer. `ringall`'s answer cancels
        every other agent's ring: the hot path of a simulation.
        """
        others = [e for e in call.rings if e != answered]
        if not others:
            return
        key = call.key
        self._dirty_calls.add(key)
        self._queue_changed(queue)
        rings, agents, out = call.rings, self._agents, self._out
        for extension_id in others:
            ring = rings.pop(extension_id)
            agent = agents.get(extension_id)
            number = agent.number if agent is not None else ring.number
            out.append(
                CancelRing(
                    call.tenant_id,
                    call.call_id,
                    number,
                    CancelReason.ANSWERED_ELSEWHERE,
                    ring.ring_id,
                )
            )
            if agent is not None and agent.ringing_for == key:
                agent.ringing_for = None
                self._refresh_ring_edge(agent, now)

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
            or late.how == RING_FAILED
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
            self._add_deadline(call.retry_at, DUE_RETRY, call.key, None)
        options = queue.option(extension_id)
        delay = {
            RingFailure.BUSY: options.busy_delay,
            RingFailure.REJECTED: options.reject_delay,
            RingFailure.NO_ANSWER: options.no_answer_delay,
        }.get(failure, 0)
        if delay > 0 and (agent.skip_until is None or agent.skip_until < now + delay):
            agent.skip_until = now + delay
            self._add_deadline(agent.skip_until, DUE_SKIP, None, extension_id)
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

    def _cancel_ring_of(self, agent: AgentState, now: float) -> None:
        if agent.ringing_for is not None:
            call = self._calls[agent.ringing_for]
            self._end_ring(call, agent.extension_id, CancelReason.AGENT_UNAVAILABLE, now)
