"""Live-state records <-> rows: calls and their rings, agents, queue memory, agent stats.

Backend-neutral, like `config_rows`: a row is a tuple in the column order named here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from operator import attrgetter
from typing import Final

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
    EndedRing,
    QueueMemoryRecord,
    RingRecord,
)
from ringmaster.store.config_rows import Row, skills_text, skills_value

# Column orders: the row converters below build and unpack tuples in these orders.
# fmt: off
CALL_COLUMNS: Final = (
    "tenant_id", "call_id", "phase", "queue_id", "did", "caller_id", "caller_name", "priority",
    "arrived_at", "seq", "tried", "retry_at", "agent_id", "answered_at", "ended_at",
    "entered_at", "hops", "callback_number", "skills", "announce_at", "progress_at",
    "rings_started", "ended_rings", "agent_number",
)
AGENT_COLUMNS: Final = (
    "extension_id", "presence", "presence_reason", "device", "wrapup_until", "status",
    "last_call_ended_at", "skip_until", "unanswered",
)
QUEUE_MEMORY_COLUMNS: Final = (
    "queue_id", "last_rung", "offered", "answered", "abandoned", "completed",
    "last_answered", "overflowed", "answered_within", "abandoned_within", "last_answer_at",
    "answer_interval_s",
)
STATS_COLUMNS: Final = (
    "queue_id", "extension_id", "last_call_ended_at", "calls_completed", "talk_time_s",
)
# fmt: on
CALL_KEY: Final = ("tenant_id", "call_id")
#: A ring row; `position` is its order within `CallRecord.rings`.
RING_COLUMNS: Final = (
    "tenant_id", "call_id", "extension_id", "position", "started_at", "deadline", "ring_id",
    "number",
)  # fmt: skip
#: An outbox row; `shard` is 0 without a cluster.
OUTBOX_COLUMNS: Final = ("shard", "topic", "payload", "retain")


def call_row(call: CallRecord) -> Row:
    """A call as a row of `CALL_COLUMNS` (its rings are rows of their own)."""
    return (
        call.tenant_id,
        call.call_id,
        call.phase.value,
        call.queue_id,
        call.did,
        call.caller_id,
        call.caller_name,
        call.priority,
        call.arrived_at,
        call.seq,
        json.dumps(call.tried),
        call.retry_at,
        call.agent_id,
        call.answered_at,
        call.ended_at,
        call.entered_at,
        call.hops,
        call.callback_number,
        skills_text(call.skills),
        call.announce_at,
        call.progress_at,
        call.rings_started,
        # Most calls have none: skip the encoder for them (commit is hot).
        json.dumps([list(e) for e in map(ended_ring_row, call.ended_rings)])
        if call.ended_rings
        else "[]",
        call.agent_number,
    )


def ended_ring_row(ended: EndedRing) -> tuple[int, str, str]:
    """An ended ring as stored in a call's `ended_rings` JSON list."""
    return (ended.extension_id, ended.ring_id, ended.how)


def call_record(row: Row, rings: tuple[RingRecord, ...]) -> CallRecord:
    """The inverse of `call_row`, given the call's rings in order."""
    (
        tenant_id,
        call_id,
        phase,
        queue_id,
        did,
        caller_id,
        caller_name,
        priority,
        arrived_at,
        seq,
        tried,
        retry_at,
        agent_id,
        answered_at,
        ended_at,
        entered_at,
        hops,
        callback_number,
        skills,
        announce_at,
        progress_at,
        rings_started,
        ended_rings,
        agent_number,
    ) = row
    return CallRecord(
        tenant_id=TenantId(tenant_id),
        call_id=CallId(call_id),
        phase=CallPhase(phase),
        did=did,
        caller_id=caller_id,
        caller_name=caller_name,
        priority=priority,
        arrived_at=arrived_at,
        seq=seq,
        queue_id=None if queue_id is None else QueueId(queue_id),
        rings=rings,
        tried=tuple(ExtensionId(e) for e in json.loads(tried)),
        retry_at=retry_at,
        agent_id=None if agent_id is None else ExtensionId(agent_id),
        answered_at=answered_at,
        ended_at=ended_at,
        entered_at=entered_at,
        hops=hops,
        callback_number=callback_number,
        skills=skills_value(skills),
        announce_at=announce_at,
        progress_at=progress_at,
        rings_started=rings_started,
        ended_rings=()
        if ended_rings == "[]"
        else tuple(EndedRing(ExtensionId(e), r, how) for e, r, how in json.loads(ended_rings)),
        agent_number=agent_number,
    )


def agent_row(agent: AgentRecord) -> Row:
    """An agent's live state as a row of `AGENT_COLUMNS`."""
    return (
        agent.extension_id,
        agent.presence.value,
        agent.presence_reason,
        agent.device.value,
        agent.wrapup_until,
        agent.status.value,
        agent.last_call_ended_at,
        agent.skip_until,
        agent.unanswered,
    )


def agent_record(row: Row) -> AgentRecord:
    """The inverse of `agent_row`."""
    (
        extension_id,
        presence,
        reason,
        device,
        wrapup_until,
        status,
        last_call_ended_at,
        skip_until,
        unanswered,
    ) = row
    return AgentRecord(
        extension_id=ExtensionId(extension_id),
        presence=Presence(presence),
        presence_reason=reason,
        device=DeviceState(device),
        wrapup_until=wrapup_until,
        status=AgentStatus(status),
        last_call_ended_at=last_call_ended_at,
        skip_until=skip_until,
        unanswered=unanswered,
    )


# A queue's memory and an agent's statistics in a queue are stored field for field: their
# columns are their fields' names, and their values need no conversion (ids are ints).
#: A queue's strategy memory and counters as a row of `QUEUE_MEMORY_COLUMNS`.
queue_memory_row: Callable[[QueueMemoryRecord], Row] = attrgetter(*QUEUE_MEMORY_COLUMNS)
#: An agent's statistics in one queue as a row of `STATS_COLUMNS`.
stats_row: Callable[[AgentQueueStats], Row] = attrgetter(*STATS_COLUMNS)


def queue_memory_record(row: Row) -> QueueMemoryRecord:
    """The inverse of `queue_memory_row`."""
    return QueueMemoryRecord(**dict(zip(QUEUE_MEMORY_COLUMNS, row, strict=True)))


def stats_record(row: Row) -> AgentQueueStats:
    """The inverse of `stats_row` (`talk_time_s` is a REAL column: always a float)."""
    return AgentQueueStats(**dict(zip(STATS_COLUMNS, row, strict=True)))
