"""The reports' statements (`ringmaster.store.reports` runs them): read-only aggregates.

The report's intervals come in as one JSON array of their starts, the range's end
last (``?1``): SQL cannot align intervals in a time zone, Python can. Each visit is
put in the interval its ``entered_at`` falls in (as Asterisk's reports do by
ENTERQUEUE), by a range join on the index ``call_visits_report``.
"""

from __future__ import annotations

from typing import Final

_BOUNDS: Final = """
WITH bounds AS (
    SELECT CAST(key AS INTEGER) AS slot, value AS lo,
        lead(value) OVER (ORDER BY CAST(key AS INTEGER)) AS hi
    FROM json_each(?1)
), v AS (
    SELECT b.slot, c.*
    FROM bounds AS b
    JOIN call_visits AS c ON c.tenant_id = ?2 AND c.entered_at >= b.lo AND c.entered_at < b.hi
    WHERE b.hi IS NOT NULL AND c.queue_id IS NOT NULL AND (?3 IS NULL OR c.queue_id = ?3)
)
"""

#: ?1 bounds, ?2 tenant, ?3 queue or NULL, ?4 the default `service_level` (a queue
#: since deleted), ?5 the short-abandon threshold (s). One row per interval and queue
#: with visits. "Waited": in the line (a position) and no longer waiting (a wait).
QUEUE_FIGURES: Final = (
    _BOUNDS
    + """
SELECT v.slot, v.queue_id, max(v.queue_number), max(v.queue_name),
    count(*) FILTER (WHERE v.outcome IS NOT 'rejected'),
    count(*) FILTER (WHERE v.answered_at IS NOT NULL),
    count(*) FILTER (WHERE v.outcome = 'abandoned'),
    count(*) FILTER (WHERE v.outcome = 'abandoned' AND v.wait_s <= ?5),
    count(*) FILTER (WHERE v.outcome = 'overflowed'),
    count(*) FILTER (WHERE v.outcome = 'rejected'),
    count(*) FILTER (WHERE v.answered_at IS NOT NULL
        AND v.wait_s <= coalesce(json_extract(q.options, '$.service_level'), ?4)),
    total(v.wait_s) FILTER (WHERE v.answered_at IS NOT NULL),
    total(v.talk_s), count(v.talk_s),
    total(v.wait_s) FILTER (WHERE v.position IS NOT NULL),
    count(v.wait_s) FILTER (WHERE v.position IS NOT NULL),
    max(v.wait_s) FILTER (WHERE v.position IS NOT NULL)
FROM v LEFT JOIN queues AS q ON q.id = v.queue_id
GROUP BY v.slot, v.queue_id
ORDER BY v.queue_id, v.slot
"""
)

#: ?1..?3 as `QUEUE_FIGURES`, ?4 the percentile (an integer 1..100): each interval's
#: and queue's nearest-rank percentile of the waits of the calls that waited
#: (the ceil(p * n / 100)-th smallest).
QUEUE_WAIT_PERCENTILE: Final = (
    _BOUNDS
    + """
, ranked AS (
    SELECT slot, queue_id, wait_s,
        row_number() OVER (PARTITION BY slot, queue_id ORDER BY wait_s) AS rank,
        count(*) OVER (PARTITION BY slot, queue_id) AS n
    FROM v WHERE position IS NOT NULL AND wait_s IS NOT NULL
)
SELECT slot, queue_id, wait_s FROM ranked WHERE rank = (?4 * n + 99) / 100
"""
)

#: ?1 tenant, ?2 at: each agent's last recorded state before `at`, with the reason of
#: their last pause (what a paused agent is paused for).
AGENT_STATES_BEFORE: Final = """
SELECT a.extension, a.state, (
    SELECT p.reason FROM agent_activity AS p
    -- by the agent's index, newest first (rows are written in time order); not by time,
    -- which would scan the whole tenant's past for each agent
    WHERE p.tenant_id = ?1 AND p.extension = a.extension AND p.kind = 'pause' AND +p.at < ?2
    ORDER BY p.id DESC LIMIT 1
)
FROM agent_activity AS a
WHERE a.id IN (
    SELECT max(id) FROM agent_activity
    WHERE tenant_id = ?1 AND at < ?2 AND state IS NOT NULL GROUP BY extension
)
"""

#: ?1 tenant, ?2 from, ?3 to: the agent activity between, in order.
AGENT_ACTIVITY: Final = """
SELECT extension, at, kind, reason, state FROM agent_activity
WHERE tenant_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, id
"""

#: ?1 tenant, ?2 entered from, ?3 entered until: the calls answered, by whom, and how
#: long they talked (NULL: still talking, or ended without a talk time).
ANSWERED_CALLS: Final = """
SELECT agent_number, answered_at, talk_s, ended_at FROM call_visits
WHERE tenant_id = ?1 AND entered_at >= ?2 AND entered_at < ?3
    AND answered_at IS NOT NULL AND agent_number IS NOT NULL
"""
