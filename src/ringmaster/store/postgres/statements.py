"""The store's statements in PostgreSQL's dialect, by the SQLite statement they stand for.

The statement modules of `store.sqlite` are the canonical text the repositories name.
Most read the same in PostgreSQL once their parameters are renumbered (``?`` and ``?1``
become ``$1``), which `translate` does once per text: at import for every named
statement, on first use for the few built per call (a page, a filter), then cached.
`OVERRIDES` gives, by the same module and name, the statements that differ: SQLite's
functions (``json_each``, ``json_extract``, ``total``, ``changes``,
``last_insert_rowid``), ``rowid`` as enrolment order, and explicit types for the
parameters PostgreSQL cannot infer (a parameter only selected, or only tested for NULL).
"""

from __future__ import annotations

import functools
import re
from types import ModuleType
from typing import Final

from ringmaster.store.sqlite import (
    history_statements,
    queue_log_statements,
    report_statements,
    statements,
)

_PARAMETER: Final = re.compile(r"\?(\d*)")


@functools.lru_cache(maxsize=512)
def translate(text: str) -> str:
    """A SQLite statement in PostgreSQL's dialect: its parameters numbered ``$n``.

    Statements that need more than that are in `OVERRIDES`, looked up first by `dialect`.
    """
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(1):
            return f"${match.group(1)}"
        counter += 1
        return f"${counter}"

    return re.sub(r"\browid\b", "enrolled", _PARAMETER.sub(number, text))


#: A turn's outbox messages in one statement (parameters: shard, then the topics,
#: payloads and retain flags as arrays), returning their seqs. With several writers
#: (shards) a turn's seqs need not be consecutive, so they are read back rather than
#: counted back from the last; the identity gives them in the rows' order.
INSERT_OUTBOX_RETURNING: Final = (
    "INSERT INTO outbox (shard, topic, payload, retain)"
    " SELECT $1::bigint, topic, payload, retain"
    " FROM unnest($2::text[], $3::bytea[], $4::bigint[]) WITH ORDINALITY"
    " AS m (topic, payload, retain, n) ORDER BY n RETURNING seq"
)

_BOUNDS: Final = """
WITH bounds AS (
    SELECT (b.ord - 1) AS slot, b.value::float8 AS lo,
        lead(b.value::float8) OVER (ORDER BY b.ord) AS hi
    FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS b (value, ord)
), v AS (
    SELECT b.slot, c.*
    FROM bounds AS b
    JOIN call_visits AS c ON c.tenant_id = $2 AND c.entered_at >= b.lo AND c.entered_at < b.hi
    WHERE b.hi IS NOT NULL AND c.queue_id IS NOT NULL
        AND ($3::bigint IS NULL OR c.queue_id = $3::bigint)
)
"""

#: The statements that differ from a renumbered SQLite one, by module and name.
OVERRIDES: Final[dict[tuple[ModuleType, str], str]] = {
    **{
        (statements, name): translate(getattr(statements, name)).replace(
            "(SELECT value FROM json_each($1))",
            "(SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb))",
        )
        for name in (
            "SELECT_RINGS_OF",
            "SELECT_CALLS_OF",
            "SELECT_AGENTS_OF",
            "SELECT_QUEUE_MEMORY_OF",
            "SELECT_STATS_OF",
        )
    },
    (statements, "ENROL"): (
        "INSERT INTO queue_agents (queue_id, extension_id, position, options)"
        " SELECT $1::bigint, $2::bigint, coalesce($3::bigint, max(position) + 1, 0), $4::text"
        " FROM queue_agents WHERE queue_id = $5 ON CONFLICT DO NOTHING"
    ),
    (history_statements, "OPEN_VISIT"): """
INSERT INTO call_visits (
    tenant_id, call_id, visit, queue_id, queue_number, queue_name, did, caller_id,
    caller_name, priority, arrived_at, entered_at, position, callback_number,
    ended_at, outcome, reason, wait_s
)
SELECT $1::bigint, $2::text, COALESCE(p.visit, 0) + 1, $3::bigint, q.queue_number, q.name,
    COALESCE($6::text, p.did, ''), COALESCE($7::text, p.caller_id, ''),
    COALESCE($8::text, p.caller_name, ''), COALESCE($9::bigint, p.priority, 0),
    COALESCE($10::float8, p.arrived_at, $4::float8), $4::float8, $5::bigint, $11::text,
    CASE WHEN $12::text IS NULL THEN NULL ELSE $4::float8 END, $12::text, $13::text,
    CASE WHEN $12::text IS NULL THEN NULL ELSE 0.0 END
FROM (SELECT 1) AS one
LEFT JOIN (
    SELECT visit, did, caller_id, caller_name, priority, arrived_at FROM call_visits
    WHERE tenant_id = $1::bigint AND call_id = $2::text ORDER BY visit DESC LIMIT 1
) AS p ON true
LEFT JOIN queues AS q ON q.id = $3::bigint
""",
    (history_statements, "REJECTED_VISIT"): """
INSERT INTO call_visits (
    tenant_id, call_id, visit, queue_id, queue_number, queue_name, did, caller_id,
    caller_name, priority, arrived_at, entered_at, ended_at, outcome, reason, wait_s
)
SELECT $1::bigint, $2::text, COALESCE(
        (SELECT MAX(visit) FROM call_visits WHERE tenant_id = $1::bigint AND call_id = $2::text),
        0
    ) + 1,
    q.id, q.queue_number, q.name, $3::text, $6::text, $7::text, $8::bigint, $5::float8,
    $5::float8, $5::float8, 'rejected', $4::text, 0.0
FROM (SELECT 1) AS one
LEFT JOIN did_routes AS r ON r.tenant_id = $1::bigint AND r.did = $3::text
    AND $4::text <> 'no_route'
LEFT JOIN queues AS q ON q.id = r.queue_id
""",
    (history_statements, "ANSWER_VISIT"): """
UPDATE call_visits SET answered_at = $1::float8, agent_number = $4::text,
    agent_extension_id = (SELECT id FROM extensions WHERE tenant_id = $2 AND number = $4::text),
    wait_s = round(($1::float8 - entered_at)::numeric, 3)::float8
WHERE tenant_id = $2 AND call_id = $3 AND outcome IS NULL AND answered_at IS NULL
""",
    (history_statements, "ANSWER_RING"): """
UPDATE call_rings SET ended_at = $1, outcome = 'answered', cancel_reason = ''
WHERE id = (
    SELECT id FROM call_rings WHERE tenant_id = $2 AND call_id = $3 AND extension = $4
        AND ($5::text IS NULL OR ring_id = $5::text)
    ORDER BY id DESC LIMIT 1
)
""",
    (history_statements, "END_VISIT"): """
UPDATE call_visits SET ended_at = $1::float8, outcome = $2, reason = $3, talk_s = $4,
    overflow_queue_id = $8, overflow_extension = $9,
    wait_s = coalesce(wait_s, round(($1::float8 - entered_at)::numeric, 3)::float8)
WHERE tenant_id = $5 AND call_id = $6 AND outcome IS NULL
    AND ($7::bigint IS NULL OR queue_id = $7::bigint)
""",
    (history_statements, "START_RING"): """
INSERT INTO call_rings (visit_id, tenant_id, call_id, ring_id, extension, started_at)
SELECT id, $1::bigint, $2::text, $3::text, $4::text, $5::float8 FROM call_visits
WHERE tenant_id = $1::bigint AND call_id = $2::text AND outcome IS NULL
ORDER BY visit DESC LIMIT 1
""",
    (history_statements, "END_RING"): """
UPDATE call_rings SET ended_at = $1, outcome = $2, cancel_reason = $3
WHERE tenant_id = $4 AND call_id = $5 AND ended_at IS NULL
    AND (ring_id = $6::text OR ($6::text IS NULL AND extension = $7::text))
""",
    # SQLite's changes() (did END_RING just end it?) is, here, whether this transaction
    # wrote the ring's row version (its xmin).
    (history_statements, "RING_UNANSWERED"): """
INSERT INTO agent_activity (tenant_id, extension, at, kind, reason, queue_id, call_id)
SELECT r.tenant_id, r.extension, $1::float8, 'ring_unanswered', $2::text, v.queue_id, r.call_id
FROM call_rings AS r JOIN call_visits AS v ON v.id = r.visit_id
WHERE r.xmin = pg_current_xact_id()::xid
    AND r.tenant_id = $4::bigint AND r.call_id = $5::text AND r.ended_at = $1::float8
    AND r.outcome = $2::text
    AND (r.ring_id = $6::text OR ($6::text IS NULL AND r.extension = $7::text))
    AND ($3::text IS NULL OR true)  -- the cancel reason: unused, but every parameter needs a type
ORDER BY r.id DESC LIMIT 1
""",
    (history_statements, "ENROLMENT"): """
INSERT INTO agent_activity (tenant_id, extension, at, kind, queue_id)
SELECT e.tenant_id, e.number, $1::float8, $2::text, $3::bigint FROM extensions AS e
WHERE e.id = $4::bigint AND coalesce((
    SELECT a.kind FROM agent_activity AS a
    WHERE a.tenant_id = e.tenant_id AND a.extension = e.number AND a.queue_id = $3::bigint
        AND a.kind IN ('enrol', 'unenrol')
    ORDER BY a.id DESC LIMIT 1
), '') <> $2::text
""",
    (history_statements, "QUEUE_GONE"): """
INSERT INTO agent_activity (tenant_id, extension, at, kind, queue_id)
SELECT a.tenant_id, a.extension, $1::float8, 'unenrol', $2::bigint FROM agent_activity AS a
WHERE a.id IN (
    SELECT max(id) FROM agent_activity WHERE queue_id = $2::bigint
        AND kind IN ('enrol', 'unenrol')
    GROUP BY tenant_id, extension
) AND a.kind = 'enrol'
""",
    (history_statements, "LATEST_STATES"): """
SELECT a.extension, a.state, a.at FROM agent_activity AS a WHERE a.id IN (
    SELECT (SELECT b.id FROM agent_activity AS b
            WHERE b.tenant_id = $1 AND b.extension = j.value AND b.state IS NOT NULL
            ORDER BY b.at DESC, b.id DESC LIMIT 1)
    FROM jsonb_array_elements_text($2::jsonb) AS j (value)
)
""",
    (report_statements, "QUEUE_FIGURES"): _BOUNDS
    + """
SELECT v.slot, v.queue_id, max(v.queue_number), max(v.queue_name),
    count(*) FILTER (WHERE v.outcome IS DISTINCT FROM 'rejected'),
    count(*) FILTER (WHERE v.answered_at IS NOT NULL),
    count(*) FILTER (WHERE v.outcome = 'abandoned'),
    count(*) FILTER (WHERE v.outcome = 'abandoned' AND v.wait_s <= $5::float8),
    count(*) FILTER (WHERE v.outcome = 'overflowed'),
    count(*) FILTER (WHERE v.outcome = 'rejected'),
    count(*) FILTER (WHERE v.answered_at IS NOT NULL
        AND v.wait_s <= coalesce((q.options::jsonb ->> 'service_level')::float8, $4::float8)),
    coalesce(sum(v.wait_s) FILTER (WHERE v.answered_at IS NOT NULL), 0.0),
    coalesce(sum(v.talk_s), 0.0), count(v.talk_s),
    coalesce(sum(v.wait_s) FILTER (WHERE v.position IS NOT NULL), 0.0),
    count(v.wait_s) FILTER (WHERE v.position IS NOT NULL),
    max(v.wait_s) FILTER (WHERE v.position IS NOT NULL)
FROM v LEFT JOIN queues AS q ON q.id = v.queue_id
GROUP BY v.slot, v.queue_id
ORDER BY v.queue_id, v.slot
""",
    (report_statements, "QUEUE_WAIT_PERCENTILE"): _BOUNDS
    + """
, ranked AS (
    SELECT slot, queue_id, wait_s,
        row_number() OVER (PARTITION BY slot, queue_id ORDER BY wait_s) AS rank,
        count(*) OVER (PARTITION BY slot, queue_id) AS n
    FROM v WHERE position IS NOT NULL AND wait_s IS NOT NULL
)
SELECT slot, queue_id, wait_s FROM ranked WHERE rank = ($4::bigint * n + 99) / 100
""",
    (report_statements, "AGENT_STATES_BEFORE"): """
SELECT a.extension, a.state, (
    SELECT p.reason FROM agent_activity AS p
    WHERE p.tenant_id = $1 AND p.extension = a.extension AND p.kind = 'pause' AND p.at < $2
    ORDER BY p.id DESC LIMIT 1
)
FROM agent_activity AS a
WHERE a.id IN (
    SELECT max(id) FROM agent_activity
    WHERE tenant_id = $1 AND at < $2 AND state IS NOT NULL GROUP BY extension
)
""",
}

# The queue_log's reads take the tenant or NULL (every tenant) as ?1: its type, bigint,
# is said where it is tested for NULL.
OVERRIDES.update(
    {
        (queue_log_statements, name): translate(
            getattr(queue_log_statements, name).replace("?1 IS NULL", "?1::bigint IS NULL")
        )
        for name in ("VISITS", "RINGS", "ACTIVITY", "ENROLMENTS", "QUEUE_NUMBERS")
    }
)

_MODULES: Final = (statements, history_statements, report_statements, queue_log_statements)


def _named_statements() -> dict[str, str]:
    """Every statement the SQLite modules name, to its PostgreSQL text."""
    known: dict[str, str] = {}
    for module in _MODULES:
        for name, value in vars(module).items():
            if not name.isupper() or name.startswith("_"):
                continue
            texts = value.values() if isinstance(value, dict) else [value]
            for text in texts:
                if isinstance(text, str):
                    override = OVERRIDES.get((module, name))
                    known[text] = override if override is not None else translate(text)
    return known


_KNOWN: Final = _named_statements()


def dialect(text: str) -> str:
    """The PostgreSQL text of a statement the repositories give in SQLite's."""
    known = _KNOWN.get(text)
    return known if known is not None else translate(text)
