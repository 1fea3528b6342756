"""The PostgreSQL schema: a baseline equal to SQLite's version 11, then later migrations.

The schema version is the one row of ``schema_version``, written in each migration's own
transaction. A new database gets `BASELINE` (version `BASELINE_VERSION`) in one
transaction; every later migration is written for both backends, as
``MIGRATIONS[version]`` here and as ``sqlite.schema.MIGRATIONS[version - 1]`` there.

Spellings that differ from SQLite's, for the same tables, columns and constraints:

- ``bigint`` for INTEGER (SQLite's are 64-bit), ``double precision`` for REAL, ``bytea``
  for BLOB; JSON stays ``text`` in the one spelling `config_rows.json_text` gives it.
- An ``INTEGER PRIMARY KEY`` without a given id takes one more than the largest, as
  SQLite's rowid does: a trigger on the configuration tables (their ids may be given),
  an identity on the history and audit tables (their ids never are, nor go back).
- The outbox's ``AUTOINCREMENT`` seq is an identity: never reused either.
- Enrolment order, SQLite's ``rowid`` of ``queue_agents``, is the ``enrolled`` column.
"""

from __future__ import annotations

from typing import Final

#: The SQLite schema version that `BASELINE` equals.
BASELINE_VERSION: Final = 11

BASELINE: Final = """
CREATE TABLE schema_version (version integer NOT NULL);

-- SQLite's rowid: a row inserted without an id takes one more than the largest.
CREATE FUNCTION ringmaster_next_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS NULL THEN
        EXECUTE format('SELECT coalesce(max(id), 0) + 1 FROM %I', TG_TABLE_NAME) INTO NEW.id;
    END IF;
    RETURN NEW;
END $$;

CREATE TABLE tenants (
    id       bigint PRIMARY KEY,
    name     text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC'
);
CREATE TRIGGER tenants_id BEFORE INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION ringmaster_next_id();
CREATE TABLE extensions (
    id        bigint PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE,
    number    text NOT NULL CHECK (length(number) BETWEEN 1 AND 20),
    name      text NOT NULL DEFAULT '',
    skills    text NOT NULL DEFAULT '{}',
    UNIQUE (tenant_id, number),
    UNIQUE (tenant_id, id)  -- target of did_routes' same-tenant foreign key
);
CREATE TRIGGER extensions_id BEFORE INSERT ON extensions
    FOR EACH ROW EXECUTE FUNCTION ringmaster_next_id();
CREATE TABLE queues (
    id                    bigint PRIMARY KEY,
    tenant_id             bigint NOT NULL REFERENCES tenants,
    name                  text NOT NULL,
    queue_number          text NOT NULL CHECK (length(queue_number) BETWEEN 1 AND 20),
    strategy              text NOT NULL,
    timeout               bigint NOT NULL CHECK (timeout >= 1),
    status                text NOT NULL CHECK (status IN ('active', 'inactive')),
    overflow_type         text NOT NULL DEFAULT 'hangup'
        CHECK (overflow_type IN ('hangup', 'extension', 'queue')),
    overflow_extension_id bigint NULL REFERENCES extensions (id)
        CHECK ((overflow_extension_id IS NULL) = (overflow_type <> 'extension')),
    overflow_queue_id     bigint NULL REFERENCES queues (id)
        CHECK ((overflow_queue_id IS NULL) = (overflow_type <> 'queue')),
    options               text NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(options::jsonb) = 'object'),
    UNIQUE (tenant_id, queue_number),
    UNIQUE (tenant_id, id)  -- target of did_routes' same-tenant foreign key
);
CREATE TRIGGER queues_id BEFORE INSERT ON queues
    FOR EACH ROW EXECUTE FUNCTION ringmaster_next_id();
CREATE FUNCTION ringmaster_overflow_in_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.overflow_queue_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM queues WHERE id = NEW.overflow_queue_id AND tenant_id = NEW.tenant_id))
       OR (NEW.overflow_extension_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM extensions
            WHERE id = NEW.overflow_extension_id AND tenant_id = NEW.tenant_id)) THEN
        RAISE EXCEPTION 'overflow target is not in the queue''s tenant'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER queues_overflow_in_tenant_on_insert BEFORE INSERT ON queues
    FOR EACH ROW EXECUTE FUNCTION ringmaster_overflow_in_tenant();
CREATE TRIGGER queues_overflow_in_tenant_on_update
    BEFORE UPDATE OF tenant_id, overflow_queue_id, overflow_extension_id ON queues
    FOR EACH ROW EXECUTE FUNCTION ringmaster_overflow_in_tenant();
-- No foreign key to extensions, deliberately (see the SQLite schema).
CREATE TABLE queue_agents (
    queue_id     bigint NOT NULL REFERENCES queues ON DELETE CASCADE,
    extension_id bigint NOT NULL,
    position     bigint NOT NULL,
    options      text NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options::jsonb) = 'object'),
    enrolled     bigint GENERATED ALWAYS AS IDENTITY,  -- SQLite's rowid: enrolment order
    PRIMARY KEY (queue_id, extension_id)
);
CREATE TABLE did_routes (
    id           bigint PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants,
    did          text NOT NULL,
    queue_id     bigint NULL,
    extension_id bigint NULL,
    skills       text NOT NULL DEFAULT '{}',
    CHECK ((queue_id IS NULL) <> (extension_id IS NULL)),
    UNIQUE (tenant_id, did),
    FOREIGN KEY (tenant_id, queue_id) REFERENCES queues (tenant_id, id),
    FOREIGN KEY (tenant_id, extension_id) REFERENCES extensions (tenant_id, id)
);
CREATE TRIGGER did_routes_id BEFORE INSERT ON did_routes
    FOR EACH ROW EXECUTE FUNCTION ringmaster_next_id();

CREATE TABLE calls (
    tenant_id       bigint NOT NULL,
    call_id         text NOT NULL,
    phase           text NOT NULL,
    queue_id        bigint NULL,
    did             text NOT NULL,
    caller_id       text NOT NULL,
    caller_name     text NOT NULL,
    priority        bigint NOT NULL,
    arrived_at      double precision NOT NULL,
    seq             bigint NOT NULL,
    tried           text NOT NULL DEFAULT '[]',
    retry_at        double precision NULL,
    agent_id        bigint NULL,
    answered_at     double precision NULL,
    ended_at        double precision NULL,
    entered_at      double precision NULL,
    hops            bigint NOT NULL DEFAULT 0,
    callback_number text NOT NULL DEFAULT '',
    skills          text NOT NULL DEFAULT '{}',
    announce_at     double precision NULL,
    progress_at     double precision NULL,
    rings_started   bigint NOT NULL DEFAULT 0,
    ended_rings     text NOT NULL DEFAULT '[]',
    agent_number    text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, call_id)
);
CREATE TABLE rings (
    tenant_id    bigint NOT NULL,
    call_id      text NOT NULL,
    extension_id bigint NOT NULL,
    position     bigint NOT NULL,
    started_at   double precision NOT NULL,
    deadline     double precision NOT NULL,
    ring_id      text NOT NULL DEFAULT '',
    number       text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, call_id, extension_id),
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls ON DELETE CASCADE
);
CREATE TABLE agent_states (
    extension_id       bigint PRIMARY KEY,
    presence           text NOT NULL,
    presence_reason    text NOT NULL,
    device             text NOT NULL,
    wrapup_until       double precision NULL,
    status             text NOT NULL,
    last_call_ended_at double precision NULL,
    skip_until         double precision NULL,
    unanswered         bigint NOT NULL DEFAULT 0
);
CREATE TABLE queue_memory (
    queue_id          bigint PRIMARY KEY,
    last_rung         bigint NULL,
    offered           bigint NOT NULL,
    answered          bigint NOT NULL,
    abandoned         bigint NOT NULL,
    completed         bigint NOT NULL,
    last_answered     bigint NULL,
    overflowed        bigint NOT NULL DEFAULT 0,
    answered_within   bigint NOT NULL DEFAULT 0,
    abandoned_within  bigint NOT NULL DEFAULT 0,
    last_answer_at    double precision NULL,
    answer_interval_s double precision NULL
);
CREATE TABLE agent_queue_stats (
    queue_id           bigint NOT NULL,
    extension_id       bigint NOT NULL,
    last_call_ended_at double precision NULL,
    calls_completed    bigint NOT NULL,
    talk_time_s        double precision NOT NULL,
    PRIMARY KEY (queue_id, extension_id)
);

CREATE TABLE outbox (
    seq     bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    topic   text NOT NULL,
    payload bytea NOT NULL,
    retain  bigint NOT NULL
);

CREATE TABLE audit (
    id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at          double precision NOT NULL,
    actor       text NOT NULL,
    tenant_id   bigint NOT NULL,
    action      text NOT NULL CHECK (action IN ('create', 'update', 'delete',
        'move', 'priority', 'send', 'hangup', 'presence')),
    resource    text NOT NULL,
    resource_id text NOT NULL,
    before      text NULL,
    after       text NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant_id, id);
CREATE INDEX audit_by_time ON audit (at);

CREATE TABLE call_visits (
    id                 bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id          bigint NOT NULL,
    call_id            text NOT NULL,
    visit              bigint NOT NULL,
    queue_id           bigint NULL,
    queue_number       text NULL,
    queue_name         text NULL,
    did                text NOT NULL,
    caller_id          text NOT NULL,
    caller_name        text NOT NULL,
    priority           bigint NOT NULL,
    arrived_at         double precision NOT NULL,
    entered_at         double precision NOT NULL,
    position           bigint NULL,
    callback_number    text NULL,
    answered_at        double precision NULL,
    ended_at           double precision NULL,
    outcome            text NULL CHECK (outcome IN
        ('completed', 'abandoned', 'rejected', 'overflowed', 'callback')),
    reason             text NOT NULL DEFAULT '',
    overflow_queue_id  bigint NULL,
    overflow_extension text NULL,
    agent_extension_id bigint NULL,
    agent_number       text NULL,
    wait_s             double precision NULL,
    talk_s             double precision NULL,
    UNIQUE (tenant_id, call_id, visit)
);
CREATE INDEX call_visits_ended ON call_visits (tenant_id, ended_at);
CREATE INDEX call_visits_entered ON call_visits (tenant_id, queue_id, entered_at);
CREATE INDEX call_visits_prune ON call_visits (ended_at);
CREATE INDEX call_visits_report ON call_visits (tenant_id, entered_at);
CREATE TABLE call_rings (
    id            bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    visit_id      bigint NOT NULL REFERENCES call_visits ON DELETE CASCADE,
    tenant_id     bigint NOT NULL,
    call_id       text NOT NULL,
    ring_id       text NOT NULL,
    extension     text NOT NULL,
    started_at    double precision NOT NULL,
    ended_at      double precision NULL,
    outcome       text NULL CHECK (outcome IN ('answered', 'timeout', 'busy', 'rejected',
        'unreachable', 'no_answer', 'cancelled')),
    cancel_reason text NOT NULL DEFAULT ''
);
CREATE INDEX call_rings_visit ON call_rings (visit_id);
CREATE INDEX call_rings_call ON call_rings (tenant_id, call_id);
CREATE TABLE agent_activity (
    id        bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL,
    extension text NOT NULL,
    at        double precision NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('login', 'logout', 'pause', 'unpause',
        'ring_unanswered', 'wrapup_start', 'wrapup_end', 'enrol', 'unenrol', 'state')),
    reason    text NOT NULL DEFAULT '',
    state     text NULL,
    queue_id  bigint NULL,
    call_id   text NULL
);
CREATE INDEX agent_activity_at ON agent_activity (tenant_id, at);
CREATE INDEX agent_activity_prune ON agent_activity (at);
CREATE INDEX agent_activity_enrolment ON agent_activity (queue_id, tenant_id, extension)
    WHERE kind IN ('enrol', 'unenrol');
CREATE INDEX agent_activity_latest ON agent_activity (tenant_id, extension, at);

INSERT INTO schema_version (version) VALUES (11);
"""

#: Migrations after the baseline: ``MIGRATIONS[n]`` takes a database from ``n - 1`` to
#: ``n``, the same change as SQLite's migration ``n``. Append only.
MIGRATIONS: Final[dict[int, str]] = {
    # Each shard's own outbox rows (0 without a cluster); and the cluster's tables, which
    # only PostgreSQL has (docs/cluster.md): the leases, the nodes' heartbeats, the
    # explicit tenant -> shard assignment, and the notice of every configuration change.
    12: """
ALTER TABLE outbox ADD COLUMN shard bigint NOT NULL DEFAULT 0;
CREATE INDEX outbox_by_shard ON outbox (shard, seq);

CREATE TABLE cluster_leases (
    shard      integer PRIMARY KEY CHECK (shard >= 0),
    holder     text NULL,                               -- NULL: free
    epoch      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'  -- by the database's clock
);
CREATE TABLE cluster_nodes (
    node      text PRIMARY KEY,
    last_seen timestamptz NOT NULL,
    api_url   text NOT NULL DEFAULT ''
);
CREATE TABLE cluster_tenant_shards (
    tenant_id bigint PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    shard     integer NOT NULL CHECK (shard >= 0)
);

-- Every write of the configuration tells the listeners which tenant changed, in the
-- writing transaction: delivered when it commits, never when it rolls back, and once
-- per tenant and transaction (PostgreSQL folds identical notifications).
CREATE FUNCTION ringmaster_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed record;
    tenant bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
    IF TG_TABLE_NAME = 'tenants' THEN
        tenant := changed.id;
    ELSIF TG_TABLE_NAME = 'queue_agents' THEN
        SELECT tenant_id INTO tenant FROM queues WHERE id = changed.queue_id;
    ELSE
        tenant := changed.tenant_id;
    END IF;
    IF tenant IS NOT NULL THEN
        PERFORM pg_notify('ringmaster_config', tenant::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION ringmaster_config_changed();
CREATE TRIGGER extensions_changed AFTER INSERT OR UPDATE OR DELETE ON extensions
    FOR EACH ROW EXECUTE FUNCTION ringmaster_config_changed();
CREATE TRIGGER queues_changed AFTER INSERT OR UPDATE OR DELETE ON queues
    FOR EACH ROW EXECUTE FUNCTION ringmaster_config_changed();
CREATE TRIGGER queue_agents_changed AFTER INSERT OR UPDATE OR DELETE ON queue_agents
    FOR EACH ROW EXECUTE FUNCTION ringmaster_config_changed();
CREATE TRIGGER did_routes_changed AFTER INSERT OR UPDATE OR DELETE ON did_routes
    FOR EACH ROW EXECUTE FUNCTION ringmaster_config_changed();
CREATE TRIGGER cluster_tenant_shards_changed
    AFTER INSERT OR UPDATE OR DELETE ON cluster_tenant_shards
    FOR EACH ROW EXECUTE FUNCTION ringmaster_config_changed();
""",
}

#: The newest schema version this Ringmaster knows.
LATEST_VERSION: Final = BASELINE_VERSION + len(MIGRATIONS)
