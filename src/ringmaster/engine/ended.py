"""The calls that ended lately, kept where the garbage collector does not look.

The engine remembers an ended call for `ended_call_ttl` seconds (two minutes by
default), so that a late answer, ring failure or hangup is recognised rather than
reported as unknown. At 500 calls/s that is 60,000 calls. Kept as `CallState`
objects (each with its `tried` set) they filled the collector's oldest generation,
and each full collection walked all of them: pauses grew to 55 ms during a 60-s
hold at 500 calls/s (docs/performance.md). CPython untracks a plain tuple whose
items are all untracked (strings, numbers, such tuples) when a collection looks at
it, inner tuples first, so here an ended call is kept as one: once untracked, the
collector neither walks it nor counts it towards the next full collection.

A call that ends stays a `CallState` until the next `forget`, which the engine
calls as it finishes each event: the handler that ended the call may still write
to it, and a simulation that forgets at once (ttl 0) never converts one. The
turn's `take_changes` builds its record from the tuple (`record`), without a
`CallState` in between.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import fields
from operator import attrgetter
from typing import Any

from ringmaster.engine.model import CallKey, CallPhase
from ringmaster.engine.records import CallRecord
from ringmaster.engine.state import CallState

#: A call as `CallRecord`'s fields in their order, with the phase as its value and
#: the rings, the agents tried and the skills as tuples (see `_compact`).
Compact = tuple[Any, ...]

_NAMES = tuple(f.name for f in fields(CallRecord))
_values_of = attrgetter(*_NAMES)
_PHASE = _NAMES.index("phase")
_RINGS = _NAMES.index("rings")
_TRIED = _NAMES.index("tried")
_SKILLS = _NAMES.index("skills")
_ENDED_AT = _NAMES.index("ended_at")


def _compact(call: CallState) -> Compact:
    values = list(_values_of(call))
    values[_PHASE] = call.phase.value  # an enum member would keep the tuple tracked
    values[_RINGS] = tuple(call.rings.values())
    values[_TRIED] = tuple(sorted(call.tried))
    values[_SKILLS] = tuple(call.skills.items())
    return tuple(values)


def _record(compact: Compact) -> CallRecord:
    values = list(compact)
    values[_PHASE] = CallPhase(values[_PHASE])
    values[_SKILLS] = dict(values[_SKILLS])
    return CallRecord(*values)


class EndedCalls:
    """The ended calls by key, oldest ending first.

    `get` gives a fresh `CallState` for a call kept compact: the engine only reads
    an ended call (a final phase takes no step), so a copy serves.
    """

    def __init__(self) -> None:
        self._kept: OrderedDict[CallKey, Compact] = OrderedDict()
        #: Ended since the last `forget`, each later than every kept one.
        self._recent: dict[CallKey, CallState] = {}

    def __len__(self) -> int:
        return len(self._kept) + len(self._recent)

    def __contains__(self, key: CallKey) -> bool:
        return key in self._recent or key in self._kept

    def add(self, call: CallState) -> None:
        """Remember a call that reached a final phase (`ended_at` set), as the latest."""
        self._kept.pop(call.key, None)  # a key used again: only its latest end counts
        self._recent.pop(call.key, None)
        self._recent[call.key] = call

    def get(self, key: CallKey) -> CallState | None:
        """The ended call, or None."""
        call = self._recent.get(key)
        if call is not None:
            return call
        compact = self._kept.get(key)
        return CallState.from_record(_record(compact)) if compact is not None else None

    def record(self, key: CallKey) -> CallRecord | None:
        """The ended call as stored, or None: what `get` gives, without the `CallState`."""
        call = self._recent.get(key)
        if call is not None:
            return call.to_record()
        compact = self._kept.get(key)
        return _record(compact) if compact is not None else None

    def discard(self, key: CallKey) -> None:
        """Forget one call now."""
        if self._recent.pop(key, None) is None:
            self._kept.pop(key, None)

    def forget(self, horizon: float) -> list[CallKey]:
        """Forget the calls that ended at or before `horizon`; keep the rest compact.

        Returns:
            The keys forgotten, oldest first.
        """
        gone: list[CallKey] = []
        kept = self._kept
        while kept:
            key, compact = next(iter(kept.items()))
            if (compact[_ENDED_AT] or 0.0) > horizon:
                break
            del kept[key]
            gone.append(key)
        for key, call in self._recent.items():
            if (call.ended_at or 0.0) > horizon:
                kept[key] = _compact(call)
            else:
                gone.append(key)
        self._recent.clear()
        return gone
