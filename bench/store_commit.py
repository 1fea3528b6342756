"""``python -m bench.store_commit [--calls N] [--rounds R]``: a turn's commit, SQLite vs PostgreSQL.

The real `Store.commit`, as the daemon calls it once per turn, on each backend: a
full-life call is three turns (arrive and ring; answer; hang up), each with the live
state the engine changed (the call and its rings, the agent, the queue's memory, the
agent's statistics), the turn's history writes (visit and ring rows) and two outbox
messages, the watermark deleting those published before. The turns run one after
another from one task, as the daemon's loop commits them.

Four stores, in rounds alternated A/B/C/D, D/C/B/A... so that the machine's noise falls
on each alike:

- ``sqlite``: the default, WAL with ``synchronous=NORMAL`` (survives a killed process,
  may lose the last turns on power loss).
- ``sqlite_full``: ``synchronous=FULL``, an fsync per commit (survives power loss).
- ``postgresql``: a private cluster (`tests.postgres.start_postgres`) with PostgreSQL's
  durability defaults: each COMMIT waits for its WAL flush (survives power loss).
- ``postgresql_async_commit``: the same server, ``synchronous_commit=off`` on the
  store's connection (a URL parameter): survives a killed daemon or server process, may
  lose the last turns on power loss, as SQLite's default.

Figures per turn: wall time (best, median, p99 of every turn of every round) and the
daemon's CPU (``time.process_time`` over a round / its turns: what the loop pays).
Prints one JSON document: the machine, the settings, the figures, and the ratios to
``sqlite``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.postgres import start_postgres

from bench.common import machine
from ringmaster.contract import OutboxMessage
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallPhase,
    DeviceState,
    ExtensionId,
    Presence,
    QueueId,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    LiveState,
    QueueMemoryRecord,
    RingRecord,
    StateChanges,
)
from ringmaster.history import (
    Arrival,
    HistoryWrite,
    RingEnded,
    RingStarted,
    VisitAnswered,
    VisitEnded,
    VisitOpened,
)
from ringmaster.store import Store

T = TenantId(1)
Q = QueueId(1)
AGENTS = 20
Turn = tuple[StateChanges, list[OutboxMessage], list[HistoryWrite]]


def call_life(index: int, now: float) -> list[Turn]:
    """The three turns of one call's life: arrive and ring, answer, hang up."""
    call_id = CallId(f"c{index}")
    agent = ExtensionId(101 + index % AGENTS)
    number = str(agent)
    ring_id = f"{index}.1"
    ringing = CallRecord(
        tenant_id=T,
        call_id=call_id,
        phase=CallPhase.RINGING,
        did="+15550100",
        caller_id="5551234",
        caller_name="Caller",
        priority=0,
        arrived_at=now,
        seq=index,
        queue_id=Q,
        rings=(RingRecord(agent, now, now + 15, ring_id, number),),
        entered_at=now,
        rings_started=1,
    )
    connected = CallRecord(
        tenant_id=T,
        call_id=call_id,
        phase=CallPhase.CONNECTED,
        did="+15550100",
        caller_id="5551234",
        caller_name="Caller",
        priority=0,
        arrived_at=now,
        seq=index,
        queue_id=Q,
        agent_id=agent,
        answered_at=now + 3,
        entered_at=now,
        rings_started=1,
        agent_number=number,
    )

    def agent_as(status: AgentStatus, device: DeviceState) -> AgentRecord:
        return AgentRecord(agent, Presence.AVAILABLE, "", device, None, status)

    memory = QueueMemoryRecord(Q, agent, offered=index + 1, answered=index, completed=index)
    stats = AgentQueueStats(Q, agent, now + 60, index // AGENTS + 1, 57.0 * (index // AGENTS + 1))

    def messages(what: str) -> list[OutboxMessage]:
        body = b'{"call_id": "%s", "what": "%s"}' % (call_id.encode(), what.encode())
        return [
            OutboxMessage(f"ringmaster/1/cmd/{what}", body),
            OutboxMessage("ringmaster/1/state/queue/1", b'{"waiting": 1}', retain=True),
        ]

    return [
        (
            StateChanges(
                LiveState(
                    calls=(ringing,),
                    agents=(agent_as(AgentStatus.RINGING, DeviceState.RINGING),),
                    queues=(memory,),
                )
            ),
            messages("ring"),
            [
                VisitOpened(T, call_id, Q, now, 1, "+15550100", "5551234", Arrival("C", 0, now)),
                RingStarted(T, call_id, ring_id, number, now),
            ],
        ),
        (
            StateChanges(
                LiveState(
                    calls=(connected,),
                    agents=(agent_as(AgentStatus.BUSY, DeviceState.IN_USE),),
                )
            ),
            messages("answered"),
            [
                VisitAnswered(T, call_id, number, now + 3, ring_id),
                RingEnded(T, call_id, ring_id, number, now + 3, "answered"),
            ],
        ),
        (
            StateChanges(
                LiveState(
                    agents=(agent_as(AgentStatus.AVAILABLE, DeviceState.IDLE),),
                    queues=(memory,),
                    agent_stats=(stats,),
                ),
                calls_removed=((T, call_id),),
            ),
            messages("hangup"),
            [VisitEnded(T, call_id, "completed", now + 60, queue_id=Q, talk_s=57.0)],
        ),
    ]


async def commit_round(store: Store, turns: list[Turn], watermark: list[int]) -> dict[str, Any]:
    """Commit every turn; the wall time of each, and the CPU per turn."""
    walls: list[int] = []
    cpu = time.process_time()
    for changes, outbox, history in turns:
        start = time.perf_counter_ns()
        seqs = await store.commit(changes, outbox, watermark[0] or None, history)
        walls.append(time.perf_counter_ns() - start)
        # The publisher confirms each turn's messages before the next turn's commit.
        watermark[0] = seqs[-1]
    return {"walls": walls, "cpu_s": time.process_time() - cpu}


async def measure(calls: int, rounds: int) -> dict[str, Any]:
    """Open the four stores and run `rounds` rounds of `calls` calls' lives on each."""
    names = ["sqlite", "sqlite_full", "postgresql", "postgresql_async_commit"]
    with tempfile.TemporaryDirectory() as folder, start_postgres(durable=True) as cluster:
        database = cluster.create_database("bench")
        url = cluster.url(database)
        stores = {
            "sqlite": await Store.open(Path(folder) / "n.sqlite3"),
            "sqlite_full": await Store.open(Path(folder) / "f.sqlite3", synchronous="FULL"),
            "postgresql": await Store.open(url),
            "postgresql_async_commit": await Store.open(f"{url}?synchronous_commit=off"),
        }
        watermarks = {name: [0] for name in names}
        walls: dict[str, list[int]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        next_call = 0
        try:
            for number in range(rounds):
                order = names if number % 2 == 0 else names[::-1]
                for name in order:
                    turns = [
                        turn
                        for index in range(next_call, next_call + calls)
                        for turn in call_life(index, 1_790_000_000.0 + index)
                    ]
                    done = await commit_round(stores[name], turns, watermarks[name])
                    walls[name] += done["walls"]
                    cpu[name].append(done["cpu_s"] / len(turns))
                # Each round's calls are new on every store (the same ids on each).
                next_call += calls
        finally:
            for store in stores.values():
                await store.close()

    def figures(name: str) -> dict[str, float]:
        ordered = sorted(walls[name])
        return {
            "best_us": round(ordered[0] / 1e3, 1),
            "median_us": round(statistics.median(ordered) / 1e3, 1),
            "p99_us": round(ordered[int(0.99 * (len(ordered) - 1))] / 1e3, 1),
            "cpu_us": round(statistics.median(cpu[name]) * 1e6, 1),
        }

    results = {name: figures(name) for name in names}
    base = results["sqlite"]
    return {
        "machine": machine(),
        "settings": {"calls_per_round": calls, "turns_per_round": 3 * calls, "rounds": rounds},
        "per_turn": results,
        "ratio_to_sqlite": {
            name: {key: round(results[name][key] / base[key], 2) for key in ("median_us", "cpu_us")}
            for name in names
        },
    }


def main() -> None:
    """Run the measurement and print its JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="call lives per round and store")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.calls, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
