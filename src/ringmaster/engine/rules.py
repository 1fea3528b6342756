"""Who may take a call, and what a caller is told: small pure rules of a queue.

Kept apart from the engine's bookkeeping so that each rule reads (and is
tested) on its own: penalty and skill rules that widen as a call waits, the
conditions of `join_empty` and `leave_when_empty`, and the estimated wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ringmaster.engine.model import AgentCondition, AgentStatus, QueueConfig, Skills

#: An overflow chain (queue A overflows to B, B to C...) longer than this is
#: cut with a hangup: a loop of overflow targets must not spin for ever.
MAX_OVERFLOW_HOPS = 5

#: How much the newest gap between two answers counts in the smoothed answer
#: interval (Asterisk's hold-time average gives the newest a quarter, too).
ANSWER_INTERVAL_SMOOTHING = 0.25


# The rules below compare times (`entered_at + after` against `now`), never the
# time waited against `after`: `next_widening` wakes the engine at exactly
# `entered_at + after`, and `(entered_at + after) - entered_at` can come out a
# hair below `after` in floating point, which would miss the rule it woke for.


def penalty_limit(config: QueueConfig, entered_at: float, now: float) -> int | None:
    """The highest penalty a call that joined at `entered_at` may ring at `now`; None: any."""
    limit = None
    for rule in config.penalty_rules:
        if entered_at + rule.after > now:
            break
        limit = rule.max_penalty
    return limit


def skills_lowered_by(config: QueueConfig, entered_at: float, now: float) -> int:
    """How far the required skill levels of a call that joined at `entered_at` are lowered."""
    lowered = 0
    for rule in config.skill_rules:
        if entered_at + rule.after > now:
            break
        lowered = rule.lower_by
    return lowered


def has_skills(agent: Skills, required: Skills, lowered_by: int) -> bool:
    """True when the agent has every required skill at its (lowered) level."""
    return all(agent.get(skill, 0) >= level - lowered_by for skill, level in required.items())


def next_widening(config: QueueConfig, entered_at: float, now: float) -> float | None:
    """When the next penalty or skill rule applies to a call that joined at `entered_at`."""
    afters = [rule.after for rule in config.penalty_rules]
    afters += [rule.after for rule in config.skill_rules]
    times = [entered_at + after for after in afters if entered_at + after > now]
    return min(times) if times else None


def condition_of(status: AgentStatus, reason: str) -> AgentCondition | None:
    """Why an agent in this published state cannot take a call; None if it can."""
    if status is AgentStatus.LOGGED_OUT:
        # A phone that went away shows as logged out, with this reason.
        if reason == "device_unavailable":
            return AgentCondition.UNAVAILABLE
        return AgentCondition.LOGGED_OUT
    return _CONDITIONS[status]


_CONDITIONS: dict[AgentStatus, AgentCondition | None] = {
    AgentStatus.AVAILABLE: None,
    # Ringing for a call of ours is being offered one: not a reason to leave.
    AgentStatus.RINGING: None,
    AgentStatus.BUSY: AgentCondition.BUSY,
    AgentStatus.WRAPUP: AgentCondition.WRAPUP,
    AgentStatus.PAUSED: AgentCondition.PAUSED,
}


def is_empty(
    counts: Mapping[AgentCondition | None, int], conditions: Iterable[AgentCondition]
) -> bool:
    """True when every agent is in one of `conditions` (Asterisk's "empty" queue).

    `counts` holds the queue's existing agents by condition; enrolments of
    deleted extensions never take a call, so they do not count at all.
    """
    excluded = set(conditions)
    return all(n == 0 for condition, n in counts.items() if condition not in excluded)


def smoothed_interval(previous: float | None, gap: float) -> float:
    """The answer interval after one more answer `gap` seconds after the last."""
    if previous is None:
        return gap
    return previous + ANSWER_INTERVAL_SMOOTHING * (gap - previous)


def estimated_wait(position: int, free_agents: int, answer_interval: float | None) -> int | None:
    """Seconds a caller at `position` may expect to wait, or None if unknown.

    The callers ahead who cannot be rung at once each wait for the next
    answer, and answers have recently come every `answer_interval` seconds.
    """
    if answer_interval is None:
        return None
    return round(max(0, position - free_agents) * answer_interval)
