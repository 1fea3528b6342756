"""The engine's live state as immutable records: what is stored, and restored.

The engine keeps mutable objects for speed and hands out these frozen copies
of whatever changed (`Engine.take_changes`), so the store can write them after
an `await` without seeing later changes half-applied. The same records rebuild
the engine at start-up (`Engine.restore`). Anything derivable from them (which
agent is ringing for which call, waiting-line order) is not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ringmaster.engine.frozen import quick_init
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallKey,
    CallPhase,
    DeviceState,
    ExtensionId,
    Presence,
    QueueId,
    Skills,
    TenantId,
)


@quick_init  # made on every ring
@dataclass(frozen=True, slots=True)
class RingRecord:
    """One extension ringing for one call, until `deadline` at the latest."""

    extension_id: ExtensionId
    started_at: float
    deadline: float
    #: The ring's identity (addition to v1), unique among the call's rings:
    #: "<call's seq>.<ring's number in the call>". The PBX may echo it in
    #: `answered` and `ring_failed`; "" for a ring stored before ring ids.
    ring_id: str = ""
    #: The extension's number that was rung: the cancel names it even once
    #: the extension is removed; "" for a ring stored before it was kept.
    number: str = ""


@dataclass(frozen=True, slots=True)
class EndedRing:
    """A ring of a call that is over, and how it ended.

    `how` is the `CancelReason` value of a ring ringmaster cancelled, or
    "ring_failed" for one the PBX reported failed. An `answered` for a ring
    ringmaster cancelled is still honoured while the call waits (the PBX
    bridged it before our cancel reached it).
    """

    extension_id: ExtensionId
    ring_id: str
    how: str


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call as stored: everything needed to resume it."""

    tenant_id: TenantId
    call_id: CallId
    phase: CallPhase
    did: str
    caller_id: str
    caller_name: str
    priority: int
    arrived_at: float
    #: Arrival order across the whole engine: breaks ties between calls that
    #: arrived within the same clock tick, so the waiting line is a total order.
    seq: int
    queue_id: QueueId | None = None
    rings: tuple[RingRecord, ...] = ()
    #: Agents already rung in the current round (see `CallState.tried`).
    tried: tuple[ExtensionId, ...] = ()
    retry_at: float | None = None
    agent_id: ExtensionId | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    #: When the call joined its current queue (it differs from `arrived_at`
    #: after an overflow into another queue): `max_wait` and the penalty and
    #: skill rules count from here.
    entered_at: float | None = None
    #: Overflows taken so far; a chain longer than the engine allows is cut.
    hops: int = 0
    #: The number to call back: set, the call is virtual (the caller hung up).
    callback_number: str = ""
    #: The skills the call requires (its DID route's and its own).
    skills: Skills = field(default_factory=dict)
    #: When the next periodic `cmd/announce` is due.
    announce_at: float | None = None
    #: `ringprogressive`: when one more agent is added to the ringing.
    progress_at: float | None = None
    #: Rings started for the call so far: numbers each ring's `ring_id`.
    rings_started: int = 0
    #: The call's latest rings that are over, oldest first, while it waits
    #: (at most `state.MAX_ENDED_RINGS`; none once it is connected or ended).
    ended_rings: tuple[EndedRing, ...] = ()
    #: The answering agent's extension number: `call/completed` names it even
    #: once the extension is removed; "" until answered, or for a call stored
    #: before it was kept.
    agent_number: str = ""

    @property
    def key(self) -> CallKey:
        """The call's identity: call_ids are unique per tenant only."""
        return (self.tenant_id, self.call_id)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent as stored: presence, device and wrap-up."""

    extension_id: ExtensionId
    presence: Presence
    presence_reason: str
    device: DeviceState
    wrapup_until: float | None
    #: The state last published on `event/agent/state`, so that a restart
    #: does not announce changes that did not happen.
    status: AgentStatus
    #: When the agent's last call ended, in any queue (`longestidle`).
    last_call_ended_at: float | None = None
    #: Skipped by every queue until then after a failed ring (the delays).
    skip_until: float | None = None
    #: Unanswered rings in a row (`max_no_answer`).
    unanswered: int = 0


@dataclass(frozen=True, slots=True)
class AgentQueueStats:
    """An agent's record in one queue: what `leastrecent` and its kin rank by."""

    queue_id: QueueId
    extension_id: ExtensionId
    last_call_ended_at: float | None = None
    calls_completed: int = 0
    talk_time_s: float = 0.0


@dataclass(frozen=True, slots=True)
class QueueMemoryRecord:
    """A queue's strategy memory and its running counters."""

    queue_id: QueueId
    #: `roundrobin`: the agent rung last, where the next ring starts after.
    last_rung: ExtensionId | None = None
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    completed: int = 0
    #: `rrordered`: the agent who answered last, where the next ring starts after.
    last_answered: ExtensionId | None = None
    overflowed: int = 0
    #: Answered and abandoned within the queue's `service_level` threshold.
    answered_within: int = 0
    abandoned_within: int = 0
    #: The estimated wait's inputs: the last answer, and the smoothed
    #: interval between answers (None until there were two).
    last_answer_at: float | None = None
    answer_interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class LiveState:
    """Everything the engine needs, beyond configuration, to resume."""

    calls: tuple[CallRecord, ...] = ()
    agents: tuple[AgentRecord, ...] = ()
    queues: tuple[QueueMemoryRecord, ...] = ()
    agent_stats: tuple[AgentQueueStats, ...] = ()


@dataclass(frozen=True, slots=True)
class StateChanges:
    """What changed since the last `take_changes`: upserts, then removals."""

    live: LiveState = field(default_factory=LiveState)
    calls_removed: tuple[CallKey, ...] = ()
    agents_removed: tuple[ExtensionId, ...] = ()
    queues_removed: tuple[QueueId, ...] = ()
    agent_stats_removed: tuple[tuple[QueueId, ExtensionId], ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.live.calls
            or self.live.agents
            or self.live.queues
            or self.live.agent_stats
            or self.calls_removed
            or self.agents_removed
            or self.queues_removed
            or self.agent_stats_removed
        )
