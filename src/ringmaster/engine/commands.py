"""What the engine asks for: imperatives, for the PBX and for monitoring.

The engine never publishes anything itself; the MQTT adapter renders each of
these on its contract topic. `at` is the engine's `now` when it was decided
(seconds since the Unix epoch: the service feeds the engine wall-clock time so
that stored deadlines still mean something after a restart).
"""

from __future__ import annotations

from dataclasses import dataclass

from ringmaster.engine.events import PbxEvent
from ringmaster.engine.frozen import quick_init
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CancelReason,
    Presence,
    QueueId,
    TenantId,
)

# --- commands to the PBX -----------------------------------------------------


@quick_init  # made on every ring
@dataclass(frozen=True, slots=True)
class Ring:
    """cmd/ring: ring this extension for this call, for at most `timeout` seconds.

    `ring_id` (addition to v1) identifies this ring among the call's rings.
    """

    tenant_id: TenantId
    call_id: CallId
    extension: str
    queue_id: QueueId
    timeout: int
    caller_id: str
    ring_id: str = ""


@quick_init  # made on every ring
@dataclass(frozen=True, slots=True)
class CancelRing:
    """cmd/cancel_ring: stop ringing this extension for this call (`ring_id`: which ring)."""

    tenant_id: TenantId
    call_id: CallId
    extension: str
    reason: CancelReason
    ring_id: str = ""


@dataclass(frozen=True, slots=True)
class RouteToExtension:
    """`cmd/route` with target `{"type": "extension", ...}`."""

    tenant_id: TenantId
    call_id: CallId
    extension: str


@dataclass(frozen=True, slots=True)
class RouteToHangup:
    """`cmd/route` with target `{"type": "hangup", "reason": ...}`."""

    tenant_id: TenantId
    call_id: CallId
    reason: str


@dataclass(frozen=True, slots=True)
class Announce:
    """cmd/announce (addition to v1): tell the waiting caller where they stand.

    `estimated_wait_s` is None when the queue has no recent answers to go by.
    """

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    position: int
    estimated_wait_s: int | None


@dataclass(frozen=True, slots=True)
class Originate:
    """cmd/originate (addition to v1): the agent took a callback; call the customer.

    The PBX calls `number` from `extension` (who has just answered the ring)
    and bridges them.
    """

    tenant_id: TenantId
    call_id: CallId
    extension: str
    number: str


@dataclass(frozen=True, slots=True)
class SetAgentState:
    """cmd/agent_state (addition to v1): a supervisor asks the PBX to change a presence.

    The PBX applies it and confirms with `pbx/agent/state` as usual; until then
    ringmaster's view of the agent does not change.
    """

    tenant_id: TenantId
    extension: str
    state: Presence
    reason: str = ""


PbxCommand = (
    Ring | CancelRing | RouteToExtension | RouteToHangup | Announce | Originate | SetAgentState
)

# --- monitoring events ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishCallQueued:
    """event/call/queued: the call joined a waiting line at `position`."""

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    did: str
    caller_id: str
    position: int
    at: float


@dataclass(frozen=True, slots=True)
class PublishCallRinging:
    """event/call/ringing: one extension is ringing for the call (`ring_id`: which ring)."""

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    extension: str
    at: float
    ring_id: str = ""


@dataclass(frozen=True, slots=True)
class PublishCallAnswered:
    """event/call/answered: an agent answered after `wait_s` seconds."""

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    extension: str
    wait_s: float
    at: float


@dataclass(frozen=True, slots=True)
class PublishCallAbandoned:
    """event/call/abandoned: the caller hung up after `wait_s` seconds."""

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    wait_s: float
    at: float


@dataclass(frozen=True, slots=True)
class PublishCallCompleted:
    """event/call/completed: the answered call ended after `talk_s` seconds."""

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    extension: str
    talk_s: float
    at: float


@dataclass(frozen=True, slots=True)
class PublishCallRejected:
    """event/call/rejected: the call never reached a queue."""

    tenant_id: TenantId
    call_id: CallId
    did: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class PublishCallOverflowed:
    """event/call/overflowed (addition to v1): the call left its queue unanswered.

    Exactly one of `to_queue` and `to_extension` is set, or neither for a
    hangup. A call that overflows into another queue is then queued there.
    """

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    reason: str
    wait_s: float
    at: float
    to_queue: QueueId | None = None
    to_extension: str | None = None


@dataclass(frozen=True, slots=True)
class PublishCallbackRequested:
    """event/call/callback_requested (addition to v1): the call waits as a callback."""

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId
    number: str
    position: int
    at: float


@dataclass(frozen=True, slots=True)
class PublishAgentState:
    """event/agent/state: ringmaster's view of the agent changed."""

    tenant_id: TenantId
    extension: str
    state: AgentStatus
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The retained wallboard view of one queue (`state/queue/Q`)."""

    queue_id: QueueId
    name: str
    queue_number: str
    strategy: str
    status: str
    waiting: int
    longest_wait_s: float
    agents: dict[str, int]  # AgentStatus value -> how many enrolled agents
    offered: int
    answered: int
    abandoned: int
    completed: int
    overflowed: int = 0
    #: The queue's `service_level` threshold, and the calls answered (and
    #: abandoned) within it: `answered_within / answered` is the service
    #: level; Asterisk's second form also counts abandons within it.
    service_level_s: int = 20
    answered_within: int = 0
    abandoned_within: int = 0
    service_level_pct: float | None = None
    #: Callbacks among the waiting calls.
    callbacks: int = 0


@dataclass(frozen=True, slots=True)
class PublishQueueSnapshot:
    """state/queue/Q (retained): the current snapshot of a queue."""

    tenant_id: TenantId
    snapshot: QueueSnapshot
    at: float


@dataclass(frozen=True, slots=True)
class ClearQueueSnapshot:
    """The queue is gone: clear its retained snapshot (an empty retained payload)."""

    tenant_id: TenantId
    queue_id: QueueId


@dataclass(frozen=True, slots=True)
class RejectInput:
    """The PBX sent something the rules do not allow; nothing changed.

    Published on `P/T/error` with the topic and payload of `event`.
    """

    event: PbxEvent
    error: str
    at: float


MonitoringCommand = (
    PublishCallQueued
    | PublishCallRinging
    | PublishCallAnswered
    | PublishCallAbandoned
    | PublishCallCompleted
    | PublishCallRejected
    | PublishCallOverflowed
    | PublishCallbackRequested
    | PublishAgentState
    | PublishQueueSnapshot
    | ClearQueueSnapshot
    | RejectInput
)

Command = PbxCommand | MonitoringCommand
