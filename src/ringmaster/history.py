"""Call and agent history: what each turn's events and commands add to the record.

Pure and sans-I/O like the engine: `HistoryRecorder.record` turns one handled
event (or a timer, or a restore: no event) and the commands the engine decided
for it into history writes, which the store runs in the turn's own transaction
(`ringmaster.store.history`). So the history is exactly as committed as the
state it describes, and survives a `kill -9` with it.

Rows are written as the call lives: a queue visit is opened when the call is
queued (`PublishCallQueued`) and updated when it is answered and when it ends;
a ring is opened when it starts (`PublishCallRinging`) and updated when it
ends. Updates find the call's *open* visit (no outcome yet), so a restart goes
on updating the rows the previous process opened.

How each outcome is reached (docs/history.md says what each means):

- ``completed``: `PublishCallCompleted` after `PublishCallAnswered`;
- ``abandoned``: `PublishCallAbandoned`;
- ``overflowed``: `PublishCallOverflowed` (to another queue, where a new visit
  opens, to an extension or to a hangup), or a waiting call that ringmaster
  hangs up without one: `RouteToHangup` while a visit is open (its queue was
  removed: reason ``queue_removed``);
- ``rejected``: `PublishCallRejected` (a visit row of its own, never queued);
- ``callback``: `PublishCallbackRequested`: the caller's visit ends there and
  the callback opens the call's next visit in the same queue, whose rings,
  answer (the `Originate`) and completion are recorded on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    CancelRing,
    Command,
    PublishAgentState,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallbackRequested,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    PublishCallRejected,
    PublishCallRinging,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CancelReason,
    ExtensionId,
    QueueId,
    TenantId,
)

VisitOutcome = Literal["completed", "abandoned", "rejected", "overflowed", "callback"]
RingOutcome = Literal[
    "answered", "timeout", "busy", "rejected", "unreachable", "no_answer", "cancelled"
]
ActivityKind = Literal[
    "login",
    "logout",
    "pause",
    "unpause",
    "ring_unanswered",
    "wrapup_start",
    "wrapup_end",
    "enrol",
    "unenrol",
    "state",
]

VISIT_OUTCOMES: tuple[VisitOutcome, ...] = (
    "completed",
    "abandoned",
    "rejected",
    "overflowed",
    "callback",
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the call's arrival said that its queued command does not."""

    caller_name: str
    priority: int
    arrived_at: float


@dataclass(frozen=True, slots=True)
class VisitOpened:
    """The call entered `queue_id` (or was refused by it: `outcome` set, closed at once).

    None for `did`, `caller_id` or `arrival`: as the call's previous visit has
    them (an overflow or a callback opens a visit turns after the arrival).
    """

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    entered_at: float
    position: int | None
    did: str | None = None
    caller_id: str | None = None
    arrival: Arrival | None = None
    callback_number: str | None = None
    outcome: VisitOutcome | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VisitAnswered:
    """An agent answered the call's open visit; the agent's ring ends ``answered``."""

    tenant_id: TenantId
    call_id: CallId
    extension: str
    at: float
    ring_id: str | None = None


@dataclass(frozen=True, slots=True)
class VisitEnded:
    """The call's open visit ends (only in `queue_id` when given); no-op when none is open."""

    tenant_id: TenantId
    call_id: CallId
    outcome: VisitOutcome
    at: float
    reason: str = ""
    queue_id: QueueId | None = None
    talk_s: float | None = None
    overflow_queue_id: QueueId | None = None
    overflow_extension: str | None = None


@dataclass(frozen=True, slots=True)
class CallRejected:
    """The call never reached a queue: a closed visit of its own.

    The queue is its DID route's, when the route names one (the store looks it up).
    """

    tenant_id: TenantId
    call_id: CallId
    did: str
    reason: str
    at: float
    caller_id: str = ""
    caller_name: str = ""
    priority: int = 0


@dataclass(frozen=True, slots=True)
class RingStarted:
    """A ring of `extension` for the call's open visit started."""

    tenant_id: TenantId
    call_id: CallId
    ring_id: str
    extension: str
    at: float


@dataclass(frozen=True, slots=True)
class RingEnded:
    """A ring ended unanswered (`ring_id` None: the extension's open ring).

    `unanswered`: it also counts as the agent's ring not answered (a timeout
    or a failure the PBX reported), recorded only if the ring was open.
    """

    tenant_id: TenantId
    call_id: CallId
    ring_id: str | None
    extension: str
    at: float
    outcome: RingOutcome
    cancel_reason: str = ""
    unanswered: bool = False


@dataclass(frozen=True, slots=True)
class AgentActivity:
    """One thing an agent did, or that happened to them."""

    tenant_id: TenantId
    extension: str
    at: float
    kind: ActivityKind
    reason: str = ""
    state: AgentStatus | None = None


@dataclass(frozen=True, slots=True)
class EnrolmentChanged:
    """An extension was enrolled in (or taken out of) a queue: recorded once per change."""

    extension_id: ExtensionId
    queue_id: QueueId
    at: float
    kind: Literal["enrol", "unenrol"]


@dataclass(frozen=True, slots=True)
class QueueGone:
    """A queue was removed: every agent still enrolled in it is unenrolled."""

    queue_id: QueueId
    at: float


HistoryWrite = (
    VisitOpened
    | VisitAnswered
    | VisitEnded
    | CallRejected
    | RingStarted
    | RingEnded
    | AgentActivity
    | EnrolmentChanged
    | QueueGone
)

AgentKey = tuple[TenantId, str]

_RING_FAILED: dict[str, RingOutcome] = {
    "busy": "busy",
    "rejected": "rejected",
    "unreachable": "unreachable",
    "no_answer": "no_answer",
}


def activity_kinds(before: AgentStatus, after: AgentStatus) -> list[tuple[ActivityKind, bool]]:
    """The activities one published state change stands for, ends before starts.

    Each with whether the state's reason belongs to it (a pause's, a logout's).
    A change that is none of them (available, ringing, busy) is a ``state`` row,
    so that every change of state is in the record.
    """
    out = AgentStatus.LOGGED_OUT
    kinds: list[tuple[ActivityKind, bool]] = []
    if before is AgentStatus.WRAPUP and after is not AgentStatus.WRAPUP:
        kinds.append(("wrapup_end", False))
    if before is AgentStatus.PAUSED and after not in (AgentStatus.PAUSED, out):
        kinds.append(("unpause", False))
    if after is out and before is not out:
        kinds.append(("logout", True))
    if before is out and after is not out:
        kinds.append(("login", False))
    if after is AgentStatus.PAUSED and before is not AgentStatus.PAUSED:
        kinds.append(("pause", True))
    if after is AgentStatus.WRAPUP and before is not AgentStatus.WRAPUP:
        kinds.append(("wrapup_start", False))
    return kinds or [("state", False)]


class HistoryRecorder:
    """Turns handled events and the engine's commands into history writes.

    It remembers each agent's last published state (seeded at start-up from the
    stored one), to tell a login from an unpause; and, within a turn, the
    arrival of each call and the queue each overflow is headed for.

    Args:
        statuses: Each agent's state as last published, by (tenant, extension
            number); an agent not in it was logged out.
    """

    def __init__(self, statuses: Mapping[AgentKey, AgentStatus] | None = None) -> None:
        self._statuses: dict[AgentKey, AgentStatus] = dict(statuses or {})

    def seed(self, tenant_id: TenantId, extension: str, status: AgentStatus) -> None:
        """Say an agent's state as last published (at start-up, from the store)."""
        self._statuses[(tenant_id, extension)] = status

    def record(
        self, event: ev.Event | None, commands: Sequence[Command], now: float
    ) -> list[HistoryWrite]:
        """The history writes of one handled event (None: a timer or a restore).

        Args:
            event: What the engine handled, if anything.
            commands: What it decided for it, in order.
            now: The turn's time.
        """
        writes: list[HistoryWrite] = []
        arrival = event if isinstance(event, ev.CallArrived) else None
        answered_ring = event.ring_id if isinstance(event, ev.RingAnswered) else None
        if isinstance(event, ev.RingFailed):
            # Recorded whether or not the engine took it: only an open ring is updated,
            # and the engine's open ring is the stored one.
            writes.append(
                RingEnded(
                    event.tenant_id,
                    event.call_id,
                    event.ring_id,
                    event.extension,
                    now,
                    _RING_FAILED[event.reason.value],
                    unanswered=True,
                )
            )
        elif isinstance(event, ev.AgentEnrolled | ev.AgentUnenrolled):
            kind: Literal["enrol", "unenrol"] = (
                "enrol" if isinstance(event, ev.AgentEnrolled) else "unenrol"
            )
            writes.append(EnrolmentChanged(event.extension_id, event.queue_id, now, kind))
        elif isinstance(event, ev.QueueRemoved):
            writes.append(QueueGone(event.queue_id, now))
        # Overflows on their way into a queue: one from there before it is queued
        # there is that queue refusing the call (full, or nobody to take it).
        heading: dict[tuple[TenantId, CallId], QueueId] = {}
        for command in commands:
            writes += self._command(command, now, arrival, answered_ring, heading)
        return writes

    def _command(  # noqa: PLR0911, PLR0912
        self,
        command: Command,
        now: float,
        arrival: ev.CallArrived | None,
        answered_ring: str | None,
        heading: dict[tuple[TenantId, CallId], QueueId],
    ) -> list[HistoryWrite]:
        match command:
            case PublishCallQueued():
                heading.pop((command.tenant_id, command.call_id), None)
                came = (
                    Arrival(arrival.caller_name, arrival.priority, command.at)
                    if arrival is not None and arrival.call_id == command.call_id
                    else None
                )
                return [
                    VisitOpened(
                        command.tenant_id,
                        command.call_id,
                        command.queue_id,
                        command.at,
                        command.position,
                        command.did,
                        command.caller_id,
                        came,
                    )
                ]
            case PublishCallRinging():
                return [
                    RingStarted(
                        command.tenant_id,
                        command.call_id,
                        command.ring_id,
                        command.extension,
                        command.at,
                    )
                ]
            case CancelRing():
                timeout = command.reason is CancelReason.TIMEOUT
                return [
                    RingEnded(
                        command.tenant_id,
                        command.call_id,
                        command.ring_id or None,
                        command.extension,
                        now,  # a cancel carries no time: the turn's, as every command's `at`
                        "timeout" if timeout else "cancelled",
                        "" if timeout else command.reason.value,
                        unanswered=timeout,
                    )
                ]
            case PublishCallAnswered():
                return [
                    VisitAnswered(
                        command.tenant_id,
                        command.call_id,
                        command.extension,
                        command.at,
                        answered_ring,
                    )
                ]
            case PublishCallCompleted():
                return [
                    VisitEnded(
                        command.tenant_id,
                        command.call_id,
                        "completed",
                        command.at,
                        talk_s=command.talk_s,
                    )
                ]
            case PublishCallAbandoned():
                return [VisitEnded(command.tenant_id, command.call_id, "abandoned", command.at)]
            case PublishCallOverflowed():
                return [self._overflowed(command, heading)]
            case PublishCallRejected():
                caller = (
                    arrival if arrival is not None and arrival.call_id == command.call_id else None
                )
                return [
                    CallRejected(
                        command.tenant_id,
                        command.call_id,
                        command.did,
                        command.reason,
                        command.at,
                        caller.caller_id if caller else "",
                        caller.caller_name if caller else "",
                        caller.priority if caller else 0,
                    )
                ]
            case PublishCallbackRequested():
                return [
                    VisitEnded(command.tenant_id, command.call_id, "callback", command.at),
                    VisitOpened(
                        command.tenant_id,
                        command.call_id,
                        command.queue_id,
                        command.at,
                        command.position,
                        callback_number=command.number,
                    ),
                ]
            case RouteToHangup():
                # A waiting call hung up without an event of its own (its queue was
                # removed): its open visit, if any, ends overflowed for that reason.
                return [
                    VisitEnded(
                        command.tenant_id, command.call_id, "overflowed", now, command.reason
                    )
                ]
            case RouteToExtension():
                return []  # a DID route to an extension: never queued, no visit
            case PublishAgentState():
                return self._agent_state(command)
            case _:
                return []

    @staticmethod
    def _overflowed(
        command: PublishCallOverflowed, heading: dict[tuple[TenantId, CallId], QueueId]
    ) -> HistoryWrite:
        key = (command.tenant_id, command.call_id)
        refused = heading.pop(key, None) == command.queue_id
        if command.to_queue is not None:
            heading[key] = command.to_queue
        if refused:
            return VisitOpened(
                command.tenant_id,
                command.call_id,
                command.queue_id,
                command.at,
                None,
                outcome="overflowed",
                reason=command.reason,
            )
        return VisitEnded(
            command.tenant_id,
            command.call_id,
            "overflowed",
            command.at,
            command.reason,
            queue_id=command.queue_id,
            overflow_queue_id=command.to_queue,
            overflow_extension=command.to_extension,
        )

    def _agent_state(self, command: PublishAgentState) -> list[HistoryWrite]:
        key = (command.tenant_id, command.extension)
        before = self._statuses.get(key, AgentStatus.LOGGED_OUT)
        self._statuses[key] = command.state
        return [
            AgentActivity(
                command.tenant_id,
                command.extension,
                command.at,
                kind,
                command.reason if with_reason else "",
                command.state,
            )
            for kind, with_reason in activity_kinds(before, command.state)
        ]
