"""The engine's live state and the outbox: one turn's commit, and the restore at start-up.

*Transactional outbox*: the MQTT messages the engine decided to publish are committed
in the same transaction as the state that implies them, so a crash between deciding
and publishing loses nothing; at start-up the service re-publishes `pending_outbox`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from ringmaster.contract import OutboxMessage
from ringmaster.engine.model import CallId, CallKey, ExtensionId, TenantId
from ringmaster.engine.records import LiveState, RingRecord, StateChanges
from ringmaster.history import HistoryWrite
from ringmaster.store import live_rows
from ringmaster.store.backend import Connection, Step
from ringmaster.store.config_rows import Row
from ringmaster.store.history import history_steps
from ringmaster.store.sqlite import statements as sql


def turn_steps(
    changes: StateChanges,
    outbox: Sequence[OutboxMessage],
    delivered_up_to: int | None,
    history: Sequence[HistoryWrite] = (),
    shard: int = 0,
) -> list[Step]:
    """The statements of one turn's commit, each with its rows; none for a kind without rows.

    Upserts come before removals; a changed call's rings are replaced whole, a removed
    call's go by cascade; then the turn's history writes, in order; the outbox messages
    are inserted last, so that the last inserted row gives their seqs. The watermark
    and the messages are `shard`'s (0 without a cluster): another shard's rows are
    another holder's.
    """
    live = changes.live
    steps: list[Step] = []

    def step(statement: str, rows: Sequence[Row]) -> None:
        if rows:
            steps.append((statement, rows))

    step(sql.UPSERT_CALL, [live_rows.call_row(c) for c in live.calls])
    step(sql.DELETE_RINGS, [(c.tenant_id, c.call_id) for c in live.calls])
    step(
        sql.INSERT_RING,
        [
            (
                c.tenant_id,
                c.call_id,
                r.extension_id,
                position,
                r.started_at,
                r.deadline,
                r.ring_id,
                r.number,
            )
            for c in live.calls
            for position, r in enumerate(c.rings)
        ],
    )
    step(sql.DELETE_CALL, list(changes.calls_removed))
    step(sql.UPSERT_AGENT, [live_rows.agent_row(a) for a in live.agents])
    step(sql.DELETE_AGENT, [(e,) for e in changes.agents_removed])
    step(sql.UPSERT_QUEUE_MEMORY, [live_rows.queue_memory_row(q) for q in live.queues])
    step(sql.DELETE_QUEUE_MEMORY, [(q,) for q in changes.queues_removed])
    step(sql.UPSERT_STATS, [live_rows.stats_row(s) for s in live.agent_stats])
    step(sql.DELETE_STATS, list(changes.agent_stats_removed))
    steps += history_steps(history)
    if delivered_up_to is not None:
        step(sql.DELETE_DELIVERED, [(shard, delivered_up_to)])
    step(sql.INSERT_OUTBOX, [(shard, m.topic, m.payload, int(m.retain)) for m in outbox])
    return steps


async def load_live(db: Connection, tenants: Collection[TenantId] | None = None) -> LiveState:
    """The live state as last committed, in one query per table (never one per row).

    With `tenants`, only theirs (a shard's): their calls and rings, the agents of their
    extensions, the memory and statistics of their queues.
    """
    if tenants is None:
        params: tuple[str, ...] = ()
        queries = (
            sql.SELECT_RINGS,
            sql.SELECT_CALLS,
            sql.SELECT_AGENTS,
            sql.SELECT_QUEUE_MEMORY,
            sql.SELECT_STATS,
        )
    else:
        params = (json.dumps(sorted(int(t) for t in tenants)),)
        queries = (
            sql.SELECT_RINGS_OF,
            sql.SELECT_CALLS_OF,
            sql.SELECT_AGENTS_OF,
            sql.SELECT_QUEUE_MEMORY_OF,
            sql.SELECT_STATS_OF,
        )
    select_rings, select_calls, select_agents, select_queue_memory, select_stats = queries
    rings: dict[CallKey, list[RingRecord]] = {}
    for (
        tenant_id,
        call_id,
        extension_id,
        started_at,
        deadline,
        ring_id,
        number,
    ) in await db.fetch_all(select_rings, params):
        rings.setdefault((TenantId(tenant_id), CallId(call_id)), []).append(
            RingRecord(ExtensionId(extension_id), started_at, deadline, ring_id, number)
        )
    calls = tuple(
        live_rows.call_record(tuple(row), tuple(rings.get((row[0], row[1]), ())))
        for row in await db.fetch_all(select_calls, params)
    )
    agents = tuple(
        live_rows.agent_record(tuple(row)) for row in await db.fetch_all(select_agents, params)
    )
    queues = tuple(
        live_rows.queue_memory_record(tuple(row))
        for row in await db.fetch_all(select_queue_memory, params)
    )
    stats = tuple(
        live_rows.stats_record(tuple(row)) for row in await db.fetch_all(select_stats, params)
    )
    return LiveState(calls=calls, agents=agents, queues=queues, agent_stats=stats)


async def pending_outbox(db: Connection, shard: int = 0) -> list[tuple[int, OutboxMessage]]:
    """`shard`'s messages committed but not yet confirmed published, oldest first, with seqs."""
    rows = await db.fetch_all(sql.SELECT_OUTBOX, (shard,))
    return [
        (seq, OutboxMessage(topic, bytes(payload), bool(retain)))
        for seq, topic, payload, retain in rows
    ]
