"""Ring strategies: which eligible agent a call rings next.

Each strategy is a small class registered by name. The engine gives it the
queue's agents that may be rung now (eligible by the contract's rules and not
yet tried in this round) and the queue's memory; the strategy only chooses.

- `ringall` rings every candidate at once; the first answer wins.
- `leastrecent` rings the agent whose last answered call in this queue ended
  longest ago; agents who never answered one come first.
- `roundrobin` rings one agent at a time in enrolment order, starting after
  the agent it rang last, across calls (Asterisk's `rrmemory`).
- `linear` always starts from the top of the enrolment order (Asterisk's
  `linear`, FreeSWITCH's `top-down`).
- `fewestcalls` rings the agent who completed the fewest calls in this queue
  (Asterisk's `fewestcalls`).
- `leasttalktime` rings the agent with the least total talk time in this queue
  (FreeSWITCH's `agent-with-least-talk-time`).
- `random` rings an eligible agent chosen uniformly (Asterisk's `random`,
  FreeSWITCH's `random`), from a generator the service owns and seeds, so the
  engine stays deterministic under test.
- `rrordered` is round robin in enrolment order that resumes after the agent
  who answered last (Asterisk's `rrordered`, FreeSWITCH's `round-robin`).
- `wrandom` draws at random, weighted by penalty: an agent of penalty p is
  drawn with weight 1 / (1 + p) (Asterisk's `wrandom`).
- `longestidle` rings the agent whose last call, in any queue, ended longest
  ago (FreeSWITCH's `longest-idle-agent`).
- `ringprogressive` rings one agent, then adds the next in enrolment order
  every `ring_progressive_delay` seconds while the earlier ones keep ringing
  (FreeSWITCH's `ring-progressively`).

Penalties come first: the engine hands a strategy only the candidates of the
lowest penalty present (except to `wrandom`, for which penalty is the weight).
Every ranking breaks ties by enrolment order, so a choice never depends on
the order of a set.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ringmaster.engine.model import EnrolmentOptions, ExtensionId, QueueId
from ringmaster.engine.records import AgentQueueStats


class RandomSource(Protocol):
    """Where `random` draws from: `random.Random` fits; the engine never imports it."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...


@dataclass(frozen=True, slots=True)
class QueueView:
    """What a strategy may look at: read-only, and cheap to build."""

    #: Enrolment order, the "fixed order" of round-robin strategies.
    enrolled: Sequence[ExtensionId]
    #: Each enrolled agent's index in `enrolled`.
    position: Mapping[ExtensionId, int]
    last_rung: ExtensionId | None
    stats: Mapping[ExtensionId, AgentQueueStats]
    rng: RandomSource
    last_answered: ExtensionId | None
    options: Mapping[ExtensionId, EnrolmentOptions]
    #: When the agent's last call ended, in any queue (None: never).
    last_call_ended: Callable[[ExtensionId], float | None]

    def stat(self, extension_id: ExtensionId) -> AgentQueueStats:
        """The agent's record in this queue (empty if it has none yet)."""
        stats = self.stats.get(extension_id)
        return stats if stats is not None else _NO_STATS


_NO_STATS = AgentQueueStats(QueueId(0), ExtensionId(0))


class Strategy(abc.ABC):
    """A way of choosing which agent a call rings."""

    name: ClassVar[str]
    #: True when every candidate is rung at once (a call may have many rings).
    rings_all: ClassVar[bool] = False
    #: True when the call adds one more ring every `ring_progressive_delay`.
    rings_progressively: ClassVar[bool] = False
    #: False when the strategy weighs penalties itself rather than by tiers.
    tiers_by_penalty: ClassVar[bool] = True

    @abc.abstractmethod
    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """Pick the agent to ring among `candidates` (never empty, enrolment order)."""


class RankedStrategy(Strategy):
    """A strategy that ranks each agent by a key fixed while the agent is free.

    The key changes only when one of the agent's calls ends, and an agent on a
    call is not free, so the engine can keep the free agents in this order
    (`engine.free_agents`) instead of ranking them all for every call.
    """

    @abc.abstractmethod
    def rank(self, extension_id: ExtensionId, queue: QueueView) -> float:
        """The agent's key: the lowest is rung first (ties by enrolment order)."""

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """The candidate of the lowest `rank`; min() keeps the first of equals."""
        return min(candidates, key=lambda e: self.rank(e, queue))


class RingAll(Strategy):
    """Ring every candidate at once (Asterisk and FreeSWITCH `ringall`)."""

    name = "ringall"
    rings_all = True

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """Ring everyone: the engine rings all candidates; this is the first."""
        return candidates[0]


class LeastRecent(RankedStrategy):
    """The agent whose last call in this queue ended longest ago (Asterisk `leastrecent`)."""

    name = "leastrecent"

    def rank(self, extension_id: ExtensionId, queue: QueueView) -> float:
        """When the agent's last call here ended; never answered one here: first in line."""
        at = queue.stat(extension_id).last_call_ended_at
        return float("-inf") if at is None else at


class RoundRobin(Strategy):
    """Enrolment order, resuming after the agent rung last (Asterisk `rrmemory`)."""

    name = "roundrobin"

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """The first candidate after the agent rung last, in enrolment order."""
        return _first_after(queue.last_rung, candidates, queue)


def _first_after(
    last: ExtensionId | None, candidates: Sequence[ExtensionId], queue: QueueView
) -> ExtensionId:
    """The first candidate strictly after `last` in enrolment order, wrapping round."""
    start = queue.position.get(last, -1) if last is not None else -1
    size = len(queue.enrolled)
    return min(candidates, key=lambda e: (queue.position[e] - start - 1) % size)


class RoundRobinOrdered(Strategy):
    """Enrolment order, resuming after the agent who answered last (Asterisk `rrordered`)."""

    name = "rrordered"

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """The first candidate after the agent who answered last, in enrolment order."""
        # Within one call's round the agents already rung are not candidates,
        # so the ring moves on down the order from there.
        return _first_after(queue.last_answered, candidates, queue)


class Linear(RankedStrategy):
    """Enrolment order from the top, every time (Asterisk `linear`, FreeSWITCH `top-down`)."""

    name = "linear"

    def rank(self, extension_id: ExtensionId, queue: QueueView) -> float:
        """All equal: enrolment order decides."""
        return 0.0


class FewestCalls(RankedStrategy):
    """The agent with the fewest completed calls in this queue (Asterisk `fewestcalls`)."""

    name = "fewestcalls"

    def rank(self, extension_id: ExtensionId, queue: QueueView) -> float:
        """The agent's completed calls here."""
        return queue.stat(extension_id).calls_completed


class LeastTalkTime(RankedStrategy):
    """The least total talk time in this queue (FreeSWITCH `agent-with-least-talk-time`)."""

    name = "leasttalktime"

    def rank(self, extension_id: ExtensionId, queue: QueueView) -> float:
        """The agent's total talk time here."""
        return queue.stat(extension_id).talk_time_s


class Random(Strategy):
    """Uniformly among the candidates (Asterisk and FreeSWITCH `random`)."""

    name = "random"

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """A candidate drawn uniformly from the service's seeded generator."""
        return candidates[int(queue.rng.random() * len(candidates))]


class WeightedRandom(Strategy):
    """At random, a lower penalty more likely (Asterisk `wrandom`)."""

    name = "wrandom"
    tiers_by_penalty = False

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """A candidate drawn with weight 1 / (1 + penalty)."""
        weights = [1.0 / (1 + _penalty(queue, e)) for e in candidates]
        point = queue.rng.random() * sum(weights)
        for extension_id, weight in zip(candidates, weights, strict=True):
            point -= weight
            if point < 0:
                return extension_id
        return candidates[-1]  # float rounding left a sliver at the top


def _penalty(queue: QueueView, extension_id: ExtensionId) -> int:
    options = queue.options.get(extension_id)
    return options.penalty if options is not None else 0


class LongestIdle(RankedStrategy):
    """The agent whose last call in any queue ended longest ago (FreeSWITCH's default)."""

    name = "longestidle"

    def rank(self, extension_id: ExtensionId, queue: QueueView) -> float:
        """When the agent's last call ended, anywhere; never had one: first in line."""
        at = queue.last_call_ended(extension_id)
        return float("-inf") if at is None else at


class RingProgressive(RankedStrategy):
    """One more agent every `ring_progressive_delay`, the earlier keep ringing.

    FreeSWITCH's `ring-progressively`: first answer wins, like `ringall`.
    """

    name = "ringprogressive"
    rings_progressively = True

    def rank(self, extension_id: ExtensionId, queue: QueueView) -> float:
        """All equal: the next in enrolment order is added."""
        return 0.0


_ALL: tuple[Strategy, ...] = (
    RingAll(),
    LeastRecent(),
    RoundRobin(),
    Linear(),
    FewestCalls(),
    LeastTalkTime(),
    Random(),
    RoundRobinOrdered(),
    WeightedRandom(),
    LongestIdle(),
    RingProgressive(),
)

#: The registry: a queue's `strategy` names one of these.
STRATEGIES: dict[str, Strategy] = {s.name: s for s in _ALL}


def strategy_names() -> frozenset[str]:
    """The names a queue's `strategy` may take."""
    return frozenset(STRATEGIES)
