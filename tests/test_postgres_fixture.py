"""The private PostgreSQL cluster of the tests: reachable, writable, private, unprivileged."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from .postgres import SERVICE_USER, PostgresCluster, PostgresError, start_postgres

ROOT = Path(__file__).resolve().parent.parent


async def test_a_table_written_on_one_connection_is_read_on_another(
    postgres_url: str,
) -> None:
    first = await asyncpg.connect(postgres_url)
    try:
        assert await first.fetchval("SELECT 1") == 1
        await first.execute("CREATE TABLE agents (extension text PRIMARY KEY, state text)")
        await first.executemany(
            "INSERT INTO agents VALUES ($1, $2)", [("101", "available"), ("102", "paused")]
        )
    finally:
        await first.close()
    second = await asyncpg.connect(postgres_url)
    try:
        rows = await second.fetch("SELECT extension, state FROM agents ORDER BY extension")
    finally:
        await second.close()
    assert [tuple(row) for row in rows] == [("101", "available"), ("102", "paused")]


def test_each_test_gets_a_new_empty_database(postgres: PostgresCluster, postgres_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    assert database.startswith("test_")
    tables = postgres.sql(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database=database
    )
    assert tables == "0"


def test_a_dropped_database_is_gone(postgres: PostgresCluster) -> None:
    name = postgres.create_database()
    postgres.drop_database(name)
    listed = postgres.sql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    assert listed == "0"


def test_bad_sql_is_a_clear_error(postgres: PostgresCluster) -> None:
    with pytest.raises(PostgresError, match="no_such_table"):
        postgres.sql("SELECT * FROM no_such_table")


def test_the_server_listens_on_loopback_only_and_runs_unprivileged(
    postgres: PostgresCluster,
) -> None:
    assert postgres.sql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres.sql("SHOW port") == str(postgres.port)
    assert postgres.port != 5432
    assert Path(postgres.sql("SHOW data_directory")) == postgres.data_dir
    pid = postgres.postmaster_pid()
    assert pid is not None
    uid = Path(f"/proc/{pid}").stat().st_uid
    expected = pwd.getpwnam(SERVICE_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert uid == expected


def test_close_stops_the_server_and_removes_its_folder() -> None:
    cluster = start_postgres(durable=False)
    pid = cluster.postmaster_pid()
    assert pid is not None
    assert Path(f"/proc/{pid}").exists()
    cluster.close()
    assert not Path(f"/proc/{pid}").exists()
    assert not cluster.root.exists()
    cluster.close()  # idempotent


def test_a_cluster_outlives_no_killed_owner() -> None:
    # pg_ctl detaches the server, so only the reaper stops it when its owner is
    # killed without running any cleanup.
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from tests.postgres import start_postgres\n"
            "cluster = start_postgres(durable=False)\n"
            "print(cluster.root, cluster.postmaster_pid(), flush=True)\n"
            "time.sleep(600)\n",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    with owner.stdout:
        try:
            root, pid = owner.stdout.readline().split()
            assert Path(f"/proc/{pid}").exists()
        finally:
            owner.kill()
            owner.wait()
    # A generous bound on the wait, not a timed assertion: the reaper polls every 0.2 s.
    deadline = time.monotonic() + 60
    while (Path(f"/proc/{pid}").exists() or Path(root).exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()
    assert not Path(root).exists()
