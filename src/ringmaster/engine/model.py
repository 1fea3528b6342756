"""The call centre's vocabulary: identifiers, states and configuration.

Everything here is plain data. The engine (`engine.core`) owns the rules that
move it; the adapters translate it to and from MQTT payloads and SQL rows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
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


class AgentCondition(_Enum):
    """Why an enrolled agent cannot take a call now.

    `join_empty` and `leave_when_empty` are sets of these, as Asterisk's
    `joinempty` and `leavewhenempty` are.
    """

    PAUSED = "paused"
    UNAVAILABLE = "unavailable"  # the phone is unregistered
    LOGGED_OUT = "logged_out"
    BUSY = "busy"  # on a call (ringing for one of ours does not count)
    WRAPUP = "wrapup"


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
    QUEUE_EMPTY = "queue_empty"  # `join_empty`: nobody could take the call
    #: Its `hangup` came before its `arrived` (addition to v1): the caller is gone.
    CALLER_HANGUP = "caller_hangup"


class OverflowReason(_Enum):
    """Why a call left its queue for the queue's `overflow` target."""

    QUEUE_FULL = "queue_full"  # `max_len` reached on arrival
    QUEUE_EMPTY = "queue_empty"  # `join_empty` on arrival, `leave_when_empty` while waiting
    MAX_WAIT = "max_wait"
    TOO_MANY_HOPS = "too_many_hops"  # overflow chains that loop are cut here


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


#: Skill name -> level (1..10): what an agent has, or what a call requires.
Skills = Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Extension:
    """A phone number inside a tenant; enrolled in a queue, it is an agent."""

    extension_id: ExtensionId
    tenant_id: TenantId
    number: str
    name: str = ""
    #: Skills-based routing: a call that requires skills rings only agents
    #: who have each at the required level or above.
    skills: Skills = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HangupTarget:
    """An overflow that hangs the call up, with the reason that sent it there."""


@dataclass(frozen=True, slots=True)
class PenaltyRule:
    """After `after` seconds in the queue, a call may ring agents up to `max_penalty`.

    Asterisk's queuerules `penaltychange`, FreeSWITCH's tier rules. Before the
    first rule applies, a call may ring every penalty (lowest first).
    """

    after: int
    max_penalty: int


@dataclass(frozen=True, slots=True)
class SkillRule:
    """After `after` seconds in the queue, every required skill level drops by `lower_by`.

    A requirement lowered to 0 or below is dropped altogether.
    """

    after: int
    lower_by: int


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
    #: Waiting-line capacity; 0 is unlimited. A call beyond it overflows.
    max_len: int = 0
    #: Seconds a call may wait in this queue before it overflows; 0 is forever.
    max_wait: int = 0
    overflow: OverflowTarget = HangupTarget()
    #: A call may not join (it overflows) when every agent is in one of these.
    join_empty: frozenset[AgentCondition] = frozenset()
    #: Waiting calls leave (they overflow) when every agent is in one of these.
    leave_when_empty: frozenset[AgentCondition] = frozenset()
    #: A heavier queue's waiting calls are offered first to shared agents.
    weight: int = 0
    #: Seconds: the threshold of the queue's service-level figure.
    service_level: int = 20
    #: Seconds between `cmd/announce` to each waiting caller; 0 is never.
    announce_frequency: int = 0
    #: `ringprogressive`: seconds between adding one more ringing agent.
    ring_progressive_delay: int = 10
    penalty_rules: tuple[PenaltyRule, ...] = ()
    skill_rules: tuple[SkillRule, ...] = ()


@dataclass(frozen=True, slots=True)
class EnrolmentOptions:
    """How an extension enrolled in a queue (an agent of it) takes that queue's calls.

    `penalty` is the agent's tier: lower penalties are rung first. `position`
    orders the queue's agents for `linear`, `roundrobin`, `rrordered` and
    `ringprogressive` (ties by enrolment order); None puts the agent after
    those already enrolled. `wrapup_time` None means the queue's.
    The three delays skip the agent (in every queue) for that many seconds
    after a ring of this queue failed busy, was rejected, or went unanswered.
    `max_no_answer` pauses the agent (reason `no_answer`) after that many
    unanswered rings in a row; 0 never does.
    """

    penalty: int = 0
    position: int | None = None
    wrapup_time: int | None = None
    max_no_answer: int = 0
    busy_delay: int = 0
    reject_delay: int = 0
    no_answer_delay: int = 0


DEFAULT_ENROLMENT = EnrolmentOptions()


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """A DID route that sends calls to a queue."""

    queue_id: QueueId


@dataclass(frozen=True, slots=True)
class ExtensionTarget:
    """A DID route that sends calls straight to an extension."""

    extension_id: ExtensionId


RouteTarget = QueueTarget | ExtensionTarget
#: Where a call goes when it leaves a queue without an answer.
OverflowTarget = QueueTarget | ExtensionTarget | HangupTarget


@dataclass(frozen=True, slots=True)
class DidRoute:
    """Where calls to one DID of a tenant go."""

    tenant_id: TenantId
    did: str
    target: RouteTarget
    #: Skills every call of this DID requires (with a queue target).
    skills: Skills = field(default_factory=dict)
