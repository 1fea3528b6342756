"""``python -m bench.pg_driver [--turns N] [--rounds R]``: asyncpg or psycopg 3 for the store.

One turn's commit as the SQLite store makes it (`ringmaster.store.live.turn_steps`,
`store.sqlite.connection.commit_steps`), written for PostgreSQL: in one transaction,
upsert the turn's live calls, replace their rings, upsert its agents, delete the outbox
rows confirmed published (the watermark), insert the turn's outbox messages and get
their seqs back. Each statement is one ``executemany`` of 1 to 10 rows, as the store's.
The turns run one after another from one asyncio task, as the daemon's loop commits.

Four ways, in rounds alternated A/B/C/D, D/C/B/A... so that the machine's noise (two cores
shared with other work) falls on each alike:

- ``asyncpg``: ``conn.transaction()``, ``executemany`` per statement (asyncpg pipelines
  the rows of one ``executemany``; each statement is one round trip).
- ``psycopg``: psycopg 3's ``AsyncConnection``, the same statements with a cursor.
- ``psycopg_pipeline``: the same inside ``conn.pipeline()``: psycopg sends the whole
  transaction and waits once, for the seqs and the COMMIT.
- ``psycopg_pipeline_binary``: the same with ``%b`` placeholders (parameters sent in
  PostgreSQL's binary format, as asyncpg always sends them).

Figures per turn: wall time (best and median of every turn of every round), the Python
process's CPU (``time.process_time`` over a round / turns; the daemon's loop pays it),
and the server backend's CPU (``/proc/<backend pid>/stat``, 10 ms ticks, so a round's
sum divided by its turns). Also a single-row SELECT by primary key, prepared (asyncpg's
statement cache; psycopg ``prepare=True``), outside any transaction.

The private cluster (`tests.postgres.start_postgres`) keeps PostgreSQL's durability
defaults (fsync, synchronous_commit on): each turn's COMMIT waits for its WAL flush, as
the store's would. Prints one JSON document: the machine, the settings, the figures, and
the ratios to asyncpg.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from tests.postgres import PostgresCluster, start_postgres

from bench.common import machine

# The project depends on asyncpg only (docs/performance.md, "PostgreSQL driver"); psycopg
# is imported by name so that type-checking bench/ needs no second driver installed.
# `pip install 'psycopg[binary]'` to run the comparison.
try:
    psycopg: Any = importlib.import_module("psycopg")
except ImportError:
    psycopg = None

SCHEMA = """
CREATE TABLE calls (
    tenant_id    integer NOT NULL,
    call_id      text NOT NULL,
    phase        text NOT NULL,
    queue_id     integer NULL,
    did          text NOT NULL,
    caller_id    text NOT NULL,
    caller_name  text NOT NULL,
    priority     integer NOT NULL,
    arrived_at   double precision NOT NULL,
    seq          bigint NOT NULL,
    tried        text NOT NULL,
    retry_at     double precision NULL,
    agent_id     integer NULL,
    answered_at  double precision NULL,
    entered_at   double precision NULL,
    hops         integer NOT NULL,
    skills       text NOT NULL,
    rings_started integer NOT NULL,
    agent_number text NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
);
CREATE TABLE rings (
    tenant_id    integer NOT NULL,
    call_id      text NOT NULL,
    extension_id integer NOT NULL,
    position     integer NOT NULL,
    started_at   double precision NOT NULL,
    deadline     double precision NOT NULL,
    ring_id      text NOT NULL,
    number       text NOT NULL,
    PRIMARY KEY (tenant_id, call_id, extension_id),
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls ON DELETE CASCADE
);
CREATE TABLE agent_states (
    extension_id       integer PRIMARY KEY,
    presence           text NOT NULL,
    presence_reason    text NOT NULL,
    device             text NOT NULL,
    wrapup_until       double precision NULL,
    status             text NOT NULL,
    last_call_ended_at double precision NULL,
    skip_until         double precision NULL,
    unanswered         integer NOT NULL
);
CREATE TABLE outbox (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic   text NOT NULL,
    payload bytea NOT NULL,
    retain  boolean NOT NULL
);
"""

CALL_COLUMNS = [
    "tenant_id",
    "call_id",
    "phase",
    "queue_id",
    "did",
    "caller_id",
    "caller_name",
    "priority",
    "arrived_at",
    "seq",
    "tried",
    "retry_at",
    "agent_id",
    "answered_at",
    "entered_at",
    "hops",
    "skills",
    "rings_started",
    "agent_number",
]
AGENT_COLUMNS = [
    "extension_id",
    "presence",
    "presence_reason",
    "device",
    "wrapup_until",
    "status",
    "last_call_ended_at",
    "skip_until",
    "unanswered",
]


def _upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


UPSERT_CALL = _upsert("calls", CALL_COLUMNS, ("tenant_id", "call_id"))
DELETE_RINGS = "DELETE FROM rings WHERE tenant_id = $1 AND call_id = $2"
INSERT_RING = "INSERT INTO rings VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
UPSERT_AGENT = _upsert("agent_states", AGENT_COLUMNS, ("extension_id",))
DELETE_DELIVERED = "DELETE FROM outbox WHERE seq <= $1"
# One statement for all of a turn's messages, returning their seqs in order: with
# several writers, a sequence's values within one transaction need not be consecutive,
# so SQLite's "last rowid minus count" does not carry over.
INSERT_OUTBOX = (
    "INSERT INTO outbox (topic, payload, retain)"
    " SELECT topic, payload, retain"
    " FROM unnest($1::text[], $2::bytea[], $3::boolean[]) WITH ORDINALITY"
    " AS m(topic, payload, retain, n) ORDER BY n RETURNING seq"
)
SELECT_AGENT = (
    "SELECT presence, status, wrapup_until, unanswered FROM agent_states WHERE extension_id = $1"
)

#: Rows of calls in successive turns (rings: one per call; agents: half as many, at
#: least one; outbox messages: one more than calls): 1 to 10, mean 3.5.
SIZES = (1, 2, 3, 5, 10, 2, 1, 4)
CALL_POOL = 300
AGENT_POOL = 200


def psycopg_sql(statement: str, *, binary: bool = False) -> str:
    """The same statement with psycopg's placeholders (every ``$n`` in order).

    ``%s`` lets psycopg send each parameter as text; ``%b`` in its binary format.
    """
    return re.sub(r"\$\d+", "%b" if binary else "%s", statement)


class Turn:
    """One turn's rows, built before the clock starts, the same for every driver."""

    def __init__(self, index: int) -> None:
        n = SIZES[index % len(SIZES)]
        now = 1_700_000_000.0 + index * 0.01
        keys = [(1, f"c{(index * 7 + k) % CALL_POOL}") for k in range(n)]
        self.calls = [
            (
                *key,
                "ringing",
                4,
                "+15550100",
                "+15550123",
                "Caller",
                0,
                now - 3.0,
                index * 10 + k,
                "[101, 102]",
                None,
                None,
                None,
                now - 2.0,
                0,
                "{}",
                1,
                "",
            )
            for k, key in enumerate(keys)
        ]
        self.call_keys = keys
        self.rings = [
            (*key, 100 + k, 0, now, now + 15.0, f"r{index}-{k}", str(100 + k))
            for k, key in enumerate(keys)
        ]
        self.agents = [
            (
                (index * 3 + k) % AGENT_POOL,
                "available",
                "",
                "sip:101@pbx",
                None,
                "ringing",
                now - 60.0,
                None,
                0,
            )
            for k in range(max(1, n // 2))
        ]
        self.watermark = 0  # set from the seqs the previous turn got
        self.topics = [f"P/1/cmd/ring/{k}" for k in range(n + 1)]
        self.payloads = [b'{"call_id": "c1", "extension": "101", "ring_id": "r1"}'] * (n + 1)
        self.retains = [False] * (n + 1)


class Driver(Protocol):
    """What the bench asks of each way of talking to PostgreSQL."""

    name: str

    async def commit(self, turn: Turn) -> list[int]:
        """Commit one turn; the outbox seqs it got."""

    async def select(self, extension_id: int) -> tuple[Any, ...] | None:
        """The prepared single-row SELECT."""

    async def backend_pid(self) -> int:
        """The server process serving this connection."""

    async def close(self) -> None:
        """Close the connection."""


class Asyncpg:
    """asyncpg: statement cache (prepared statements) on, its defaults otherwise."""

    name = "asyncpg"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @classmethod
    async def connect(cls, url: str) -> Asyncpg:
        """Connect to `url`."""
        return cls(await asyncpg.connect(url))

    async def commit(self, turn: Turn) -> list[int]:
        """One turn's transaction."""
        conn = self._conn
        async with conn.transaction():
            await conn.executemany(UPSERT_CALL, turn.calls)
            await conn.executemany(DELETE_RINGS, turn.call_keys)
            await conn.executemany(INSERT_RING, turn.rings)
            await conn.executemany(UPSERT_AGENT, turn.agents)
            await conn.execute(DELETE_DELIVERED, turn.watermark)
            rows = await conn.fetch(INSERT_OUTBOX, turn.topics, turn.payloads, turn.retains)
        return [row[0] for row in rows]

    async def select(self, extension_id: int) -> tuple[Any, ...] | None:
        """The agent's row."""
        row = await self._conn.fetchrow(SELECT_AGENT, extension_id)
        return None if row is None else tuple(row)

    async def backend_pid(self) -> int:
        """``pg_backend_pid()``."""
        pid: int = await self._conn.fetchval("SELECT pg_backend_pid()")
        return pid

    async def close(self) -> None:
        """Close."""
        await self._conn.close()


class Psycopg:
    """psycopg 3, async, autocommit with explicit transactions; optionally pipelined/binary."""

    def __init__(self, conn: Any, *, pipeline: bool, binary: bool) -> None:
        self._conn = conn
        self._pipeline = pipeline
        self._sql = {name: psycopg_sql(text, binary=binary) for name, text in STATEMENTS.items()}
        self.name = "psycopg" + ("_pipeline" if pipeline else "") + ("_binary" if binary else "")

    @classmethod
    async def connect(cls, url: str, *, pipeline: bool, binary: bool = False) -> Psycopg:
        """Connect to `url`."""
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        return cls(conn, pipeline=pipeline, binary=binary)

    async def commit(self, turn: Turn) -> list[int]:
        """One turn's transaction."""
        if self._pipeline:
            async with self._conn.pipeline():
                return await self._transaction(turn)
        return await self._transaction(turn)

    async def _transaction(self, turn: Turn) -> list[int]:
        q = self._sql
        async with self._conn.transaction(), self._conn.cursor() as cur:
            await cur.executemany(q["upsert_call"], turn.calls)
            await cur.executemany(q["delete_rings"], turn.call_keys)
            await cur.executemany(q["insert_ring"], turn.rings)
            await cur.executemany(q["upsert_agent"], turn.agents)
            await cur.execute(q["delete_delivered"], (turn.watermark,))
            await cur.execute(q["insert_outbox"], (turn.topics, turn.payloads, turn.retains))
            return [row[0] for row in await cur.fetchall()]

    async def select(self, extension_id: int) -> tuple[Any, ...] | None:
        """The agent's row."""
        cur = await self._conn.execute(self._sql["select_agent"], (extension_id,), prepare=True)
        row = await cur.fetchone()
        return None if row is None else tuple(row)

    async def backend_pid(self) -> int:
        """The libpq connection's ``backend_pid``."""
        return int(self._conn.info.backend_pid)

    async def close(self) -> None:
        """Close."""
        await self._conn.close()


STATEMENTS = {
    "upsert_call": UPSERT_CALL,
    "delete_rings": DELETE_RINGS,
    "insert_ring": INSERT_RING,
    "upsert_agent": UPSERT_AGENT,
    "delete_delivered": DELETE_DELIVERED,
    "insert_outbox": INSERT_OUTBOX,
    "select_agent": SELECT_AGENT,
}

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a server process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


class Tally:
    """One driver's samples over every round of one kind of operation."""

    def __init__(self) -> None:
        self.wall_ns: list[int] = []
        self.cpu_us_per_op: list[float] = []  # one figure per round
        self.server_cpu_us_per_op: list[float] = []

    def summary(self) -> dict[str, float]:
        """Best and median wall time; CPU per op: median and best over rounds."""
        return {
            "best_us": round(min(self.wall_ns) / 1e3, 1),
            "median_us": round(statistics.median(self.wall_ns) / 1e3, 1),
            "p99_us": round(sorted(self.wall_ns)[int(0.99 * len(self.wall_ns))] / 1e3, 1),
            "cpu_us_median": round(statistics.median(self.cpu_us_per_op), 1),
            "cpu_us_best": round(min(self.cpu_us_per_op), 1),
            "server_cpu_us_median": round(statistics.median(self.server_cpu_us_per_op), 1),
        }


async def measure_round(driver: Driver, turns: list[Turn], tally: Tally, *, select: bool) -> None:
    """Run every turn (or a SELECT per turn) once, timing each, into `tally`."""
    pid = await driver.backend_pid()
    server0 = backend_cpu_s(pid)
    cpu0 = time.process_time_ns()
    seqs: list[int] = []
    for turn in turns:
        t0 = time.perf_counter_ns()
        if select:
            await driver.select(turn.agents[0][0])
        else:
            # The store deletes what the previous turn published once it is confirmed.
            turn.watermark = seqs[-1] if seqs else 0
            seqs = await driver.commit(turn)
        tally.wall_ns.append(time.perf_counter_ns() - t0)
    cpu_ns = time.process_time_ns() - cpu0
    server_s = backend_cpu_s(pid) - server0
    tally.cpu_us_per_op.append(cpu_ns / 1e3 / len(turns))
    tally.server_cpu_us_per_op.append(server_s * 1e6 / len(turns))


async def connect_all(cluster: PostgresCluster) -> list[Driver]:
    """One fresh database with the schema, and one connection to it, per driver."""
    if psycopg is None:
        raise SystemExit("psycopg is not installed: pip install 'psycopg[binary]' to compare")
    drivers: list[Driver] = []
    for make in (
        Asyncpg.connect,
        lambda url: Psycopg.connect(url, pipeline=False),
        lambda url: Psycopg.connect(url, pipeline=True),
        lambda url: Psycopg.connect(url, pipeline=True, binary=True),
    ):
        database = cluster.create_database("bench")
        cluster.sql(SCHEMA, database=database)
        drivers.append(await make(cluster.url(database)))
    return drivers


async def run(turns: int, rounds: int) -> dict[str, Any]:
    """Warm every driver up, then alternate them round by round; the figures."""
    work = [Turn(i) for i in range(turns)]
    with start_postgres(durable=True) as cluster:
        drivers = await connect_all(cluster)
        try:
            commits = {d.name: Tally() for d in drivers}
            selects = {d.name: Tally() for d in drivers}
            for d in drivers:  # warm-up: caches, prepared statements, table pages
                await measure_round(d, work, Tally(), select=False)
                await measure_round(d, work, Tally(), select=True)
            for r in range(rounds):
                # Alternate the order too, so that none always follows the same one.
                for d in drivers if r % 2 == 0 else list(reversed(drivers)):
                    await measure_round(d, work, commits[d.name], select=False)
                    await measure_round(d, work, selects[d.name], select=True)
            server = cluster.sql("SHOW server_version")
            durability = {
                name: cluster.sql(f"SHOW {name}")
                for name in ("fsync", "synchronous_commit", "wal_sync_method")
            }
        finally:
            for d in drivers:
                await d.close()
    result: dict[str, Any] = {
        "machine": {**machine(), "postgresql": server, **durability},
        "versions": {"asyncpg": asyncpg.__version__, "psycopg": psycopg.__version__},
        "settings": {"turns_per_round": turns, "rounds": rounds, "rows_per_statement": SIZES},
        "commit": {name: t.summary() for name, t in commits.items()},
        "select": {name: t.summary() for name, t in selects.items()},
    }
    for kind in ("commit", "select"):
        base = result[kind]["asyncpg"]
        result[f"{kind}_ratio_to_asyncpg"] = {
            name: {
                key: round(figures[key] / base[key], 2)
                for key in ("median_us", "cpu_us_median")
                if base[key]
            }
            for name, figures in result[kind].items()
            if name != "asyncpg"
        }
    return result


def main() -> None:
    """Parse the arguments, run, print the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.pg_driver", description=__doc__)
    parser.add_argument("--turns", type=int, default=1000, help="turns per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per driver (default 5)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.turns, args.rounds)), indent=2), flush=True)


if __name__ == "__main__":
    main()
