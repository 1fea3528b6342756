"""The interval reports over a month of history: their time, and how long they hold the loop.

`python -m bench.reports_bench` writes a month of one tenant's history (3 queues,
20 agents, 2,000 calls and ~1,760 agent state changes a day) into a new SQLite
file, then reads each report by 15 minutes, an hour and a day on the store's
reading connection, while a task that sleeps 1 ms at a time measures the event
loop's longest stall: what a daemon's turn would wait meanwhile.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

from ringmaster.engine.model import TenantId
from ringmaster.store import Store
from ringmaster.store.reports import Interval, interval_bounds

START = 1_790_000_000.0
DAYS = 30
CALLS_A_DAY = 2000
AGENTS = 20
ANSWERED_SHARE = 0.85

VISIT = (
    "INSERT INTO call_visits (tenant_id, call_id, visit, queue_id, queue_number, queue_name,"
    " did, caller_id, caller_name, priority, arrived_at, entered_at, position, answered_at,"
    " ended_at, outcome, agent_number, wait_s, talk_s) VALUES (1, ?1, 1, ?2, '600', 'Q', '',"
    " '', '', 0, ?3, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9)"
)
ACTIVITY = (
    "INSERT INTO agent_activity (tenant_id, extension, at, kind, reason, state)"
    " VALUES (1, ?, ?, ?, ?, ?)"
)


def month(rng: random.Random) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A month of visit rows and agent activity rows."""
    visits: list[tuple[Any, ...]] = []
    activity: list[tuple[Any, ...]] = []
    for day in range(DAYS):
        opens = START + day * 86400 + 8 * 3600
        for _ in range(CALLS_A_DAY):
            at = opens + rng.uniform(0, 12 * 3600)
            wait = round(rng.expovariate(1 / 30), 3)
            call = f"c{len(visits)}"
            row: tuple[Any, ...]
            if rng.random() < ANSWERED_SHARE:
                talk = round(rng.expovariate(1 / 180), 3)
                agent = str(101 + rng.randrange(AGENTS))
                row = (at + wait, at + wait + talk, "completed", agent, wait, talk)
            else:
                row = (None, at + wait, "abandoned", None, wait, None)
            visits.append((call, rng.randint(1, 3), at, *row))
        for index in range(AGENTS):
            agent = str(101 + index)
            activity.append((agent, opens, "login", "", "available"))
            for pause in range(3):
                at = opens + 3600 * (2 + 3 * pause)
                activity.append((agent, at, "pause", "break", "paused"))
                activity.append((agent, at + 900, "unpause", "", "available"))
            for busy in range(40):
                activity.append((agent, opens + busy * 1000, "state", "", "busy"))
                activity.append((agent, opens + busy * 1000 + 200, "state", "", "available"))
            activity.append((agent, opens + 12 * 3600, "logout", "", "logged_out"))
    return visits, activity


async def measure(store: Store, kind: str, interval: Interval) -> tuple[int, float, float]:
    """Rows, seconds, and the loop's longest stall (s) of one report."""
    bounds = interval_bounds(START, START + DAYS * 86400, ZoneInfo("Europe/Paris"), interval)
    stalls: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    began = time.perf_counter()
    async with store.reports() as reader:
        if kind == "queues":
            rows = len(await reader.queues(TenantId(1), bounds))
        else:
            rows = len(await reader.agents(TenantId(1), bounds, now=START + 40 * 86400))
    took = time.perf_counter() - began
    tick.cancel()
    return rows, took, max(stalls, default=0.0)


async def main() -> None:
    """Write the month, then time each report."""
    path = Path(tempfile.mkdtemp()) / "month.sqlite3"
    async with await Store.open(path):
        pass
    visits, activity = month(random.Random(1))
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO tenants (id, name) VALUES (1, 'A')")
        db.executemany(VISIT, visits)
        db.executemany(ACTIVITY, activity)
    print(f"{len(visits)} visits, {len(activity)} agent activities over {DAYS} days")
    async with await Store.open(path) as store:
        for interval in get_args(Interval):
            for kind in ("queues", "agents"):
                rows, took, stall = await measure(store, kind, interval)
                print(
                    f"{kind:6} by {interval:3}: {rows:6} rows in {took:.3f} s,"
                    f" longest loop stall {stall * 1000:.0f} ms"
                )


if __name__ == "__main__":
    asyncio.run(main())
