"""The report of a simulated run equals the simulator's own figures.

`ringmaster simulate` drives the real engine; here each of its turns (the event, or a
timer, and the commands decided) also goes through the history recorder into a real
SQLite store, as the daemon writes it, and the queue report read back from it must
count what the simulator counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command
from ringmaster.engine.core import Engine
from ringmaster.engine.model import HangupTarget, TenantId
from ringmaster.engine.records import StateChanges
from ringmaster.history import HistoryRecorder, HistoryWrite
from ringmaster.planning.simulate import run as simulate_run
from ringmaster.planning.simulate.results import SimulationResult
from ringmaster.planning.simulate.scenario import HandleDistribution, Workload, single_queue
from ringmaster.store import Store
from ringmaster.store.reports import interval_bounds

Turn = tuple[float, ev.Event | None, list[Command]]


def run_recorded(
    monkeypatch: pytest.MonkeyPatch, agents: int, strategy: str, workload: Workload
) -> tuple[SimulationResult, list[Turn], list[ev.ConfigEvent]]:
    """Simulate, keeping every turn the engine took."""
    turns: list[Turn] = []

    class Recording(Engine):
        def __init__(self, **options: Any) -> None:
            # The simulator asks for no monitoring events; the history is made of them.
            super().__init__(**{**options, "publish_events": True})

        def handle(self, event: ev.Event, now: float) -> list[Command]:
            out = super().handle(event, now)
            turns.append((now, event, list(out)))
            return out

        def handle_timer(self, now: float) -> list[Command]:
            out = super().handle_timer(now)
            turns.append((now, None, list(out)))
            return out

    monkeypatch.setattr(simulate_run, "Engine", Recording)
    scenario = single_queue(agents, strategy)
    return simulate_run.simulate(scenario, workload), turns, list(scenario.config)


async def stored(path: Path, config: Sequence[ev.ConfigEvent], turns: Sequence[Turn]) -> Store:
    store = await Store.open(path)
    async with store.transaction() as tx:
        for saved in config:
            match saved:
                case ev.TenantSaved():
                    await tx.insert_tenant(saved.tenant.tenant_id, saved.tenant.name)
                case ev.ExtensionSaved():
                    extension = saved.extension
                    await tx.insert_extension(extension.tenant_id, extension.number, "")
                case ev.QueueSaved():
                    await tx.insert_queue(replace(saved.queue, overflow=HangupTarget()))
                case _:
                    pass
    recorder = HistoryRecorder()
    batch: list[HistoryWrite] = []
    for index, (now, event, commands) in enumerate(turns):
        batch += recorder.record(event, commands, now)
        if index % 500 == 499 or index == len(turns) - 1:
            await store.commit(StateChanges(), [], None, batch)
            batch = []
    return store


WORKLOADS = {
    "abandons and unanswered rings": Workload(
        rates={"600": [120.0]},
        calls=600,
        patience_mean_s=45.0,
        no_answer=0.1,
        handle=HandleDistribution.LOGNORMAL,
        handle_mean_s=120.0,
        seed=5,
    ),
    "overloaded, callers patient": Workload(
        rates={"600": [200.0]}, calls=300, handle_mean_s=90.0, seed=8
    ),
}


@pytest.mark.parametrize("workload", WORKLOADS.values(), ids=WORKLOADS.keys())
@pytest.mark.parametrize("strategy", ["ringall", "leastrecent"])
async def test_the_report_of_a_simulated_run_is_the_simulators_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, workload: Workload
) -> None:
    result, turns, config = run_recorded(monkeypatch, 4, strategy, workload)
    (sim,) = result.queues
    assert sim.answered > 100
    store = await stored(tmp_path / "sim.sqlite3", config, turns)
    try:
        # the run starts at the epoch, in UTC: one day holds it, or two
        bounds = interval_bounds(0.0, 2 * 86400.0, ZoneInfo("UTC"), "1d")
        async with store.reports() as reader:
            days = await reader.queues(TenantId(1), bounds)
            agents = await reader.agents(TenantId(1), bounds, now=result.simulated_s)
    finally:
        await store.close()
    assert sum(d.offered for d in days) == sim.offered == result.calls
    assert sum(d.answered for d in days) == sim.answered
    assert sum(d.abandoned for d in days) == sim.abandoned
    assert sum(d.rejected + d.overflowed for d in days) == sim.rejected == 0
    (day, _) = days
    assert day.answered_within / day.answered == pytest.approx(sim.service_level, abs=1e-12)
    assert day.service_level_pct == pytest.approx(100 * sim.service_level)
    assert day.asa_s == pytest.approx(sim.asa_s, abs=1e-3)  # waits are stored to the ms
    # Every answer is some agent's. The run stops once no call waits, calls still on
    # talk until its end: the simulator's occupancy (talk until the end, no wrap-up,
    # over four agents logged in all along) is the agents' talk over logged-in time.
    assert sum(a.answered for a in agents) == sim.answered
    talk = sum(a.talk_s for a in agents)
    logged_in = sum(a.logged_in_s for a in agents)
    assert logged_in == pytest.approx(4 * result.simulated_s)
    # (talk times are stored to the millisecond: within half a millisecond a call)
    assert talk == pytest.approx(sim.occupancy * logged_in, abs=0.0005 * sim.answered)
