"""The engine's live objects, and the one table of a call's life.

These are mutable for speed and private to the engine; `to_record` and
`from_record` convert to and from the frozen records in `records.py`, which is
what leaves the engine.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass, field

from ringmaster.engine.free_agents import RankedFreeAgents
from ringmaster.engine.model import (
    DEFAULT_ENROLMENT,
    AgentCondition,
    AgentStatus,
    CallId,
    CallKey,
    CallPhase,
    DeviceState,
    EnrolmentOptions,
    ExtensionId,
    Presence,
    QueueConfig,
    QueueId,
    Skills,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    EndedRing,
    QueueMemoryRecord,
    RingRecord,
)

#: How many of its ended rings a waiting call remembers (the latest): enough
#: for a round of a large `ringall` queue, few enough to bound a call's size.
MAX_ENDED_RINGS = 32


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
    # A late answer: the PBX bridged a ring that ringmaster had already ended.
    (CallPhase.QUEUED, "answer"): CallPhase.CONNECTED,
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
    entered_at: float = 0.0
    hops: int = 0
    callback_number: str = ""
    skills: Skills = field(default_factory=dict)
    announce_at: float | None = None
    progress_at: float | None = None
    #: Rings started so far (numbers the next ring's id).
    rings_started: int = 0
    #: The latest rings that are over, oldest first (see `EndedRing`); a
    #: tuple, shared with the record, as most calls have none.
    ended_rings: tuple[EndedRing, ...] = ()
    #: The answering agent's extension number (see `CallRecord.agent_number`).
    agent_number: str = ""
    #: When the call's penalty or skill rules next widen who may take it
    #: (derived from its queue's rules, so not stored).
    widen_at: float | None = None

    #: (tenant_id, call_id): made once, as every step of the call looks it up.
    key: CallKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = (self.tenant_id, self.call_id)

    @property
    def hung_up_before_arrival(self) -> bool:
        """A remembered `hangup` of a call whose `arrived` had not come (yet).

        Every call that arrived has a `seq` of 1 or more.
        """
        return self.seq == 0

    @property
    def is_callback(self) -> bool:
        return bool(self.callback_number)

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
            entered_at=self.entered_at,
            hops=self.hops,
            callback_number=self.callback_number,
            skills=self.skills,
            announce_at=self.announce_at,
            progress_at=self.progress_at,
            rings_started=self.rings_started,
            ended_rings=self.ended_rings,
            agent_number=self.agent_number,
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
            entered_at=record.entered_at if record.entered_at is not None else record.arrived_at,
            hops=record.hops,
            callback_number=record.callback_number,
            skills=record.skills,
            announce_at=record.announce_at,
            progress_at=record.progress_at,
            rings_started=record.rings_started,
            ended_rings=record.ended_rings,
            agent_number=record.agent_number,
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
    last_call_ended_at: float | None = None
    skip_until: float | None = None
    unanswered: int = 0
    #: Why the agent cannot take a call now (None: it can), for
    #: `join_empty` and `leave_when_empty`; kept with `status`.
    condition: AgentCondition | None = AgentCondition.LOGGED_OUT
    # Derived from the calls (not stored): set while a ring or a call is on.
    ringing_for: CallKey | None = None
    connected_to: CallKey | None = None
    #: Cached `Engine._is_free`, so that the queues' free sets change only
    #: when it does; `free_in_use` as queues with `ring_in_use` see it.
    free: bool = False
    free_in_use: bool = False

    def to_record(self) -> AgentRecord:
        return AgentRecord(
            extension_id=self.extension_id,
            presence=self.presence,
            presence_reason=self.presence_reason,
            device=self.device,
            wrapup_until=self.wrapup_until,
            status=self.status,
            last_call_ended_at=self.last_call_ended_at,
            skip_until=self.skip_until,
            unanswered=self.unanswered,
        )

    def restore(self, record: AgentRecord) -> None:
        self.presence = record.presence
        self.presence_reason = record.presence_reason
        self.device = record.device
        self.wrapup_until = record.wrapup_until
        self.status = record.status
        self.last_call_ended_at = record.last_call_ended_at
        self.skip_until = record.skip_until
        self.unanswered = record.unanswered


@dataclass(slots=True, eq=False)
class QueueState:
    """A queue: its settings, agents, waiting line and memory."""

    config: QueueConfig
    #: Enrolled extensions in order of their `position` option (then of
    #: enrolment); ids may point at extensions that no longer exist (the
    #: product lets that happen), which never ring.
    enrolled: list[ExtensionId] = field(default_factory=list)
    #: Each enrolled extension's index in `enrolled`.
    position: dict[ExtensionId, int] = field(default_factory=dict)
    options: dict[ExtensionId, EnrolmentOptions] = field(default_factory=dict)
    #: (position option, enrolment order) of each enrolled extension.
    order_key: dict[ExtensionId, tuple[int, int]] = field(default_factory=dict)
    #: Waiting calls (queued or ringing), sorted best first.
    line: list[LineEntry] = field(default_factory=list)
    #: The calls of `line` with no ring on, in the same order: the only ones
    #: a strategy that rings one agent at a time can ring, so that offering
    #: costs the calls that can take a ring, not every call ringing an agent.
    unrung: list[LineEntry] = field(default_factory=list)
    #: Enrolled agents that could be rung right now.
    free: set[ExtensionId] = field(default_factory=set)
    #: The same, in the strategy's order, for strategies with a fixed one.
    ranked: RankedFreeAgents | None = None
    #: Enrolled, existing agents by status, kept up to date for snapshots.
    #: Plain dicts holding every key from the start: every ring's start and
    #: end updates them, and a `Counter` updates at a third of the speed.
    status_counts: dict[AgentStatus, int] = field(
        default_factory=lambda: dict.fromkeys(AgentStatus, 0)
    )
    #: The same agents by `AgentState.condition` (None: could take a call).
    condition_counts: dict[AgentCondition | None, int] = field(
        default_factory=lambda: dict.fromkeys([*AgentCondition, None], 0)
    )
    #: Callbacks among the waiting calls.
    callbacks: int = 0
    last_rung: ExtensionId | None = None
    last_answered: ExtensionId | None = None
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    completed: int = 0
    overflowed: int = 0
    answered_within: int = 0
    abandoned_within: int = 0
    last_answer_at: float | None = None
    answer_interval_s: float | None = None
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

    def join_line(self, entry: LineEntry, *, ringing: bool) -> int:
        """Put a call in the line (`ringing`: it has a ring on); its index in it."""
        insort(self.line, entry)
        if not ringing:
            insort(self.unrung, entry)
        return bisect_left(self.line, entry)

    def leave_line(self, entry: LineEntry) -> int | None:
        """Take a call out of the line; its index there (None: it was not in)."""
        index = bisect_left(self.line, entry)
        if index == len(self.line) or self.line[index] != entry:
            return None
        del self.line[index]
        self.ring_started(entry)
        return index

    def clear_line(self) -> None:
        self.line.clear()
        self.unrung.clear()

    def ring_started(self, entry: LineEntry) -> None:
        """A call's first ring is on: it leaves `unrung` (a no-op if it is not in)."""
        index = bisect_left(self.unrung, entry)
        if index < len(self.unrung) and self.unrung[index] == entry:
            del self.unrung[index]

    def walk_unrung(self) -> Iterator[LineEntry]:
        """`unrung`, best first, lazily: each entry yielded may leave it meanwhile.

        Not a copy: a walk usually stops at the first call or two (no agent left
        free), and copying tens of thousands of waiting calls per offer cost more
        than the walk saved.
        """
        unrung = self.unrung
        index = 0
        while index < len(unrung):
            entry = unrung[index]
            yield entry
            # A ring started for it took it out (or not): go on after it either way.
            index = bisect_right(unrung, entry)

    def rings_over(self, entry: LineEntry) -> None:
        """A call's last ring ended: back in `unrung`, if it still waits in the line."""
        index = bisect_left(self.line, entry)
        if index < len(self.line) and self.line[index] == entry:
            insort(self.unrung, entry)

    def enrol(self, extension_id: ExtensionId, options: EnrolmentOptions, seq: int) -> None:
        """Enrol an agent, or change its options; keeps `enrolled` in order."""
        self.options[extension_id] = options
        old_key = self.order_key.get(extension_id)
        if options.position is None:
            key = old_key or (self.order_key[self.enrolled[-1]][0] + 1 if self.enrolled else 0, seq)
        else:
            key = (options.position, old_key[1] if old_key else seq)
        self.order_key[extension_id] = key
        if old_key == key:
            return
        if old_key is None and (not self.enrolled or self.order_key[self.enrolled[-1]] < key):
            # In place: start-up replays every enrolment in order, and rebuilding
            # the list each time made that quadratic.
            self.position[extension_id] = len(self.enrolled)
            self.enrolled.append(extension_id)
            return
        enrolled = [e for e in self.enrolled if e != extension_id]
        enrolled.insert(bisect_left(enrolled, key, key=self.order_key.__getitem__), extension_id)
        self._set_enrolled(enrolled)

    def unenrol(self, extension_id: ExtensionId) -> None:
        self._set_enrolled([e for e in self.enrolled if e != extension_id])
        self.options.pop(extension_id, None)
        self.order_key.pop(extension_id, None)
        self.free.discard(extension_id)
        if self.ranked is not None:
            self.ranked.discard(extension_id)

    def _set_enrolled(self, enrolled: list[ExtensionId]) -> None:
        self.enrolled = enrolled
        self.position = {extension_id: i for i, extension_id in enumerate(enrolled)}

    def option(self, extension_id: ExtensionId) -> EnrolmentOptions:
        return self.options.get(extension_id, DEFAULT_ENROLMENT)

    def memory_record(self) -> QueueMemoryRecord:
        return QueueMemoryRecord(
            queue_id=self.queue_id,
            last_rung=self.last_rung,
            offered=self.offered,
            answered=self.answered,
            abandoned=self.abandoned,
            completed=self.completed,
            last_answered=self.last_answered,
            overflowed=self.overflowed,
            answered_within=self.answered_within,
            abandoned_within=self.abandoned_within,
            last_answer_at=self.last_answer_at,
            answer_interval_s=self.answer_interval_s,
        )

    def restore_memory(self, record: QueueMemoryRecord) -> None:
        self.last_rung = record.last_rung
        self.offered = record.offered
        self.answered = record.answered
        self.abandoned = record.abandoned
        self.completed = record.completed
        self.last_answered = record.last_answered
        self.overflowed = record.overflowed
        self.answered_within = record.answered_within
        self.abandoned_within = record.abandoned_within
        self.last_answer_at = record.last_answer_at
        self.answer_interval_s = record.answer_interval_s
