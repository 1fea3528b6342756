"""The history rows Asterisk's queue_log is rendered from (`ringmaster.queue_log`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ringmaster.engine.model import TenantId
from ringmaster.queue_log import DEFAULT_AGENT_FORMAT, Line, Membership, render
from ringmaster.store.history import ActivityRow, RingRow, VisitRow
from ringmaster.store.repository import Repository
from ringmaster.store.sqlite import queue_log_statements as sql


@dataclass(frozen=True, slots=True)
class QueueLogRows:
    """What one window of the queue_log is rendered from."""

    visits: list[VisitRow]
    #: The window's member activity, in order.
    activity: list[ActivityRow]
    #: Every enrolment record kept of the agents that logged in, out or paused in the
    #: window (any time), in order.
    enrolment_records: list[ActivityRow]
    #: Today's enrolments: the queue ids of each (tenant, extension number).
    enrolments: dict[tuple[int, str], list[int]]
    #: Each queue's number, by id.
    queue_numbers: dict[int, str]


class QueueLogReader(Repository):
    """Reads of the history for the queue_log, inside a read transaction (`Store.queue_log`)."""

    async def rows(self, tenant_id: TenantId | None, since: float, until: float) -> QueueLogRows:
        """The rows of the window from `since` (included) to `until` (excluded).

        Args:
            tenant_id: One tenant's, or None for every tenant's.
            since: Unix seconds.
            until: Unix seconds.
        """
        self._check_open()
        window = (tenant_id, since, until)
        rings: dict[int, list[RingRow]] = {}
        for row in await self._db.fetch_all(sql.RINGS, window):
            ring = RingRow(*row)
            rings.setdefault(ring.visit_id, []).append(ring)
        visits = [
            replace(VisitRow(*row), rings=tuple(rings.get(row[0], ())))
            for row in await self._db.fetch_all(sql.VISITS, window)
        ]
        activity = [ActivityRow(*row) for row in await self._db.fetch_all(sql.ACTIVITY, window)]
        records: list[ActivityRow] = []
        for agent in sorted({(a.tenant_id, a.extension) for a in activity if a.queue_id is None}):
            records += [
                ActivityRow(*row)
                for row in await self._db.fetch_all(sql.ENROLMENTS_OF_AGENT, agent)
            ]
        enrolments: dict[tuple[int, str], list[int]] = {}
        for tenant, number, queue_id in await self._db.fetch_all(sql.ENROLMENTS, (tenant_id,)):
            enrolments.setdefault((int(tenant), str(number)), []).append(int(queue_id))
        numbers = {
            int(queue_id): str(number)
            for queue_id, number in await self._db.fetch_all(sql.QUEUE_NUMBERS, (tenant_id,))
        }
        for change in activity:  # an enrolment in a queue removed since
            if change.queue_id is not None and change.queue_id not in numbers:
                found = list(
                    await self._db.fetch_all(
                        sql.REMOVED_QUEUE_NUMBER, (change.tenant_id, change.queue_id)
                    )
                )
                numbers[change.queue_id] = str(found[0][0]) if found else str(change.queue_id)
        return QueueLogRows(visits, activity, records, enrolments, numbers)

    async def lines(
        self,
        tenant_id: TenantId | None,
        since: float,
        until: float,
        *,
        agent_format: str = DEFAULT_AGENT_FORMAT,
    ) -> list[Line]:
        """The queue_log lines of the window from `since` (included) to `until` (excluded).

        Args:
            tenant_id: One tenant's, or None for every tenant's.
            since: Unix seconds.
            until: Unix seconds.
            agent_format: How an agent is named (``history.queue_log_agent``).
        """
        rows = await self.rows(tenant_id, since, until)
        return render(
            rows.visits,
            rows.activity,
            Membership(rows.enrolment_records, rows.enrolments),
            rows.queue_numbers,
            since=since,
            until=until,
            agent_format=agent_format,
        )
