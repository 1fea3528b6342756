"""The staffing search: the fewest agents that meet a service level."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ringmaster.planning.simulate.results import SimulationResult
from ringmaster.planning.simulate.run import simulate
from ringmaster.planning.simulate.scenario import Scenario, Workload


@dataclass(frozen=True, slots=True)
class StaffingStep:
    """One candidate agent count tried by `staff_for`, and how it did."""

    agents: int
    service_level: float
    meets: bool
    calls: int  # simulated for this candidate


@dataclass(frozen=True, slots=True)
class StaffingAnswer:
    """The smallest agent count that met the target, and how it was found.

    Attributes:
        agents: That count, or None if even `max_agents` did not meet the target.
        steps: Every count simulated, in the order tried.
        result: The run with `agents` agents (None when not found).
    """

    agents: int | None
    steps: tuple[StaffingStep, ...]
    result: SimulationResult | None


def staff_for(
    build: Callable[[int], Scenario],
    workload: Workload,
    *,
    queue: str,
    target: float,
    threshold_s: float,
    max_agents: int = 2000,
    on_step: Callable[[StaffingStep], None] | None = None,
) -> StaffingAnswer:
    """The smallest number of agents for which `queue` answers `target` of calls in time.

    "In time" is Asterisk's SL (answered within `threshold_s` / answered). Every
    candidate runs the same workload with the same seed (common random numbers: the
    same callers, with the same handle times and patience), so that the comparison
    between two counts is not drowned in noise. The search starts at the offered load
    (Erlangs, rounded up), steps up by growing strides (the first of about its square
    root, as in square-root staffing) until a count meets the target, then bisects.

    Args:
        build: Agent count -> the scenario with that many agents in `queue`.
        workload: What to run; its threshold is replaced by `threshold_s`.
        queue: The key of the queue to staff.
        target: The service level to reach, as a fraction (0.8 for 80%).
        threshold_s: The service-level threshold T, in seconds.
        max_agents: Give up above this many agents.
        on_step: Told about each candidate as soon as it has run.
    """
    workload = _with_threshold(workload, threshold_s)
    rates = workload.rates.get(queue, ())
    load = max(rates, default=0.0) * workload.handle_mean_s / 3600.0
    tried: dict[int, SimulationResult] = {}
    steps: list[StaffingStep] = []

    def meets(agents: int) -> bool:
        result = simulate(build(agents), workload)
        tried[agents] = result
        level = result.queue(queue).service_level
        ok = level >= target
        steps.append(StaffingStep(agents, level, ok, result.calls))
        if on_step is not None:
            on_step(steps[-1])
        return ok

    low = 0  # the largest count known to fail (0 agents answer nothing)
    start = min(max(1, math.ceil(load)), max_agents)
    stride = max(1, math.ceil(math.sqrt(load)))
    candidate = start
    while not meets(candidate):
        low = candidate
        if candidate >= max_agents:
            return StaffingAnswer(None, tuple(steps), None)
        candidate = min(candidate + stride, max_agents)
        stride *= 2
    high = candidate
    while high - low > 1:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return StaffingAnswer(high, tuple(steps), tried[high])


def _with_threshold(workload: Workload, threshold_s: float) -> Workload:
    return replace(workload, sl_threshold_s=threshold_s)
