"""Distribution: which waiting call rings which free agent, in rounds.

A call waits in its queue's line, sorted best first. Each queue keeps the set
of its agents that could be rung right now (`free`). Whenever something may
pair a waiting call with a free agent (a call arrives, a ring ends, an agent
becomes free, a retry pause ends), the queues concerned are marked and
`_distribute` walks their lines together, best call first across all of them,
so that an agent enrolled in several queues is offered the best waiting call
of all of them. Between events no waiting call that wants an agent has a free,
untried one: that invariant is what lets each event look only at the queues it
touched. When every agent who may take a call was tried, its round is over and
it pauses for its queue's `retry`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from ringmaster.engine.base import DUE_PROGRESS, DUE_RETRY, EngineBase
from ringmaster.engine.model import DEFAULT_ENROLMENT, CallPhase, ExtensionId
from ringmaster.engine.rules import has_skills, penalty_limit, skills_lowered_by
from ringmaster.engine.state import CallState, QueueState
from ringmaster.engine.strategies import STRATEGIES, QueueView, Strategy


class DistributionMixin(EngineBase):
    """Which waiting call rings which free agent, and when a round is over."""

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
        # changes a line, so the lines can be walked as they are. A strategy
        # that rings one agent at a time rings no call that has a ring on
        # (`_wants_ring`): only its calls with none are walked (a ring started
        # takes its call out of `unrung` as the walk goes).
        lines = [queue.line if _adds_rings(queue) else queue.walk_unrung() for queue in lines_of]
        for entry in lines[0] if len(lines) == 1 else heapq.merge(*lines):
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
        self._start_rings(call, queue, [self._agents[e] for e in chosen], now)
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
        self._start_rings(call, queue, [self._agents[chosen]], now)
        if STRATEGIES[queue.config.strategy].rings_progressively:
            self._next_progress(call, queue, now)
        return True

    def _next_progress(self, call: CallState, queue: QueueState, now: float) -> None:
        call.progress_at = now + queue.config.ring_progressive_delay
        self._add_deadline(call.progress_at, DUE_PROGRESS, call.key, None)

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
            self._add_deadline(call.retry_at, DUE_RETRY, call.key, None)
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
        # `queue.option`, inlined: a `ringall` call asks it for each of its 12 candidates.
        option, default = queue.options.get, DEFAULT_ENROLMENT
        penalties = [option(e, default).penalty for e in candidates]
        lowest = min([*penalties, *(option(e, default).penalty for e in call.rings)])
        return [e for e, penalty in zip(candidates, penalties, strict=True) if penalty == lowest]

    def _last_call_ended(self, extension_id: ExtensionId) -> float | None:
        agent = self._agents.get(extension_id)
        return agent.last_call_ended_at if agent is not None else None


def _adds_rings(queue: QueueState) -> bool:
    """Whether the queue's strategy may ring a call that has a ring on already."""
    strategy = STRATEGIES[queue.config.strategy]
    return strategy.rings_all or strategy.rings_progressively
