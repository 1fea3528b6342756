"""The call centre's vocabulary: identifiers, states and configuration.

Everything here is plain data. The engine (`engine.core`) owns the rules that
move it; the adapters translate it to and from MQTT payloads and SQL rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

TenantId = NewType("TenantId", int)
QueueId = NewType("QueueId", int)
ExtensionId = NewType("ExtensionId", int)
CallId = NewType("CallId", str)

#: A call_id is unique per tenant only (contract: "unique per tenant for the
#: life of a call"), so the engine keys calls by both.
CallKey = tuple[TenantId, CallId]


class _Enum(enum.Enum):
    """An enum that hashes by identity.

    Members are singletons, so identity is equality; `enum.Enum.__hash__` is
    Python code hashing the name, and the engine hashes states on every event.
    """

    __hash__ = object.__hash__


class QueueStatus(_Enum):
    """An inactive queue takes no new calls and serves those already waiting."""

    ACTIVE = "active"
    INACTIVE = "inactive"


class Presence(_Enum):
    """What the agent said about themself (contract: `pbx/agent/state`)."""

    AVAILABLE = "available"
    PAUSED = "paused"
    LOGGED_OUT = "logged_out"


class DeviceState(_Enum):
    """What the PBX says about the phone (contract: `pbx/extension/state`)."""

    IDLE = "idle"
    IN_USE = "in_use"
    RINGING = "ringing"
    UNAVAILABLE = "unavailable"


class AgentStatus(_Enum):
    """Ringmaster's own view of an agent, as published on `event/agent/state`."""

    AVAILABLE = "available"
    RINGING = "ringing"
    BUSY = "busy"
    WRAPUP = "wrapup"
    PAUSED = "paused"
    LOGGED_OUT = "logged_out"


class RingFailure(_Enum):
    """Why the PBX says a ring ended unanswered."""

    BUSY = "busy"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"
    NO_ANSWER = "no_answer"


class CancelReason(_Enum):
    """Why ringmaster stops a ring."""

    TIMEOUT = "timeout"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    CALLER_HANGUP = "caller_hangup"
    OVERFLOW = "overflow"
    AGENT_UNAVAILABLE = "agent_unavailable"


class RejectReason(_Enum):
    """Why a call never reached a queue (contract: `cmd/route` hangup reasons)."""

    NO_ROUTE = "no_route"
    QUEUE_INACTIVE = "queue_inactive"
    QUEUE_FULL = "queue_full"


class CallPhase(_Enum):
    """Where a call is in its life. The last four are final."""

    QUEUED = "queued"  # in a waiting line, no ring out
    RINGING = "ringing"  # in a waiting line, one ring or more out
    CONNECTED = "connected"  # answered, talking to an agent
    COMPLETED = "completed"  # hung up after the answer
    ABANDONED = "abandoned"  # hung up before the answer
    ROUTED = "routed"  # sent elsewhere (a DID route to an extension)
    REJECTED = "rejected"  # never queued: no route, inactive queue, ...

    @property
    def is_final(self) -> bool:
        """True once the call has ended, one way or another."""
        return self in _FINAL_PHASES


_FINAL_PHASES = frozenset(
    {CallPhase.COMPLETED, CallPhase.ABANDONED, CallPhase.ROUTED, CallPhase.REJECTED}
)


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer of the PBX; everything else belongs to one."""

    tenant_id: TenantId
    name: str


@dataclass(frozen=True, slots=True)
class Extension:
    """A phone number inside a tenant; enrolled in a queue, it is an agent."""

    extension_id: ExtensionId
    tenant_id: TenantId
    number: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A call queue, with the fields of the product's queue documentation.

    `timeout` is how long one agent rings before the queue moves on; `retry`
    is the pause after a full round of rings before the next round (Asterisk's
    `retry`); `wrapup_time` is the rest an agent gets after a completed call.
    """

    queue_id: QueueId
    tenant_id: TenantId
    name: str
    queue_number: str
    strategy: str
    timeout: int
    status: QueueStatus = QueueStatus.ACTIVE
    retry: int = 5
    wrapup_time: int = 0


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """A DID route that sends calls to a queue."""

    queue_id: QueueId


@dataclass(frozen=True, slots=True)
class ExtensionTarget:
    """A DID route that sends calls straight to an extension."""

    extension_id: ExtensionId


RouteTarget = QueueTarget | ExtensionTarget


@dataclass(frozen=True, slots=True)
class DidRoute:
    """Where calls to one DID of a tenant go."""

    tenant_id: TenantId
    did: str
    target: RouteTarget
