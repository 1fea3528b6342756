"""The engine's live objects, and the one table of a call's life.

These are mutable for speed and private to the engine; `to_record` and
`from_record` convert to and from the frozen records in `records.py`, which is
what leaves the engine.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallKey,
    CallPhase,
    DeviceState,
    ExtensionId,
    Presence,
    QueueConfig,
    QueueId,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    QueueMemoryRecord,
    RingRecord,
)


class EngineBug(Exception):  # noqa: N818 (a bug is not an error of the input)
    """The engine broke one of its own rules. Never caused by input: a bug."""


# A call's life as data (after h11's `_state.py`): (phase, what happened) ->
# next phase. A pair missing from the table is a bug in the engine, never a
# consequence of input: input is checked before a transition is attempted.
CALL_TRANSITIONS: dict[tuple[CallPhase, str], CallPhase] = {
    (CallPhase.QUEUED, "ring"): CallPhase.RINGING,
    (CallPhase.RINGING, "ring"): CallPhase.RINGING,  # ringall adds an agent
    (CallPhase.RINGING, "ring_ended"): CallPhase.RINGING,  # others still ring
    (CallPhase.RINGING, "last_ring_ended"): CallPhase.QUEUED,
    (CallPhase.RINGING, "answer"): CallPhase.CONNECTED,
    (CallPhase.QUEUED, "hangup"): CallPhase.ABANDONED,
    (CallPhase.RINGING, "hangup"): CallPhase.ABANDONED,
    (CallPhase.CONNECTED, "hangup"): CallPhase.COMPLETED,
    (CallPhase.QUEUED, "leave"): CallPhase.ROUTED,
    (CallPhase.RINGING, "leave"): CallPhase.ROUTED,
}


#: A waiting-line entry sorts best first: highest priority, then longest
#: waiting, then arrival order (contract: "highest priority first, then
#: longest waiting").
LineEntry = tuple[int, float, int, CallKey]


@dataclass(slots=True, eq=False)
class CallState:
    """A call the engine is handling, or has recently ended."""

    tenant_id: TenantId
    call_id: CallId
    phase: CallPhase
    did: str
    caller_id: str
    caller_name: str
    priority: int
    arrived_at: float
    seq: int
    queue_id: QueueId | None = None
    rings: dict[ExtensionId, RingRecord] = field(default_factory=dict)
    #: Agents rung in the current round. A call does not ring them again until
    #: the round is over and the queue's `retry` pause has passed, so one agent
    #: who never answers cannot hold a call to himself.
    tried: set[ExtensionId] = field(default_factory=set)
    retry_at: float | None = None
    agent_id: ExtensionId | None = None
    answered_at: float | None = None
    ended_at: float | None = None

    @property
    def key(self) -> CallKey:
        return (self.tenant_id, self.call_id)

    @property
    def line_entry(self) -> LineEntry:
        return (-self.priority, self.arrived_at, self.seq, self.key)

    def move(self, happened: str) -> None:
        try:
            self.phase = CALL_TRANSITIONS[(self.phase, happened)]
        except KeyError:
            raise EngineBug(
                f"call {self.call_id}: no transition for {happened!r} in phase {self.phase.value}"
            ) from None

    def to_record(self) -> CallRecord:
        return CallRecord(
            tenant_id=self.tenant_id,
            call_id=self.call_id,
            phase=self.phase,
            did=self.did,
            caller_id=self.caller_id,
            caller_name=self.caller_name,
            priority=self.priority,
            arrived_at=self.arrived_at,
            seq=self.seq,
            queue_id=self.queue_id,
            rings=tuple(self.rings.values()),
            tried=tuple(sorted(self.tried)),
            retry_at=self.retry_at,
            agent_id=self.agent_id,
            answered_at=self.answered_at,
            ended_at=self.ended_at,
        )

    @classmethod
    def from_record(cls, record: CallRecord) -> CallState:
        return cls(
            tenant_id=record.tenant_id,
            call_id=record.call_id,
            phase=record.phase,
            did=record.did,
            caller_id=record.caller_id,
            caller_name=record.caller_name,
            priority=record.priority,
            arrived_at=record.arrived_at,
            seq=record.seq,
            queue_id=record.queue_id,
            rings={ring.extension_id: ring for ring in record.rings},
            tried=set(record.tried),
            retry_at=record.retry_at,
            agent_id=record.agent_id,
            answered_at=record.answered_at,
            ended_at=record.ended_at,
        )


@dataclass(slots=True, eq=False)
class AgentState:
    """One extension as an agent: what the PBX said, and what ringmaster did."""

    extension_id: ExtensionId
    tenant_id: TenantId
    number: str
    presence: Presence = Presence.LOGGED_OUT
    presence_reason: str = ""
    device: DeviceState = DeviceState.IDLE
    wrapup_until: float | None = None
    status: AgentStatus = AgentStatus.LOGGED_OUT
    # Derived from the calls (not stored): set while a ring or a call is on.
    ringing_for: CallKey | None = None
    connected_to: CallKey | None = None
    #: Cached `Engine._is_free`, so that the queues' free sets change only
    #: when it does.
    free: bool = False

    def to_record(self) -> AgentRecord:
        return AgentRecord(
            extension_id=self.extension_id,
            presence=self.presence,
            presence_reason=self.presence_reason,
            device=self.device,
            wrapup_until=self.wrapup_until,
            status=self.status,
        )

    def restore(self, record: AgentRecord) -> None:
        self.presence = record.presence
        self.presence_reason = record.presence_reason
        self.device = record.device
        self.wrapup_until = record.wrapup_until
        self.status = record.status


@dataclass(slots=True, eq=False)
class QueueState:
    """A queue: its settings, agents, waiting line and memory."""

    config: QueueConfig
    #: Enrolled extensions in enrolment order; ids may point at extensions
    #: that no longer exist (the product lets that happen), which never ring.
    enrolled: list[ExtensionId] = field(default_factory=list)
    position: dict[ExtensionId, int] = field(default_factory=dict)
    #: Waiting calls (queued or ringing), sorted best first.
    line: list[LineEntry] = field(default_factory=list)
    #: Enrolled agents that could be rung right now.
    free: set[ExtensionId] = field(default_factory=set)
    #: Enrolled, existing agents by status, kept up to date for snapshots.
    status_counts: Counter[AgentStatus] = field(default_factory=Counter)
    last_rung: ExtensionId | None = None
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    completed: int = 0
    stats: dict[ExtensionId, AgentQueueStats] = field(default_factory=dict)

    @property
    def queue_id(self) -> QueueId:
        return self.config.queue_id

    def oldest_arrival(self, default: float) -> float:
        """When the longest-waiting call arrived (`default` if none waits).

        The line is sorted by priority first, so the oldest call heads one of
        the (at most ten) priority groups: a few bisects, not a scan.
        """
        oldest = default
        index = 0
        while index < len(self.line):
            head = self.line[index]
            oldest = min(oldest, head[1])
            # skip to the first entry of the next (lower) priority
            index = bisect_left(self.line, (head[0] + 1,), lo=index)
        return oldest

    def set_enrolled(self, enrolled: list[ExtensionId]) -> None:
        self.enrolled = enrolled
        self.position = {extension_id: i for i, extension_id in enumerate(enrolled)}

    def memory_record(self) -> QueueMemoryRecord:
        return QueueMemoryRecord(
            queue_id=self.queue_id,
            last_rung=self.last_rung,
            offered=self.offered,
            answered=self.answered,
            abandoned=self.abandoned,
            completed=self.completed,
        )

    def restore_memory(self, record: QueueMemoryRecord) -> None:
        self.last_rung = record.last_rung
        self.offered = record.offered
        self.answered = record.answered
        self.abandoned = record.abandoned
        self.completed = record.completed
