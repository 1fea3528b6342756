"""Call and agent history in the store: a turn's writes, the API's reads, pruning.

`history_steps` turns `ringmaster.history`'s writes into statements that
`Store.commit` runs in the turn's own transaction, in the order they were
decided (a ring is opened before it is ended). The reads are the admin API's
(`HistoryReader`, on the reading connection); the pruning is the retention's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ringmaster.engine.model import CallId, QueueId, TenantId
from ringmaster.history import (
    AgentActivity,
    CallRejected,
    EnrolmentChanged,
    HistoryWrite,
    QueueGone,
    RingEnded,
    RingStarted,
    VisitAnswered,
    VisitEnded,
    VisitOpened,
)
from ringmaster.store.backend import Connection, Step
from ringmaster.store.config_rows import Row
from ringmaster.store.records import Page
from ringmaster.store.repository import Repository
from ringmaster.store.sqlite import history_statements as sql


def _steps_of(write: HistoryWrite) -> list[tuple[str, Row]]:  # noqa: PLR0911
    match write:
        case VisitOpened():
            came = write.arrival
            opened: list[tuple[str, Row]] = [
                (
                    sql.OPEN_VISIT,
                    (
                        write.tenant_id,
                        write.call_id,
                        write.queue_id,
                        write.entered_at,
                        write.position,
                        write.did,
                        write.caller_id,
                        None if came is None else came.caller_name,
                        None if came is None else came.priority,
                        None if came is None else came.arrived_at,
                        write.callback_number,
                        write.outcome,
                        write.reason,
                    ),
                )
            ]
            if write.callback_number is not None:
                opened.append((sql.MOVE_OPEN_RINGS, (write.tenant_id, write.call_id)))
            return opened
        case VisitAnswered():
            answered = (write.at, write.tenant_id, write.call_id, write.extension, write.ring_id)
            return [(sql.ANSWER_VISIT, answered[:4]), (sql.ANSWER_RING, answered)]
        case VisitEnded():
            return [
                (
                    sql.END_VISIT,
                    (
                        write.at,
                        write.outcome,
                        write.reason,
                        write.talk_s,
                        write.tenant_id,
                        write.call_id,
                        write.queue_id,
                        write.overflow_queue_id,
                        write.overflow_extension,
                    ),
                )
            ]
        case CallRejected():
            return [
                (
                    sql.REJECTED_VISIT,
                    (
                        write.tenant_id,
                        write.call_id,
                        write.did,
                        write.reason,
                        write.at,
                        write.caller_id,
                        write.caller_name,
                        write.priority,
                    ),
                )
            ]
        case RingStarted():
            return [
                (
                    sql.START_RING,
                    (write.tenant_id, write.call_id, write.ring_id, write.extension, write.at),
                )
            ]
        case RingEnded():
            ended = (
                write.at,
                write.outcome,
                write.cancel_reason,
                write.tenant_id,
                write.call_id,
                write.ring_id,
                write.extension,
            )
            steps: list[tuple[str, Row]] = [(sql.END_RING, ended)]
            if write.unanswered:
                steps.append((sql.RING_UNANSWERED, ended))
            return steps
        case AgentActivity():
            state = None if write.state is None else write.state.value
            return [
                (
                    sql.INSERT_ACTIVITY,
                    (write.tenant_id, write.extension, write.at, write.kind, write.reason, state),
                )
            ]
        case EnrolmentChanged():
            return [(sql.ENROLMENT, (write.at, write.kind, write.queue_id, write.extension_id))]
        case QueueGone():
            return [(sql.QUEUE_GONE, (write.at, write.queue_id))]


def history_steps(writes: Sequence[HistoryWrite]) -> list[Step]:
    """The statements of a turn's history writes, one each and in order.

    Never batched: a statement may read what the one before it wrote.
    """
    return [(statement, [row]) for write in writes for statement, row in _steps_of(write)]


# --- reads ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingRow:
    """A ring of a call, as stored."""

    visit_id: int
    ring_id: str
    extension: str
    started_at: float
    ended_at: float | None
    outcome: str | None
    cancel_reason: str


@dataclass(frozen=True, slots=True)
class VisitRow:
    """A call's visit to a queue, as stored (`rings` only when read with its call)."""

    id: int
    tenant_id: TenantId
    call_id: CallId
    visit: int
    queue_id: QueueId | None
    queue_number: str | None
    queue_name: str | None
    did: str
    caller_id: str
    caller_name: str
    priority: int
    arrived_at: float
    entered_at: float
    position: int | None
    callback_number: str | None
    answered_at: float | None
    ended_at: float | None
    outcome: str | None
    reason: str
    overflow_queue_id: QueueId | None
    overflow_extension: str | None
    agent_extension_id: int | None
    agent_number: str | None
    wait_s: float | None
    talk_s: float | None
    rings: tuple[RingRow, ...] = ()


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """An agent activity, as stored."""

    tenant_id: TenantId
    extension: str
    at: float
    kind: str
    reason: str
    state: str | None
    queue_id: QueueId | None
    call_id: CallId | None


@dataclass(frozen=True, slots=True)
class VisitFilter:
    """Which visits a list wants: each field None for no test on it."""

    tenant_id: TenantId | None = None
    queue_id: QueueId | None = None
    #: `entered_at` from (included) and until (excluded), Unix seconds.
    since: float | None = None
    until: float | None = None
    outcome: str | None = None


class HistoryReader(Repository):
    """Reads of the history, inside a read transaction (`Store.history`)."""

    async def visits(
        self, where: VisitFilter, *, limit: int = 100, offset: int = 0
    ) -> Page[VisitRow]:
        """A page of visits by the time they entered their queue, oldest first."""
        self._check_open()
        given = [
            (test, value)
            for field, test in sql.VISIT_TESTS.items()
            if (value := getattr(where, field)) is not None
        ]
        count, page = sql.visits_page([test for test, _ in given])
        params = tuple(value for _, value in given)
        ((total,),) = await self._db.fetch_all(count, params)
        rows = await self._db.fetch_all(page, (*params, limit, offset))
        return Page([VisitRow(*row) for row in rows], int(total))

    async def call(self, tenant_id: TenantId, call_id: CallId) -> list[VisitRow]:
        """The call's visits in order, each with its rings; empty for an unknown call."""
        self._check_open()
        rings: dict[int, list[RingRow]] = {}
        for row in await self._db.fetch_all(sql.RINGS_OF_CALL, (tenant_id, call_id)):
            ring = RingRow(*row)
            rings.setdefault(ring.visit_id, []).append(ring)
        rows = await self._db.fetch_all(sql.VISITS_OF_CALL, (tenant_id, call_id))
        return [replace(VisitRow(*row), rings=tuple(rings.get(row[0], ()))) for row in rows]

    async def activity(
        self, tenant_id: TenantId, since: float | None = None, until: float | None = None
    ) -> list[ActivityRow]:
        """The tenant's agent activity from `since` (included) to `until` (excluded), in order."""
        self._check_open()
        rows = await self._db.fetch_all(
            sql.ACTIVITY_OF_TENANT,
            (tenant_id, -1.0 if since is None else since, until if until is not None else 1e18),
        )
        return [ActivityRow(*row) for row in rows]

    async def latest_states(
        self, tenant_id: TenantId, extensions: Sequence[str]
    ) -> dict[str, tuple[str, float]]:
        """Each agent's last recorded state and since when, by its number.

        An agent with no state recorded (none yet, or all pruned) is left out.
        """
        self._check_open()
        rows = await self._db.fetch_all(
            sql.LATEST_STATES, (tenant_id, json.dumps(list(extensions)))
        )
        return {extension: (state, at) for extension, state, at in rows}


async def prune(db: Connection, cutoff: float, batch: int) -> int:
    """Delete up to `batch` ended visits and `batch` agent activities older than `cutoff`.

    In one transaction; a visit's rings go with it. Returns how many rows went.
    """
    try:
        await db.begin_write()  # inside: a BEGIN cancelled may still have run
        visits = await db.execute(sql.PRUNE_VISITS, (cutoff, batch))
        activity = await db.execute(sql.PRUNE_ACTIVITY, (cutoff, batch))
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return visits + activity
