"""The admin API's request and response bodies.

Requests are strict (``"15"``, ``1.5`` and ``true`` are not the integer 15) and refuse
unknown fields, so a typo is a 422 naming the field rather than a silently ignored
setting. Responses carry no constraints: they describe what is stored, which may come
from provisioning rather than from this API.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar, get_args

from fastapi import Path, Query
from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ringmaster.engine.model import AgentCondition, AgentStatus
from ringmaster.options import ENROLMENT_OPTIONS, QUEUE_OPTIONS, options_model, response_model
from ringmaster.options.fields import (
    ConditionName,
    Count,
    RingTimeout,
    SkillMap,
    StrategyName,
    TimeZoneName,
)

#: SQLite's largest integer: a bigger id could never name a row, and binding it fails.
MAX_ID = 2**63 - 1
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _storable(value: str) -> str:
    # A JSON string may carry a lone surrogate ("\ud800"), which has no UTF-8 form and
    # could not be stored; NUL would be cut short by C consumers of the MQTT payloads.
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "invalid_unicode", "must be valid Unicode (no lone surrogates)"
        ) from None
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_storable)]
OptionalName = Annotated[str, Field(max_length=200), AfterValidator(_storable)]
Number = Annotated[str, Field(min_length=1, max_length=20), AfterValidator(_storable)]
# Same rule as provisioning (provision.Did), with a length bound (E.164 has 15 digits).
Did = Annotated[str, Field(pattern=r"^\+?[0-9]{1,32}$")]
Strategy = StrategyName
Timeout = RingTimeout
Status = Literal["active", "inactive"]
#: An agent's place in its queue's order (`linear`, `roundrobin`, ...): lower first.
Position = Count

# Spelt out for the schema; keep them in step with the engine's enum.
assert set(get_args(ConditionName)) == {c.value for c in AgentCondition}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- requests ------------------------------------------------------------------------------
#
# PATCH bodies use pydantic's MISSING sentinel rather than `None` defaults: a field left
# out keeps its value, and an explicit null is refused (no field here may be null).


class TenantCreate(_Request):
    """``POST /api/tenants``: the id is optional (tenant ids appear in MQTT topics)."""

    id: Id | MISSING = MISSING
    name: Name
    timezone: TimeZoneName = Field(
        default="UTC", description="IANA time zone its reports are aligned in."
    )


class TenantUpdate(_Request):
    """``PATCH /api/tenants/{id}``."""

    name: Name | MISSING = MISSING
    timezone: TimeZoneName | MISSING = MISSING


class ExtensionCreate(_Request):
    """``POST /api/extensions``."""

    tenant_id: Id
    number: Number
    name: OptionalName = ""
    skills: SkillMap = Field(
        default={}, description='Skill name to level 1..10, e.g. `{"spanish": 8}`.'
    )


class ExtensionUpdate(_Request):
    """``PATCH /api/extensions/{id}``: the tenant of an extension never changes.

    `skills` replaces the whole map (`{}` clears it).
    """

    number: Number | MISSING = MISSING
    name: OptionalName | MISSING = MISSING
    skills: SkillMap | MISSING = MISSING


class HangupOverflow(_Request):
    """Overflow: hang the call up (`cmd/route` hangup with the overflow's reason)."""

    type: Literal["hangup"]


class ExtensionOverflow(_Request):
    """Overflow: send the call to an extension of the queue's tenant, by its number."""

    type: Literal["extension"]
    extension: Number


class QueueOverflow(_Request):
    """Overflow: move the call to another queue of the same tenant."""

    type: Literal["queue"]
    queue_id: Id


Overflow = Annotated[
    HangupOverflow | ExtensionOverflow | QueueOverflow, Field(discriminator="type")
]


# The option fields of queues and agents are derived from their declarations in the
# engine (QueueConfig, EnrolmentOptions); each model below declares the other fields. mypy
# sees those only: code reaches the options through `ringmaster.options`.


class _QueueCreateFields(_Request):
    """``POST /api/queues``: the six documented fields, then the call-centre options.

    Every option may be left out for the engine's default (docs/options.md says what
    each does).
    """

    tenant_id: Id
    name: Name
    queue_number: Number
    strategy: Strategy
    timeout: Timeout
    status: Status = "active"
    overflow: Overflow = Field(
        default=HangupOverflow(type="hangup"),
        description="Where a call goes when it leaves the queue unanswered.",
    )


class _QueueUpdateFields(_Request):
    """``PATCH /api/queues/{id}``: the tenant of a queue never changes.

    A list option given replaces the stored list (`[]` clears it).
    """

    name: Name | MISSING = MISSING
    queue_number: Number | MISSING = MISSING
    strategy: Strategy | MISSING = MISSING
    timeout: Timeout | MISSING = MISSING
    status: Status | MISSING = MISSING
    overflow: Overflow | MISSING = MISSING


class _EnrolmentCreateFields(_Request):
    """``POST /api/queues/{id}/agents``: the extension, and how it takes the queue's calls."""

    extension_id: Id
    position: Position | MISSING = Field(
        default=MISSING,
        description="Order for `linear`, `roundrobin`, ... (lower first); left out: last.",
    )


class _EnrolmentUpdateFields(_Request):
    """``PATCH /api/queues/{id}/agents/{extension_id}``: change how an agent takes calls.

    `wrapup_time` is the one field that takes null: it means "the queue's".
    """

    position: Position | MISSING = MISSING


if TYPE_CHECKING:
    QueueCreate = _QueueCreateFields
    QueueUpdate = _QueueUpdateFields
    EnrolmentCreate = _EnrolmentCreateFields
    EnrolmentUpdate = _EnrolmentUpdateFields
else:
    QueueCreate = options_model(_QueueCreateFields, QUEUE_OPTIONS)
    QueueUpdate = options_model(_QueueUpdateFields, QUEUE_OPTIONS, patch=True)
    EnrolmentCreate = options_model(_EnrolmentCreateFields, ENROLMENT_OPTIONS)
    EnrolmentUpdate = options_model(_EnrolmentUpdateFields, ENROLMENT_OPTIONS, patch=True)


class DidRouteCreate(_Request):
    """``POST /api/did-routes``: a DID to a queue or to an extension, exactly one."""

    tenant_id: Id
    did: Did
    queue_id: Id | MISSING = MISSING
    extension_id: Id | MISSING = MISSING
    skills: SkillMap = Field(
        default={}, description="Skills every call of this DID requires (queue targets only)."
    )

    @model_validator(mode="after")
    def _exactly_one_target(self) -> DidRouteCreate:
        if (self.queue_id is MISSING) == (self.extension_id is MISSING):
            raise PydanticCustomError(
                "route_target", "give exactly one of `queue_id` and `extension_id`"
            )
        return self


class DidRouteUpdate(_Request):
    """``PATCH /api/did-routes/{id}``: a new DID, a new target (at most one), new skills."""

    did: Did | MISSING = MISSING
    queue_id: Id | MISSING = MISSING
    extension_id: Id | MISSING = MISSING
    skills: SkillMap | MISSING = MISSING

    @model_validator(mode="after")
    def _at_most_one_target(self) -> DidRouteUpdate:
        if self.queue_id is not MISSING and self.extension_id is not MISSING:
            raise PydanticCustomError(
                "route_target", "give at most one of `queue_id` and `extension_id`"
            )
        return self


# --- a supervisor's requests (docs/api.md, "Supervisor actions") -------------------------------

PresenceName = Literal["available", "paused", "logged_out"]
#: A pause's reason, as the PBX's `pbx/agent/state` carries it.
PresenceReason = Annotated[str, Field(max_length=256), AfterValidator(_storable)]


class PresenceRequest(_Request):
    """``POST /api/agents/{tenant_id}/{extension}/presence``: ask the PBX for a presence."""

    state: PresenceName
    reason: PresenceReason = Field(
        "", description="A pause's reason; ignored (sent empty) with another state."
    )


class MoveCallRequest(_Request):
    """``POST /api/calls/{tenant_id}/{call_id}/move``: to another active queue of the tenant."""

    queue_id: Id


class CallPriorityRequest(_Request):
    """``POST /api/calls/{tenant_id}/{call_id}/priority``: higher is answered first."""

    priority: Annotated[int, Field(ge=0, le=9)]


class SendCallRequest(_Request):
    """``POST /api/calls/{tenant_id}/{call_id}/send``: to an extension of the tenant, by number."""

    extension: Number


class HangUpCallRequest(_Request):
    """``POST /api/calls/{tenant_id}/{call_id}/hangup``: no fields."""


# --- responses -----------------------------------------------------------------------------

ItemT = TypeVar("ItemT")


class Page(_Response, Generic[ItemT]):
    """One page of a list."""

    items: list[ItemT]
    total: int = Field(description="How many items the whole list has.")
    limit: int
    offset: int


class Error(_Response):
    """A 401, 403, 404 or 409: `detail` names the field or resource and the reason."""

    detail: str


class TenantOut(_Response):
    """A tenant."""

    id: int
    name: str
    timezone: str


class ExtensionOut(_Response):
    """An extension."""

    id: int
    tenant_id: int
    number: str
    name: str
    skills: dict[str, int]


class _AgentOutFields(_Response):
    """An extension enrolled in a queue, with its enrolment options."""

    id: int
    number: str
    name: str
    position: int


if TYPE_CHECKING:
    AgentOut = _AgentOutFields
else:
    AgentOut = response_model(_AgentOutFields, ENROLMENT_OPTIONS)


AgentStatusName = Literal["available", "ringing", "busy", "wrapup", "paused", "logged_out"]
# Spelt out for the schema; keep it in step with the engine's enum.
assert set(get_args(AgentStatusName)) == {s.value for s in AgentStatus}


class _LiveAgentOutFields(_AgentOutFields):
    """An enrolled extension with its live state."""

    status: AgentStatusName = Field(
        description="Ringmaster's view of the agent, as on `event/agent/state`."
    )
    state_since: datetime | None = Field(
        default=None,
        description="Since when the agent is in `status` (UTC), from the agent history;"
        " null when the history does not say (no change recorded, or pruned).",
    )


if TYPE_CHECKING:
    LiveAgentOut = _LiveAgentOutFields
else:
    LiveAgentOut = response_model(_LiveAgentOutFields, ENROLMENT_OPTIONS)


class HangupOverflowOut(_Response):
    """Overflow: hang the call up."""

    type: Literal["hangup"]


class ExtensionOverflowOut(_Response):
    """Overflow: to an extension of the queue's tenant (its number, as it is now)."""

    type: Literal["extension"]
    extension: str


class QueueOverflowOut(_Response):
    """Overflow: to another queue of the same tenant."""

    type: Literal["queue"]
    queue_id: int


OverflowOut = Annotated[
    HangupOverflowOut | ExtensionOverflowOut | QueueOverflowOut, Field(discriminator="type")
]


class _QueueOutFields(_Response):
    """A queue with every option, and its agents in order."""

    id: int
    tenant_id: int
    name: str
    queue_number: str
    strategy: str
    timeout: int
    status: Status
    overflow: OverflowOut
    agents: list[AgentOut]


if TYPE_CHECKING:
    QueueOut = _QueueOutFields
else:
    QueueOut = response_model(_QueueOutFields, QUEUE_OPTIONS)


class WaitingCallOut(_Response):
    """A call waiting in a queue's line (queued, or ringing agents)."""

    call_id: str
    position: int = Field(description="1 is the next call to be answered.")
    priority: int
    wait_s: float = Field(description="Seconds since the call arrived.")
    state: Literal["queued", "ringing"]
    did: str
    caller_id: str
    caller_name: str
    ringing: list[str] = Field(description="Extension numbers being rung for it now.")


class PresenceRequestOut(_Response):
    """A presence request passed on to the PBX; `state` changes once the PBX confirms."""

    tenant_id: int
    extension: str
    requested: PresenceName
    reason: str
    state: str = Field(
        description="Ringmaster's view of the agent now (`available`, `ringing`, `busy`,"
        " `wrapup`, `paused`, `logged_out`): the request has not changed it yet."
    )


class LiveCallOut(WaitingCallOut):
    """A waiting call after a supervisor's action, as the queue's live calls show it."""

    tenant_id: int
    queue_id: int = Field(description="The queue it waits in now.")


class RoutedOut(_Response):
    """Where a call was sent when it left Ringmaster's hands."""

    type: Literal["extension", "hangup"]
    extension: str | None = Field(None, description="The extension, for `extension`.")
    reason: str | None = Field(None, description="The hangup's reason, for `hangup`.")


class RoutedCallOut(_Response):
    """A call that left Ringmaster's hands: sent to an extension or hung up."""

    tenant_id: int
    call_id: str
    routed: RoutedOut


class QueueSnapshotOut(_Response):
    """A queue's figures now, as its retained ``P/T/state/queue/Q`` snapshot has them.

    The counters run since the queue was created (they survive restarts); they are
    not today's, nor any interval's.
    """

    queue_id: int
    name: str
    queue_number: str
    strategy: str
    status: Literal["active", "inactive"]
    waiting: int = Field(description="Calls waiting (queued or ringing).")
    longest_wait_s: float = Field(description="Seconds the longest-waiting call has waited.")
    agents: dict[str, int] = Field(description="How many enrolled agents are in each state.")
    offered: int
    answered: int
    abandoned: int
    completed: int
    overflowed: int
    service_level_s: int = Field(description="The queue's `service_level` threshold.")
    answered_within: int = Field(description="Calls answered within `service_level_s`.")
    abandoned_within: int = Field(description="Calls abandoned within `service_level_s`.")
    service_level_pct: float | None = Field(
        description="`answered_within` over `answered`, in %; null before the first answer."
    )
    callbacks: int = Field(description="Callbacks among the waiting calls.")


class BoardTenantOut(_Response):
    """The tenant a board is of."""

    id: int
    name: str
    timezone: str


class BoardTodayOut(_Response):
    """A queue's figures of the tenant's local day, as the interval report has them."""

    day: date = Field(description="The tenant's local day.")
    offered: int
    answered: int
    abandoned: int
    answered_within: int
    service_level_pct: float | None = Field(
        description="Calls answered within `service_level_s` over calls answered, in %;"
        " null before the day's first answer."
    )


class BoardQueueOut(_Response):
    """A queue on the board: its figures now and today's, and its waiting calls."""

    id: int
    name: str
    number: str
    status: Literal["active", "inactive"]
    waiting: int = Field(description="Calls waiting (queued or ringing).")
    longest_wait_s: float = Field(description="Seconds the longest-waiting call has waited.")
    service_level_s: int = Field(description="The queue's `service_level` threshold.")
    today: BoardTodayOut
    agents: dict[str, int] = Field(description="How many enrolled agents are in each state.")
    calls: list[WaitingCallOut] = Field(description="Its waiting calls, next to be answered first.")


class BoardAgentOut(_Response):
    """An agent of the tenant (enrolled in one of its queues) with its live state."""

    extension_id: int
    number: str
    name: str
    state: AgentStatusName = Field(description="Ringmaster's view, as on `event/agent/state`.")
    reason: str = Field(description="The pause reason the PBX gave; empty unless paused.")
    state_since: datetime | None = Field(
        description="Since when the agent is in `state` (UTC); null when the history does not say."
    )
    queues: list[int] = Field(description="The queues it is enrolled in, by id.")


class BoardOut(_Response):
    """A tenant's wallboard: every queue and agent, live (``GET /api/live/{tenant_id}``)."""

    tenant: BoardTenantOut
    at: datetime = Field(description="When the board was read (UTC).")
    queues: list[BoardQueueOut]
    agents: list[BoardAgentOut]


class DidRouteOut(_Response):
    """A DID route: exactly one of `queue_id` and `extension_id` is set."""

    id: int
    tenant_id: int
    did: str
    queue_id: int | None
    extension_id: int | None
    skills: dict[str, int]


class TallyOut(_Response):
    """How many entries of one kind a provisioning created, updated or found as the file says."""

    created: int
    updated: int
    unchanged: int


class ProvisionOut(_Response):
    """What a provisioning file did, per kind of entry (a queue's agents count once per queue)."""

    tenants: TallyOut
    extensions: TallyOut
    queues: TallyOut
    enrolments: TallyOut
    did_routes: TallyOut
    changed: bool = Field(description="Whether anything was created or updated.")


class ProvisionErrors(_Response):
    """An invalid provisioning file: nothing changed."""

    detail: list[str] = Field(
        description="One line per problem, naming the file, the entry and the field."
    )


#: What the audit trail records changes of; an agent is an extension's enrolment in a queue.
AuditResource = Literal["tenant", "extension", "queue", "agent", "did_route", "call"]
#: A configuration change, or a supervisor's action (on a call; `presence`: on an extension).
AuditActionName = Literal[
    "create", "update", "delete", "move", "priority", "send", "hangup", "presence"
]


class AuditRecordOut(_Response):
    """One change to the configuration: when, by whom, to what, and its values either side."""

    id: int = Field(description="Increases with every change: the order they were made in.")
    at: datetime = Field(description="When the change was made (UTC).")
    actor: str = Field(
        description="The token's name (`admin#1`, `tenant-7#2`; never the token), `local`"
        " on an API without tokens, or `provision` for `ringmaster provision` on the database"
        " file (through the daemon, the token's name)."
    )
    tenant_id: int = Field(description="The resource's tenant (a tenant's own id).")
    action: AuditActionName
    resource: AuditResource
    resource_id: str = Field(
        description="The resource's id; an agent's is `queue_id/extension_id`."
    )
    before: dict[str, Any] | None = Field(
        description="The resource as the API read it before the change; null for a creation."
    )
    after: dict[str, Any] | None = Field(
        description="The resource as the API read it after the change; null for a deletion."
    )


# --- call history (docs/history.md) ---------------------------------------------------------

VisitOutcomeName = Literal["completed", "abandoned", "rejected", "overflowed", "callback"]
RingOutcomeName = Literal[
    "answered", "timeout", "busy", "rejected", "unreachable", "no_answer", "cancelled"
]


class RingOut(_Response):
    """One ring of a call: the extension rung, when, and how it ended."""

    ring_id: str = Field(description="The ring's id, as `cmd/ring` gave it.")
    extension: str = Field(description="The number rung.")
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while it rings.")
    outcome: RingOutcomeName | None = Field(description="Null while it rings.")
    cancel_reason: str = Field(
        description="Why ringmaster cancelled it (outcome `cancelled`): `answered_elsewhere`,"
        " `caller_hangup`, `overflow` or `agent_unavailable`; empty otherwise."
    )


class VisitOut(_Response):
    """One visit of a call to a queue, from entering its line to leaving it (UTC times)."""

    tenant_id: int
    call_id: str
    visit: int = Field(description="1 for the call's first queue, 2 after an overflow, ...")
    queue_id: int | None = Field(
        description="Null for a rejected call whose DID had no route to a queue."
    )
    queue_number: str | None = Field(description="As it was then (the queue may be gone).")
    queue_name: str | None = Field(description="As it was then.")
    did: str
    caller_id: str
    caller_name: str
    priority: int
    arrived_at: datetime = Field(description="When the call arrived (the same on each visit).")
    entered_at: datetime = Field(description="When it entered this queue.")
    position: int | None = Field(description="Its place in the line on entry.")
    callback_number: str | None = Field(
        description="The number called back, on the visit of a callback."
    )
    answered_at: datetime | None
    ended_at: datetime | None = Field(description="Null while the call is in this queue.")
    outcome: VisitOutcomeName | None = Field(description="Null while the call is in this queue.")
    reason: str = Field(
        description="Why it overflowed (`max_wait`, `queue_full`, `queue_empty`,"
        " `too_many_hops`, `queue_removed`, `supervisor`) or was rejected (`no_route`,"
        " `queue_inactive`, ...); empty otherwise."
    )
    overflow_queue_id: int | None = Field(description="The queue it overflowed to.")
    overflow_extension: str | None = Field(description="The extension it overflowed to.")
    agent_extension_id: int | None = Field(description="The extension that answered.")
    agent_number: str | None = Field(description="Its number, as it was then.")
    wait_s: float | None = Field(
        description="Seconds from entering this queue to the answer, or to leaving it unanswered."
    )
    talk_s: float | None = Field(description="Seconds from the answer to the hangup.")


class VisitWithRings(VisitOut):
    """A visit with its rings, in the order they started."""

    rings: list[RingOut]


class CallHistoryOut(_Response):
    """A call's history: its visits in order (its overflow path), each with its rings."""

    tenant_id: int
    call_id: str
    visits: list[VisitWithRings]


# --- path and query parameters -----------------------------------------------------------

PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="The resource's id.")]
TenantFilter = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Only this tenant's resources.")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip.")]
