"""The engine's shared state, and the helpers every concern uses.

`EngineBase` declares what the engine knows (configuration, live calls and
agents, the deadline heap, the work of the event being handled, and what
changed since the store last asked) and the small steps every concern takes
(a call moves on, a queue changed, a deadline is set). Each concern is a mixin
of its own module (`calls`, `rings`, `distribution`, `agents`,
`configuration`, `deadlines`); `core.Engine` assembles them. The methods one
concern asks of another are declared here, abstract, so that each module can
be read, and type-checked, alone.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections import OrderedDict

from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command, RejectInput
from ringmaster.engine.ended import EndedCalls
from ringmaster.engine.model import (
    CallKey,
    CancelReason,
    DidRoute,
    Extension,
    ExtensionId,
    OverflowReason,
    OverflowTarget,
    QueueId,
    RingFailure,
    Tenant,
    TenantId,
)
from ringmaster.engine.state import AgentState, CallState, QueueState
from ringmaster.engine.strategies import QueueView, RandomSource

#: `EndedRing.how` of a ring the PBX reported failed (the others are CancelReasons).
RING_FAILED = "ring_failed"

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
(
    DUE_RING,
    DUE_RETRY,
    DUE_MAX_WAIT,
    DUE_WIDEN,
    DUE_ANNOUNCE,
    DUE_PROGRESS,
    DUE_WRAPUP,
    DUE_SKIP,
) = range(8)
CALL_DEADLINES = frozenset(
    {DUE_RING, DUE_RETRY, DUE_MAX_WAIT, DUE_WIDEN, DUE_ANNOUNCE, DUE_PROGRESS}
)
# (when, kind, call's arrival order, extension, call, extension). Deadlines due
# at the same time are handled by kind, then by the call's arrival order (its
# `seq`), then by extension: an order that a restart rebuilds exactly, as the
# order they were set in is not, so that the commands after a restart are the
# very ones that would have come without it.
Deadline = tuple[float, int, int, int, CallKey | None, ExtensionId | None]
#: The extension of a `DUE_RING` deadline that stands for every ring of its
#: call started at once with that timeout (its last field is None): below any
#: extension id, so it comes first among its call's rings due at that time.
RINGS_STARTED = -1


class _GoldenRatioSequence:
    """A low-discrepancy sequence in [0, 1): spreads choices evenly, needs no seed."""

    def __init__(self) -> None:
        self._x = 0.0

    def random(self) -> float:
        self._x = (self._x + 0.6180339887498949) % 1.0
        return self._x


class EngineBase(ABC):
    """The engine's state and shared steps: `core.Engine` without its concerns."""

    def __init__(
        self,
        *,
        ended_call_ttl: float = DEFAULT_ENDED_CALL_TTL,
        rng: RandomSource | None = None,
        publish_events: bool = True,
    ) -> None:
        self._ended_call_ttl = ended_call_ttl
        #: False: the `event/...` monitoring commands (`Publish*`) are not even
        #: made, for a caller that acts only on the PBX commands (the simulator:
        #: a `ringall` call is about 36 of them). Everything else is the same.
        self._publish_events = publish_events
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
        self._ended = EndedCalls()
        #: The ended calls that are hangups of calls never seen to arrive
        #: (`CallState.hung_up_before_arrival`), oldest first.
        self._early_hangups: OrderedDict[CallKey, None] = OrderedDict()
        self._agents: dict[ExtensionId, AgentState] = {}
        self._deadlines: list[Deadline] = []
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

    # --- shared steps --------------------------------------------------------------

    def _queue_changed(self, queue: QueueState) -> None:
        queue_id = queue.config.queue_id
        self._to_distribute.add(queue_id)
        self._touched.add(queue_id)
        self._dirty_queues.add(queue_id)

    def _move(self, call: CallState, happened: str) -> None:
        """Take one step of the call's life (`CALL_TRANSITIONS`); it is then stored."""
        call.move(happened)
        self._dirty_calls.add(call.key)

    def _end(self, call: CallState, now: float) -> None:
        """Move a call that reached a final phase to the remembered-ended calls."""
        call.ended_at = now
        call.ended_rings = ()  # an ended call takes no answer
        self._calls.pop(call.key, None)
        self._ended.add(call)
        self._dirty_calls.add(call.key)

    def _queue_of(self, call: CallState) -> QueueState | None:
        return self._queues.get(call.queue_id) if call.queue_id is not None else None

    def _agent_of(self, call: CallState) -> AgentState | None:
        return self._agents.get(call.agent_id) if call.agent_id is not None else None

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

    def _add_deadline(
        self, at: float, kind: int, key: CallKey | None, extension_id: ExtensionId | None
    ) -> None:
        call = self._calls.get(key) if key is not None else None
        seq = call.seq if call is not None else 0
        extension = extension_id if extension_id is not None else 0
        heapq.heappush(self._deadlines, (at, kind, seq, extension, key, extension_id))

    # --- what one concern asks of another (see the modules named) ------------------

    @abstractmethod
    def _arm_waiting(
        self, call: CallState, queue: QueueState, now: float, *, announce_from_now: bool
    ) -> None:
        """`calls`: set the deadlines a waiting call has from its queue's options."""

    @abstractmethod
    def _overflow(
        self, call: CallState, queue: QueueState, reason: OverflowReason, now: float
    ) -> None:
        """`calls`: the call leaves `queue` (or is refused by it) for its overflow target."""

    @abstractmethod
    def _overflow_to(
        self,
        call: CallState,
        queue: QueueState,
        reason: OverflowReason,
        target: OverflowTarget,
        now: float,
    ) -> None:
        """`calls`: the call leaves `queue` (or is refused by it) for `target`."""

    @abstractmethod
    def _announce_from(self, queue: QueueState, position: int) -> None:
        """`calls`: tell each caller from `position` on (1-based) their new place."""

    @abstractmethod
    def _leave(self, call: CallState, reason: str, now: float) -> None:
        """`calls`: take a waiting call out of ringmaster's hands and hang it up."""

    @abstractmethod
    def _leave_line(self, call: CallState, queue: QueueState) -> None:
        """`calls`: take the call out of the queue's line; those behind move up."""

    @abstractmethod
    def _announce(self, call: CallState, queue: QueueState, position: int) -> None:
        """`calls`: tell a waiting caller their place."""

    @abstractmethod
    def _start_rings(
        self, call: CallState, queue: QueueState, agents: list[AgentState], now: float
    ) -> None:
        """`rings`: ring each of the agents for the call, in this order."""

    @abstractmethod
    def _end_ring(
        self, call: CallState, extension_id: ExtensionId, cancel: CancelReason | None, now: float
    ) -> None:
        """`rings`: end one ring; `cancel` says why we stop it, None if the PBX ended it."""

    @abstractmethod
    def _ring_unanswered(
        self, call: CallState, extension_id: ExtensionId, failure: RingFailure, now: float
    ) -> None:
        """`rings`: apply the enrolment's delays and `max_no_answer` to a failed ring."""

    @abstractmethod
    def _cancel_ring_of(self, agent: AgentState, now: float) -> None:
        """`rings`: end the ring the agent has, if any: they cannot take it."""

    @abstractmethod
    def _view(self, queue: QueueState) -> QueueView:
        """`distribution`: what a strategy sees of a queue."""

    @abstractmethod
    def _refresh_agent(self, agent: AgentState, now: float) -> None:
        """`agents`: bring the queues' free sets and the published status up to date."""

    @abstractmethod
    def _refresh_ring_edge(self, agent: AgentState, now: float) -> None:
        """`agents`: `_refresh_agent` for an agent whose ring just began or ended."""

    @abstractmethod
    def _refresh_free_in(self, queue: QueueState, agent: AgentState) -> None:
        """`agents`: put the agent in the queue's free agents or take it out, as it sees it."""

    @abstractmethod
    def _set_free(self, queue: QueueState, extension_id: ExtensionId, free: bool) -> None:
        """`agents`: add an agent to the queue's free agents or take it out."""

    @abstractmethod
    def _rank_free_agents(self, queue: QueueState) -> None:
        """`agents`: keep the queue's free agents in its strategy's order, if it has one."""

    @abstractmethod
    def _count_status(self, agent: AgentState, delta: int) -> None:
        """`agents`: count the agent in (+1) or out of (-1) each of its queues."""

    @abstractmethod
    def _count_in(self, queue: QueueState, agent: AgentState, delta: int) -> None:
        """`agents`: count the agent in (+1) or out of (-1) one queue."""
