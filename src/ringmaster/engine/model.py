"""The call centre's vocabulary: identifiers, states and configuration.

Everything here is plain data. The engine (`engine.core`) owns the rules that
move it; the adapters translate it to and from MQTT payloads and SQL rows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NewType

from ringmaster.engine.options import (
    MAX_COUNT,
    MAX_PENALTY,
    MAX_RING_TIMEOUT,
    MAX_SECONDS,
    MAX_WEIGHT,
    option,
)

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
    #: A supervisor moved, sent or hung up the call (addition to v1).
    SUPERVISOR = "supervisor"


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
    #: The IANA time zone its reports' intervals and days are aligned in.
    timezone: str = "UTC"


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
    """A call queue: the fields of the product's queue documentation, then its options.

    Each option is declared here once (`option()`, engine.options): the admin API,
    provisioning, the store and docs/options.md derive theirs from these fields.
    """

    queue_id: QueueId
    tenant_id: TenantId
    name: str
    queue_number: str
    strategy: str
    timeout: int = option(
        doc="seconds one ring lasts before ringmaster cancels it (`timeout`) and moves on",
        minimum=1,
        maximum=MAX_RING_TIMEOUT,
        default_doc="(required)",
        asterisk="`timeout`",
        freeswitch="tier/agent `no-answer` timeout (agent `contact` timeout)",
        by_hand=True,
    )
    status: QueueStatus = QueueStatus.ACTIVE
    retry: int = option(
        5,
        doc="seconds to wait after a full round of rings before the next round",
        minimum=0,
        maximum=MAX_SECONDS,
        asterisk="`retry`",
        freeswitch="`agent-retry-delay` (per agent)",
    )
    wrapup_time: int = option(
        0,
        doc="seconds after a completed call before the agent is offered another; per queue,"
        " overridable per enrolment; one wrap-up holds in all the agent's queues",
        minimum=0,
        maximum=MAX_SECONDS,
        asterisk="`wrapuptime`",
        freeswitch="agent `wrap-up-time`",
    )
    max_len: int = option(
        0,
        doc="the waiting line's capacity; a call arriving to a full line goes to `overflow`"
        " with reason `queue_full`",
        minimum=0,
        maximum=MAX_COUNT,
        default_doc="0 (no limit)",
        asterisk="`maxlen`",
        freeswitch="(no capacity limit)",
    )
    max_wait: int = option(
        0,
        doc="seconds a call may wait in this queue; then it goes to `overflow` with reason"
        " `max_wait`",
        minimum=0,
        maximum=MAX_SECONDS,
        default_doc="0 (forever)",
        asterisk="`timeout` argument of `Queue()`",
        freeswitch="`max-wait-time`",
    )
    overflow: OverflowTarget = option(
        HangupTarget(),
        doc='where a call goes when it leaves unanswered: `{"type": "extension",'
        ' "extension": "101"}`, `{"type": "queue", "queue_id": 7}` (a queue of the same'
        ' tenant) or `{"type": "hangup"}`',
        default_doc='`{"type": "hangup"}`',
        values_doc="an object with a `type`: `hangup`, `extension` or `queue`",
        asterisk="dialplan after `Queue()` returns",
        freeswitch="`max-wait-time` transfer in dialplan",
        by_hand=True,
    )
    join_empty: frozenset[AgentCondition] = option(
        frozenset(),
        doc="conditions (`paused`, `unavailable`, `logged_out`, `busy`, `wrapup`); when"
        " every agent of the queue is in one of them, an arriving call does not join and"
        " goes to `overflow` with reason `queue_empty`",
        default_doc="`[]` (always join)",
        asterisk="`joinempty`",
        freeswitch="(`max-wait-time-with-no-agent` with 0 comes closest)",
    )
    leave_when_empty: frozenset[AgentCondition] = option(
        frozenset(),
        doc="same conditions; when every agent is in one of them, the waiting calls (and a"
        " call that has just joined) leave for `overflow` with reason `queue_empty`",
        default_doc="`[]` (never)",
        asterisk="`leavewhenempty`",
        freeswitch="`max-wait-time-with-no-agent` (after a grace time)",
    )
    weight: int = option(
        0,
        doc="when agents are shared by queues, the waiting calls of the heavier queue are"
        " offered first (priority and waiting time order calls within a weight)",
        minimum=0,
        maximum=MAX_WEIGHT,
        asterisk="`weight`",
        freeswitch="(tier levels)",
    )
    service_level: int = option(
        20,
        doc="the threshold, in seconds, of the queue's service-level figures in its snapshot",
        minimum=1,
        maximum=MAX_SECONDS,
        asterisk="`servicelevel`",
    )
    announce_frequency: int = option(
        0,
        doc="when a caller joins, every that many seconds while it waits, and whenever its"
        " position changes, ringmaster sends `cmd/announce` with the position and the"
        " estimated wait",
        minimum=0,
        maximum=MAX_SECONDS,
        default_doc="0 (never)",
        asterisk="`announce-frequency` (+ `announce-position`, `announce-holdtime`)",
        freeswitch="(dialplan)",
    )
    ring_progressive_delay: int = option(
        10,
        doc="`ringprogressive` only: seconds between adding one more ringing agent",
        minimum=1,
        maximum=MAX_SECONDS,
        freeswitch="`ring-progressively-delay`",
    )
    penalty_rules: tuple[PenaltyRule, ...] = option(
        (),
        doc='`[{"after": 0, "max_penalty": 0}, {"after": 30, "max_penalty": 2}]`, in'
        " increasing `after`: from `after` seconds in the queue on, the call may ring"
        " agents up to `max_penalty`; before the first rule applies, any penalty (as"
        " Asterisk's absolute `penaltychange`), so a rule at `after: 0` sets the starting"
        " limit and later rules widen it",
        default_doc="`[]`",
        asterisk="queuerules `penaltychange` (`QUEUE_MAX_PENALTY`)",
        freeswitch="tier rules (`tier-rules-apply`, `tier-rule-wait-second`)",
    )
    skill_rules: tuple[SkillRule, ...] = option(
        (),
        doc='`[{"after": 60, "lower_by": 2}, ...]`, in increasing `after`: from `after`'
        " seconds on, every skill level the call requires is lowered by `lower_by` (a"
        " requirement lowered to 0 is dropped)",
        default_doc="`[]`",
    )
    ring_in_use: bool = option(
        False,
        doc="also ring agents whose phone is `in_use` on a call that is not one of ours"
        " (a direct or outbound call; the PBX decides what the agent hears); an agent on a"
        " queue call, ringing, paused, in wrap-up or unregistered is still not rung, and"
        " `join_empty`'s `busy` still counts them. Off, as the contract's rule is"
        " (Asterisk's `ringinuse` defaults to on)",
        asterisk="`ringinuse`",
        freeswitch="(an agent's `status` and `state` only)",
    )


@dataclass(frozen=True, slots=True)
class EnrolmentOptions:
    """How an extension enrolled in a queue (an agent of it) takes that queue's calls.

    Declared like `QueueConfig`'s options. `position` None puts the agent after those
    already enrolled (the store gives it its place).
    """

    penalty: int = option(
        0,
        doc="the agent's tier: among the eligible agents, only those of the lowest penalty"
        " are rung (`wrandom` instead weighs by it); higher penalties ring when no lower one"
        " is eligible or all were tried this round. While a `ringall` or `ringprogressive`"
        " call rings a lower penalty, no higher one is added",
        minimum=0,
        maximum=MAX_PENALTY,
        asterisk="member `penalty`",
        freeswitch="tier `level`",
    )
    position: int | None = option(
        None,
        doc="the agent's place in the queue's order: `linear`, `roundrobin`, `rrordered`"
        " and `ringprogressive` follow it, and every tie is broken by it",
        minimum=0,
        maximum=MAX_COUNT,
        default_doc="after the last",
        values_doc=f"0..{MAX_COUNT}",
        asterisk="member order in queues.conf",
        freeswitch="tier `position`",
        by_hand=True,
    )
    wrapup_time: int | None = option(
        None,
        doc="this agent's wrap-up after a call of this queue (null: the queue's)",
        minimum=0,
        maximum=MAX_SECONDS,
        default_doc="the queue's",
        asterisk="member `wrapuptime` (Asterisk 16+)",
        freeswitch="agent `wrap-up-time`",
    )
    max_no_answer: int = option(
        0,
        doc="after that many unanswered rings in a row (timeouts and `ring_failed`"
        " `no_answer`, in any queue) the agent is paused with reason `no_answer`;"
        " `event/agent/state` says so, and the PBX's next `available` unpauses it",
        minimum=0,
        maximum=MAX_COUNT,
        default_doc="0 (never)",
        asterisk="`autopause`",
        freeswitch="agent `max-no-answer`",
    )
    busy_delay: int = option(
        0,
        doc="seconds the agent is skipped, in every queue, after a ring of this queue"
        " failed `busy`",
        minimum=0,
        maximum=MAX_SECONDS,
        freeswitch="agent `busy-delay-time`",
    )
    reject_delay: int = option(
        0,
        doc="the same after `rejected`",
        minimum=0,
        maximum=MAX_SECONDS,
        freeswitch="agent `reject-delay-time`",
    )
    no_answer_delay: int = option(
        0,
        doc="the same after a ring went unanswered (timeout or `no_answer`)",
        minimum=0,
        maximum=MAX_SECONDS,
        freeswitch="agent `no-answer-delay-time`",
    )


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
