"""Interval reports of the call and agent history (docs/reports.md), on the reading connection.

Queue figures are aggregated in SQL, per interval and queue, with the intervals
passed in as their starts (`report_statements`); agent figures are the agents'
state timelines and talk times clipped to the intervals, here. The intervals are
aligned in the tenant's time zone (`interval_bounds`): a day is a local calendar
day (23 or 25 hours across a change of DST), an hour or a quarter is on the local
clock (the hour repeated in the autumn is two intervals, the one skipped in the
spring none).
"""

from __future__ import annotations

import asyncio
import json
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from ringmaster.engine.model import QueueId, TenantId
from ringmaster.store.records import StoreError
from ringmaster.store.repository import Repository
from ringmaster.store.sqlite import report_statements as sql

Interval = Literal["15m", "30m", "1h", "1d"]
#: Each interval's length on the local clock; a day is a calendar day.
DAY: Final = 86_400
INTERVAL_SECONDS: Final[dict[Interval, int]] = {"15m": 900, "30m": 1800, "1h": 3600, "1d": DAY}
#: The most intervals one report may have (a year of hours is 8,760).
MAX_INTERVALS: Final = 10_000
#: How long before a report's range an answered call may have entered its queue and
#: still count (its answer or talk in the range): longer waits are not looked for.
ANSWER_LOOKBACK_S: Final = 86_400.0
#: The percentile of the waits reported (`wait_p90_s`).
WAIT_PERCENTILE: Final = 90


def interval_bounds(since: float, until: float, zone: ZoneInfo, interval: Interval) -> list[float]:
    """The report's interval boundaries from `since` to `until`, both included, in order.

    Boundaries are the instants where the local clock of `zone` is on the interval's
    grid (local midnights for days); the first and last intervals are clipped to the
    range when it does not start or end on the grid.

    Raises:
        StoreError: The range is empty or has more than `MAX_INTERVALS` intervals.
    """
    if until <= since:
        raise StoreError("the range is empty: `to` must be after `from`")
    step = INTERVAL_SECONDS[interval]
    # Refused before the work of finding them: a local day is 23 hours at the shortest,
    # and a shorter interval is lengthened by no change of the clocks.
    shortest = step if step < DAY else DAY - 3600
    if (until - since) / shortest > MAX_INTERVALS + 2:
        raise StoreError(f"the range has more than {MAX_INTERVALS} intervals")
    first = datetime.fromtimestamp(since, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(until, zone).date() + timedelta(days=1)
    found: set[float] = set()
    day = first
    while day <= last:
        midnight = datetime(day.year, day.month, day.day)
        for offset in range(0, DAY, step):
            wall = midnight + timedelta(seconds=offset)
            # A wall time the autumn repeats is two instants (folds); one the spring
            # skips maps onto the grid's next instant, or off the grid, and is dropped.
            for fold in (0,) if step == DAY else (0, 1):
                at = wall.replace(tzinfo=zone, fold=fold).timestamp()
                local = datetime.fromtimestamp(at, zone)
                on_grid = (local.hour * 3600 + local.minute * 60 + local.second) % step == 0
                if since < at < until and (on_grid or step == DAY):
                    found.add(at)
        day += timedelta(days=1)
    bounds = [since, *sorted(found), until]
    if len(bounds) - 1 > MAX_INTERVALS:
        raise StoreError(f"the range has more than {MAX_INTERVALS} intervals")
    return bounds


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """One queue's figures for one interval (docs/reports.md defines each)."""

    queue_id: QueueId
    queue_number: str
    queue_name: str
    start: float
    end: float
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    overflowed: int = 0
    rejected: int = 0
    answered_within: int = 0
    service_level_pct: float | None = None
    service_level_all_pct: float | None = None
    asa_s: float | None = None
    aht_s: float | None = None
    avg_wait_s: float | None = None
    max_wait_s: float | None = None
    wait_p90_s: float | None = None


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """One agent's figures for one interval (docs/reports.md defines each)."""

    extension: str
    start: float
    end: float
    answered: int = 0
    talk_s: float = 0.0
    rings_unanswered: int = 0
    pause_s: dict[str, float] = field(default_factory=dict)
    logged_in_s: float = 0.0
    occupancy_pct: float | None = None


#: Less than this is no time at all (sums of float differences).
_INSTANT: Final = 1e-9


def _ratio(part: float, whole: float, scale: float = 1.0) -> float | None:
    return part * scale / whole if whole else None


@dataclass
class _AgentTally:
    answered: int = 0
    talk_s: float = 0.0
    rings_unanswered: int = 0
    pause_s: dict[str, float] = field(default_factory=dict)
    logged_in_s: float = 0.0


def _overlaps(bounds: Sequence[float], start: float, end: float) -> Iterator[tuple[int, float]]:
    """Each interval `[start, end)` overlaps, with the seconds it overlaps it by."""
    if end <= start:
        return
    slot = max(bisect_right(bounds, start) - 1, 0)
    while slot < len(bounds) - 1 and bounds[slot] < end:
        overlap = min(end, bounds[slot + 1]) - max(start, bounds[slot])
        if overlap > 0:
            yield slot, overlap
        slot += 1


def _slot_of(bounds: Sequence[float], at: float) -> int | None:
    if not bounds[0] <= at < bounds[-1]:
        return None
    return bisect_right(bounds, at) - 1


class ReportReader(Repository):
    """The interval reports, inside a read transaction (`Store.reports`)."""

    async def queues(
        self,
        tenant_id: TenantId,
        bounds: Sequence[float],
        *,
        queue_id: QueueId | None = None,
        short_abandon_s: float = 5.0,
        default_service_level: int = 20,
    ) -> list[QueueFigures]:
        """Each queue's figures per interval, by queue then interval.

        Every queue with a visit in the range, with every interval (zeros where none).

        Args:
            tenant_id: Whose queues.
            bounds: The intervals' boundaries (`interval_bounds`).
            queue_id: Only this queue.
            short_abandon_s: Abandoned within this many seconds is `short_abandoned`.
            default_service_level: The service level threshold of a deleted queue.
        """
        self._check_open()
        given = (json.dumps(list(bounds)), tenant_id, queue_id)
        rows = await self._db.fetch_all(
            sql.QUEUE_FIGURES, (*given, default_service_level, short_abandon_s)
        )
        p90 = {
            (int(slot), int(queue)): float(wait)
            for slot, queue, wait in await self._db.fetch_all(
                sql.QUEUE_WAIT_PERCENTILE, (*given, WAIT_PERCENTILE)
            )
        }
        return await asyncio.to_thread(_queue_rows, list(rows), p90, list(bounds))

    @staticmethod
    def _queue_figures(
        row: Sequence[Any], bounds: Sequence[float], p90: float | None
    ) -> QueueFigures:
        (slot, queue, number, name, offered, answered, abandoned, short, overflowed, rejected,
         within, answered_wait, talk, talked, waited_total, waited, longest) = row  # fmt: skip
        return QueueFigures(
            queue_id=QueueId(queue),
            queue_number=number or "",
            queue_name=name or "",
            start=bounds[slot],
            end=bounds[slot + 1],
            offered=offered,
            answered=answered,
            abandoned=abandoned,
            short_abandoned=short,
            overflowed=overflowed,
            rejected=rejected,
            answered_within=within,
            service_level_pct=_ratio(within, answered, 100.0),
            service_level_all_pct=_ratio(within, answered + abandoned - short, 100.0),
            asa_s=_ratio(answered_wait, answered),
            aht_s=_ratio(talk, talked),
            avg_wait_s=_ratio(waited_total, waited),
            max_wait_s=longest,
            wait_p90_s=p90,
        )

    async def agents(
        self, tenant_id: TenantId, bounds: Sequence[float], now: float
    ) -> list[AgentFigures]:
        """Each agent's figures per interval, by extension number then interval.

        Every agent logged in at the range's start or with activity or an answered call
        in it, with every interval. Nothing after `now` is counted (a state still on
        lasts until `now`). The rows are read here; the timelines are clipped on a
        thread of their own, so that a month of them does not hold the event loop.

        Args:
            tenant_id: Whose agents.
            bounds: The intervals' boundaries (`interval_bounds`).
            now: The time now.
        """
        self._check_open()
        since, until = bounds[0], bounds[-1]
        before = await self._db.fetch_all(sql.AGENT_STATES_BEFORE, (tenant_id, since))
        activity = await self._db.fetch_all(sql.AGENT_ACTIVITY, (tenant_id, since, until))
        answered = await self._db.fetch_all(
            sql.ANSWERED_CALLS, (tenant_id, since - ANSWER_LOOKBACK_S, until)
        )
        return await asyncio.to_thread(
            _agent_figures, list(bounds), now, list(before), list(activity), list(answered)
        )


class _AgentTallies:
    """Each agent's running figures per interval, and its state as a timeline."""

    def __init__(self, bounds: Sequence[float], now: float) -> None:
        self.bounds = bounds
        self.end = min(bounds[-1], now)
        self.tallies: dict[str, list[_AgentTally]] = {}
        #: Each agent's state: (since, state, pause reason).
        self.current: dict[str, tuple[float, str, str]] = {}

    def of(self, extension: str) -> list[_AgentTally]:
        if extension not in self.tallies:
            self.tallies[extension] = [_AgentTally() for _ in range(len(self.bounds) - 1)]
        return self.tallies[extension]

    def close(self, extension: str, at: float) -> None:
        """The agent's current state ends at `at`: its time goes to the intervals."""
        began, state, reason = self.current[extension]
        if state == "logged_out":
            return
        for slot, seconds in _overlaps(self.bounds, began, min(at, self.end)):
            cell = self.of(extension)[slot]
            cell.logged_in_s += seconds
            if state == "paused":
                cell.pause_s[reason] = cell.pause_s.get(reason, 0.0) + seconds

    def activity(self, rows: Sequence[Sequence[Any]]) -> None:
        since = self.bounds[0]
        for extension, at, kind, reason, state in rows:
            self.of(extension)
            if kind == "ring_unanswered":
                slot = _slot_of(self.bounds, at)
                if slot is not None:
                    self.of(extension)[slot].rings_unanswered += 1
            if state is None:
                continue
            before = self.current.get(extension, (since, "logged_out", ""))
            self.current[extension] = before
            self.close(extension, at)
            pause_reason = reason if kind == "pause" else before[2]
            self.current[extension] = (at, state, pause_reason)
        for extension in self.current:
            self.close(extension, self.end)

    def talk(self, rows: Sequence[Sequence[Any]], now: float) -> None:
        """Each answered call to its agent's `answered`, and its talk to `talk_s`."""
        for extension, answered_at, talk_s, ended_at in rows:
            slot = _slot_of(self.bounds, answered_at)
            if slot is not None:
                self.of(extension)[slot].answered += 1
            if talk_s is not None:
                hung_up = answered_at + talk_s
            else:
                hung_up = now if ended_at is None else ended_at
            for slot, seconds in _overlaps(self.bounds, answered_at, min(hung_up, self.end)):
                self.of(extension)[slot].talk_s += seconds


def _agent_figures(
    bounds: Sequence[float],
    now: float,
    before: Sequence[Sequence[Any]],
    activity: Sequence[Sequence[Any]],
    answered: Sequence[Sequence[Any]],
) -> list[AgentFigures]:
    tallies = _AgentTallies(bounds, now)
    for extension, state, reason in before:
        tallies.current[extension] = (bounds[0], state, reason or "")
        if state != "logged_out":
            tallies.of(extension)
    tallies.activity(activity)
    tallies.talk(answered, now)
    out: list[AgentFigures] = []
    for extension in sorted(tallies.tallies):
        for slot, cell in enumerate(tallies.tallies[extension]):
            available = cell.logged_in_s - sum(cell.pause_s.values())
            out.append(
                AgentFigures(
                    extension=extension,
                    start=bounds[slot],
                    end=bounds[slot + 1],
                    answered=cell.answered,
                    talk_s=cell.talk_s,
                    rings_unanswered=cell.rings_unanswered,
                    pause_s=dict(sorted(cell.pause_s.items())),
                    logged_in_s=cell.logged_in_s,
                    occupancy_pct=_ratio(cell.talk_s, available, 100.0)
                    if available > _INSTANT
                    else None,
                )
            )
    return out


def _queue_rows(
    rows: Sequence[Sequence[Any]], p90: dict[tuple[int, int], float], bounds: Sequence[float]
) -> list[QueueFigures]:
    names: dict[int, tuple[str, str]] = {}
    figures: dict[tuple[int, int], QueueFigures] = {}
    for row in rows:
        slot, queue, number, name = int(row[0]), int(row[1]), row[2] or "", row[3] or ""
        names[queue] = (number, name)
        figures[(queue, slot)] = ReportReader._queue_figures(row, bounds, p90.get((slot, queue)))
    out: list[QueueFigures] = []
    for queue in sorted(names):
        number, name = names[queue]
        for slot in range(len(bounds) - 1):
            found = figures.get((queue, slot))
            out.append(
                QueueFigures(QueueId(queue), number, name, bounds[slot], bounds[slot + 1])
                if found is None
                # the queue's number and name as in its latest interval
                else replace(found, queue_number=number, queue_name=name)
            )
    return out
