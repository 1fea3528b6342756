"""The small pure rules of `engine/rules.py`, one by one."""

from __future__ import annotations

from collections import Counter

import pytest

from ringmaster.engine.model import (
    AgentCondition,
    AgentStatus,
    PenaltyRule,
    QueueConfig,
    QueueId,
    SkillRule,
    TenantId,
)
from ringmaster.engine.rules import (
    condition_of,
    estimated_wait,
    has_skills,
    is_empty,
    next_widening,
    penalty_limit,
    skills_lowered_by,
    smoothed_interval,
)


def config(
    penalty_rules: tuple[PenaltyRule, ...] = (), skill_rules: tuple[SkillRule, ...] = ()
) -> QueueConfig:
    return QueueConfig(
        QueueId(1),
        TenantId(1),
        "Sales",
        "600",
        "ringall",
        15,
        penalty_rules=penalty_rules,
        skill_rules=skill_rules,
    )


RULES = config(
    penalty_rules=(PenaltyRule(0, 0), PenaltyRule(30, 2), PenaltyRule(60, 5)),
    skill_rules=(SkillRule(20, 1), SkillRule(45, 3)),
)


@pytest.mark.parametrize(
    ("waited", "limit"), [(0, 0), (29.999, 0), (30, 2), (59, 2), (60, 5), (1e6, 5)]
)
def test_the_penalty_limit_is_that_of_the_last_rule_that_applies(waited: float, limit: int) -> None:
    assert penalty_limit(RULES, 1000.0, 1000.0 + waited) == limit


def test_before_the_first_penalty_rule_any_penalty_goes() -> None:
    assert penalty_limit(config(penalty_rules=(PenaltyRule(30, 1),)), 1000.0, 1029.0) is None
    assert penalty_limit(config(), 1000.0, 5000.0) is None


@pytest.mark.parametrize(("waited", "lowered"), [(0, 0), (19.9, 0), (20, 1), (45, 3), (99, 3)])
def test_skill_levels_are_lowered_by_the_last_rule_that_applies(
    waited: float, lowered: int
) -> None:
    assert skills_lowered_by(RULES, 1000.0, 1000.0 + waited) == lowered


def test_a_rule_applies_at_the_very_time_the_engine_wakes_for_it() -> None:
    # 1000.1 + 30 - 1000.1 is a hair under 30 in floating point: the rules
    # compare times, so the rule still applies when the engine wakes at 1030.1.
    entered_at = 1000.1
    wake = next_widening(RULES, entered_at, entered_at + 25)
    assert wake == entered_at + 30
    assert wake - entered_at < 30  # the trap
    assert penalty_limit(RULES, entered_at, wake) == 2


def test_the_next_widening_is_the_next_rule_of_either_kind_still_to_come() -> None:
    assert next_widening(RULES, 1000.0, 1000.0) == 1020.0
    assert next_widening(RULES, 1000.0, 1020.0) == 1030.0
    assert next_widening(RULES, 1000.0, 1045.0) == 1060.0
    assert next_widening(RULES, 1000.0, 1060.0) is None
    assert next_widening(config(), 1000.0, 1000.0) is None


@pytest.mark.parametrize(
    ("agent", "required", "lowered_by", "ok"),
    [
        ({"spanish": 8, "billing": 5}, {"spanish": 5}, 0, True),
        ({"spanish": 5}, {"spanish": 5}, 0, True),  # the level itself suffices
        ({"spanish": 4}, {"spanish": 5}, 0, False),  # too low
        ({"billing": 9}, {"spanish": 1}, 0, False),  # missing
        ({"spanish": 9}, {"spanish": 5, "billing": 1}, 0, False),  # every one is needed
        ({"spanish": 4}, {"spanish": 5}, 1, True),  # relaxed
        ({}, {"spanish": 3}, 3, True),  # lowered to 0: dropped
        ({}, {}, 0, True),
    ],
)
def test_an_agent_needs_every_required_skill_at_its_level(
    agent: dict[str, int], required: dict[str, int], lowered_by: int, ok: bool
) -> None:
    assert has_skills(agent, required, lowered_by) is ok


@pytest.mark.parametrize(
    ("status", "reason", "condition"),
    [
        (AgentStatus.AVAILABLE, "", None),
        (AgentStatus.RINGING, "", None),  # being offered a call is no reason to leave
        (AgentStatus.BUSY, "", AgentCondition.BUSY),
        (AgentStatus.WRAPUP, "", AgentCondition.WRAPUP),
        (AgentStatus.PAUSED, "no_answer", AgentCondition.PAUSED),
        (AgentStatus.LOGGED_OUT, "", AgentCondition.LOGGED_OUT),
        (AgentStatus.LOGGED_OUT, "device_unavailable", AgentCondition.UNAVAILABLE),
    ],
)
def test_each_published_state_maps_to_its_condition(
    status: AgentStatus, reason: str, condition: AgentCondition | None
) -> None:
    assert condition_of(status, reason) is condition


def test_a_queue_is_empty_when_every_agent_is_in_a_listed_condition() -> None:
    counts: Counter[AgentCondition | None] = Counter(
        {AgentCondition.PAUSED: 2, AgentCondition.BUSY: 1, None: 0}
    )
    assert is_empty(counts, {AgentCondition.PAUSED, AgentCondition.BUSY})
    assert not is_empty(counts, {AgentCondition.PAUSED})
    counts[None] = 1  # one agent could take a call
    assert not is_empty(counts, set(AgentCondition))
    assert is_empty(Counter(), {AgentCondition.PAUSED})  # no agents at all


def test_the_answer_interval_gives_the_newest_gap_a_quarter() -> None:
    assert smoothed_interval(None, 40) == 40
    assert smoothed_interval(40, 20) == 35
    assert smoothed_interval(35, 35) == 35


@pytest.mark.parametrize(
    ("position", "free", "interval", "wait"),
    [
        (1, 0, None, None),  # fewer than two answers: unknown
        (1, 0, 40.0, 40),
        (3, 0, 40.0, 120),
        (3, 1, 40.0, 80),
        (1, 2, 40.0, 0),  # never below 0
        (2, 0, 35.75, 72),  # rounded to the second
    ],
)
def test_the_estimated_wait_is_the_callers_ahead_of_the_free_agents_times_the_interval(
    position: int, free: int, interval: float | None, wait: int | None
) -> None:
    assert estimated_wait(position, free, interval) == wait
