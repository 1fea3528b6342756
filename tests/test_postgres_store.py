"""What is PostgreSQL's own in the store: its schema against SQLite's, its migrations.

Everything else of the store runs on both backends (tests/test_store.py and the others
with the `database` fixture).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from ringmaster.store import Store, StoreError
from ringmaster.store.postgres import connection as pg_connection
from ringmaster.store.postgres.schema import LATEST_VERSION

from .postgres import PostgresCluster

#: SQLite's declared types, as PostgreSQL spells them (docs/store.md).
PG_TYPES = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision", "BLOB": "bytea"}
#: PostgreSQL's stand-in for SQLite's rowid of queue_agents (enrolment order).
PG_ONLY_COLUMNS = {("queue_agents", "enrolled")}
#: The cluster's tables exist on PostgreSQL only (a cluster needs it; SQLite refuses
#: cluster use): every other table is SQLite's, column for column.
PG_ONLY_TABLE_PREFIX = "cluster_"


def sqlite_columns(path: Path) -> dict[tuple[str, str], tuple[str, bool]]:
    with sqlite3.connect(path) as db:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        ]
        return {
            (table, column): (PG_TYPES[declared], bool(notnull or primary))
            for table in tables
            for _, column, declared, notnull, _, primary in db.execute(
                f"PRAGMA table_info({table})"
            )
        }


def sqlite_indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }


async def test_the_schema_has_sqlites_tables_columns_and_indexes(
    tmp_path: Path, postgres_url: str
) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        assert await store.schema_version() == LATEST_VERSION
    async with await Store.open(postgres_url) as store:
        assert await store.schema_version() == LATEST_VERSION
    conn = await asyncpg.connect(postgres_url)
    try:
        columns = {
            (row["table_name"], row["column_name"]): (row["data_type"], row["is_nullable"] == "NO")
            for row in await conn.fetch(
                "SELECT table_name, column_name, data_type, is_nullable"
                " FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name <> 'schema_version'"
            )
        }
        indexes = {
            name
            for (name,) in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
                " AND indexname NOT LIKE '%pkey' AND indexname NOT LIKE '%key'"
            )
        }
    finally:
        await conn.close()
    expected = sqlite_columns(tmp_path / "s.db")
    cluster_tables = {t for t, _ in columns if t.startswith(PG_ONLY_TABLE_PREFIX)}
    assert cluster_tables == {"cluster_leases", "cluster_nodes", "cluster_tenant_shards"}
    shared = {
        k: v for k, v in columns.items() if k not in PG_ONLY_COLUMNS and k[0] not in cluster_tables
    }
    assert shared == expected
    assert indexes == sqlite_indexes(tmp_path / "s.db")


async def test_a_database_from_a_newer_ringmaster_is_refused(postgres_url: str) -> None:
    async with await Store.open(postgres_url):
        pass
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("UPDATE schema_version SET version = 99")
    await conn.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await Store.open(postgres_url)


async def test_each_later_migration_is_its_own_transaction(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await Store.open(postgres_url):
        pass
    later = {
        LATEST_VERSION + 1: "CREATE TABLE future (id bigint PRIMARY KEY);",
        LATEST_VERSION + 2: "CREATE TABLE half (x bigint); INSERT INTO nowhere VALUES (1);",
    }
    monkeypatch.setattr(pg_connection, "MIGRATIONS", later)
    monkeypatch.setattr(pg_connection, "LATEST_VERSION", LATEST_VERSION + 2)
    with pytest.raises(asyncpg.UndefinedTableError, match="nowhere"):
        await Store.open(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT version FROM schema_version") == LATEST_VERSION + 1
        assert await conn.fetchval("SELECT to_regclass('future') IS NOT NULL")
        assert not await conn.fetchval("SELECT to_regclass('half') IS NOT NULL")
    finally:
        await conn.close()
    # Fixed, it goes on from where it stopped.
    later[LATEST_VERSION + 2] = "CREATE TABLE half (x bigint);"
    async with await Store.open(postgres_url) as store:
        assert await store.schema_version() == LATEST_VERSION + 2


async def test_an_unreachable_server_is_a_store_error_without_the_password(
    postgres: PostgresCluster,
) -> None:
    # A port nothing listens on: the cluster's own, plus one, is not guaranteed free,
    # so a database that does not exist on the running cluster says the same.
    url = f"postgresql://ringmaster:s3cr3t-value@127.0.0.1:{postgres.port}/no_such_database"
    with pytest.raises(StoreError, match="cannot connect") as raised:
        await Store.open(url)
    assert "s3cr3t-value" not in str(raised.value)
    assert "ringmaster:***@127.0.0.1" in str(raised.value)


async def test_a_url_of_no_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="must start with sqlite:///, postgresql://"):
        await Store.open("mysql://rm@db/acd")
