"""The staffing search: the fewest agents that meet a service level, and how sure that is."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ringmaster.planning.simulate.results import ServiceLevelEstimate, SimulationResult
from ringmaster.planning.simulate.run import simulate
from ringmaster.planning.simulate.scenario import Scenario, SimulationError, Workload

#: Defaults of `staff_for`, which the command line declares as its own defaults.
CONFIDENCE = 0.95
MIN_REPLICATIONS = 3  # fewer leaves a Student t bound too wide (4.30 s/sqrt(3) at 95%)
MAX_REPLICATIONS = 10


@dataclass(frozen=True, slots=True)
class StaffingStep:
    """One candidate agent count tried by `staff_for`, and how it did.

    Attributes:
        agents: The count tried.
        service_level: Its SL: one run's, or the mean of its replications.
        meets: Whether that SL reaches the target.
        calls: Calls simulated in this step (every replication it ran).
        replications: How many runs `service_level` rests on (1 while the search
            brackets the answer; more at the boundary).
        low: The lower end of the SL's confidence interval (None for a single run).
        high: Its upper end (None for a single run).
        clear: Whether the whole interval lies on the side of the target given by `meets`.
    """

    agents: int
    service_level: float
    meets: bool
    calls: int
    replications: int = 1
    low: float | None = None
    high: float | None = None
    clear: bool = False


@dataclass(frozen=True, slots=True)
class StaffingAnswer:
    """The smallest agent count that met the target, how it was found, and how surely.

    Attributes:
        agents: That count, or None if even `max_agents` did not meet the target.
        steps: Every count simulated, in the order tried.
        result: The first replication (the user's seed) with `agents` agents (None when
            not found).
        at: The SL of `agents` agents over its replications (None when not found).
        below: The SL of one agent fewer (None when not found or when `agents` is 1:
            no agent answers no call).
        clear: Whether both intervals lie on their side of the target: `at`'s at or
            above it, `below`'s under it. False means the replications ran out first
            (`max_replications`): the answer is then the count whose mean met the target.
    """

    agents: int | None
    steps: tuple[StaffingStep, ...]
    result: SimulationResult | None
    at: ServiceLevelEstimate | None = None
    below: ServiceLevelEstimate | None = None
    clear: bool = False


def replication_seed(seed: int, replication: int) -> int:
    """The seed of a replication: the user's own for the first, derived for the others.

    A hash of (seed, replication) rather than draws from `random.Random(seed)`, whose
    stream `simulate` itself uses for the first replication's callers and agents.
    """
    if replication == 0:
        return seed
    digest = hashlib.sha256(f"ringmaster simulate {seed} replication {replication}".encode())
    return int.from_bytes(digest.digest()[:8], "big") >> 1


def staff_for(
    build: Callable[[int], Scenario],
    workload: Workload,
    *,
    queue: str,
    target: float,
    threshold_s: float,
    max_agents: int = 2000,
    confidence: float = CONFIDENCE,
    min_replications: int = MIN_REPLICATIONS,
    max_replications: int = MAX_REPLICATIONS,
    on_step: Callable[[StaffingStep], None] | None = None,
) -> StaffingAnswer:
    """The smallest number of agents for which `queue` answers `target` of calls in time.

    "In time" is Asterisk's SL (answered within `threshold_s` / answered). The search
    first brackets the answer on one run per count: it starts at the offered load
    (Erlangs, rounded up), steps up by growing strides (the first of about its square
    root, as in square-root staffing) until a count meets the target, then bisects.
    Then it replicates only the two counts at the boundary, N-1 and N, each with
    independent seeds derived from the workload's, until the Student t interval of the
    mean SL lies on one side of the target (at least `min_replications` runs), or
    `max_replications` runs were made. If N's mean falls short it moves up to N+1; if
    N-1's mean meets it moves down; so the answer is the count whose mean meets while
    one fewer's does not. Replication r of every count has the same seed (common random
    numbers: the same callers, with the same handle times and patience), so that the
    counts are compared on the same calls.

    Args:
        build: Agent count -> the scenario with that many agents in `queue`.
        workload: What to run, once per replication; its threshold is replaced by
            `threshold_s`, its seed is the first replication's.
        queue: The key of the queue to staff.
        target: The service level to reach, as a fraction (0.8 for 80%).
        threshold_s: The service-level threshold T, in seconds.
        max_agents: Give up above this many agents.
        confidence: The two-sided coverage of the intervals, in (0, 1).
        min_replications: Runs per boundary count before its interval is judged.
        max_replications: Runs per boundary count at most.
        on_step: Told about each candidate as soon as it has run.

    Raises:
        SimulationError: `confidence` or the replication limits are out of range.
    """
    if not 0 < confidence < 1:
        raise SimulationError(f"the confidence must be in (0, 1), not {confidence}")
    if max_replications < 1 or min_replications < 1:
        raise SimulationError("the replications must be at least 1")
    search = _Search(
        build,
        replace(workload, sl_threshold_s=threshold_s),
        queue=queue,
        target=target,
        confidence=confidence,
        replications=(min(min_replications, max_replications), max_replications),
        on_step=on_step,
    )
    rates = workload.rates.get(queue, ())
    load = max(rates, default=0.0) * workload.handle_mean_s / 3600.0
    high = search.bracket(load, max_agents)
    if high is None:
        return StaffingAnswer(None, tuple(search.steps), None)
    return search.settle(high, max_agents)


class _Search:
    """The state of one `staff_for`: each count's replications, and the steps so far."""

    def __init__(
        self,
        build: Callable[[int], Scenario],
        workload: Workload,
        *,
        queue: str,
        target: float,
        confidence: float,
        replications: tuple[int, int],
        on_step: Callable[[StaffingStep], None] | None,
    ) -> None:
        self.build, self.workload, self.queue, self.target = build, workload, queue, target
        self.confidence = confidence
        self.min_replications, self.max_replications = replications
        self.on_step = on_step
        self.levels: dict[int, list[float]] = {}  # agents -> each replication's SL so far
        self.first: dict[int, SimulationResult] = {}  # agents -> its first replication
        self.settled: dict[int, ServiceLevelEstimate] = {}
        self.steps: list[StaffingStep] = []

    def replicate(self, agents: int) -> int:
        """Run the next replication of `agents`; returns its calls."""
        runs = self.levels.setdefault(agents, [])
        seed = replication_seed(self.workload.seed, len(runs))
        result = simulate(self.build(agents), replace(self.workload, seed=seed))
        self.first.setdefault(agents, result)
        runs.append(result.queue(self.queue).service_level)
        return result.calls

    def report(self, step: StaffingStep) -> None:
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def meets_once(self, agents: int) -> bool:
        """Whether one run (the first replication) of `agents` meets the target."""
        calls = 0 if agents in self.levels else self.replicate(agents)
        level = self.levels[agents][0]
        self.report(StaffingStep(agents, level, level >= self.target, calls))
        return level >= self.target

    def estimate(self, agents: int) -> ServiceLevelEstimate:
        """Replicate `agents` until its interval is clear of the target, or the limit."""
        if agents in self.settled:
            return self.settled[agents]
        calls = 0 if agents in self.levels else self.replicate(agents)
        while True:
            runs = self.levels[agents]
            found = ServiceLevelEstimate.of(agents, runs, self.confidence)
            meets, clear = found.verdict(self.target)
            if len(runs) >= self.max_replications or (clear and len(runs) >= self.min_replications):
                break
            calls += self.replicate(agents)
        self.settled[agents] = found
        low, high = (found.low, found.high) if math.isfinite(found.low) else (None, None)
        self.report(StaffingStep(agents, found.mean, meets, calls, len(runs), low, high, clear))
        return found

    def bracket(self, load: float, max_agents: int) -> int | None:
        """On one run per count: the fewest agents that met (None: not even `max_agents`)."""
        low = 0  # the largest count known to fail (0 agents answer nothing)
        stride = max(1, math.ceil(math.sqrt(load)))
        candidate = min(max(1, math.ceil(load)), max_agents)
        while not self.meets_once(candidate):
            low = candidate
            if candidate >= max_agents:
                return None
            candidate = min(candidate + stride, max_agents)
            stride *= 2
        high = candidate
        while high - low > 1:
            middle = (low + high) // 2
            if self.meets_once(middle):
                high = middle
            else:
                low = middle
        return high

    def settle(self, answer: int, max_agents: int) -> StaffingAnswer:
        """From the bracket's answer, walk to the count whose mean meets and one fewer's not.

        Each count's estimate is made once, so the walk cannot go back and forth.
        """
        while True:
            at = self.estimate(answer)
            meets, at_clear = at.verdict(self.target)
            if not meets:
                if answer >= max_agents:
                    return StaffingAnswer(None, tuple(self.steps), None)
                answer += 1
                continue
            if answer == 1:
                return StaffingAnswer(1, tuple(self.steps), self.first[1], at, None, at_clear)
            below = self.estimate(answer - 1)
            below_meets, below_clear = below.verdict(self.target)
            if below_meets:
                answer -= 1
                continue
            steps = tuple(self.steps)
            return StaffingAnswer(
                answer, steps, self.first[answer], at, below, at_clear and below_clear
            )
