"""The SQLite schema: every migration, and how a file is brought up to date.

The schema version is SQLite's ``PRAGMA user_version``, kept in the file header and
written in each migration's own transaction.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from ringmaster.store.records import StoreError

#: Schema migrations, oldest first: ``MIGRATIONS[i]`` takes a file from version ``i`` to
#: ``i + 1`` (``PRAGMA user_version``). Append only; never edit a released migration.
MIGRATIONS: list[str] = [
    # --- 1: the initial schema ------------------------------------------------------
    """
    -- Configuration: the product's documented model.
    CREATE TABLE tenants (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL
    );
    CREATE TABLE extensions (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants ON DELETE CASCADE,
        number    TEXT NOT NULL CHECK (length(number) BETWEEN 1 AND 20),
        name      TEXT NOT NULL DEFAULT '',
        UNIQUE (tenant_id, number),
        UNIQUE (tenant_id, id)  -- target of did_routes' same-tenant foreign key
    );
    CREATE TABLE queues (
        id           INTEGER PRIMARY KEY,
        tenant_id    INTEGER NOT NULL REFERENCES tenants,
        name         TEXT NOT NULL,
        queue_number TEXT NOT NULL CHECK (length(queue_number) BETWEEN 1 AND 20),
        strategy     TEXT NOT NULL,  -- checked by the writer: strategies are code, not schema
        timeout      INTEGER NOT NULL CHECK (timeout >= 1),
        status       TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
        retry        INTEGER NOT NULL DEFAULT 5 CHECK (retry >= 0),
        wrapup_time  INTEGER NOT NULL DEFAULT 0 CHECK (wrapup_time >= 0),
        UNIQUE (tenant_id, queue_number),
        UNIQUE (tenant_id, id)  -- target of did_routes' same-tenant foreign key
    );
    -- No foreign key to extensions, deliberately: the product documents that deleting
    -- an extension does not unenroll it, and the engine tolerates enrolments of nothing.
    CREATE TABLE queue_agents (
        queue_id     INTEGER NOT NULL REFERENCES queues ON DELETE CASCADE,
        extension_id INTEGER NOT NULL,
        position     INTEGER NOT NULL,
        PRIMARY KEY (queue_id, extension_id)
    );
    -- The composite foreign keys also keep a route inside its tenant (contract: "a route
    -- to a queue of another tenant ... never rings anyone"); a NULL side is not checked.
    CREATE TABLE did_routes (
        tenant_id    INTEGER NOT NULL REFERENCES tenants,
        did          TEXT NOT NULL,
        queue_id     INTEGER NULL,
        extension_id INTEGER NULL,
        CHECK ((queue_id IS NULL) <> (extension_id IS NULL)),
        PRIMARY KEY (tenant_id, did),
        FOREIGN KEY (tenant_id, queue_id) REFERENCES queues (tenant_id, id),
        FOREIGN KEY (tenant_id, extension_id) REFERENCES extensions (tenant_id, id)
    );

    -- Live state, mirroring ringmaster.engine.records. No foreign keys to the
    -- configuration: a call outlives a queue edit, and the engine reconciles.
    CREATE TABLE calls (
        tenant_id   INTEGER NOT NULL,
        call_id     TEXT NOT NULL,
        phase       TEXT NOT NULL,
        queue_id    INTEGER NULL,
        did         TEXT NOT NULL,
        caller_id   TEXT NOT NULL,
        caller_name TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        arrived_at  REAL NOT NULL,
        seq         INTEGER NOT NULL,
        tried       TEXT NOT NULL DEFAULT '[]',  -- JSON list of extension ids, in order
        retry_at    REAL NULL,
        agent_id    INTEGER NULL,
        answered_at REAL NULL,
        ended_at    REAL NULL,
        PRIMARY KEY (tenant_id, call_id)
    );
    CREATE TABLE rings (
        tenant_id    INTEGER NOT NULL,
        call_id      TEXT NOT NULL,
        extension_id INTEGER NOT NULL,
        position     INTEGER NOT NULL,  -- order within CallRecord.rings
        started_at   REAL NOT NULL,
        deadline     REAL NOT NULL,
        PRIMARY KEY (tenant_id, call_id, extension_id),
        FOREIGN KEY (tenant_id, call_id) REFERENCES calls ON DELETE CASCADE
    );
    CREATE TABLE agent_states (
        extension_id    INTEGER PRIMARY KEY,
        presence        TEXT NOT NULL,
        presence_reason TEXT NOT NULL,
        device          TEXT NOT NULL,
        wrapup_until    REAL NULL,
        status          TEXT NOT NULL
    );
    CREATE TABLE queue_memory (
        queue_id  INTEGER PRIMARY KEY,
        last_rung INTEGER NULL,
        offered   INTEGER NOT NULL,
        answered  INTEGER NOT NULL,
        abandoned INTEGER NOT NULL,
        completed INTEGER NOT NULL
    );
    CREATE TABLE agent_queue_stats (
        queue_id           INTEGER NOT NULL,
        extension_id       INTEGER NOT NULL,
        last_call_ended_at REAL NULL,
        calls_completed    INTEGER NOT NULL,
        talk_time_s        REAL NOT NULL,
        PRIMARY KEY (queue_id, extension_id)
    );

    -- The transactional outbox: messages decided but not yet confirmed published.
    CREATE TABLE outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        topic   TEXT NOT NULL,
        payload BLOB NOT NULL,
        retain  INTEGER NOT NULL
    );
    """,
    # --- 2: DID routes get a surrogate id, so the admin API can address them ---------
    # SQLite cannot add a primary key to a table, so the table is rebuilt (its rows keep
    # their order as their ids). Nothing references did_routes, so dropping it is safe
    # with foreign keys on.
    """
    CREATE TABLE did_routes_v2 (
        id           INTEGER PRIMARY KEY,
        tenant_id    INTEGER NOT NULL REFERENCES tenants,
        did          TEXT NOT NULL,
        queue_id     INTEGER NULL,
        extension_id INTEGER NULL,
        CHECK ((queue_id IS NULL) <> (extension_id IS NULL)),
        UNIQUE (tenant_id, did),
        FOREIGN KEY (tenant_id, queue_id) REFERENCES queues (tenant_id, id),
        FOREIGN KEY (tenant_id, extension_id) REFERENCES extensions (tenant_id, id)
    );
    INSERT INTO did_routes_v2 (tenant_id, did, queue_id, extension_id)
        SELECT tenant_id, did, queue_id, extension_id FROM did_routes ORDER BY tenant_id, did;
    DROP TABLE did_routes;
    ALTER TABLE did_routes_v2 RENAME TO did_routes;
    """,
    # --- 3: call-centre options (issue 4): queue and enrolment options, skills, and the
    # live state of overflows, callbacks, announcements and the new strategies ----------
    # Columns only, with defaults equal to the engine's (model.QueueConfig,
    # model.EnrolmentOptions, records.*), so existing rows mean what they meant.
    # `queues` is not rebuilt for composite foreign keys as did_routes was: dropping it
    # would cascade to queue_agents. The triggers keep overflow targets in the tenant.
    """
    ALTER TABLE queues ADD COLUMN max_len INTEGER NOT NULL DEFAULT 0 CHECK (max_len >= 0);
    ALTER TABLE queues ADD COLUMN max_wait INTEGER NOT NULL DEFAULT 0 CHECK (max_wait >= 0);
    ALTER TABLE queues ADD COLUMN overflow_type TEXT NOT NULL DEFAULT 'hangup'
        CHECK (overflow_type IN ('hangup', 'extension', 'queue'));
    ALTER TABLE queues ADD COLUMN overflow_extension_id INTEGER NULL REFERENCES extensions (id)
        CHECK ((overflow_extension_id IS NULL) = (overflow_type <> 'extension'));
    ALTER TABLE queues ADD COLUMN overflow_queue_id INTEGER NULL REFERENCES queues (id)
        CHECK ((overflow_queue_id IS NULL) = (overflow_type <> 'queue'));
    -- JSON arrays of model.AgentCondition values, sorted
    ALTER TABLE queues ADD COLUMN join_empty TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE queues ADD COLUMN leave_when_empty TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE queues ADD COLUMN weight INTEGER NOT NULL DEFAULT 0 CHECK (weight >= 0);
    ALTER TABLE queues ADD COLUMN service_level INTEGER NOT NULL DEFAULT 20
        CHECK (service_level >= 0);
    ALTER TABLE queues ADD COLUMN announce_frequency INTEGER NOT NULL DEFAULT 0
        CHECK (announce_frequency >= 0);
    ALTER TABLE queues ADD COLUMN ring_progressive_delay INTEGER NOT NULL DEFAULT 10
        CHECK (ring_progressive_delay >= 0);
    -- JSON [{"after": s, "max_penalty": p}] and [{"after": s, "lower_by": n}], in order
    ALTER TABLE queues ADD COLUMN penalty_rules TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE queues ADD COLUMN skill_rules TEXT NOT NULL DEFAULT '[]';
    CREATE TRIGGER queues_overflow_in_tenant_on_insert BEFORE INSERT ON queues
    WHEN (NEW.overflow_queue_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM queues WHERE id = NEW.overflow_queue_id AND tenant_id = NEW.tenant_id))
      OR (NEW.overflow_extension_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM extensions
              WHERE id = NEW.overflow_extension_id AND tenant_id = NEW.tenant_id))
    BEGIN
        SELECT RAISE(ABORT, 'overflow target is not in the queue''s tenant');
    END;
    CREATE TRIGGER queues_overflow_in_tenant_on_update
    BEFORE UPDATE OF tenant_id, overflow_queue_id, overflow_extension_id ON queues
    WHEN (NEW.overflow_queue_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM queues WHERE id = NEW.overflow_queue_id AND tenant_id = NEW.tenant_id))
      OR (NEW.overflow_extension_id IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM extensions
              WHERE id = NEW.overflow_extension_id AND tenant_id = NEW.tenant_id))
    BEGIN
        SELECT RAISE(ABORT, 'overflow target is not in the queue''s tenant');
    END;

    -- `position` is the agent's position option; ties go by enrolment order, which is
    -- rowid order (a new row's rowid is above every existing one).
    ALTER TABLE queue_agents ADD COLUMN penalty INTEGER NOT NULL DEFAULT 0 CHECK (penalty >= 0);
    ALTER TABLE queue_agents ADD COLUMN wrapup_time INTEGER NULL  -- NULL: the queue's
        CHECK (wrapup_time >= 0);
    ALTER TABLE queue_agents ADD COLUMN max_no_answer INTEGER NOT NULL DEFAULT 0
        CHECK (max_no_answer >= 0);
    ALTER TABLE queue_agents ADD COLUMN busy_delay INTEGER NOT NULL DEFAULT 0
        CHECK (busy_delay >= 0);
    ALTER TABLE queue_agents ADD COLUMN reject_delay INTEGER NOT NULL DEFAULT 0
        CHECK (reject_delay >= 0);
    ALTER TABLE queue_agents ADD COLUMN no_answer_delay INTEGER NOT NULL DEFAULT 0
        CHECK (no_answer_delay >= 0);

    -- JSON objects {skill name: level}
    ALTER TABLE extensions ADD COLUMN skills TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE did_routes ADD COLUMN skills TEXT NOT NULL DEFAULT '{}';

    ALTER TABLE calls ADD COLUMN entered_at REAL NULL;
    ALTER TABLE calls ADD COLUMN hops INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE calls ADD COLUMN callback_number TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN skills TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE calls ADD COLUMN announce_at REAL NULL;
    ALTER TABLE calls ADD COLUMN progress_at REAL NULL;

    ALTER TABLE agent_states ADD COLUMN last_call_ended_at REAL NULL;
    ALTER TABLE agent_states ADD COLUMN skip_until REAL NULL;
    ALTER TABLE agent_states ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0;

    ALTER TABLE queue_memory ADD COLUMN last_answered INTEGER NULL;
    ALTER TABLE queue_memory ADD COLUMN overflowed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_memory ADD COLUMN answered_within INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_memory ADD COLUMN abandoned_within INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_memory ADD COLUMN last_answer_at REAL NULL;
    ALTER TABLE queue_memory ADD COLUMN answer_interval_s REAL NULL;
    """,
    # --- 4: ring ids (an addition to contract v1, issue 9) --------------------------------
    """
    -- A ring stored before ring ids keeps '' (the PBX was never told an id for it).
    ALTER TABLE rings ADD COLUMN ring_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN rings_started INTEGER NOT NULL DEFAULT 0;
    -- JSON list of [extension id, ring id, how it ended], oldest first (EndedRing)
    ALTER TABLE calls ADD COLUMN ended_rings TEXT NOT NULL DEFAULT '[]';
    """,
    # --- 5: the audit trail of configuration changes (issue 15) --------------------------
    """
    -- One row per change, written in the change's own transaction. No foreign keys:
    -- a record outlives what it describes (a deleted tenant's records stay).
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,     -- Unix time
        actor       TEXT NOT NULL,     -- the token's name (admin#1), or 'provision'
        tenant_id   INTEGER NOT NULL,  -- the resource's tenant (a tenant: itself)
        action      TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete')),
        resource    TEXT NOT NULL,     -- tenant, extension, queue, agent, did_route
        resource_id TEXT NOT NULL,     -- an agent: 'queue id/extension id'
        before      TEXT NULL,         -- JSON, as the admin API reads the resource
        after       TEXT NULL
    );
    CREATE INDEX audit_by_tenant ON audit (tenant_id, id);
    CREATE INDEX audit_by_time ON audit (at);
    """,
    # --- 6: queue and enrolment options in one JSON object each (issue 10) ---------------
    # The options are declared once (engine.options, ringmaster.options), and the store
    # keeps them as the declaration's plain JSON: a new option needs no migration (a
    # missing key reads as its default). References and keys stay columns: a queue's
    # tenant, number, strategy, timeout, status and overflow target, an agent's position.
    # The options' columns are dropped in place (SQLite 3.35+), not by a table rebuild:
    # dropping `queues` would cascade to queue_agents.
    """
    ALTER TABLE queues ADD COLUMN options TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(options) AND json_type(options) = 'object');
    UPDATE queues SET options = json_object(
        'retry', retry,
        'wrapup_time', wrapup_time,
        'max_len', max_len,
        'max_wait', max_wait,
        'join_empty', json(join_empty),
        'leave_when_empty', json(leave_when_empty),
        'weight', weight,
        'service_level', service_level,
        'announce_frequency', announce_frequency,
        'ring_progressive_delay', ring_progressive_delay,
        'penalty_rules', json(penalty_rules),
        'skill_rules', json(skill_rules)
    );
    ALTER TABLE queues DROP COLUMN retry;
    ALTER TABLE queues DROP COLUMN wrapup_time;
    ALTER TABLE queues DROP COLUMN max_len;
    ALTER TABLE queues DROP COLUMN max_wait;
    ALTER TABLE queues DROP COLUMN join_empty;
    ALTER TABLE queues DROP COLUMN leave_when_empty;
    ALTER TABLE queues DROP COLUMN weight;
    ALTER TABLE queues DROP COLUMN service_level;
    ALTER TABLE queues DROP COLUMN announce_frequency;
    ALTER TABLE queues DROP COLUMN ring_progressive_delay;
    ALTER TABLE queues DROP COLUMN penalty_rules;
    ALTER TABLE queues DROP COLUMN skill_rules;

    ALTER TABLE queue_agents ADD COLUMN options TEXT NOT NULL DEFAULT '{}'
        CHECK (json_valid(options) AND json_type(options) = 'object');
    UPDATE queue_agents SET options = json_object(
        'penalty', penalty,
        'wrapup_time', wrapup_time,  -- NULL (the queue's) stays null
        'max_no_answer', max_no_answer,
        'busy_delay', busy_delay,
        'reject_delay', reject_delay,
        'no_answer_delay', no_answer_delay
    );
    ALTER TABLE queue_agents DROP COLUMN penalty;
    ALTER TABLE queue_agents DROP COLUMN wrapup_time;
    ALTER TABLE queue_agents DROP COLUMN max_no_answer;
    ALTER TABLE queue_agents DROP COLUMN busy_delay;
    ALTER TABLE queue_agents DROP COLUMN reject_delay;
    ALTER TABLE queue_agents DROP COLUMN no_answer_delay;
    """,
    # --- 7: the numbers rung and answered, so that a removed extension is still named ----
    """
    -- A ring or call stored before keeps '' (the engine then names the extension
    -- only while it exists, as before).
    ALTER TABLE rings ADD COLUMN number TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN agent_number TEXT NOT NULL DEFAULT '';
    """,
    # --- 8: call and agent history (docs/history.md) -------------------------------------
    """
    -- One row per visit of a call to a queue, written in the turn that changed it:
    -- opened when the call is queued, closed (outcome set) when it leaves the queue.
    -- No foreign keys to the configuration: a queue or an extension may be deleted
    -- and its history stays, under the number and name it had.
    CREATE TABLE call_visits (
        id                 INTEGER PRIMARY KEY,
        tenant_id          INTEGER NOT NULL,
        call_id            TEXT NOT NULL,
        visit              INTEGER NOT NULL,  -- 1, 2, ... in the order of the call's visits
        queue_id           INTEGER NULL,  -- NULL: a rejected call whose route named no queue
        queue_number       TEXT NULL,
        queue_name         TEXT NULL,
        did                TEXT NOT NULL,
        caller_id          TEXT NOT NULL,
        caller_name        TEXT NOT NULL,
        priority           INTEGER NOT NULL,
        arrived_at         REAL NOT NULL,  -- the call's arrival, the same in all its visits
        entered_at         REAL NOT NULL,  -- this queue
        position           INTEGER NULL,  -- on entry; NULL when never in the line
        callback_number    TEXT NULL,  -- the visit of a callback: the number called back
        answered_at        REAL NULL,
        ended_at           REAL NULL,
        outcome            TEXT NULL CHECK (outcome IN
            ('completed', 'abandoned', 'rejected', 'overflowed', 'callback')),  -- NULL: open
        reason             TEXT NOT NULL DEFAULT '',
        overflow_queue_id  INTEGER NULL,
        overflow_extension TEXT NULL,
        agent_extension_id INTEGER NULL,
        agent_number       TEXT NULL,
        wait_s             REAL NULL,  -- entered_at to answered_at, or to ended_at unanswered
        talk_s             REAL NULL,
        UNIQUE (tenant_id, call_id, visit)
    );
    CREATE INDEX call_visits_ended ON call_visits (tenant_id, ended_at);
    CREATE INDEX call_visits_entered ON call_visits (tenant_id, queue_id, entered_at);
    CREATE INDEX call_visits_prune ON call_visits (ended_at);
    CREATE TABLE call_rings (
        id            INTEGER PRIMARY KEY,
        visit_id      INTEGER NOT NULL REFERENCES call_visits ON DELETE CASCADE,
        tenant_id     INTEGER NOT NULL,
        call_id       TEXT NOT NULL,
        ring_id       TEXT NOT NULL,
        extension     TEXT NOT NULL,  -- the number rung
        started_at    REAL NOT NULL,
        ended_at      REAL NULL,
        outcome       TEXT NULL CHECK (outcome IN ('answered', 'timeout', 'busy', 'rejected',
            'unreachable', 'no_answer', 'cancelled')),  -- NULL: ringing
        cancel_reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX call_rings_visit ON call_rings (visit_id);
    CREATE INDEX call_rings_call ON call_rings (tenant_id, call_id);
    CREATE TABLE agent_activity (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL,
        extension TEXT NOT NULL,  -- the agent's number
        at        REAL NOT NULL,
        kind      TEXT NOT NULL CHECK (kind IN ('login', 'logout', 'pause', 'unpause',
            'ring_unanswered', 'wrapup_start', 'wrapup_end', 'enrol', 'unenrol', 'state')),
        reason    TEXT NOT NULL DEFAULT '',
        state     TEXT NULL,  -- the published state it left the agent in
        queue_id  INTEGER NULL,
        call_id   TEXT NULL
    );
    CREATE INDEX agent_activity_at ON agent_activity (tenant_id, at);
    CREATE INDEX agent_activity_prune ON agent_activity (at);
    -- An enrolment is recorded when it changes the last one, and a removed queue
    -- unenrols its agents: both look up the last enrolment records, inside a turn.
    CREATE INDEX agent_activity_enrolment ON agent_activity (queue_id, tenant_id, extension)
        WHERE kind IN ('enrol', 'unenrol');
    """,
    # --- 9: a tenant's time zone, for its reports (docs/reports.md) ----------------------
    """
    ALTER TABLE tenants ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
    -- The interval reports put each visit in an interval by entered_at, over all queues.
    CREATE INDEX call_visits_report ON call_visits (tenant_id, entered_at);
    """,
    # --- 10: since when an agent is in its state (the live agents list) -----------------
    """
    CREATE INDEX agent_activity_latest ON agent_activity (tenant_id, extension, at);
    """,
    # --- 11: a supervisor's actions in the audit trail (issue 12) -------------------------
    # A CHECK cannot be changed in place: the table is rebuilt, its rows (and ids) kept.
    # Nothing refers to it.
    """
    CREATE TABLE audit_new (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,     -- Unix time
        actor       TEXT NOT NULL,     -- the token's name (admin#1), or 'provision'
        tenant_id   INTEGER NOT NULL,  -- the resource's tenant (a tenant: itself)
        -- a configuration change, or a supervisor's action on a call or an agent
        action      TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete',
            'move', 'priority', 'send', 'hangup', 'presence')),
        resource    TEXT NOT NULL,     -- tenant, extension, queue, agent, did_route, call
        resource_id TEXT NOT NULL,     -- an agent: 'queue id/extension id'; a call: its id
        before      TEXT NULL,         -- JSON, as the admin API reads the resource
        after       TEXT NULL
    );
    INSERT INTO audit_new SELECT id, at, actor, tenant_id, action, resource, resource_id,
        before, after FROM audit;
    DROP TABLE audit;
    ALTER TABLE audit_new RENAME TO audit;
    CREATE INDEX audit_by_tenant ON audit (tenant_id, id);
    CREATE INDEX audit_by_time ON audit (at);
    """,
    # --- 12: each shard's own outbox rows (issue 13) ---------------------------------------
    # 0 without a cluster. The cluster's own tables exist on PostgreSQL only: a cluster
    # needs it (SQLite refuses cluster use), see postgres.schema.
    """
    ALTER TABLE outbox ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_by_shard ON outbox (shard, seq);
    """,
]


async def user_version(db: aiosqlite.Connection) -> int:
    """The file's schema version."""
    ((version,),) = await db.execute_fetchall("PRAGMA user_version")
    return int(version)


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the schema up to ``len(MIGRATIONS)``, one transaction per migration.

    Raises:
        StoreError: The file's schema is newer than this Ringmaster knows.
    """
    version = await user_version(db)
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path}: schema version {version} is newer than this Ringmaster's"
            f" ({len(MIGRATIONS)}); upgrade Ringmaster or restore a matching backup"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        # user_version lives in the file header and is written in the same transaction,
        # so a failed migration leaves both the schema and the version as they were.
        script = MIGRATIONS[number - 1]
        try:
            await db.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        except BaseException:
            await db.rollback()
            raise
