"""What the engine is told: facts, in the past tense.

Three families: what the PBX reports (`CallArrived`, `RingAnswered`, ...),
what an operator changed (`QueueSaved`, `AgentEnrolled`, ...) and what a
supervisor asked for (`MoveCall`, `RequestAgentState`, ...). Configuration
changes are events too, so that they take effect on the next call without a
restart, and so that start-up is just replaying the stored configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ringmaster.engine.model import (
    DEFAULT_ENROLMENT,
    CallId,
    DeviceState,
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    Presence,
    QueueConfig,
    QueueId,
    RingFailure,
    Skills,
    Tenant,
    TenantId,
)

# --- the PBX reports -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallArrived:
    """pbx/call/arrived: a call reached a DID of the tenant."""

    tenant_id: TenantId
    call_id: CallId
    did: str
    caller_id: str = ""
    caller_name: str = ""
    priority: int = 0
    #: Skills the call requires, on top of its DID route's (addition to v1).
    skills: Skills = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RingAnswered:
    """pbx/call/answered: the extension picked up a ring for the call.

    `ring_id` (addition to v1) names the ring that was answered, as `cmd/ring`
    gave it; None when the PBX does not echo ring ids.
    """

    tenant_id: TenantId
    call_id: CallId
    extension: str
    ring_id: str | None = None


@dataclass(frozen=True, slots=True)
class RingFailed:
    """pbx/call/ring_failed: the ring ended unanswered before ringmaster cancelled it.

    `ring_id` (addition to v1) names the ring that failed; a failure of an
    older ring never ends a newer one. None: the extension's ring, as in v1.
    """

    tenant_id: TenantId
    call_id: CallId
    extension: str
    reason: RingFailure
    ring_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallHungUp:
    """pbx/call/hangup: the call ended, waiting, ringing or connected."""

    tenant_id: TenantId
    call_id: CallId
    cause: str = ""


@dataclass(frozen=True, slots=True)
class CallbackRequested:
    """pbx/call/callback_requested (addition to v1): call the caller back instead.

    The waiting call becomes virtual: it keeps its place in the line though
    the caller hangs up, and when an agent answers its ring ringmaster asks
    the PBX to originate a call from that agent to `number`.
    """

    tenant_id: TenantId
    call_id: CallId
    number: str


@dataclass(frozen=True, slots=True)
class AgentPresenceChanged:
    """pbx/agent/state: the agent logged in, paused, unpaused or logged out."""

    tenant_id: TenantId
    extension: str
    presence: Presence
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DeviceStateChanged:
    """pbx/extension/state: the phone's device state changed."""

    tenant_id: TenantId
    extension: str
    state: DeviceState


PbxEvent = (
    CallArrived
    | RingAnswered
    | RingFailed
    | CallHungUp
    | CallbackRequested
    | AgentPresenceChanged
    | DeviceStateChanged
)

# --- an operator changed the configuration ----------------------------------


@dataclass(frozen=True, slots=True)
class TenantSaved:
    """A tenant was created or renamed."""

    tenant: Tenant


@dataclass(frozen=True, slots=True)
class TenantRemoved:
    """A tenant was deleted."""

    tenant_id: TenantId


@dataclass(frozen=True, slots=True)
class ExtensionSaved:
    """An extension was created or changed."""

    extension: Extension


@dataclass(frozen=True, slots=True)
class ExtensionRemoved:
    """An extension was deleted; its enrolments may remain, pointing at nothing."""

    extension_id: ExtensionId


@dataclass(frozen=True, slots=True)
class QueueSaved:
    """A queue was created or its settings changed."""

    queue: QueueConfig


@dataclass(frozen=True, slots=True)
class QueueRemoved:
    """A queue was deleted."""

    queue_id: QueueId


@dataclass(frozen=True, slots=True)
class AgentEnrolled:
    """An extension was enrolled in a queue, or its enrolment options changed."""

    queue_id: QueueId
    extension_id: ExtensionId
    options: EnrolmentOptions = DEFAULT_ENROLMENT


@dataclass(frozen=True, slots=True)
class AgentUnenrolled:
    """An extension was taken out of a queue."""

    queue_id: QueueId
    extension_id: ExtensionId


@dataclass(frozen=True, slots=True)
class DidRouteSaved:
    """A DID route was created or retargeted."""

    route: DidRoute


@dataclass(frozen=True, slots=True)
class DidRouteRemoved:
    """A DID route was deleted."""

    tenant_id: TenantId
    did: str


ConfigEvent = (
    TenantSaved
    | TenantRemoved
    | ExtensionSaved
    | ExtensionRemoved
    | QueueSaved
    | QueueRemoved
    | AgentEnrolled
    | AgentUnenrolled
    | DidRouteSaved
    | DidRouteRemoved
)

# --- a supervisor asked for something ------------------------------------------
#
# Requests rather than facts: one for a call that is not waiting (unknown,
# ended, answered) or with a target that cannot take it changes nothing.


@dataclass(frozen=True, slots=True)
class MoveCall:
    """A supervisor moves a waiting call to another queue of its tenant."""

    tenant_id: TenantId
    call_id: CallId
    queue_id: QueueId


@dataclass(frozen=True, slots=True)
class SetCallPriority:
    """A supervisor changes a waiting call's priority (0..9, higher first)."""

    tenant_id: TenantId
    call_id: CallId
    priority: int


@dataclass(frozen=True, slots=True)
class SendCallToExtension:
    """A supervisor sends a waiting call to an extension of its tenant (by number)."""

    tenant_id: TenantId
    call_id: CallId
    extension: str


@dataclass(frozen=True, slots=True)
class HangUpCall:
    """A supervisor hangs a waiting call up."""

    tenant_id: TenantId
    call_id: CallId


@dataclass(frozen=True, slots=True)
class RequestAgentState:
    """A supervisor asks the PBX to pause, unpause or log out an agent.

    Presence stays the PBX's: the agent's state changes only when the PBX
    confirms with `pbx/agent/state` (`AgentPresenceChanged`).
    """

    tenant_id: TenantId
    extension: str
    presence: Presence
    reason: str = ""


SupervisorEvent = MoveCall | SetCallPriority | SendCallToExtension | HangUpCall | RequestAgentState

Event = PbxEvent | ConfigEvent | SupervisorEvent
