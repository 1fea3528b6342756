"""The interval reports against a hand-computed fixture: history rows written directly,
every figure worked out by hand below, in a time zone whose clocks go back in the range."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ringmaster.engine.model import QueueId, TenantId
from ringmaster.store import Store
from ringmaster.store.records import StoreError
from ringmaster.store.reports import AgentFigures, QueueFigures, interval_bounds
from tests.store_backends import Databases, raw_sql

PARIS = ZoneInfo("Europe/Paris")
T1 = TenantId(1)
#: 2026-10-25 01:00 in Paris (summer time, +02:00): the clocks go back at 03:00 to 02:00.
B = datetime.fromisoformat("2026-10-25T01:00:00+02:00").timestamp()
#: Four local hours: 01:00+02, 02:00+02, 02:00+01 (the repeated hour), 03:00+01.
BOUNDS = [B, B + 3600, B + 7200, B + 10800, B + 14400]


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_hours_across_the_autumn_change_repeat_the_local_hour() -> None:
    until = at("2026-10-25T04:00:00+01:00")
    assert interval_bounds(B, until, PARIS, "1h") == BOUNDS
    labels = [datetime.fromtimestamp(t, PARIS).isoformat() for t in BOUNDS]
    assert labels == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]
    assert len(interval_bounds(B, until, PARIS, "15m")) - 1 == 16
    assert len(interval_bounds(B, until, PARIS, "30m")) - 1 == 8


def test_hours_across_the_spring_change_skip_the_missing_hour() -> None:
    since, until = at("2026-03-29T00:00:00+01:00"), at("2026-03-29T05:00:00+02:00")
    labels = [
        datetime.fromtimestamp(t, PARIS).strftime("%H:%M%z")
        for t in interval_bounds(since, until, PARIS, "1h")
    ]
    assert labels == ["00:00+0100", "01:00+0100", "03:00+0200", "04:00+0200", "05:00+0200"]


def test_days_are_local_calendar_days_of_23_24_or_25_hours() -> None:
    autumn = interval_bounds(
        at("2026-10-24T00:00:00+02:00"), at("2026-10-27T00:00:00+01:00"), PARIS, "1d"
    )
    assert [b - a for a, b in itertools.pairwise(autumn)] == [86400, 90000, 86400]
    spring = interval_bounds(
        at("2026-03-29T00:00:00+01:00"), at("2026-03-30T00:00:00+02:00"), PARIS, "1d"
    )
    assert [b - a for a, b in itertools.pairwise(spring)] == [82800]


def test_a_range_off_the_grid_is_clipped_and_a_bad_range_refused() -> None:
    bounds = interval_bounds(B + 600, B + 4000, PARIS, "1h")
    assert bounds == [B + 600, B + 3600, B + 4000]
    with pytest.raises(StoreError, match="empty"):
        interval_bounds(B, B, PARIS, "1h")
    with pytest.raises(StoreError, match="more than"):
        interval_bounds(B, B + 400 * 86400, PARIS, "15m")
    two_years = interval_bounds(B, B + 730 * 86400, PARIS, "1d")
    assert len(two_years) - 1 == 731  # the first day clipped, the last too


# --- the fixture -----------------------------------------------------------------------------

VISIT = (
    "INSERT INTO call_visits (tenant_id, call_id, visit, queue_id, queue_number, queue_name,"
    " did, caller_id, caller_name, priority, arrived_at, entered_at, position, answered_at,"
    " ended_at, outcome, agent_number, wait_s, talk_s)"
    " VALUES (?, ?, 1, ?, ?, ?, '', '', '', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
ACTIVITY = (
    "INSERT INTO agent_activity (tenant_id, extension, at, kind, reason, state)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def visit(
    call: str,
    queue: int,
    entered: float,
    *,
    position: int | None = 1,
    answered: float | None = None,
    ended: float | None = None,
    outcome: str | None = None,
    agent: str | None = None,
    talk: float | None = None,
    tenant: int = 1,
) -> tuple[Any, ...]:
    """A visit row; its wait as the recorder writes it: to the answer, else to the end."""
    wait = (
        answered - entered
        if answered is not None
        else (ended - entered if ended is not None else None)
    )
    number, name = {1: ("600", "Sales"), 2: ("700", "Support")}[queue]
    row = (tenant, call, queue, number, name, entered, entered, position, answered, ended)
    return (*row, outcome, agent, wait, talk)


VISITS = [
    # queue 1, first hour (01:00+02)
    visit("v1", 1, B + 100, answered=B + 110, ended=B + 230, outcome="completed", agent="101",
          talk=120),
    visit("v2", 1, B + 200, answered=B + 230, ended=B + 290, outcome="completed", agent="102",
          talk=60),
    visit("v3", 1, B + 300, ended=B + 303, outcome="abandoned"),  # a short abandon (3 s)
    visit("v4", 1, B + 400, ended=B + 450, outcome="abandoned"),
    visit("v5", 1, B + 500, position=2, ended=B + 560, outcome="overflowed"),
    visit("v6", 1, B + 600, position=None, ended=B + 600, outcome="rejected"),
    # refused on entry (full): overflowed without waiting, no position
    visit("v7", 1, B + 700, position=None, ended=B + 700, outcome="overflowed"),
    # queue 1, third hour (02:00+01): entered on the boundary, so in it
    visit("v8", 1, B + 7200, answered=B + 7205, ended=B + 8205, outcome="completed",
          agent="101", talk=1000),
    # queue 2, second hour (02:00+02): waits of 1..11 s, all within its 30 s
    *[
        visit(f"w{k}", 2, B + 3600 + 10 * k, answered=B + 3600 + 11 * k,
              ended=B + 3610 + 11 * k, outcome="completed", agent="201", talk=10)
        for k in range(1, 12)
    ],
    # queue 2, fourth hour (03:00+01)
    visit("v9", 2, B + 10900, ended=B + 10920, outcome="abandoned"),
    visit("v10", 2, B + 11000, answered=B + 11010, agent="201"),  # still talking
    # outside the range, or another tenant's: in no queue figure
    visit("x1", 1, B - 10, answered=B - 5, ended=B + 50, outcome="completed", agent="102",
          talk=55),
    visit("x2", 1, B + 14400, ended=B + 14410, outcome="abandoned"),
    visit("x3", 1, B + 100, ended=B + 110, outcome="abandoned", tenant=2),
]  # fmt: skip

ACTIVITIES = [
    (1, "101", B - 1000, "login", "", "available"),
    (1, "101", B + 1000, "pause", "lunch", "paused"),
    (1, "101", B + 4600, "unpause", "", "available"),
    (1, "101", B + 5000, "pause", "meeting", "paused"),
    (1, "101", B + 5600, "unpause", "", "available"),
    (1, "101", B + 8000, "ring_unanswered", "timeout", None),
    (1, "101", B + 12000, "logout", "", "logged_out"),
    (1, "102", B + 150, "login", "", "available"),
    (1, "102", B + 3000, "pause", "", "paused"),
    (1, "102", B + 4000, "logout", "", "logged_out"),
    (2, "101", B + 100, "login", "", "available"),
]


@pytest.fixture
async def store(database: Databases) -> AsyncIterator[Store]:
    path = database("reports.sqlite3")
    async with await Store.open(path) as opened:
        await raw_sql(path, "INSERT INTO tenants (id, name, timezone) VALUES (?, ?, ?)", [
            (1, "A", "Europe/Paris"), (2, "B", "UTC")
        ])  # fmt: skip
        await raw_sql(
            path,
            "INSERT INTO queues (id, tenant_id, name, queue_number, strategy, timeout,"
            " status, options) VALUES (?, 1, 'q', ?, 'ringall', 15, 'active', ?)",
            [
                (queue, number, f'{{"service_level": {level}}}')
                for queue, number, level in ((1, "600", 20), (2, "700", 30))
            ],
        )
        await raw_sql(path, VISIT, VISITS)
        await raw_sql(path, ACTIVITY, ACTIVITIES)
        yield opened


def q1(start: int, **figures: Any) -> QueueFigures:
    return QueueFigures(QueueId(1), "600", "Sales", BOUNDS[start], BOUNDS[start + 1], **figures)


def q2(start: int, **figures: Any) -> QueueFigures:
    return QueueFigures(QueueId(2), "700", "Support", BOUNDS[start], BOUNDS[start + 1], **figures)


async def test_queue_figures_by_hand(store: Store) -> None:
    async with store.reports() as reader:
        figures = await reader.queues(T1, BOUNDS, short_abandon_s=5)
    assert figures == [
        # v1..v5 and v7 offered (v6 rejected); answered v1 (10 s, within 20) and v2 (30 s);
        # abandoned v3 (3 s: short) and v4; overflowed v5 and v7. SL 1/2; SL over
        # answered and abandoned after 5 s: 1/3. ASA (10 + 30) / 2; AHT (120 + 60) / 2.
        # Waits of the calls in line: 10, 30, 3, 50, 60: mean 30.6, max 60, p90 the 5th.
        q1(0, offered=6, answered=2, abandoned=2, short_abandoned=1, overflowed=2,
           rejected=1, answered_within=1, service_level_pct=50.0,
           service_level_all_pct=100 / 3, asa_s=20.0, aht_s=90.0, avg_wait_s=30.6,
           max_wait_s=60.0, wait_p90_s=60.0),
        q1(1),
        q1(2, offered=1, answered=1, answered_within=1, service_level_pct=100.0,
           service_level_all_pct=100.0, asa_s=5.0, aht_s=1000.0, avg_wait_s=5.0,
           max_wait_s=5.0, wait_p90_s=5.0),
        q1(3),
        q2(0),
        # waits 1..11: mean 6, max 11, p90 the ceil(9.9) = 10th smallest: 10
        q2(1, offered=11, answered=11, answered_within=11, service_level_pct=100.0,
           service_level_all_pct=100.0, asa_s=6.0, aht_s=10.0, avg_wait_s=6.0,
           max_wait_s=11.0, wait_p90_s=10.0),
        q2(2),
        # v9 abandoned after 20 s (not short), v10 answered after 10 s and still talking
        q2(3, offered=2, answered=1, abandoned=1, answered_within=1, service_level_pct=100.0,
           service_level_all_pct=50.0, asa_s=10.0, avg_wait_s=15.0, max_wait_s=20.0,
           wait_p90_s=20.0),
    ]  # fmt: skip


async def test_queue_figures_of_one_queue_and_another_threshold(store: Store) -> None:
    async with store.reports() as reader:
        figures = await reader.queues(T1, BOUNDS, queue_id=QueueId(1), short_abandon_s=2)
    assert {f.queue_id for f in figures} == {1}
    first = figures[0]
    # v3's 3 s is no short abandon under 2 s: SL over answered and abandoned 1/4
    assert (first.short_abandoned, first.service_level_all_pct) == (0, 25.0)


def a(extension: str, start: int, **figures: Any) -> AgentFigures:
    return AgentFigures(extension, BOUNDS[start], BOUNDS[start + 1], **figures)


async def test_agent_figures_by_hand(store: Store) -> None:
    async with store.reports() as reader:
        figures = await reader.agents(T1, BOUNDS, now=B + 13000)
    assert figures == [
        # 101: logged in before the range; lunch 1000..4600, meeting 5000..5600; v1
        # (talk 120) and v8 (talk 1000); a ring not answered at 8000; out at 12000.
        a("101", 0, answered=1, talk_s=120.0, pause_s={"lunch": 2600.0}, logged_in_s=3600.0,
          occupancy_pct=120 / 1000 * 100),
        a("101", 1, pause_s={"lunch": 1000.0, "meeting": 600.0}, logged_in_s=3600.0,
          occupancy_pct=0.0),
        a("101", 2, answered=1, talk_s=1000.0, rings_unanswered=1, logged_in_s=3600.0,
          occupancy_pct=1000 / 3600 * 100),
        a("101", 3, logged_in_s=1200.0, occupancy_pct=0.0),
        # 102: in at 150, v2 (talk 60), paused without a reason 3000..4000, then out;
        # x1, answered before the range, talked into it until 50: 50 s more talk
        a("102", 0, answered=1, talk_s=110.0, pause_s={"": 600.0}, logged_in_s=3450.0,
          occupancy_pct=110 / 2850 * 100),
        a("102", 1, pause_s={"": 400.0}, logged_in_s=400.0),
        a("102", 2),
        a("102", 3),
        # 201: never logged in as far as the history knows; its calls still count, and
        # v10's talk runs until now (13000 - 11010)
        a("201", 0),
        a("201", 1, answered=11, talk_s=110.0),
        a("201", 2),
        a("201", 3, answered=1, talk_s=1990.0),
    ]  # fmt: skip
