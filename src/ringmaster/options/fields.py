"""Field types shared by the provisioning file and the admin API, so both say the same."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from ringmaster.engine.options import (
    MAX_COUNT,
    MAX_PENALTY,
    MAX_RING_TIMEOUT,
    MAX_RULES,
    MAX_SECONDS,
    MAX_SKILL_LEVEL,
    MAX_SKILLS,
    MAX_WEIGHT,
)
from ringmaster.engine.strategies import strategy_names


def _known_strategy(value: str) -> str:
    if value not in strategy_names():
        raise PydanticCustomError(
            "unknown_strategy",
            'Unknown strategy "{value}"; expected one of: {names}',
            {"value": value, "names": ", ".join(sorted(strategy_names()))},
        )
    return value


#: A queue's `strategy`: a name in the engine's registry.
StrategyName = Annotated[
    str,
    AfterValidator(_known_strategy),
    # The names come from the registry, not a Literal, so the schema gets its enum here.
    WithJsonSchema({"type": "string", "enum": sorted(strategy_names())}),
]


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "unknown_timezone",
            'Unknown time zone "{value}"; expected an IANA name such as "Europe/Paris" or "UTC"',
            {"value": value},
        ) from None
    return value


#: A tenant's `timezone`: an IANA name that zoneinfo knows ("Europe/Paris", "UTC").
TimeZoneName = Annotated[
    str, Field(min_length=1, max_length=64, examples=["UTC"]), AfterValidator(_known_timezone)
]


# --- the queue and enrolment options of call-centre parity (docs/options.md) ---------------

Seconds = Annotated[int, Field(ge=0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[int, Field(ge=1, le=MAX_SECONDS)]
Penalty = Annotated[int, Field(ge=0, le=MAX_PENALTY)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Weight = Annotated[int, Field(ge=0, le=MAX_WEIGHT)]
SkillName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
SkillLevel = Annotated[int, Field(ge=1, le=MAX_SKILL_LEVEL)]
#: `{"spanish": 8, "billing": 5}`: what an extension has, or what a call requires.
SkillMap = Annotated[dict[SkillName, SkillLevel], Field(max_length=MAX_SKILLS)]

#: The agent conditions of `join_empty` and `leave_when_empty`.
ConditionName = Literal["paused", "unavailable", "logged_out", "busy", "wrapup"]


def _no_repeats(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise PydanticCustomError("repeated_condition", "names a condition twice")
    return value


ConditionSet = Annotated[list[ConditionName], AfterValidator(_no_repeats)]


class _Option(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PenaltyRuleField(_Option):
    """After `after` seconds in the queue, ring agents up to `max_penalty`."""

    after: Seconds
    max_penalty: Penalty


class SkillRuleField(_Option):
    """After `after` seconds in the queue, lower every required skill level by `lower_by`."""

    after: Seconds
    lower_by: SkillLevel


def _rules_in_time_order(value: list[_R]) -> list[_R]:
    afters = [rule.after for rule in value]
    if afters != sorted(set(afters)):
        raise PydanticCustomError(
            "rules_out_of_order", "rules must be in increasing order of `after`, each once"
        )
    return value


_R = TypeVar("_R", PenaltyRuleField, SkillRuleField)

PenaltyRules = Annotated[
    list[PenaltyRuleField], Field(max_length=MAX_RULES), AfterValidator(_rules_in_time_order)
]
SkillRules = Annotated[
    list[SkillRuleField], Field(max_length=MAX_RULES), AfterValidator(_rules_in_time_order)
]

#: A queue's `timeout`: how long one agent rings.
RingTimeout = Annotated[int, Field(ge=1, le=MAX_RING_TIMEOUT)]
