"""The history's statements (`ringmaster.store.history` runs them): writes, reads, pruning.

Numbered parameters (``?1``) so that one value may be used twice. A write finds
the call's *open* visit (``outcome IS NULL``) or open ring (``ended_at IS NULL``),
and changes nothing when there is none: a message the engine ignored, a call
that was queued before the history existed.
"""

from __future__ import annotations

from typing import Final

#: The columns a visit is read with, in `history_rows.visit_record`'s order.
VISIT_COLUMNS: Final = (
    "id",
    "tenant_id",
    "call_id",
    "visit",
    "queue_id",
    "queue_number",
    "queue_name",
    "did",
    "caller_id",
    "caller_name",
    "priority",
    "arrived_at",
    "entered_at",
    "position",
    "callback_number",
    "answered_at",
    "ended_at",
    "outcome",
    "reason",
    "overflow_queue_id",
    "overflow_extension",
    "agent_extension_id",
    "agent_number",
    "wait_s",
    "talk_s",
)
RING_COLUMNS: Final = (
    "visit_id",
    "ring_id",
    "extension",
    "started_at",
    "ended_at",
    "outcome",
    "cancel_reason",
)

# ?1 tenant, ?2 call, ?3 queue, ?4 entered_at, ?5 position, ?6 did, ?7 caller_id,
# ?8 caller_name, ?9 priority, ?10 arrived_at, ?11 callback_number, ?12 outcome, ?13 reason.
# What the row does not say (NULL) is the call's previous visit's.
OPEN_VISIT: Final = """
INSERT INTO call_visits (
    tenant_id, call_id, visit, queue_id, queue_number, queue_name, did, caller_id,
    caller_name, priority, arrived_at, entered_at, position, callback_number,
    ended_at, outcome, reason, wait_s
)
SELECT ?1, ?2, COALESCE(p.visit, 0) + 1, ?3, q.queue_number, q.name,
    COALESCE(?6, p.did, ''), COALESCE(?7, p.caller_id, ''), COALESCE(?8, p.caller_name, ''),
    COALESCE(?9, p.priority, 0), COALESCE(?10, p.arrived_at, ?4), ?4, ?5, ?11,
    CASE WHEN ?12 IS NULL THEN NULL ELSE ?4 END, ?12, ?13,
    CASE WHEN ?12 IS NULL THEN NULL ELSE 0.0 END
FROM (SELECT 1)
LEFT JOIN (
    SELECT visit, did, caller_id, caller_name, priority, arrived_at FROM call_visits
    WHERE tenant_id = ?1 AND call_id = ?2 ORDER BY visit DESC LIMIT 1
) AS p
LEFT JOIN queues AS q ON q.id = ?3
"""

#: A callback's visit takes over the rings still on when it was asked for. ?1 tenant, ?2 call.
MOVE_OPEN_RINGS: Final = """
UPDATE call_rings SET visit_id = (
    SELECT id FROM call_visits WHERE tenant_id = ?1 AND call_id = ?2 ORDER BY visit DESC LIMIT 1
)
WHERE tenant_id = ?1 AND call_id = ?2 AND ended_at IS NULL
"""

# ?1 tenant, ?2 call, ?3 did, ?4 reason, ?5 at, ?6 caller_id, ?7 caller_name, ?8 priority.
# The queue is the DID route's, when it names one (not for a DID without a route).
REJECTED_VISIT: Final = """
INSERT INTO call_visits (
    tenant_id, call_id, visit, queue_id, queue_number, queue_name, did, caller_id,
    caller_name, priority, arrived_at, entered_at, ended_at, outcome, reason, wait_s
)
SELECT ?1, ?2, COALESCE(
        (SELECT MAX(visit) FROM call_visits WHERE tenant_id = ?1 AND call_id = ?2), 0
    ) + 1,
    q.id, q.queue_number, q.name, ?3, ?6, ?7, ?8, ?5, ?5, ?5, 'rejected', ?4, 0.0
FROM (SELECT 1)
LEFT JOIN did_routes AS r ON r.tenant_id = ?1 AND r.did = ?3 AND ?4 <> 'no_route'
LEFT JOIN queues AS q ON q.id = r.queue_id
"""

# ?1 at, ?2 tenant, ?3 call, ?4 extension number, ?5 ring_id or NULL.
ANSWER_VISIT: Final = """
UPDATE call_visits SET answered_at = ?1, agent_number = ?4,
    agent_extension_id = (SELECT id FROM extensions WHERE tenant_id = ?2 AND number = ?4),
    wait_s = round(?1 - entered_at, 3)
WHERE tenant_id = ?2 AND call_id = ?3 AND outcome IS NULL AND answered_at IS NULL
"""
#: The ring answered: the one named, else the extension's latest (on, or ended by
#: us just before the PBX's answer reached us: a late answer).
ANSWER_RING: Final = """
UPDATE call_rings SET ended_at = ?1, outcome = 'answered', cancel_reason = ''
WHERE id = (
    SELECT id FROM call_rings WHERE tenant_id = ?2 AND call_id = ?3 AND extension = ?4
        AND (?5 IS NULL OR ring_id = ?5)
    ORDER BY id DESC LIMIT 1
)
"""

# ?1 at, ?2 outcome, ?3 reason, ?4 talk_s, ?5 tenant, ?6 call, ?7 queue or NULL,
# ?8 overflow queue, ?9 overflow extension.
END_VISIT: Final = """
UPDATE call_visits SET ended_at = ?1, outcome = ?2, reason = ?3, talk_s = ?4,
    overflow_queue_id = ?8, overflow_extension = ?9,
    wait_s = coalesce(wait_s, round(?1 - entered_at, 3))
WHERE tenant_id = ?5 AND call_id = ?6 AND outcome IS NULL AND (?7 IS NULL OR queue_id = ?7)
"""

# ?1 tenant, ?2 call, ?3 ring_id, ?4 extension, ?5 at.
START_RING: Final = """
INSERT INTO call_rings (visit_id, tenant_id, call_id, ring_id, extension, started_at)
SELECT id, ?1, ?2, ?3, ?4, ?5 FROM call_visits
WHERE tenant_id = ?1 AND call_id = ?2 AND outcome IS NULL
ORDER BY visit DESC LIMIT 1
"""

# ?1 at, ?2 outcome, ?3 cancel reason, ?4 tenant, ?5 call, ?6 ring_id or NULL, ?7 extension.
END_RING: Final = """
UPDATE call_rings SET ended_at = ?1, outcome = ?2, cancel_reason = ?3
WHERE tenant_id = ?4 AND call_id = ?5 AND ended_at IS NULL
    AND (ring_id = ?6 OR (?6 IS NULL AND extension = ?7))
"""
#: Right after END_RING, with its parameters: the agent's ring not answered, if
#: END_RING ended one (``changes()``: the rows the last statement changed).
RING_UNANSWERED: Final = """
INSERT INTO agent_activity (tenant_id, extension, at, kind, reason, queue_id, call_id)
SELECT r.tenant_id, r.extension, ?1, 'ring_unanswered', ?2, v.queue_id, r.call_id
FROM call_rings AS r JOIN call_visits AS v ON v.id = r.visit_id
WHERE changes() > 0 AND r.tenant_id = ?4 AND r.call_id = ?5 AND r.ended_at = ?1
    AND r.outcome = ?2 AND (r.ring_id = ?6 OR (?6 IS NULL AND r.extension = ?7))
ORDER BY r.id DESC LIMIT 1
"""

INSERT_ACTIVITY: Final = (
    "INSERT INTO agent_activity (tenant_id, extension, at, kind, reason, state)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

#: ?1 at, ?2 kind (enrol or unenrol), ?3 queue, ?4 extension id: recorded when it
#: changes the agent's last enrolment record for the queue (a change of options is no
#: enrolment); nothing for an extension that no longer exists.
ENROLMENT: Final = """
INSERT INTO agent_activity (tenant_id, extension, at, kind, queue_id)
SELECT e.tenant_id, e.number, ?1, ?2, ?3 FROM extensions AS e
WHERE e.id = ?4 AND coalesce((
    SELECT a.kind FROM agent_activity AS a
    WHERE a.tenant_id = e.tenant_id AND a.extension = e.number AND a.queue_id = ?3
        AND a.kind IN ('enrol', 'unenrol')
    ORDER BY a.id DESC LIMIT 1
), '') <> ?2
"""

#: ?1 at, ?2 queue: every agent whose last enrolment record for the queue is `enrol`.
QUEUE_GONE: Final = """
INSERT INTO agent_activity (tenant_id, extension, at, kind, queue_id)
SELECT a.tenant_id, a.extension, ?1, 'unenrol', ?2 FROM agent_activity AS a
WHERE a.id IN (
    SELECT max(id) FROM agent_activity WHERE queue_id = ?2 AND kind IN ('enrol', 'unenrol')
    GROUP BY tenant_id, extension
) AND a.kind = 'enrol'
"""

# --- reads --------------------------------------------------------------------------------

VISITS_OF_CALL: Final = (
    f"SELECT {', '.join(VISIT_COLUMNS)} FROM call_visits"
    " WHERE tenant_id = ? AND call_id = ? ORDER BY visit"
)
RINGS_OF_CALL: Final = (
    f"SELECT {', '.join(RING_COLUMNS)} FROM call_rings"
    " WHERE tenant_id = ? AND call_id = ? ORDER BY started_at, id"
)

ACTIVITY_OF_TENANT: Final = (
    "SELECT tenant_id, extension, at, kind, reason, state, queue_id, call_id"
    " FROM agent_activity WHERE tenant_id = ? AND at >= ? AND at < ? ORDER BY at, id"
)

#: Each named agent's latest activity that left it in a state: its number, state, time.
#: One look-up per agent on ``agent_activity_latest``, backwards from its newest row.
LATEST_STATES: Final = """
SELECT a.extension, a.state, a.at FROM agent_activity AS a WHERE a.id IN (
    SELECT (SELECT b.id FROM agent_activity AS b
            WHERE b.tenant_id = ?1 AND b.extension = j.value AND b.state IS NOT NULL
            ORDER BY b.at DESC, b.id DESC LIMIT 1)
    FROM json_each(?2) AS j
)
"""

#: The tests `visits_page` may combine, by the filter's field.
VISIT_TESTS: Final = {
    "tenant_id": "tenant_id = ?",
    "queue_id": "queue_id = ?",
    "since": "entered_at >= ?",
    "until": "entered_at < ?",
    "outcome": "outcome = ?",
}


def visits_page(tests: list[str]) -> tuple[str, str]:
    """The count and the page (``LIMIT ? OFFSET ?``) of the visits `tests` select.

    By `entered_at`, oldest first (then by id): a page stays put while calls are added.
    """
    where = f" WHERE {' AND '.join(tests)}" if tests else ""
    count = f"SELECT count(*) FROM call_visits{where}"
    page = (
        f"SELECT {', '.join(VISIT_COLUMNS)} FROM call_visits{where}"
        " ORDER BY entered_at, id LIMIT ? OFFSET ?"
    )
    return count, page


# --- retention ----------------------------------------------------------------------------

#: ?1 cutoff, ?2 batch size: ended visits (their rings go by cascade).
PRUNE_VISITS: Final = (
    "DELETE FROM call_visits WHERE id IN"
    " (SELECT id FROM call_visits WHERE ended_at < ?1 ORDER BY ended_at LIMIT ?2)"
)
PRUNE_ACTIVITY: Final = (
    "DELETE FROM agent_activity WHERE id IN"
    " (SELECT id FROM agent_activity WHERE at < ?1 ORDER BY at LIMIT ?2)"
)
