"""Ring strategies: which eligible agent a call rings next.

Each strategy is a small class registered by name. The engine gives it the
queue's agents that may be rung now (eligible by the contract's rules and not
yet tried in this round) and the queue's memory; the strategy only chooses.

- `ringall` rings every candidate at once; the first answer wins.
- `leastrecent` rings the agent whose last answered call in this queue ended
  longest ago; agents who never answered one come first.
- `roundrobin` rings one agent at a time in enrolment order, starting after
  the agent it rang last, across calls (Asterisk's `rrmemory`).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from ringmaster.engine.model import ExtensionId
from ringmaster.engine.records import AgentQueueStats


@dataclass(frozen=True, slots=True)
class QueueView:
    """What a strategy may look at: read-only, and cheap to build."""

    #: Enrolment order, the "fixed order" of round-robin strategies.
    enrolled: Sequence[ExtensionId]
    last_rung: ExtensionId | None
    stats: Mapping[ExtensionId, AgentQueueStats]


class Strategy(abc.ABC):
    """A way of choosing which agent a call rings."""

    name: ClassVar[str]
    #: True when every candidate is rung at once (a call may have many rings).
    rings_all: ClassVar[bool] = False

    @abc.abstractmethod
    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """Pick the agent to ring among `candidates` (never empty, enrolment order)."""


class RingAll(Strategy):
    """Ring every candidate at once (Asterisk and FreeSWITCH `ringall`)."""

    name = "ringall"
    rings_all = True

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """Ring everyone: the engine rings all candidates; this is the first."""
        return candidates[0]


class LeastRecent(Strategy):
    """The agent whose last call in this queue ended longest ago (Asterisk `leastrecent`)."""

    name = "leastrecent"

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """The candidate whose last call here ended longest ago."""

        def last_ended(extension_id: ExtensionId) -> float:
            stats = queue.stats.get(extension_id)
            if stats is None or stats.last_call_ended_at is None:
                return float("-inf")  # never answered one here: first in line
            return stats.last_call_ended_at

        # min() keeps the first of equals, so ties go by enrolment order.
        return min(candidates, key=last_ended)


class RoundRobin(Strategy):
    """Enrolment order, resuming after the agent rung last (Asterisk `rrmemory`)."""

    name = "roundrobin"

    def choose(self, candidates: Sequence[ExtensionId], queue: QueueView) -> ExtensionId:
        """The first candidate after the agent rung last, in enrolment order."""
        if queue.last_rung is None or queue.last_rung not in queue.enrolled:
            return candidates[0]
        order = {extension_id: i for i, extension_id in enumerate(queue.enrolled)}
        start = order[queue.last_rung]
        size = len(queue.enrolled)
        # The first candidate strictly after the last one rung, wrapping round.
        return min(candidates, key=lambda e: (order[e] - start - 1) % size)


_ALL: tuple[Strategy, ...] = (RingAll(), LeastRecent(), RoundRobin())

#: The registry: a queue's `strategy` names one of these.
STRATEGIES: dict[str, Strategy] = {s.name: s for s in _ALL}


def strategy_names() -> frozenset[str]:
    """The names a queue's `strategy` may take."""
    return frozenset(STRATEGIES)
