"""The reads of Asterisk's queue_log (`ringmaster.store.queue_log` runs them).

The daemon reads a window after each turn that wrote history
(``history.queue_log_file``), so each read finds its rows by an index: visits by
``ended_at`` (the open ones, NULL, and those ended since the window's start), rings
by their visit, activity by ``at``, an agent's enrolments by its number.

``?1`` the tenant (NULL: every tenant), ``?2`` from (included), ``?3`` until (excluded).
A window's visits are every visit that was in its queue at some time of the window
(entered before its end, not ended before its start): those that wrote a line in it,
and those a caller's place in the line is counted among.
"""

from __future__ import annotations

from typing import Final

from ringmaster.store.sqlite.history_statements import RING_COLUMNS, VISIT_COLUMNS

_IN_WINDOW: Final = (
    "(?1 IS NULL OR v.tenant_id = ?1) AND v.entered_at < ?3"
    " AND (v.ended_at IS NULL OR v.ended_at >= ?2)"
)

VISITS: Final = (
    f"SELECT {', '.join(f'v.{c}' for c in VISIT_COLUMNS)} FROM call_visits AS v"
    f" WHERE {_IN_WINDOW} ORDER BY v.entered_at, v.id"
)
RINGS: Final = (
    f"SELECT {', '.join(f'r.{c}' for c in RING_COLUMNS)} FROM call_rings AS r"
    f" JOIN call_visits AS v ON v.id = r.visit_id WHERE {_IN_WINDOW}"
    " ORDER BY r.started_at, r.id"
)

#: A member's activity in the window (by the index on `at`).
ACTIVITY: Final = """
SELECT tenant_id, extension, at, kind, reason, state, queue_id, call_id FROM agent_activity
WHERE (?1 IS NULL OR tenant_id = ?1) AND at >= ?2 AND at < ?3
    AND kind IN ('login', 'logout', 'pause', 'unpause', 'enrol', 'unenrol')
ORDER BY at, id
"""

#: Every enrolment record kept of one agent (?1 tenant, ?2 extension number), any time:
#: which queues it was in when it logged in or paused.
ENROLMENTS_OF_AGENT: Final = """
SELECT tenant_id, extension, at, kind, reason, state, queue_id, call_id FROM agent_activity
WHERE tenant_id = ?1 AND extension = ?2 AND kind IN ('enrol', 'unenrol')
ORDER BY id  -- the order they were written in; not by `at`: that picks the index on `at`
"""

#: Today's enrolments: (tenant, extension number, queue id). ?1 the tenant or NULL.
ENROLMENTS: Final = """
SELECT e.tenant_id, e.number, a.queue_id FROM queue_agents AS a
JOIN extensions AS e ON e.id = a.extension_id
WHERE ?1 IS NULL OR e.tenant_id = ?1
"""

#: Each queue's number, by id. ?1 the tenant or NULL.
QUEUE_NUMBERS: Final = "SELECT id, queue_number FROM queues WHERE ?1 IS NULL OR tenant_id = ?1"
#: A removed queue's number, as its last visit kept it. ?1 tenant, ?2 queue id.
REMOVED_QUEUE_NUMBER: Final = """
SELECT queue_number FROM call_visits WHERE tenant_id = ?1 AND queue_id = ?2
ORDER BY entered_at DESC LIMIT 1
"""
