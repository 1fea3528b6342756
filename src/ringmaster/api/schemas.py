"""The admin API's request and response bodies.

Requests are strict (``"15"``, ``1.5`` and ``true`` are not the integer 15) and refuse
unknown fields, so a typo is a 422 naming the field rather than a silently ignored
setting. Responses carry no constraints: they describe what is stored, which may come
from provisioning rather than from this API.
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar, get_args

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

from ringmaster.engine.model import AgentStatus
from ringmaster.fields import StrategyName

#: SQLite's largest integer: a bigger id could never name a row, and binding it fails.
MAX_ID = 2**63 - 1
MAX_PAGE = 1000
DEFAULT_PAGE = 100
#: The longest ring an operator may set, in seconds. Not in the product documentation;
#: an upper bound keeps the value an SQLite integer, and an hour is already absurd.
MAX_TIMEOUT_S = 3600


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
Timeout = Annotated[int, Field(ge=1, le=MAX_TIMEOUT_S)]
Status = Literal["active", "inactive"]


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


class TenantUpdate(_Request):
    """``PATCH /api/tenants/{id}``."""

    name: Name | MISSING = MISSING


class ExtensionCreate(_Request):
    """``POST /api/extensions``."""

    tenant_id: Id
    number: Number
    name: OptionalName = ""


class ExtensionUpdate(_Request):
    """``PATCH /api/extensions/{id}``: the tenant of an extension never changes."""

    number: Number | MISSING = MISSING
    name: OptionalName | MISSING = MISSING


class QueueCreate(_Request):
    """``POST /api/queues``: exactly the fields of the product's queue documentation."""

    tenant_id: Id
    name: Name
    queue_number: Number
    strategy: Strategy
    timeout: Timeout
    status: Status = "active"


class QueueUpdate(_Request):
    """``PATCH /api/queues/{id}``: the tenant of a queue never changes."""

    name: Name | MISSING = MISSING
    queue_number: Number | MISSING = MISSING
    strategy: Strategy | MISSING = MISSING
    timeout: Timeout | MISSING = MISSING
    status: Status | MISSING = MISSING


class EnrolmentCreate(_Request):
    """``POST /api/queues/{id}/agents``."""

    extension_id: Id


class DidRouteCreate(_Request):
    """``POST /api/did-routes``: a DID to a queue or to an extension, exactly one."""

    tenant_id: Id
    did: Did
    queue_id: Id | MISSING = MISSING
    extension_id: Id | MISSING = MISSING

    @model_validator(mode="after")
    def _exactly_one_target(self) -> DidRouteCreate:
        if (self.queue_id is MISSING) == (self.extension_id is MISSING):
            raise PydanticCustomError(
                "route_target", "give exactly one of `queue_id` and `extension_id`"
            )
        return self


class DidRouteUpdate(_Request):
    """``PATCH /api/did-routes/{id}``: a new DID, a new target (at most one), or both."""

    did: Did | MISSING = MISSING
    queue_id: Id | MISSING = MISSING
    extension_id: Id | MISSING = MISSING

    @model_validator(mode="after")
    def _at_most_one_target(self) -> DidRouteUpdate:
        if self.queue_id is not MISSING and self.extension_id is not MISSING:
            raise PydanticCustomError(
                "route_target", "give at most one of `queue_id` and `extension_id`"
            )
        return self


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


class ExtensionOut(_Response):
    """An extension."""

    id: int
    tenant_id: int
    number: str
    name: str


class AgentOut(_Response):
    """An extension enrolled in a queue."""

    id: int
    number: str
    name: str


AgentStatusName = Literal["available", "ringing", "busy", "wrapup", "paused", "logged_out"]
# Spelt out for the schema; keep it in step with the engine's enum.
assert set(get_args(AgentStatusName)) == {s.value for s in AgentStatus}


class LiveAgentOut(AgentOut):
    """An enrolled extension with its live state."""

    status: AgentStatusName = Field(
        description="Ringmaster's view of the agent, as on `event/agent/state`."
    )


class QueueOut(_Response):
    """A queue with its agents, in enrolment order."""

    id: int
    tenant_id: int
    name: str
    queue_number: str
    strategy: str
    timeout: int
    status: Status
    agents: list[AgentOut]


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


class DidRouteOut(_Response):
    """A DID route: exactly one of `queue_id` and `extension_id` is set."""

    id: int
    tenant_id: int
    did: str
    queue_id: int | None
    extension_id: int | None


# --- path and query parameters -----------------------------------------------------------

PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="The resource's id.")]
TenantFilter = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Only this tenant's resources.")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip.")]
