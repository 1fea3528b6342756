"""The SQLite store: migrations, configuration and live-state round trips, the outbox."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringmaster import store as store_module
from ringmaster.engine.events import (
    AgentEnrolled,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
    TenantSaved,
)
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallPhase,
    DeviceState,
    DidRoute,
    Extension,
    ExtensionId,
    ExtensionTarget,
    Presence,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    LiveState,
    QueueMemoryRecord,
    RingRecord,
    StateChanges,
)
from ringmaster.store import Change, ConfigTransaction, OutboxMessage, Store, StoreError

T1 = TenantId(1)
T2 = TenantId(2)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        }


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


# --- opening and migrating ---------------------------------------------------------------


async def test_open_creates_folder_and_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ringmaster.db"
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(store_module.MIGRATIONS)
    assert user_version(path) == len(store_module.MIGRATIONS)
    assert {"tenants", "queues", "calls", "rings", "outbox"} <= tables(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopen_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with await Store.open(path) as store, store.transaction() as tx:
        await tx.upsert_tenant(T1, "Acme")
    async with await Store.open(path) as store:
        assert await store.load_config() == [TenantSaved(Tenant(T1, "Acme"))]


async def test_older_file_is_brought_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file at version 1, made by hand (not by Store), with data in it.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(store_module.MIGRATIONS[0])
        db.execute("INSERT INTO tenants (id, name) VALUES (1, 'Acme')")
        db.execute("PRAGMA user_version = 1")
    # This Ringmaster knows one migration more than the real ones.
    extra = "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT NOT NULL);"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, extra])

    async with await Store.open(path) as store:
        assert await store.schema_version() == len(store_module.MIGRATIONS)
        assert await store.load_config() == [TenantSaved(Tenant(T1, "Acme"))]
    assert "audit" in tables(path)


async def test_version_0_file_with_unrelated_content_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v0.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE scratch (x)")
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(store_module.MIGRATIONS)
    assert {"scratch", "tenants", "outbox"} <= tables(path)


async def test_failed_migration_leaves_the_last_complete_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.db"
    async with await Store.open(path):
        pass
    broken = "CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, broken])
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        await Store.open(path)
    assert user_version(path) == len(store_module.MIGRATIONS) - 1
    assert "half" not in tables(path)


async def test_file_from_a_newer_ringmaster_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await Store.open(path)


async def test_unknown_synchronous_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        await Store.open(tmp_path / "s.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


# --- configuration ---------------------------------------------------------------------


async def test_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with await Store.open(path) as store, store.transaction() as tx:
        assert await tx.upsert_tenant(T1, "Acme") is Change.CREATED
        assert await tx.upsert_tenant(T2, "Globex") is Change.CREATED
        alice = await tx.upsert_extension(T1, "101", name="Alice")
        bob = await tx.upsert_extension(T1, "102", name="Bob")
        carol = await tx.upsert_extension(T2, "101", name="Carol")
        sales = await tx.upsert_queue(
            T1, "600", name="Sales", strategy="roundrobin", timeout=15, retry=3
        )
        closed = await tx.upsert_queue(
            T2,
            "600",
            name="Closed",
            strategy="ringall",
            timeout=20,
            status=QueueStatus.INACTIVE,
            wrapup_time=10,
        )
        assert await tx.set_enrolments(sales.id, [bob.id, alice.id]) is Change.CREATED
        assert await tx.set_enrolments(closed.id, [carol.id]) is Change.CREATED
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
            AgentEnrolled(sales.id, bob.id),
            AgentEnrolled(sales.id, alice.id),
            AgentEnrolled(closed.id, carol.id),
            DidRouteSaved(DidRoute(T1, "+15550100", QueueTarget(sales.id))),
            DidRouteSaved(DidRoute(T1, "+15550199", ExtensionTarget(alice.id))),
        ]


async def test_upserts_report_unchanged_and_updated(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "u.db") as store, store.transaction() as tx:
        await tx.upsert_tenant(T1, "Acme")
        assert await tx.upsert_tenant(T1, "Acme") is Change.UNCHANGED
        assert await tx.upsert_tenant(T1, "Acme Ltd") is Change.UPDATED

        first = await tx.upsert_extension(T1, "101", name="Alice")
        again = await tx.upsert_extension(T1, "101", name="Alice")
        renamed = await tx.upsert_extension(T1, "101", name="Alice B")
        assert (again.id, again.change) == (first.id, Change.UNCHANGED)
        assert (renamed.id, renamed.change) == (first.id, Change.UPDATED)
        other = await tx.upsert_extension(T1, "102")

        queue = await tx.upsert_queue(T1, "600", name="Sales", strategy="ringall", timeout=15)
        same = await tx.upsert_queue(T1, "600", name="Sales", strategy="ringall", timeout=15)
        slower = await tx.upsert_queue(T1, "600", name="Sales", strategy="ringall", timeout=30)
        assert (same.id, same.change) == (queue.id, Change.UNCHANGED)
        assert (slower.id, slower.change) == (queue.id, Change.UPDATED)

        assert await tx.set_enrolments(queue.id, [first.id, other.id]) is Change.CREATED
        assert await tx.set_enrolments(queue.id, [first.id, other.id]) is Change.UNCHANGED
        assert await tx.set_enrolments(queue.id, [other.id, first.id]) is Change.UPDATED

        route = QueueTarget(queue.id)
        assert await tx.upsert_did_route(T1, "100", route) is Change.CREATED
        assert await tx.upsert_did_route(T1, "100", route) is Change.UNCHANGED
        assert await tx.upsert_did_route(T1, "100", ExtensionTarget(first.id)) is Change.UPDATED


async def test_route_to_another_tenants_queue_is_refused_by_the_schema(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "x.db") as store:
        async with store.transaction() as tx:
            await tx.upsert_tenant(T1, "Acme")
            await tx.upsert_tenant(T2, "Globex")
            theirs = await tx.upsert_queue(T2, "600", name="Q", strategy="ringall", timeout=15)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            async with store.transaction() as tx:
                await tx.upsert_did_route(T1, "100", QueueTarget(theirs.id))
        assert not [e for e in await store.load_config() if isinstance(e, DidRouteSaved)]


async def test_exception_in_transaction_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
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


async def test_deleting_an_extension_keeps_its_enrolment(tmp_path: Path) -> None:
    # The product's documented behaviour; the engine copes with enrolments of nothing.
    path = tmp_path / "e.db"
    async with await Store.open(path) as store, store.transaction() as tx:
        await tx.upsert_tenant(T1, "Acme")
        ext = await tx.upsert_extension(T1, "101")
        queue = await tx.upsert_queue(T1, "600", name="Q", strategy="ringall", timeout=15)
        await tx.set_enrolments(queue.id, [ext.id])
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM extensions")
    async with await Store.open(path) as store:
        assert AgentEnrolled(queue.id, ext.id) in await store.load_config()


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


async def test_live_state_round_trip_with_removals_and_replaced_rings(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
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
    with sqlite3.connect(path) as db:  # no orphan rings
        assert db.execute("SELECT count(*) FROM rings").fetchone() == (1,)


async def test_ring_order_is_kept(tmp_path: Path) -> None:
    a = call("a", 1, rings=(ring(3), ring(1), ring(2)))
    async with await Store.open(tmp_path / "o.db") as store:
        await store.commit(StateChanges(LiveState(calls=(a,))), [])
        assert (await store.load_live()).calls == (a,)


async def test_empty_commit_is_a_no_op(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "n.db") as store:
        assert await store.commit(StateChanges(), []) == []
        assert await store.load_live() == LiveState()


async def test_failed_commit_writes_nothing(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "f.db") as store:
        twice = call("a", 1, rings=(ring(101), ring(101)))  # breaks the rings' primary key
        with pytest.raises(sqlite3.IntegrityError):
            await store.commit(
                StateChanges(LiveState(calls=(twice,), agents=(AGENT,))),
                [OutboxMessage("t", b"x")],
            )
        assert await store.load_live() == LiveState()
        assert await store.pending_outbox() == []


# --- the outbox ----------------------------------------------------------------------------


async def test_outbox_insert_deliver_and_pending_order(tmp_path: Path) -> None:
    path = tmp_path / "ob.db"
    first = [OutboxMessage(f"ringmaster/1/cmd/ring/{i}", b'{"n": %d}' % i) for i in range(3)]
    async with await Store.open(path) as store:
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


async def test_state_and_outbox_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    message = OutboxMessage("ringmaster/1/cmd/ring", b"{}")
    async with await Store.open(path) as store:
        (seq,) = await store.commit(StateChanges(LiveState(calls=(call("a", 1),))), [message])
    async with await Store.open(path) as store:
        assert await store.pending_outbox() == [(seq, message)]
        assert [c.call_id for c in (await store.load_live()).calls] == ["a"]


# --- property: whatever is committed is what is loaded -------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
small_ids = st.integers(min_value=1, max_value=6)
ext_ids = small_ids.map(ExtensionId)
text = st.text(max_size=8)
maybe_float = st.none() | finite

rings_st = st.lists(
    st.builds(RingRecord, ext_ids, finite, finite), max_size=3, unique_by=lambda r: r.extension_id
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
)
agents_st = st.builds(
    AgentRecord,
    ext_ids,
    st.sampled_from(Presence),
    text,
    st.sampled_from(DeviceState),
    maybe_float,
    st.sampled_from(AgentStatus),
)
memory_st = st.builds(
    QueueMemoryRecord,
    small_ids.map(QueueId),
    st.none() | ext_ids,
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
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
async def test_live_state_round_trip_property(tmp_path: Path, batches: list[StateChanges]) -> None:
    path = tmp_path / "p.db"
    path.unlink(missing_ok=True)
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
    # A version-1 file with routes, as an earlier Ringmaster left it.
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(store_module.MIGRATIONS[0])
        db.executescript(
            "INSERT INTO tenants (id, name) VALUES (1, 'Acme');"
            "INSERT INTO queues (id, tenant_id, name, queue_number, strategy, timeout, status)"
            " VALUES (5, 1, 'Q', '600', 'ringall', 15, 'active');"
            "INSERT INTO extensions (id, tenant_id, number) VALUES (7, 1, '101');"
            "INSERT INTO did_routes VALUES (1, '+2', NULL, 7), (1, '+1', 5, NULL);"
        )
        db.execute("PRAGMA user_version = 1")
    async with await Store.open(path) as store, store.transaction() as tx:
        page = await tx.routes()
        assert [(r.id, r.route) for r in page.items] == [
            (1, DidRoute(T1, "+1", QueueTarget(QueueId(5)))),
            (2, DidRoute(T1, "+2", ExtensionTarget(ExtensionId(7)))),
        ]
        # the schema still keeps a route inside its tenant
        with pytest.raises(sqlite3.IntegrityError):
            await tx.upsert_did_route(TenantId(2), "+3", QueueTarget(QueueId(5)))
