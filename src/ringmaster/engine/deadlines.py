"""Deadlines: what to do when one falls due, and whether one still stands.

A call's deadlines are its ring timeouts, the end of its retry pause,
`max_wait`, rule widenings, announcements and `ringprogressive`'s next ring;
an agent's, the end of a wrap-up or of a skip after a failed ring.

Deadlines are pushed on one heap (`EngineBase._add_deadline`) and never taken
out when superseded: `_is_live_deadline` drops those lazily, which is cheaper.
The rings started at once share one timeout entry (`RINGS_STARTED`), so that
an answer to a `ringall` call leaves one void entry behind, not one per ring.
"""

from __future__ import annotations

from bisect import bisect_left

from ringmaster.engine.base import (
    CALL_DEADLINES,
    DUE_ANNOUNCE,
    DUE_MAX_WAIT,
    DUE_PROGRESS,
    DUE_RETRY,
    DUE_RING,
    DUE_WIDEN,
    DUE_WRAPUP,
    Deadline,
    EngineBase,
)
from ringmaster.engine.model import (
    CallKey,
    CallPhase,
    CancelReason,
    ExtensionId,
    OverflowReason,
    RingFailure,
)
from ringmaster.engine.rules import next_widening


class DeadlinesMixin(EngineBase):
    """What to do when a deadline falls due, and whether it still stands."""

    def _is_live_deadline(self, entry: Deadline) -> bool:  # noqa: PLR0911
        at, kind, _, _, key, extension_id = entry
        if kind in CALL_DEADLINES:
            call = self._calls.get(key) if key is not None else None
            if call is None or call.phase not in (CallPhase.QUEUED, CallPhase.RINGING):
                return False
            if kind == DUE_RING:
                if extension_id is None:  # the rings started at once: any of them left
                    return any(ring.deadline == at for ring in call.rings.values())
                ring = call.rings.get(extension_id)
                return ring is not None and ring.deadline == at
            if kind == DUE_RETRY:
                return call.retry_at == at
            if kind == DUE_MAX_WAIT:
                queue = self._queue_of(call)
                return (
                    queue is not None
                    and not call.is_callback
                    and queue.config.max_wait > 0
                    and call.entered_at + queue.config.max_wait == at
                )
            if kind == DUE_WIDEN:
                return call.widen_at == at
            if kind == DUE_ANNOUNCE:
                return call.announce_at == at
            return call.progress_at == at
        agent = self._agents.get(extension_id) if extension_id is not None else None
        if agent is None:
            return False
        return (agent.wrapup_until if kind == DUE_WRAPUP else agent.skip_until) == at

    def _rings_timed_out(self, entry: Deadline, now: float) -> None:
        """The timeout of rings started at once fell due (`_is_live_deadline` checked it).

        Each ring still on with this timeout ends, in extension order, each
        checked and ended as its own deadline would be (an earlier one's end
        may change what a later one finds).
        """
        at, _, seq, _, key, _ = entry
        assert key is not None
        call = self._calls[key]
        due = sorted(e for e, ring in call.rings.items() if ring.deadline == at)
        for extension_id in due:
            if self._is_live_deadline((at, DUE_RING, seq, extension_id, key, extension_id)):
                self._call_deadline_due(DUE_RING, key, extension_id, now)

    def _call_deadline_due(
        self, kind: int, key: CallKey, extension_id: ExtensionId | None, now: float
    ) -> None:
        """A live deadline of a waiting call fell due (`_is_live_deadline` checked it)."""
        call = self._calls[key]
        queue = self._queue_of(call)
        assert queue is not None  # only waiting calls have live deadlines
        if kind == DUE_RING:
            assert extension_id is not None
            self._ring_unanswered(call, extension_id, RingFailure.NO_ANSWER, now)
            self._end_ring(call, extension_id, CancelReason.TIMEOUT, now)
        elif kind == DUE_RETRY:
            call.retry_at = None
            # A new round. An agent rung during the pause (it became free,
            # untried) and still ringing has had its ring in this round: left
            # out of `tried`, it would be rung again the instant that ring
            # timed out, with no pause at all (issue 9, item 5).
            call.tried = set(call.rings)
            self._dirty_calls.add(key)
            self._queue_changed(queue)
        elif kind == DUE_MAX_WAIT:
            self._overflow(call, queue, OverflowReason.MAX_WAIT, now)
        elif kind == DUE_WIDEN:
            # More agents may take the call now: offer it again.
            call.widen_at = next_widening(queue.config, call.entered_at, now)
            if call.widen_at is not None:
                self._add_deadline(call.widen_at, DUE_WIDEN, key, None)
            self._to_distribute.add(queue.queue_id)
        elif kind == DUE_ANNOUNCE:
            self._announce(call, queue, bisect_left(queue.line, call.line_entry) + 1)
            call.announce_at = now + queue.config.announce_frequency
            self._dirty_calls.add(key)
            self._add_deadline(call.announce_at, DUE_ANNOUNCE, key, None)
        elif kind == DUE_PROGRESS:
            self._to_distribute.add(queue.queue_id)

    def _agent_rested(self, extension_id: ExtensionId, now: float) -> None:
        """A wrap-up or a skip after a failed ring is over (`_is_live_deadline` checked)."""
        agent = self._agents[extension_id]
        if agent.wrapup_until is not None and agent.wrapup_until <= now:
            agent.wrapup_until = None
        if agent.skip_until is not None and agent.skip_until <= now:
            agent.skip_until = None
        self._dirty_agents.add(extension_id)
        self._refresh_agent(agent, now)
