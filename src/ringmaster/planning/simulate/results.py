"""What a simulation gives: each queue's figures."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from ringmaster.planning.simulate.scenario import QueuePlan


@dataclass(slots=True)
class Tally:
    """A queue's running counts; `QueueResult.of` turns them into figures."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    rejected: int = 0
    answered_within: int = 0
    abandoned_within: int = 0
    waited: int = 0  # answered later than the ring delay: no agent took it at once
    talk_s: float = 0.0
    busy_s: float = 0.0  # talk + wrap-up of answered calls, clipped at the end
    longest_wait_s: float = 0.0
    waits: list[float] = field(default_factory=list)  # answered calls, in answer order


def _percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted data (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class QueueResult:
    """One queue's figures for the calls that arrived after the warm-up.

    The service levels follow Asterisk's queues.conf (configs/samples/queues.conf.sample,
    `servicelevel`): "SL = (total calls answered within threshold / total calls
    answered) * 100" and "SL2 = ((calls answered within threshold + calls abandoned
    within threshold) / (answered calls + abandoned calls)) * 100". SL2 thus counts a
    caller who gave up quickly as served in time. Both are fractions here, not percents.
    """

    queue: str
    name: str
    agents: int
    offered: int
    answered: int
    abandoned: int
    rejected: int
    waiting_at_end: int
    service_level: float
    service_level_2: float
    sl_threshold_s: float
    prob_wait: float  # share of answered calls no agent took at once (Erlang C's P(wait))
    asa_s: float
    aht_s: float
    abandon_rate: float
    occupancy: float
    longest_wait_s: float
    wait_p50_s: float
    wait_p90_s: float
    wait_p99_s: float
    waits: tuple[float, ...] = field(repr=False, compare=False)

    @classmethod
    def of(cls, plan: QueuePlan, tally: Tally, threshold: float, span_s: float) -> QueueResult:
        """The figures of one queue's tally over a run of `span_s` seconds."""
        answered, abandoned = tally.answered, tally.abandoned
        ordered = sorted(tally.waits)
        ended = answered + abandoned
        capacity = plan.agents * span_s
        return cls(
            queue=plan.key,
            name=plan.name,
            agents=plan.agents,
            offered=tally.offered,
            answered=answered,
            abandoned=abandoned,
            rejected=tally.rejected,
            waiting_at_end=tally.offered - answered - abandoned - tally.rejected,
            service_level=tally.answered_within / answered if answered else 0.0,
            service_level_2=(tally.answered_within + tally.abandoned_within) / ended
            if ended
            else 0.0,
            sl_threshold_s=threshold,
            prob_wait=tally.waited / answered if answered else 0.0,
            asa_s=sum(tally.waits) / answered if answered else 0.0,
            aht_s=tally.talk_s / answered if answered else 0.0,
            abandon_rate=abandoned / ended if ended else 0.0,
            occupancy=min(1.0, tally.busy_s / capacity) if capacity > 0 else 0.0,
            longest_wait_s=tally.longest_wait_s,
            wait_p50_s=_percentile(ordered, 50),
            wait_p90_s=_percentile(ordered, 90),
            wait_p99_s=_percentile(ordered, 99),
            waits=tuple(tally.waits),
        )

    def to_json(self) -> dict[str, object]:
        """The figures as JSON-ready data (without the individual waits)."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "waits"}


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a run produced: per-queue figures and the run's own size."""

    queues: tuple[QueueResult, ...]
    calls: int  # every call simulated, warm-up included
    simulated_s: float
    seed: int

    def queue(self, key: str) -> QueueResult:
        """The result of the queue whose key is `key`."""
        return next(q for q in self.queues if q.queue == key)


# --- replications -------------------------------------------------------------------------


def _t_coverage(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with `df` degrees of freedom (A&S 26.7.3 and 26.7.4).

    Integer degrees of freedom have this finite sum in theta = atan(t / sqrt(df)), exact
    up to rounding, which spares the project a statistics dependency.
    """
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):  # cos + 2/3 cos^3 + 2*4/(3*5) cos^5 ...
            total += term
            term *= cos2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + sin * total)
    term, total = 1.0, 0.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 cos^2 + 1*3/(2*4) cos^4 ...
        total += term
        term *= cos2 * (2 * k - 1) / (2 * k)
    return sin * total


def student_t_quantile(confidence: float, df: int) -> float:
    """The t such that P(|T| < t) = `confidence`: the two-sided Student t bound.

    Args:
        confidence: The two-sided coverage, in (0, 1) (0.95 gives 2.262 for 9 df).
        df: Degrees of freedom, at least 1.
    """
    if not 0 < confidence < 1 or df < 1:
        raise ValueError(f"no t bound for confidence {confidence} with {df} df")
    low, high = 0.0, 1.0
    while _t_coverage(high, df) < confidence:
        high *= 2
    for _ in range(100):  # bisection: the coverage rises with t
        middle = (low + high) / 2
        if _t_coverage(middle, df) < confidence:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True, slots=True)
class ServiceLevelEstimate:
    """The service level of one staffing, from independent replications.

    Attributes:
        agents: The agent count replicated.
        levels: Each replication's SL, in the order run.
        confidence: The two-sided coverage of the interval (0.95).
        mean: The mean of `levels`.
        low: The interval's lower end: mean - t * s / sqrt(n), Student t with n - 1 df
            (minus infinity with a single replication: one run says nothing of its spread).
        high: The interval's upper end.
    """

    agents: int
    levels: tuple[float, ...]
    confidence: float
    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, agents: int, levels: Sequence[float], confidence: float) -> ServiceLevelEstimate:
        """The mean and Student t interval of the replications' service levels."""
        if not levels:
            raise ValueError("an estimate needs at least one replication")
        mean = statistics.fmean(levels)
        if len(levels) == 1:
            half = math.inf
        else:
            spread = statistics.stdev(levels) / math.sqrt(len(levels))
            half = student_t_quantile(confidence, len(levels) - 1) * spread
        return cls(agents, tuple(levels), confidence, mean, mean - half, mean + half)

    @property
    def replications(self) -> int:
        """How many independent runs the estimate rests on."""
        return len(self.levels)

    def verdict(self, target: float) -> tuple[bool, bool]:
        """(meets, clear): the mean reaches `target`; the whole interval is on that side."""
        if self.mean >= target:
            return True, self.low >= target
        return False, self.high < target

    def to_json(self) -> dict[str, object]:
        """JSON-ready data (infinite ends, from a single replication, as null)."""
        return {
            "agents": self.agents,
            "service_level": self.mean,
            "low": self.low if math.isfinite(self.low) else None,
            "high": self.high if math.isfinite(self.high) else None,
            "confidence": self.confidence,
            "replications": self.replications,
            "levels": list(self.levels),
        }
