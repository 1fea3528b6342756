"""The store on both backends (SQLite-only tests say why).

Migrations, configuration and live-state round trips, the outbox.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringmaster.contract import OutboxMessage
from ringmaster.engine.events import (
    AgentEnrolled,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
    TenantSaved,
)
from ringmaster.engine.model import (
    DEFAULT_ENROLMENT,
    AgentCondition,
    AgentStatus,
    CallId,
    CallPhase,
    DeviceState,
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    PenaltyRule,
    Presence,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    SkillRule,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    EndedRing,
    LiveState,
    QueueMemoryRecord,
    RingRecord,
    StateChanges,
)
from ringmaster.store import (
    AuditFilter,
    AuditRecord,
    Change,
    ConfigTransaction,
    Saved,
    Store,
    StoredRoute,
    StoreError,
)
from ringmaster.store.history import VisitFilter
from ringmaster.store.sqlite import schema as schema_module
from ringmaster.store.sqlite.connection import SqliteConnection

from .store_backends import INTEGRITY_ERRORS, READ_ONLY_ERRORS, Databases, raw_sql

T1 = TenantId(1)
T2 = TenantId(2)
NO_ID = QueueId(0)  # what a queue to insert carries: the store ignores it


@contextmanager
def file_at_version(path: Path, version: int) -> Iterator[sqlite3.Connection]:
    """A store file made by hand at an older schema `version`, as that Ringmaster left it.

    The block fills it; the file then says it is at `version`.
    """
    with sqlite3.connect(path) as db:
        for script in schema_module.MIGRATIONS[:version]:
            db.executescript(script)
        yield db
        db.execute(f"PRAGMA user_version = {version}")


def queue_config(
    tenant_id: TenantId,
    queue_number: str,
    name: str = "Q",
    strategy: str = "ringall",
    timeout: int = 15,
    *,
    queue_id: QueueId = NO_ID,
    **options: Any,
) -> QueueConfig:
    return QueueConfig(queue_id, tenant_id, name, queue_number, strategy, timeout, **options)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        }


def plain(*extension_ids: ExtensionId) -> list[tuple[ExtensionId, EnrolmentOptions]]:
    """Agents with the default options, positioned by their order."""
    return [(e, DEFAULT_ENROLMENT) for e in extension_ids]


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


# --- opening and migrating ---------------------------------------------------------------


async def test_open_creates_folder_and_current_schema(tmp_path: Path) -> None:
    # SQLite only: a file, its folder and WAL mode are SQLite's own.
    path = tmp_path / "deep" / "er" / "ringmaster.db"
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
    assert user_version(path) == len(schema_module.MIGRATIONS)
    assert {"tenants", "queues", "calls", "rings", "outbox"} <= tables(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopen_is_a_no_op(database: Databases) -> None:
    path = database("r.db")
    async with await Store.open(path) as store, store.transaction() as tx:
        await tx.upsert_tenant(T1, "Acme")
    async with await Store.open(path) as store:
        assert await store.load_config() == [TenantSaved(Tenant(T1, "Acme"))]


async def test_older_file_is_brought_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite only: files of SQLite's older schema versions (PostgreSQL starts at the baseline).
    # A file at version 1, made by hand (not by Store), with data in it.
    path = tmp_path / "old.db"
    with file_at_version(path, 1) as db:
        db.execute("INSERT INTO tenants (id, name) VALUES (1, 'Acme')")
    # This Ringmaster knows one migration more than the real ones.
    extra = "CREATE TABLE future (id INTEGER PRIMARY KEY, what TEXT NOT NULL);"
    monkeypatch.setattr(schema_module, "MIGRATIONS", [*schema_module.MIGRATIONS, extra])

    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
        assert await store.load_config() == [TenantSaved(Tenant(T1, "Acme"))]
    assert {"audit", "future"} <= tables(path)


async def test_version_0_file_with_unrelated_content_is_migrated(tmp_path: Path) -> None:
    # SQLite only: a SQLite file made by another program.
    path = tmp_path / "v0.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE scratch (x)")
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
    assert {"scratch", "tenants", "outbox"} <= tables(path)


async def test_failed_migration_leaves_the_last_complete_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite only: SQLite's migrations (PostgreSQL's: test_postgres_store.py).
    path = tmp_path / "f.db"
    async with await Store.open(path):
        pass
    broken = "CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);"
    monkeypatch.setattr(schema_module, "MIGRATIONS", [*schema_module.MIGRATIONS, broken])
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        await Store.open(path)
    assert user_version(path) == len(schema_module.MIGRATIONS) - 1
    assert "half" not in tables(path)


async def test_file_from_a_newer_ringmaster_is_refused(tmp_path: Path) -> None:
    # SQLite only: SQLite's user_version (PostgreSQL's: test_postgres_store.py).
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await Store.open(path)


async def test_unknown_synchronous_is_refused(tmp_path: Path) -> None:
    # SQLite only: `synchronous` is a SQLite PRAGMA.
    with pytest.raises(ValueError, match="synchronous"):
        await Store.open(tmp_path / "s.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


# --- configuration ---------------------------------------------------------------------


async def test_config_round_trip(database: Databases) -> None:
    path = database("c.db")
    async with await Store.open(path) as store, store.transaction() as tx:
        assert await tx.upsert_tenant(T1, "Acme") is Change.CREATED
        assert await tx.upsert_tenant(T2, "Globex") is Change.CREATED
        alice = await tx.upsert_extension(T1, "101", name="Alice")
        bob = await tx.upsert_extension(T1, "102", name="Bob")
        carol = await tx.upsert_extension(T2, "101", name="Carol")
        sales = await tx.upsert_queue(queue_config(T1, "600", "Sales", "roundrobin", retry=3))
        closed = await tx.upsert_queue(
            queue_config(
                T2, "600", "Closed", timeout=20, status=QueueStatus.INACTIVE, wrapup_time=10
            )
        )
        assert await tx.set_enrolments(sales.id, plain(bob.id, alice.id)) is Change.CREATED
        assert await tx.set_enrolments(closed.id, plain(carol.id)) is Change.CREATED
        await tx.upsert_did_route(T1, "+15550100", QueueTarget(sales.id))
        await tx.upsert_did_route(T1, "+15550199", ExtensionTarget(alice.id))

    async with await Store.open(path) as store:
        assert await store.load_config() == [
            TenantSaved(Tenant(T1, "Acme")),
            TenantSaved(Tenant(T2, "Globex")),
            ExtensionSaved(Extension(alice.id, T1, "101", "Alice")),
            ExtensionSaved(Extension(bob.id, T1, "102", "Bob")),
            ExtensionSaved(Extension(carol.id, T2, "101", "Carol")),
            QueueSaved(QueueConfig(sales.id, T1, "Sales", "600", "roundrobin", 15, retry=3)),
            QueueSaved(
                QueueConfig(
                    closed.id,
                    T2,
                    "Closed",
                    "600",
                    "ringall",
                    20,
                    status=QueueStatus.INACTIVE,
                    wrapup_time=10,
                )
            ),
            AgentEnrolled(sales.id, bob.id, EnrolmentOptions(position=0)),
            AgentEnrolled(sales.id, alice.id, EnrolmentOptions(position=1)),
            AgentEnrolled(closed.id, carol.id, EnrolmentOptions(position=0)),
            DidRouteSaved(DidRoute(T1, "+15550100", QueueTarget(sales.id))),
            DidRouteSaved(DidRoute(T1, "+15550199", ExtensionTarget(alice.id))),
        ]


async def test_upserts_report_unchanged_and_updated(database: Databases) -> None:
    async with await Store.open(database("u.db")) as store, store.transaction() as tx:
        await tx.upsert_tenant(T1, "Acme")
        assert await tx.upsert_tenant(T1, "Acme") is Change.UNCHANGED
        assert await tx.upsert_tenant(T1, "Acme Ltd") is Change.UPDATED

        first = await tx.upsert_extension(T1, "101", name="Alice")
        again = await tx.upsert_extension(T1, "101", name="Alice")
        renamed = await tx.upsert_extension(T1, "101", name="Alice B")
        assert (again.id, again.change) == (first.id, Change.UNCHANGED)
        assert (renamed.id, renamed.change) == (first.id, Change.UPDATED)
        other = await tx.upsert_extension(T1, "102")

        queue = await tx.upsert_queue(queue_config(T1, "600", "Sales"))
        same = await tx.upsert_queue(queue_config(T1, "600", "Sales"))
        slower = await tx.upsert_queue(queue_config(T1, "600", "Sales", timeout=30))
        assert (same.id, same.change) == (queue.id, Change.UNCHANGED)
        assert (slower.id, slower.change) == (queue.id, Change.UPDATED)

        assert await tx.set_enrolments(queue.id, plain(first.id, other.id)) is Change.CREATED
        assert await tx.set_enrolments(queue.id, plain(first.id, other.id)) is Change.UNCHANGED
        assert await tx.set_enrolments(queue.id, plain(other.id, first.id)) is Change.UPDATED

        route = QueueTarget(queue.id)
        assert await tx.upsert_did_route(T1, "100", route) is Change.CREATED
        assert await tx.upsert_did_route(T1, "100", route) is Change.UNCHANGED
        assert await tx.upsert_did_route(T1, "100", ExtensionTarget(first.id)) is Change.UPDATED


async def test_route_to_another_tenants_queue_is_refused_by_the_schema(database: Databases) -> None:
    async with await Store.open(database("x.db")) as store:
        async with store.transaction() as tx:
            await tx.upsert_tenant(T1, "Acme")
            await tx.upsert_tenant(T2, "Globex")
            theirs = await tx.upsert_queue(queue_config(T2, "600"))
        with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)foreign key"):
            async with store.transaction() as tx:
                await tx.upsert_did_route(T1, "100", QueueTarget(theirs.id))
        assert not [e for e in await store.load_config() if isinstance(e, DidRouteSaved)]


async def test_exception_in_transaction_leaves_nothing(database: Databases) -> None:
    path = database("a.db")
    async with await Store.open(path) as store:
        async with store.transaction() as tx:
            await tx.upsert_tenant(T1, "Acme")
        late: list[ConfigTransaction] = []

        async def fail_halfway() -> None:
            async with store.transaction() as tx:
                late.append(tx)
                await tx.upsert_tenant(T1, "Renamed")
                await tx.upsert_tenant(T2, "Globex")
                await tx.upsert_extension(T1, "101")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await fail_halfway()
        with pytest.raises(StoreError, match="transaction is over"):
            await late[0].upsert_tenant(T2, "Late")
        # The store is still usable, and nothing of the failed transaction is left.
        assert await store.load_config() == [TenantSaved(Tenant(T1, "Acme"))]
    async with await Store.open(path) as store:
        assert await store.load_config() == [TenantSaved(Tenant(T1, "Acme"))]


async def test_deleting_an_extension_keeps_its_enrolment(database: Databases) -> None:
    # The product's documented behaviour; the engine copes with enrolments of nothing.
    path = database("e.db")
    async with await Store.open(path) as store, store.transaction() as tx:
        await tx.upsert_tenant(T1, "Acme")
        ext = await tx.upsert_extension(T1, "101")
        queue = await tx.upsert_queue(queue_config(T1, "600"))
        await tx.set_enrolments(queue.id, plain(ext.id))
    await raw_sql(path, "DELETE FROM extensions")
    async with await Store.open(path) as store:
        enrolled = AgentEnrolled(queue.id, ext.id, EnrolmentOptions(position=0))
        assert enrolled in await store.load_config()


# --- configuration: the call-centre options (migration 3) ---------------------------------

ALL_CONDITIONS = frozenset(AgentCondition)


async def tenant_with_extensions(tx: ConfigTransaction) -> tuple[ExtensionId, ExtensionId]:
    await tx.upsert_tenant(T1, "Acme")
    await tx.upsert_tenant(T2, "Globex")
    alice = await tx.insert_extension(T1, "101", "Alice", {"spanish": 8, "billing": 5})
    bob = await tx.insert_extension(T1, "102", "Bob")
    return alice.extension_id, bob.extension_id


async def test_every_queue_option_round_trips(database: Databases) -> None:
    path = database("q.db")
    async with await Store.open(path) as store, store.transaction() as tx:
        alice, _ = await tenant_with_extensions(tx)
        target = await tx.insert_queue(queue_config(T1, "700", "Overflow"))
        assert target == queue_config(T1, "700", "Overflow", queue_id=target.queue_id)
        options: dict[str, Any] = {
            "status": QueueStatus.INACTIVE,
            "retry": 3,
            "wrapup_time": 12,
            "max_len": 40,
            "max_wait": 300,
            "overflow": QueueTarget(target.queue_id),
            "join_empty": frozenset({AgentCondition.PAUSED, AgentCondition.LOGGED_OUT}),
            "leave_when_empty": ALL_CONDITIONS,
            "weight": 7,
            "service_level": 30,
            "announce_frequency": 45,
            "ring_progressive_delay": 4,
            "ring_in_use": True,
            "penalty_rules": (PenaltyRule(30, 2), PenaltyRule(60, 5)),
            "skill_rules": (SkillRule(20, 1), SkillRule(90, 10)),
        }
        sales = await tx.insert_queue(queue_config(T1, "600", "Sales", "linear", 20, **options))
        assert sales == queue_config(
            T1, "600", "Sales", "linear", 20, queue_id=sales.queue_id, **options
        )
        to_extension = await tx.insert_queue(
            queue_config(T1, "601", overflow=ExtensionTarget(alice))
        )
        assert to_extension.overflow == ExtensionTarget(alice)
        await tx.enrol(sales.queue_id, alice)

        assert await tx.queue(sales.queue_id) == sales
        assert await tx.queue_by_number(T1, "600") == sales
        assert (await tx.queues(T1)).items == [target, sales, to_extension]
        assert await tx.queues_of(alice) == [sales]

    async with await Store.open(path) as store:
        saved = [e.queue for e in await store.load_config() if isinstance(e, QueueSaved)]
        assert saved == [target, sales, to_extension]
    (row,) = await raw_sql(
        path,
        "SELECT overflow_type, overflow_queue_id, overflow_extension_id, options"
        f" FROM queues WHERE id = {sales.queue_id}",
    )
    # References stay columns; the options are one JSON object, in the declaration's
    # plain form (conditions in the enum's order), one spelling (keys sorted, compact).
    assert row == (
        "queue",
        target.queue_id,
        None,
        '{"announce_frequency":45,"join_empty":["paused","logged_out"],'
        '"leave_when_empty":["paused","unavailable","logged_out","busy","wrapup"],'
        '"max_len":40,"max_wait":300,'
        '"penalty_rules":[{"after":30,"max_penalty":2},{"after":60,"max_penalty":5}],'
        '"retry":3,"ring_in_use":true,"ring_progressive_delay":4,"service_level":30,'
        '"skill_rules":[{"after":20,"lower_by":1},{"after":90,"lower_by":10}],'
        '"weight":7,"wrapup_time":12}',
    )


async def test_update_queue_stores_every_option_and_upsert_compares_them(
    database: Databases,
) -> None:
    async with await Store.open(database("u.db")) as store, store.transaction() as tx:
        alice, _ = await tenant_with_extensions(tx)
        queue = await tx.insert_queue(queue_config(T1, "600"))
        changed = replace(
            queue,
            name="Renamed",
            queue_number="650",
            max_wait=60,
            overflow=ExtensionTarget(alice),
            join_empty=frozenset({AgentCondition.BUSY}),
            penalty_rules=(PenaltyRule(10, 1),),
        )
        await tx.update_queue(changed)
        assert await tx.queue(queue.queue_id) == changed
        # back to hangup: the target columns are cleared
        await tx.update_queue(replace(changed, overflow=HangupTarget()))
        assert (await tx.queue(queue.queue_id)) == replace(changed, overflow=HangupTarget())

        again = replace(changed, queue_id=QueueId(0), overflow=HangupTarget())
        assert await tx.upsert_queue(again) == Saved(queue.queue_id, Change.UNCHANGED)
        edits: list[tuple[str, Any]] = [
            ("name", "Other"),
            ("strategy", "linear"),
            ("status", QueueStatus.INACTIVE),
            ("retry", 1),
            ("wrapup_time", 4),
            ("max_len", 1),
            ("max_wait", 5),
            ("join_empty", frozenset({AgentCondition.PAUSED, AgentCondition.BUSY})),
            ("overflow", QueueTarget(queue.queue_id)),
            ("leave_when_empty", frozenset({AgentCondition.WRAPUP})),
            ("weight", 2),
            ("service_level", 21),
            ("announce_frequency", 1),
            ("ring_progressive_delay", 11),
            ("penalty_rules", (PenaltyRule(10, 2),)),
            ("skill_rules", (SkillRule(5, 1),)),
        ]
        for option, value in edits:
            again = replace(again, **{option: value})
            assert await tx.upsert_queue(again) == Saved(queue.queue_id, Change.UPDATED), option
            assert await tx.upsert_queue(again) == Saved(queue.queue_id, Change.UNCHANGED), option
        assert await tx.queue(queue.queue_id) == replace(again, queue_id=queue.queue_id)


async def test_overflow_targets_stay_in_the_tenant_and_block_deletion(database: Databases) -> None:
    async with await Store.open(database("o.db")) as store:
        async with store.transaction() as tx:
            alice, bob = await tenant_with_extensions(tx)
            theirs = await tx.insert_queue(queue_config(T2, "600"))
            theirs_ext = await tx.insert_extension(T2, "201", "Zed")
            target = await tx.insert_queue(queue_config(T1, "700"))
            first = await tx.insert_queue(
                queue_config(T1, "600", overflow=QueueTarget(target.queue_id))
            )
            second = await tx.insert_queue(queue_config(T1, "601", overflow=ExtensionTarget(bob)))
            # a queue overflowing to itself does not hold up its own deletion
            await tx.update_queue(replace(target, overflow=QueueTarget(target.queue_id)))

            assert await tx.queues_overflowing_to(QueueTarget(target.queue_id)) == [first]
            assert await tx.queues_overflowing_to(ExtensionTarget(bob)) == [second]
            assert await tx.queues_overflowing_to(ExtensionTarget(alice)) == []
            assert await tx.queues_overflowing_to(QueueTarget(first.queue_id)) == []

        for bad in (
            queue_config(T1, "602", overflow=QueueTarget(theirs.queue_id)),
            queue_config(T1, "602", overflow=ExtensionTarget(theirs_ext.extension_id)),
            queue_config(T1, "602", overflow=QueueTarget(QueueId(999))),
        ):
            with pytest.raises(INTEGRITY_ERRORS):
                async with store.transaction() as tx:
                    await tx.insert_queue(bad)
            with pytest.raises(INTEGRITY_ERRORS):
                async with store.transaction() as tx:
                    await tx.update_queue(replace(bad, queue_id=first.queue_id))
        # the API checks `queues_overflowing_to` first; the schema is the safety net
        with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)foreign key"):
            async with store.transaction() as tx:
                await tx.delete_queue(target.queue_id)
        with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)foreign key"):
            async with store.transaction() as tx:
                await tx.delete_extension(bob)
        async with store.transaction() as tx:
            await tx.delete_queue(first.queue_id)
            await tx.delete_queue(target.queue_id)
            assert await tx.queue(target.queue_id) is None


async def test_enrolment_options_and_positions(database: Databases) -> None:
    path = database("e.db")
    async with await Store.open(path) as store, store.transaction() as tx:
        alice, bob = await tenant_with_extensions(tx)
        carol = (await tx.insert_extension(T1, "103", "Carol")).extension_id
        dave = (await tx.insert_extension(T1, "104", "Dave")).extension_id
        queue = (await tx.insert_queue(queue_config(T1, "600"))).queue_id
        picky = EnrolmentOptions(
            penalty=2,
            wrapup_time=30,
            max_no_answer=3,
            busy_delay=5,
            reject_delay=6,
            no_answer_delay=7,
        )
        assert await tx.enrol(queue, alice)  # first: position 0
        assert await tx.enrol(queue, bob, picky)  # after the last: 1
        assert await tx.enrol(queue, carol, EnrolmentOptions(position=0))  # ties with alice
        assert await tx.enrol(queue, dave, EnrolmentOptions(position=5, wrapup_time=0))
        assert not await tx.enrol(queue, alice, picky)  # already in: nothing changes
        assert await tx.enrolment(queue, alice) == EnrolmentOptions(position=0)
        assert await tx.enrolment(queue, bob) == replace(picky, position=1)
        assert await tx.enrolment(queue, ExtensionId(999)) is None

        # a tie goes by enrolment order
        expected = [
            (alice, EnrolmentOptions(position=0)),
            (carol, EnrolmentOptions(position=0)),
            (bob, replace(picky, position=1)),
            (dave, EnrolmentOptions(position=5, wrapup_time=0)),
        ]
        enrolments = await tx.enrolments(queue)
        assert [(e.extension_id, o) for e, o in enrolments] == expected
        assert enrolments[0][0] == Extension(
            alice, T1, "101", "Alice", {"spanish": 8, "billing": 5}
        )
        assert [e.extension_id for e in await tx.enrolled(queue)] == [alice, carol, bob, dave]

        # None keeps the position; a number moves the agent
        assert await tx.update_enrolment(queue, bob, EnrolmentOptions(penalty=1))
        assert await tx.enrolment(queue, bob) == EnrolmentOptions(penalty=1, position=1)
        assert await tx.update_enrolment(queue, alice, replace(picky, position=9))
        assert await tx.enrolment(queue, alice) == replace(picky, position=9)
        assert not await tx.update_enrolment(queue, ExtensionId(999), picky)
        # the next "after the last" comes after the highest position
        assert await tx.enrol(queue, ExtensionId(999))
        assert await tx.enrolment(queue, ExtensionId(999)) == EnrolmentOptions(position=10)

    async with await Store.open(path) as store:
        enrolled = [e for e in await store.load_config() if isinstance(e, AgentEnrolled)]
    assert enrolled == [
        AgentEnrolled(queue, carol, EnrolmentOptions(position=0)),
        AgentEnrolled(queue, bob, EnrolmentOptions(penalty=1, position=1)),
        AgentEnrolled(queue, dave, EnrolmentOptions(position=5, wrapup_time=0)),
        AgentEnrolled(queue, alice, replace(picky, position=9)),
        # an enrolment of no extension is still loaded (the engine tolerates it)
        AgentEnrolled(queue, ExtensionId(999), EnrolmentOptions(position=10)),
    ]


async def test_set_enrolments_with_options(database: Databases) -> None:
    async with await Store.open(database("s.db")) as store, store.transaction() as tx:
        alice, bob = await tenant_with_extensions(tx)
        queue = (await tx.insert_queue(queue_config(T1, "600"))).queue_id
        agents = [(alice, EnrolmentOptions(penalty=1)), (bob, EnrolmentOptions(busy_delay=5))]
        assert await tx.set_enrolments(queue, agents) is Change.CREATED
        assert await tx.set_enrolments(queue, agents) is Change.UNCHANGED
        assert [(e.extension_id, o) for e, o in await tx.enrolments(queue)] == [
            (alice, EnrolmentOptions(penalty=1, position=0)),
            (bob, EnrolmentOptions(busy_delay=5, position=1)),
        ]
        changed = [(alice, EnrolmentOptions(penalty=2)), agents[1]]
        assert await tx.set_enrolments(queue, changed) is Change.UPDATED
        assert await tx.enrolment(queue, alice) == EnrolmentOptions(penalty=2, position=0)

        # explicit positions out of list order are stable too
        placed = [(alice, EnrolmentOptions(position=8)), (bob, EnrolmentOptions(position=3))]
        assert await tx.set_enrolments(queue, placed) is Change.UPDATED
        assert await tx.set_enrolments(queue, placed) is Change.UNCHANGED
        assert [e.extension_id for e in await tx.enrolled(queue)] == [bob, alice]
        assert await tx.set_enrolments(queue, []) is Change.UPDATED
        assert await tx.enrolments(queue) == []


async def test_extension_skills(database: Databases) -> None:
    path = database("x.db")
    async with await Store.open(path) as store, store.transaction() as tx:
        alice, bob = await tenant_with_extensions(tx)
        spanish = Extension(alice, T1, "101", "Alice", {"spanish": 8, "billing": 5})
        assert await tx.extension(alice) == spanish
        assert await tx.extension_by_number(T1, "101") == spanish
        assert (await tx.extension(bob)) == Extension(bob, T1, "102", "Bob", {})
        await tx.update_extension(replace(spanish, skills={"german": 3}))
        assert (await tx.extensions(T1)).items[0].skills == {"german": 3}

        saved = await tx.upsert_extension(T1, "101", name="Alice", skills={"german": 3})
        assert saved == Saved(alice, Change.UNCHANGED)
        saved = await tx.upsert_extension(T1, "101", name="Alice")  # no skills: cleared
        assert saved == Saved(alice, Change.UPDATED)
        saved = await tx.upsert_extension(T1, "103", name="Carol", skills={"french": 10})
        assert saved.change is Change.CREATED
    async with await Store.open(path) as store:
        extensions = [
            e.extension for e in await store.load_config() if isinstance(e, ExtensionSaved)
        ]
    assert [x.skills for x in extensions] == [{}, {}, {"french": 10}]


async def test_did_route_skills(database: Databases) -> None:
    path = database("r.db")
    async with await Store.open(path) as store, store.transaction() as tx:
        alice, _ = await tenant_with_extensions(tx)
        queue = QueueTarget((await tx.insert_queue(queue_config(T1, "600"))).queue_id)
        route = DidRoute(T1, "+100", queue, {"spanish": 5})
        stored = await tx.insert_route(route)
        assert stored.route == route
        assert await tx.route(stored.id) == stored
        assert await tx.route_by_did(T1, "+100") == stored
        assert (await tx.routes(T1)).items == [stored]
        assert await tx.routes_to(queue) == [stored]

        changed = replace(route, did="+101", skills={"billing": 2, "spanish": 6})
        await tx.update_route(replace(stored, route=changed))
        assert await tx.route(stored.id) == replace(stored, route=changed)

        skills = {"billing": 2, "spanish": 6}
        assert await tx.upsert_did_route(T1, "+101", queue, skills=skills) is Change.UNCHANGED
        assert await tx.upsert_did_route(T1, "+101", queue) is Change.UPDATED
        assert (await tx.route(stored.id)) == StoredRoute(stored.id, DidRoute(T1, "+101", queue))
        assert await tx.upsert_did_route(T1, "+102", queue, skills=skills) is Change.CREATED
        await tx.upsert_did_route(T1, "+199", ExtensionTarget(alice))
    async with await Store.open(path) as store:
        routes = [e.route for e in await store.load_config() if isinstance(e, DidRouteSaved)]
    assert routes == [
        DidRoute(T1, "+101", queue),
        DidRoute(T1, "+102", queue, skills),
        DidRoute(T1, "+199", ExtensionTarget(alice)),
    ]


# --- live state ----------------------------------------------------------------------------


def call(
    call_id: str, seq: int, *, rings: tuple[RingRecord, ...] = (), **kwargs: object
) -> CallRecord:
    fields: dict[str, object] = {
        "tenant_id": T1,
        "call_id": CallId(call_id),
        "phase": CallPhase.RINGING if rings else CallPhase.QUEUED,
        "did": "+15550100",
        "caller_id": "5551234",
        "caller_name": "Caller",
        "priority": 0,
        "arrived_at": 1000.0 + seq,
        "seq": seq,
        "queue_id": QueueId(1),
        "rings": rings,
    }
    fields.update(kwargs)
    return CallRecord(**fields)  # type: ignore[arg-type]


def ring(extension: int, at: float = 1001.5) -> RingRecord:
    return RingRecord(ExtensionId(extension), at, at + 15)


AGENT = AgentRecord(
    ExtensionId(101), Presence.PAUSED, "lunch", DeviceState.IDLE, None, AgentStatus.PAUSED
)


async def test_live_state_round_trip_with_removals_and_replaced_rings(database: Databases) -> None:
    path = database("l.db")
    a = call("a", 1, rings=(ring(103), ring(101), ring(102)), tried=(ExtensionId(104),))
    b = call("b", 2, priority=5, retry_at=1030.25)
    c = call("c", 3)
    memory = QueueMemoryRecord(QueueId(1), ExtensionId(102), offered=3)
    stats = AgentQueueStats(QueueId(1), ExtensionId(101), 999.5, 4, 321.25)
    async with await Store.open(path) as store:
        await store.commit(
            StateChanges(
                LiveState(
                    calls=(a, b, c),
                    agents=(AGENT,),
                    queues=(memory,),
                    agent_stats=(stats,),
                )
            ),
            [],
        )
        a2 = call(
            "a",
            1,
            phase=CallPhase.CONNECTED,
            rings=(),
            tried=(ExtensionId(104), ExtensionId(103)),
            agent_id=ExtensionId(103),
            answered_at=1005.0,
        )
        b2 = call("b", 2, priority=5, rings=(ring(102, 1031.0),))
        await store.commit(
            StateChanges(
                LiveState(calls=(a2, b2)),
                calls_removed=((T1, CallId("c")),),
                agents_removed=(ExtensionId(101),),
                queues_removed=(QueueId(1),),
                agent_stats_removed=((QueueId(1), ExtensionId(101)),),
            ),
            [],
        )
    async with await Store.open(path) as store:
        assert await store.load_live() == LiveState(calls=(a2, b2))
    assert await raw_sql(path, "SELECT count(*) FROM rings") == [(1,)]  # no orphan rings


async def test_every_new_live_field_round_trips(database: Databases) -> None:
    # Each field of migration 3 away from its default, so a column left out shows.
    path = database("n.db")
    virtual = call(
        "cb",
        1,
        rings=(ring(101),),
        entered_at=1003.5,
        hops=2,
        callback_number="+4930123",
        skills={"spanish": 5, "billing": 1},
        announce_at=1030.0,
        progress_at=1013.5,
    )
    agent = replace(AGENT, last_call_ended_at=990.25, skip_until=1010.0, unanswered=3)
    memory = QueueMemoryRecord(
        QueueId(1),
        last_rung=ExtensionId(101),
        offered=9,
        answered=5,
        abandoned=2,
        completed=4,
        last_answered=ExtensionId(102),
        overflowed=1,
        answered_within=4,
        abandoned_within=1,
        last_answer_at=1001.25,
        answer_interval_s=42.5,
    )
    async with await Store.open(path) as store:
        await store.commit(
            StateChanges(LiveState(calls=(virtual,), agents=(agent,), queues=(memory,))), []
        )
    async with await Store.open(path) as store:
        assert await store.load_live() == LiveState(
            calls=(virtual,), agents=(agent,), queues=(memory,)
        )


async def test_migration_4_keeps_version_3_rings_and_gives_them_no_ring_id(
    tmp_path: Path,
) -> None:
    # SQLite only: a migration of an older SQLite file.
    # A version-3 file with a ringing call, as the previous Ringmaster left it.
    path = tmp_path / "v3.db"
    with file_at_version(path, 3) as db:
        db.executescript(
            "INSERT INTO calls (tenant_id, call_id, phase, queue_id, did, caller_id,"
            " caller_name, priority, arrived_at, seq, tried, hops) VALUES"
            " (1, 'a', 'ringing', 5, '+1', '555', 'C', 2, 1000.5, 4, '[7]', 1);"
            "INSERT INTO rings VALUES (1, 'a', 7, 0, 1001.0, 1016.0);"
        )
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
        e = ExtensionId(7)
        assert (await store.load_live()).calls == (
            call(
                "a",
                4,
                phase=CallPhase.RINGING,
                queue_id=QueueId(5),
                did="+1",
                caller_id="555",
                caller_name="C",
                priority=2,
                arrived_at=1000.5,
                rings=(RingRecord(e, 1001.0, 1016.0, ring_id=""),),
                tried=(e,),
                hops=1,
                rings_started=0,
            ),
        )
        # and takes ring ids, and the rings that are over, from now on
        numbered = call(
            "a",
            4,
            rings=(RingRecord(e, 1020.0, 1035.0, "4.2"),),
            rings_started=2,
            ended_rings=(EndedRing(e, "4.1", "timeout"), EndedRing(e, "", "agent_unavailable")),
        )
        await store.commit(StateChanges(LiveState(calls=(numbered,))), [])
        assert (await store.load_live()).calls == (numbered,)


async def test_migration_7_keeps_version_6_rings_and_calls_and_gives_them_no_number(
    tmp_path: Path,
) -> None:
    # SQLite only: a migration of an older SQLite file.
    # A version-6 file with a ringing call and a connected one, as the previous Ringmaster
    # left them: each keeps every value, and the numbers it did not keep read as "".
    path = tmp_path / "v6.db"
    with file_at_version(path, 6) as db:
        db.executescript(
            "INSERT INTO calls (tenant_id, call_id, phase, queue_id, did, caller_id,"
            " caller_name, priority, arrived_at, seq, tried, rings_started) VALUES"
            " (1, 'a', 'ringing', 5, '+1', '555', 'C', 2, 1000.5, 4, '[7]', 1);"
            "INSERT INTO rings VALUES (1, 'a', 7, 0, 1001.0, 1016.0, '4.1');"
            "INSERT INTO calls (tenant_id, call_id, phase, queue_id, did, caller_id,"
            " caller_name, priority, arrived_at, seq, tried, agent_id, answered_at) VALUES"
            " (1, 'b', 'connected', 5, '+1', '556', 'D', 0, 1001.5, 5, '[8]', 8, 1003.0);"
        )
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
        e7, e8 = ExtensionId(7), ExtensionId(8)
        ringing = call(
            "a",
            4,
            phase=CallPhase.RINGING,
            queue_id=QueueId(5),
            did="+1",
            caller_id="555",
            caller_name="C",
            priority=2,
            arrived_at=1000.5,
            rings=(RingRecord(e7, 1001.0, 1016.0, "4.1", number=""),),
            tried=(e7,),
            rings_started=1,
        )
        connected = call(
            "b",
            5,
            phase=CallPhase.CONNECTED,
            queue_id=QueueId(5),
            did="+1",
            caller_id="556",
            caller_name="D",
            arrived_at=1001.5,
            tried=(e8,),
            agent_id=e8,
            answered_at=1003.0,
            agent_number="",
        )
        assert (await store.load_live()).calls == (ringing, connected)
        # and keeps the numbers from now on
        numbered = (
            replace(ringing, rings=(RingRecord(e7, 1001.0, 1016.0, "4.1", "107"),)),
            replace(connected, agent_number="108"),
        )
        await store.commit(StateChanges(LiveState(calls=numbered)), [])
        assert (await store.load_live()).calls == numbered


async def test_load_live_of_10000_calls(database: Databases) -> None:
    # Issue 5: a restart with 10,000 waiting calls must be quick. Its time is measured
    # by bench/ (recovery); here, deterministically, that loading issues as many SQL
    # statements for 10,000 calls as for 10: no query per row.
    async def statements_to_load(count: int) -> int:
        calls = tuple(
            call(f"c{i}", i, skills={"spanish": 5} if i % 10 == 0 else {}, entered_at=1000.0 + i)
            for i in range(count)
        )
        statements: list[str] = []
        async with await Store.open(database(f"big{count}.db")) as store:
            await store.commit(StateChanges(LiveState(calls=calls)), [])
            fetch_all = store._db.fetch_all

            async def counted(query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                statements.append(query)
                return await fetch_all(query, params)

            store._db.fetch_all = counted  # type: ignore[method-assign]
            live = await store.load_live()
            loading = len(statements)
        assert live.calls == calls
        assert loading > 0  # the spy sees the statements at all
        return loading

    assert await statements_to_load(10_000) == await statements_to_load(10)


async def test_ring_order_is_kept(database: Databases) -> None:
    a = call("a", 1, rings=(ring(3), ring(1), ring(2)))
    async with await Store.open(database("o.db")) as store:
        await store.commit(StateChanges(LiveState(calls=(a,))), [])
        assert (await store.load_live()).calls == (a,)


async def test_empty_commit_is_a_no_op(database: Databases) -> None:
    async with await Store.open(database("n.db")) as store:
        assert await store.commit(StateChanges(), []) == []
        assert await store.load_live() == LiveState()


async def test_failed_commit_writes_nothing(database: Databases) -> None:
    async with await Store.open(database("f.db")) as store:
        twice = call("a", 1, rings=(ring(101), ring(101)))  # breaks the rings' primary key
        with pytest.raises(INTEGRITY_ERRORS):
            await store.commit(
                StateChanges(LiveState(calls=(twice,), agents=(AGENT,))),
                [OutboxMessage("t", b"x")],
            )
        assert await store.load_live() == LiveState()
        assert await store.pending_outbox() == []


# --- the outbox ----------------------------------------------------------------------------


# `commit` runs its transaction whole on SQLite's thread, or statement by statement
# where aiosqlite lacks the private hook for that: both must do the same. (PostgreSQL
# has one way: it runs the test twice.)
WHOLE_OR_BY_STATEMENT = pytest.mark.parametrize("whole", [True, False], ids=["whole", "stmts"])


@WHOLE_OR_BY_STATEMENT
async def test_outbox_insert_deliver_and_pending_order(database: Databases, whole: bool) -> None:
    path = database("ob.db")
    first = [OutboxMessage(f"ringmaster/1/cmd/ring/{i}", b'{"n": %d}' % i) for i in range(3)]
    async with await Store.open(path) as store:
        if not whole and isinstance(store._db, SqliteConnection):
            store._db._run_on_thread = None
        seqs = await store.commit(StateChanges(), first)
        assert len(seqs) == 3
        assert seqs == sorted(seqs)
        retained = OutboxMessage("ringmaster/1/state/queue/1", b"{}", retain=True)
        more = await store.commit(StateChanges(), [retained], delivered_up_to=seqs[1])
        assert more[0] > seqs[-1]
    async with await Store.open(path) as store:
        assert await store.pending_outbox() == [(seqs[2], first[2]), (more[0], retained)]
        # Delivery confirmed for everything, with nothing new: the outbox empties.
        assert await store.commit(StateChanges(), [], delivered_up_to=more[0]) == []
        assert await store.pending_outbox() == []
        # Seqs are never reused, even once the outbox was emptied.
        (later,) = await store.commit(StateChanges(), [first[0]])
        assert later > more[0]


@WHOLE_OR_BY_STATEMENT
async def test_state_and_outbox_commit_together(database: Databases, whole: bool) -> None:
    path = database("t.db")
    message = OutboxMessage("ringmaster/1/cmd/ring", b"{}")
    async with await Store.open(path) as store:
        if not whole and isinstance(store._db, SqliteConnection):
            store._db._run_on_thread = None
        (seq,) = await store.commit(StateChanges(LiveState(calls=(call("a", 1),))), [message])
    async with await Store.open(path) as store:
        assert await store.pending_outbox() == [(seq, message)]
        assert [c.call_id for c in (await store.load_live()).calls] == ["a"]


# --- property: whatever is committed is what is loaded -------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
small_ids = st.integers(min_value=1, max_value=6)
ext_ids = small_ids.map(ExtensionId)
# No NUL: PostgreSQL's text cannot hold one (docs/store.md: what differs).
text = st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=8)
maybe_float = st.none() | finite

rings_st = st.lists(
    st.builds(RingRecord, ext_ids, finite, finite, text, text),
    max_size=3,
    unique_by=lambda r: r.extension_id,
).map(tuple)
calls_st = st.builds(
    CallRecord,
    tenant_id=st.integers(1, 2).map(TenantId),
    call_id=st.sampled_from("abcd").map(CallId),
    phase=st.sampled_from(CallPhase),
    did=text,
    caller_id=text,
    caller_name=text,
    priority=st.integers(0, 9),
    arrived_at=finite,
    seq=st.integers(0, 2**62),
    queue_id=st.none() | small_ids.map(QueueId),
    rings=rings_st,
    tried=st.lists(ext_ids, max_size=3).map(tuple),
    retry_at=maybe_float,
    agent_id=st.none() | ext_ids,
    answered_at=maybe_float,
    ended_at=maybe_float,
    entered_at=maybe_float,
    hops=st.integers(0, 10),
    callback_number=text,
    skills=st.dictionaries(st.sampled_from(["spanish", "billing", "x.y-z_1"]), st.integers(1, 10)),
    announce_at=maybe_float,
    progress_at=maybe_float,
    rings_started=st.integers(0, 2**40),
    ended_rings=st.lists(st.builds(EndedRing, ext_ids, text, text), max_size=3).map(tuple),
    agent_number=text,
)
agents_st = st.builds(
    AgentRecord,
    ext_ids,
    st.sampled_from(Presence),
    text,
    st.sampled_from(DeviceState),
    maybe_float,
    st.sampled_from(AgentStatus),
    maybe_float,
    maybe_float,
    st.integers(0, 2**40),
)
counters = st.integers(0, 2**40)
memory_st = st.builds(
    QueueMemoryRecord,
    small_ids.map(QueueId),
    st.none() | ext_ids,
    counters,
    counters,
    counters,
    counters,
    st.none() | ext_ids,
    counters,
    counters,
    counters,
    maybe_float,
    maybe_float,
)
stats_st = st.builds(
    AgentQueueStats, small_ids.map(QueueId), ext_ids, maybe_float, st.integers(0, 2**40), finite
)
changes_st = st.builds(
    StateChanges,
    st.builds(
        LiveState,
        st.lists(calls_st, max_size=4, unique_by=lambda c: c.key).map(tuple),
        st.lists(agents_st, max_size=3, unique_by=lambda a: a.extension_id).map(tuple),
        st.lists(memory_st, max_size=2, unique_by=lambda q: q.queue_id).map(tuple),
        st.lists(stats_st, max_size=3, unique_by=lambda s: (s.queue_id, s.extension_id)).map(tuple),
    ),
    st.lists(st.tuples(st.integers(1, 2).map(TenantId), st.sampled_from("abcd").map(CallId))).map(
        tuple
    ),
    st.lists(ext_ids).map(tuple),
    st.lists(small_ids.map(QueueId)).map(tuple),
    st.lists(st.tuples(small_ids.map(QueueId), ext_ids)).map(tuple),
)


def apply(model: dict[str, dict[object, object]], changes: StateChanges) -> None:
    """The reference: upserts, then removals, on plain dictionaries."""
    live = changes.live
    model["calls"].update((c.key, c) for c in live.calls)
    model["agents"].update((a.extension_id, a) for a in live.agents)
    model["queues"].update((q.queue_id, q) for q in live.queues)
    model["stats"].update(((s.queue_id, s.extension_id), s) for s in live.agent_stats)
    for key in changes.calls_removed:
        model["calls"].pop(key, None)
    for ext in changes.agents_removed:
        model["agents"].pop(ext, None)
    for queue in changes.queues_removed:
        model["queues"].pop(queue, None)
    for pair in changes.agent_stats_removed:
        model["stats"].pop(pair, None)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(changes_st, min_size=1, max_size=4))
async def test_live_state_round_trip_property(
    database: Databases, batches: list[StateChanges]
) -> None:
    path = database.fresh("p.db")  # a new database for every example
    model: dict[str, dict[object, object]] = {k: {} for k in ("calls", "agents", "queues", "stats")}
    async with await Store.open(path) as store:
        for changes in batches:
            await store.commit(changes, [])
            apply(model, changes)
    async with await Store.open(path) as store:
        live = await store.load_live()
    assert {c.key: c for c in live.calls} == model["calls"]
    assert [c.seq for c in live.calls] == sorted(c.seq for c in live.calls)
    assert {a.extension_id: a for a in live.agents} == model["agents"]
    assert {q.queue_id: q for q in live.queues} == model["queues"]
    assert {(s.queue_id, s.extension_id): s for s in live.agent_stats} == model["stats"]


async def test_migration_2_gives_existing_did_routes_ids(tmp_path: Path) -> None:
    # SQLite only: a migration of an older SQLite file.
    # A version-1 file with routes, as an earlier Ringmaster left it.
    path = tmp_path / "v1.db"
    with file_at_version(path, 1) as db:
        db.executescript(
            "INSERT INTO tenants (id, name) VALUES (1, 'Acme');"
            "INSERT INTO queues (id, tenant_id, name, queue_number, strategy, timeout, status)"
            " VALUES (5, 1, 'Q', '600', 'ringall', 15, 'active');"
            "INSERT INTO extensions (id, tenant_id, number) VALUES (7, 1, '101');"
            "INSERT INTO did_routes VALUES (1, '+2', NULL, 7), (1, '+1', 5, NULL);"
        )
    async with await Store.open(path) as store, store.transaction() as tx:
        page = await tx.routes()
        assert [(r.id, r.route) for r in page.items] == [
            (1, DidRoute(T1, "+1", QueueTarget(QueueId(5)))),
            (2, DidRoute(T1, "+2", ExtensionTarget(ExtensionId(7)))),
        ]
        # the schema still keeps a route inside its tenant
        with pytest.raises(sqlite3.IntegrityError):
            await tx.upsert_did_route(TenantId(2), "+3", QueueTarget(QueueId(5)))


async def test_migration_3_keeps_version_2_data_and_gives_defaults(tmp_path: Path) -> None:
    # SQLite only: a migration of an older SQLite file.
    # A version-2 file with a row in every table, as the previous Ringmaster left it.
    path = tmp_path / "v2.db"
    with file_at_version(path, 2) as db:
        db.executescript(
            "INSERT INTO tenants (id, name) VALUES (1, 'Acme');"
            "INSERT INTO extensions (id, tenant_id, number, name) VALUES (7, 1, '101', 'Al');"
            "INSERT INTO queues (id, tenant_id, name, queue_number, strategy, timeout, status,"
            " retry, wrapup_time) VALUES (5, 1, 'Q', '600', 'roundrobin', 15, 'active', 3, 9);"
            "INSERT INTO queue_agents VALUES (5, 7, 4);"
            "INSERT INTO did_routes (tenant_id, did, queue_id) VALUES (1, '+1', 5);"
            "INSERT INTO calls (tenant_id, call_id, phase, queue_id, did, caller_id,"
            " caller_name, priority, arrived_at, seq, tried) VALUES"
            " (1, 'a', 'ringing', 5, '+1', '555', 'C', 2, 1000.5, 1, '[7]');"
            "INSERT INTO rings VALUES (1, 'a', 7, 0, 1001.0, 1016.0);"
            "INSERT INTO agent_states VALUES (7, 'available', '', 'ringing', NULL, 'ringing');"
            "INSERT INTO queue_memory VALUES (5, 7, 3, 2, 1, 1);"
            "INSERT INTO agent_queue_stats VALUES (5, 7, 990.0, 1, 60.0);"
            "INSERT INTO outbox (topic, payload, retain) VALUES ('t', x'7b7d', 0);"
        )

    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
        q, e = QueueId(5), ExtensionId(7)
        assert await store.load_config() == [
            TenantSaved(Tenant(T1, "Acme")),
            ExtensionSaved(Extension(e, T1, "101", "Al")),
            QueueSaved(QueueConfig(q, T1, "Q", "600", "roundrobin", 15, retry=3, wrapup_time=9)),
            AgentEnrolled(q, e, EnrolmentOptions(position=4)),
            DidRouteSaved(DidRoute(T1, "+1", QueueTarget(q))),
        ]
        assert await store.load_live() == LiveState(
            calls=(
                call(
                    "a",
                    1,
                    phase=CallPhase.RINGING,
                    queue_id=q,
                    did="+1",
                    caller_id="555",
                    caller_name="C",
                    priority=2,
                    arrived_at=1000.5,
                    rings=(RingRecord(e, 1001.0, 1016.0),),
                    tried=(e,),
                ),
            ),
            agents=(
                AgentRecord(
                    e, Presence.AVAILABLE, "", DeviceState.RINGING, None, AgentStatus.RINGING
                ),
            ),
            queues=(QueueMemoryRecord(q, e, 3, 2, 1, 1),),
            agent_stats=(AgentQueueStats(q, e, 990.0, 1, 60.0),),
        )
        assert await store.pending_outbox() == [(1, OutboxMessage("t", b"{}"))]
        # and the migrated file takes the new options
        async with store.transaction() as tx:
            old = await tx.queue(q)
            assert old is not None
            await tx.update_queue(replace(old, max_len=3, overflow=ExtensionTarget(e)))
            assert await tx.update_enrolment(q, e, EnrolmentOptions(penalty=2))
            assert await tx.enrolment(q, e) == EnrolmentOptions(penalty=2, position=4)


async def test_a_snapshot_reads_what_is_committed_while_a_write_holds_the_connection(
    database: Databases,
) -> None:
    async with await Store.open(database("a.db")) as store:
        async with store.transaction() as tx:
            await tx.upsert_tenant(T1, "Acme")
        async with store.transaction() as tx:
            await tx.upsert_tenant(T2, "Globex")
            # The writer holds the store's connection; a snapshot does not need it,
            # and sees only what was committed.
            async with store.snapshot() as view:
                assert await view.tenant(T1) == Tenant(T1, "Acme")
                assert await view.tenant(T2) is None
                with pytest.raises(READ_ONLY_ERRORS, match=r"(?i)read-?only"):
                    await view.upsert_tenant(T1, "Renamed")
        async with store.snapshot() as view:
            assert await view.tenant(T2) == Tenant(T2, "Globex")


async def test_a_snapshot_sees_one_committed_state_while_commits_go_on(
    database: Databases,
) -> None:
    # PostgreSQL: REPEATABLE READ on the reading connection; SQLite: a WAL read transaction.
    async with await Store.open(database("s.db")) as store:
        async with store.transaction() as tx:
            await tx.upsert_tenant(T1, "Acme")
        async with store.snapshot() as view:
            assert await view.tenant(T1) == Tenant(T1, "Acme")
            async with store.transaction() as tx:
                await tx.upsert_tenant(T1, "Renamed")
                await tx.upsert_tenant(T2, "Globex")
            await store.commit(StateChanges(LiveState(calls=(call("a", 1),))), [])
            assert await view.tenant(T1) == Tenant(T1, "Acme")
            assert await view.tenant(T2) is None
        async with store.snapshot() as view:
            assert await view.tenant(T1) == Tenant(T1, "Renamed")


# --- options stored as the declaration's JSON (migration 6) ---------------------------------

#: Every option column of a version-5 file, with a value that is not the column's default.
V5_QUEUE_OPTIONS: dict[str, Any] = {
    "retry": 3,
    "wrapup_time": 12,
    "max_len": 40,
    "max_wait": 300,
    "join_empty": '["logged_out","paused"]',
    "leave_when_empty": '["busy","wrapup"]',
    "weight": 7,
    "service_level": 30,
    "announce_frequency": 45,
    "ring_progressive_delay": 4,
    "penalty_rules": '[{"after":30,"max_penalty":2},{"after":60,"max_penalty":5}]',
    "skill_rules": '[{"after":20,"lower_by":1}]',
}
V5_ENROLMENT_OPTIONS: dict[str, Any] = {
    "penalty": 2,
    "wrapup_time": 8,
    "max_no_answer": 3,
    "busy_delay": 5,
    "reject_delay": 6,
    "no_answer_delay": 9,
}


def insert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    db.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", [*row.values()]
    )


async def test_migration_6_keeps_every_option_value_of_a_version_5_file(tmp_path: Path) -> None:
    # SQLite only: a migration of an older SQLite file.
    path = tmp_path / "v5.db"
    with file_at_version(path, 5) as db:
        db.executescript(
            "INSERT INTO tenants (id, name) VALUES (1, 'Acme');"
            "INSERT INTO extensions (id, tenant_id, number) VALUES (7, 1, '101'), (8, 1, '102');"
        )
        queue = {
            "id": 5,
            "tenant_id": 1,
            "name": "Sales",
            "queue_number": "600",
            "strategy": "linear",
            "timeout": 20,
            "status": "inactive",
            "overflow_type": "extension",
            "overflow_extension_id": 8,
            "overflow_queue_id": None,
            **V5_QUEUE_OPTIONS,
        }
        agent = {"queue_id": 5, "extension_id": 7, "position": 3, **V5_ENROLMENT_OPTIONS}
        # The rows give every column of the version-5 tables, and every option a value
        # other than its column's default: no value can come back right by default.
        for table, row, options in (
            ("queues", queue, V5_QUEUE_OPTIONS),
            ("queue_agents", agent, V5_ENROLMENT_OPTIONS),
        ):
            info = db.execute(f"PRAGMA table_info({table})").fetchall()
            assert {c[1] for c in info} == set(row)
            defaults = {c[1]: c[4] for c in info}
            for name, value in options.items():
                assert defaults[name] is None or str(value) != defaults[name].strip("'"), name
            insert(db, table, row)
        # An agent whose wrap-up is the queue's (NULL) keeps it.
        insert(db, "queue_agents", {"queue_id": 5, "extension_id": 8, "position": 4})

    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
        config = await store.load_config()
    q, e7, e8 = QueueId(5), ExtensionId(7), ExtensionId(8)
    expected_queue = QueueConfig(
        q,
        T1,
        "Sales",
        "600",
        "linear",
        20,
        status=QueueStatus.INACTIVE,
        overflow=ExtensionTarget(e8),
        retry=3,
        wrapup_time=12,
        max_len=40,
        max_wait=300,
        join_empty=frozenset({AgentCondition.LOGGED_OUT, AgentCondition.PAUSED}),
        leave_when_empty=frozenset({AgentCondition.BUSY, AgentCondition.WRAPUP}),
        weight=7,
        service_level=30,
        announce_frequency=45,
        ring_progressive_delay=4,
        penalty_rules=(PenaltyRule(30, 2), PenaltyRule(60, 5)),
        skill_rules=(SkillRule(20, 1),),
    )
    expected_agent = EnrolmentOptions(position=3, **V5_ENROLMENT_OPTIONS)
    assert [e for e in config if isinstance(e, QueueSaved)] == [QueueSaved(expected_queue)]
    assert [e for e in config if isinstance(e, AgentEnrolled)] == [
        AgentEnrolled(q, e7, expected_agent),
        AgentEnrolled(q, e8, EnrolmentOptions(position=4)),
    ]
    # Every option column became a key of the JSON object, and nothing else did.
    with sqlite3.connect(path) as db:
        (queue_options,) = db.execute("SELECT options FROM queues").fetchone()
        (agent_options,) = db.execute("SELECT options FROM queue_agents LIMIT 1").fetchone()
        queue_columns = {c[1] for c in db.execute("PRAGMA table_info(queues)")}
    assert set(json.loads(queue_options)) == set(V5_QUEUE_OPTIONS)
    assert set(json.loads(agent_options)) == set(V5_ENROLMENT_OPTIONS)
    assert not queue_columns & set(V5_QUEUE_OPTIONS)


async def stored_with_options(path: Path | str, queue_options: str, agent_options: str) -> None:
    async with await Store.open(path) as store, store.transaction() as tx:
        await tx.upsert_tenant(T1, "Acme")
        saved = await tx.upsert_extension(T1, "101")
        queue = await tx.insert_queue(queue_config(T1, "600"))
        await tx.enrol(queue.queue_id, saved.id)
    await raw_sql(path, "UPDATE queues SET options = ?", [(queue_options,)])
    await raw_sql(path, "UPDATE queue_agents SET options = ?", [(agent_options,)])


async def test_a_missing_stored_option_reads_as_its_default(database: Databases) -> None:
    path = database("m.db")
    await stored_with_options(path, '{"retry": 9}', "{}")
    async with await Store.open(path) as store:
        config = await store.load_config()
    assert [e.queue for e in config if isinstance(e, QueueSaved)] == [
        queue_config(T1, "600", queue_id=QueueId(1), retry=9)
    ]
    assert [e.options for e in config if isinstance(e, AgentEnrolled)] == [
        EnrolmentOptions(position=0)
    ]


@pytest.mark.parametrize(
    ("queue_options", "agent_options", "message"),
    [
        ('{"nonsense": 1}', "{}", "queue 1: stored option unknown option 'nonsense'"),
        ('{"retry": -1}', "{}", "queue 1: stored option retry: .*greater than or equal to 0"),
        ('{"join_empty": ["asleep"]}', "{}", "queue 1: stored option join_empty"),
        ("{}", '{"penalty": "2"}', "queue 1, agent 1: stored option penalty: .*valid integer"),
        ("{}", '{"skills": {}}', "queue 1, agent 1: stored option unknown option 'skills'"),
    ],
)
async def test_a_bad_stored_option_is_a_store_error_naming_the_queue_and_the_option(
    database: Databases, queue_options: str, agent_options: str, message: str
) -> None:
    path = database("b.db")
    await stored_with_options(path, queue_options, agent_options)
    async with await Store.open(path) as store:
        with pytest.raises(StoreError, match=message):
            await store.load_config()
        async with store.snapshot() as view:

            async def read_by_id() -> None:  # what the admin API reads
                await view.queue(QueueId(1))
                await view.enrolments(QueueId(1))

            with pytest.raises(StoreError, match=message):
                await read_by_id()


async def test_the_schema_refuses_options_that_are_not_a_json_object(database: Databases) -> None:
    path = database("j.db")
    await stored_with_options(path, "{}", "{}")
    for bad in ("[1]", "{oops", "3"):
        # SQLite: a CHECK; PostgreSQL: the CHECK, or the cast to jsonb in it
        with pytest.raises(
            (*INTEGRITY_ERRORS, asyncpg.DataError), match=r"(?i)check|invalid input syntax"
        ):
            await raw_sql(path, "UPDATE queues SET options = ?", [(bad,)])


# --- a supervisor's actions in the audit trail (migration 11) --------------------------------


async def test_migration_11_keeps_version_10_audit_records_and_takes_supervisor_actions(
    tmp_path: Path,
) -> None:
    # SQLite only: a migration of an older SQLite file.
    path = tmp_path / "v10.db"
    with file_at_version(path, 10) as db:
        db.execute(
            "INSERT INTO audit (at, actor, tenant_id, action, resource, resource_id, before,"
            " after) VALUES (1000.5, 'admin#1', 1, 'update', 'queue', '3', '{\"a\": 1}',"
            " '{\"a\": 2}')"
        )
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(schema_module.MIGRATIONS)
        moved = AuditRecord(
            1001.0, "tenant-1#1", TenantId(1), "move", "call", "c-7", {"queue_id": 1}, None
        )
        async with store.transaction() as tx:
            await tx.insert_audit(moved)
            page = await tx.audit(AuditFilter(tenant_id=TenantId(1)))
    assert [r.record for r in page.items] == [
        AuditRecord(1000.5, "admin#1", TenantId(1), "update", "queue", "3", {"a": 1}, {"a": 2}),
        moved,
    ]
    assert [r.id for r in page.items] == [1, 2]


async def test_an_audit_action_beyond_the_known_ones_is_refused(database: Databases) -> None:
    async with await Store.open(database("s.db")) as store:
        record = AuditRecord(1.0, "x", TenantId(1), "explode", "call", "c", None, None)  # type: ignore[arg-type]
        with pytest.raises(INTEGRITY_ERRORS):
            async with store.transaction() as tx:
                await tx.insert_audit(record)


async def test_a_read_cancelled_as_it_begins_leaves_the_reader_usable(database: Databases) -> None:
    # A request cancelled mid-read (an HTTP client's timeout on the in-process transport,
    # a stream closed, a shutdown) must not leave the reading connection inside its
    # transaction: every later read then failed ("cannot start a transaction within a
    # transaction") until the daemon restarted.
    async with await Store.open(database()) as store:
        async with store.history():
            pass  # the reader is open: the next read's first await is its BEGIN

        async def read() -> None:
            async with store.history():
                pass

        reading = asyncio.create_task(read())
        await asyncio.sleep(0)  # into the BEGIN's round trip
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        async with store.history() as history:
            assert (await history.visits(VisitFilter())).total == 0


async def test_writes_cancelled_as_they_begin_leave_the_connection_usable(
    database: Databases,
) -> None:
    # The same for the turns' own connection: a configuration write cancelled as it
    # began, or the history's pruning cancelled at shutdown, left it inside BEGIN
    # IMMEDIATE, and the next turn's commit failed.
    async with await Store.open(database()) as store:

        async def configure() -> None:
            async with store.transaction() as tx:
                await tx.upsert_tenant(T1, "Acme")

        for begun in (configure(), store.prune_history(0.0)):
            task = asyncio.ensure_future(begun)
            await asyncio.sleep(0)  # into the BEGIN's round trip
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with store.transaction() as tx:
                await tx.upsert_tenant(T1, "Acme")
        assert await store.load_config() == [TenantSaved(Tenant(T1, "Acme"))]
