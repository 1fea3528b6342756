"""A queue's free agents in the order its strategy ranks them.

For the strategies whose ranking of an agent cannot change while the agent is
free (`leastrecent`, `longestidle`, `fewestcalls`, `leasttalktime`, `linear`,
`ringprogressive`: their keys change only when a call ends, and an agent on a
call is not free), the best agent for a call is the first of this order that
the call accepts. That makes choosing an agent cost about the number of agents
skipped, not the number of free agents: the difference between 56 µs and
13.5 ms per event for a queue of 100,000 agents.

A heap with lazy deletion: an agent leaving the free set is only forgotten in
`_entry_of`; its stale heap entries are dropped when they reach the top, and
the heap is rebuilt when stale entries outnumber live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any

from ringmaster.engine.model import ExtensionId

#: (rank, stamp, extension): the stamp is unique, so comparisons never reach
#: the extension and a re-ranked agent's old entry is told from its new one.
_Entry = tuple[tuple[Any, ...], int, ExtensionId]


class RankedFreeAgents:
    """Free agents ordered by rank, each rank fixed from `add` to `discard`."""

    __slots__ = ("_entry_of", "_heap", "_stamps")

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._entry_of: dict[ExtensionId, _Entry] = {}
        self._stamps = 0

    def __len__(self) -> int:
        return len(self._entry_of)

    def __contains__(self, extension_id: object) -> bool:
        return extension_id in self._entry_of

    def add(self, extension_id: ExtensionId, rank: tuple[Any, ...]) -> None:
        """Add an agent (or re-rank one already in) with `rank`, lowest first."""
        old = self._entry_of.get(extension_id)
        if old is not None and old[0] == rank:
            return
        self._stamps += 1
        entry = (rank, self._stamps, extension_id)
        self._entry_of[extension_id] = entry
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 2 * len(self._entry_of) + 64:
            self._compact()

    def discard(self, extension_id: ExtensionId) -> None:
        """Forget an agent (a no-op if it is not in)."""
        self._entry_of.pop(extension_id, None)

    def first(self, accept: Callable[[ExtensionId], bool]) -> ExtensionId | None:
        """The best-ranked agent that `accept`s, or None; the order is left as it was."""
        heap = self._heap
        live = self._entry_of
        while heap and live.get(heap[0][2]) is not heap[0]:
            heapq.heappop(heap)  # stale: the agent left, or was re-ranked
        if not heap:
            return None
        if accept(heap[0][2]):
            return heap[0][2]  # the common case: the best agent takes the call
        skipped = [heapq.heappop(heap)]
        try:
            while heap:
                entry = heapq.heappop(heap)
                if live.get(entry[2]) is not entry:
                    continue
                skipped.append(entry)
                if accept(entry[2]):
                    return entry[2]
            return None
        finally:
            for entry in skipped:
                heapq.heappush(heap, entry)

    def in_order(self) -> Iterator[ExtensionId]:
        """Every agent, best first (a sort: for tests and rare paths only)."""
        return (entry[2] for entry in sorted(self._entry_of.values()))

    def _compact(self) -> None:
        self._heap = list(self._entry_of.values())
        heapq.heapify(self._heap)
