"""What a simulation gives: each queue's figures."""

from __future__ import annotations

import math
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
