"""The store's side of the cluster, on the real private PostgreSQL (docs/cluster.md).

The lease statements as compare-and-sets between two nodes (two `Store`s), the fence in
a turn's commit, each shard's own outbox, a shard's live state, the configuration
notices, and the real lease machines of two nodes driven against the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ringmaster.cluster.leases import (
    Acquire,
    Action,
    Beat,
    LeaseTiming,
    NodeLeases,
    Release,
    Renew,
    StartShard,
    StopShard,
)
from ringmaster.contract import OutboxMessage
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CallPhase,
    DeviceState,
    ExtensionId,
    Presence,
    QueueId,
    TenantId,
)
from ringmaster.engine.records import (
    AgentQueueStats,
    AgentRecord,
    CallRecord,
    LiveState,
    QueueMemoryRecord,
    StateChanges,
)
from ringmaster.store import Fence, FencedError, Store, StoreError
from ringmaster.store.postgres.cluster import ClusterStore

from ..store_backends import Databases, raw_sql

T1, T2 = TenantId(1), TenantId(2)
TTL = 30.0  # long: a test lapses a lease by hand, never by waiting


def call(tenant_id: TenantId, call_id: str, seq: int) -> CallRecord:
    return CallRecord(
        tenant_id=tenant_id,
        call_id=CallId(call_id),
        phase=CallPhase.QUEUED,
        did="+15550100",
        caller_id="5551234",
        caller_name="Caller",
        priority=0,
        arrived_at=1000.0 + seq,
        seq=seq,
        queue_id=QueueId(1),
    )


def agent(extension_id: ExtensionId) -> AgentRecord:
    return AgentRecord(
        extension_id, Presence.AVAILABLE, "", DeviceState.IDLE, None, AgentStatus.AVAILABLE
    )


def message(text: str) -> OutboxMessage:
    return OutboxMessage(f"P/1/cmd/{text}", text.encode(), False)


async def lapse(url: str, shard: int) -> None:
    """Make the shard's lease lapse now, as waiting out its lifetime would."""
    await raw_sql(url, f"UPDATE cluster_leases SET expires_at = now() WHERE shard = {shard}")


async def two_nodes(url: str) -> tuple[Store, Store, ClusterStore, ClusterStore]:
    store_a, store_b = await Store.open(url), await Store.open(url)
    node_a = await store_a.open_cluster("a", TTL, api_url="http://a:8080")
    node_b = await store_b.open_cluster("b", TTL)
    await node_a.ensure_shards(4)
    await node_b.ensure_shards(4)
    return store_a, store_b, node_a, node_b


async def close(*closables: Store | ClusterStore) -> None:
    for closable in closables:
        await closable.close()


# --- SQLite refuses -----------------------------------------------------------------------


async def test_sqlite_refuses_every_cluster_use_and_writes_nothing(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        with pytest.raises(StoreError, match="a cluster needs a PostgreSQL database"):
            await store.open_cluster("a", TTL)
        with pytest.raises(StoreError, match="a cluster needs a PostgreSQL database"):
            await store.listen_config(lambda tenant: None)
        with pytest.raises(StoreError, match="a cluster needs a PostgreSQL database"):
            await store.listen_leases(lambda shard: None)
        with pytest.raises(StoreError, match="a cluster needs a PostgreSQL database"):
            await store.commit(
                StateChanges(LiveState(calls=(call(T1, "c", 1),))),
                [message("x")],
                fence=Fence(0, "a", 1),
            )
        assert await store.load_live() == LiveState()
        assert await store.pending_outbox() == []


# --- the lease statements -------------------------------------------------------------------


async def test_two_nodes_racing_for_a_shard_exactly_one_wins(postgres_url: str) -> None:
    store_a, store_b, node_a, node_b = await two_nodes(postgres_url)
    try:
        won = await asyncio.gather(node_a.run(Acquire(0, 1)), node_b.run(Acquire(0, 1)))
        assert sorted(won) == [False, True]
        winner, loser = (node_a, node_b) if won[0] else (node_b, node_a)
        assert await winner.run(Renew(0, 1))
        assert not await loser.run(Renew(0, 1))  # not its lease
        assert not await winner.run(Renew(0, 2))  # not its epoch
        assert not await loser.run(Acquire(0, 2))  # held, not lapsed
        assert not await loser.run(Release(0, 1))
        view = await loser.read()
        row = view.leases[0]
        assert (row.shard, row.holder, row.epoch) == (0, winner.node, 1)
        assert 0 < row.expires_in <= TTL
        # Shards never taken are free at epoch 0, lapsed since ever.
        assert [(r.shard, r.holder, r.epoch) for r in view.leases[1:]] == [
            (1, None, 0),
            (2, None, 0),
            (3, None, 0),
        ]
        assert all(r.expires_in == float("-inf") for r in view.leases[1:])
    finally:
        await close(node_a, node_b, store_a, store_b)


async def test_a_lapsed_lease_is_taken_with_the_next_epoch_and_never_revived(
    postgres_url: str,
) -> None:
    store_a, store_b, node_a, node_b = await two_nodes(postgres_url)
    try:
        assert await node_a.run(Acquire(1, 1))
        await lapse(postgres_url, 1)
        assert not await node_a.run(Renew(1, 1))  # lapsed: acquired again, never revived
        assert not await node_b.run(Acquire(1, 1))  # the epoch must be the next one
        assert await node_b.run(Acquire(1, 2))
        assert not await node_a.run(Renew(1, 1))
        assert not await node_a.run(Release(1, 1))  # a deposed holder cannot free it
        assert not await node_a.run(Acquire(1, 2))  # nor take it back at the same epoch
        assert [(r.holder, r.epoch) for r in (await node_a.read()).leases if r.shard == 1] == [
            ("b", 2)
        ]
        # Its own lease from a previous life: taken with a new epoch, lapsed or not.
        assert await node_b.run(Acquire(1, 3))
        assert await node_b.run(Release(1, 3))
        row = (await node_a.read()).leases[1]
        assert (row.holder, row.epoch) == (None, 3)
        assert await node_a.run(Acquire(1, 4))  # free: taken at once
    finally:
        await close(node_a, node_b, store_a, store_b)


async def test_a_release_is_heard_by_another_stores_listener(postgres_url: str) -> None:
    heard: asyncio.Queue[int] = asyncio.Queue()
    store_a, store_b, node_a, node_b = await two_nodes(postgres_url)
    listener = await store_b.listen_leases(heard.put_nowait)
    try:
        assert await node_a.run(Acquire(2, 1))
        assert not await node_b.run(Release(2, 1))  # not its lease: no notice
        assert await node_a.run(Acquire(3, 1))
        assert await node_a.run(Release(3, 1))
        assert await asyncio.wait_for(heard.get(), 10.0) == 3
        assert heard.empty()
    finally:
        await listener.close()
        await close(node_a, node_b, store_a, store_b)


async def test_heartbeats_and_assignments_are_read_back(postgres_url: str) -> None:
    store_a, store_b, node_a, node_b = await two_nodes(postgres_url)
    try:
        assert await node_a.run(Beat("a"))
        assert await node_b.run(Beat("b"))
        view = await node_a.read()
        assert [(n.node, n.api_url) for n in view.nodes] == [("a", "http://a:8080"), ("b", "")]
        assert all(0 <= n.age < 60 for n in view.nodes)
        assert [n.node for n in view.live_nodes(60.0)] == ["a", "b"]
        leases, beats = view.for_machine(100.0)
        assert [h.node for h in beats] == ["a", "b"]
        assert all(h.last_seen <= 100.0 for h in beats)
        assert [lease.shard for lease in leases] == [0, 1, 2, 3]
        async with store_a.transaction() as tx:
            await tx.upsert_tenant(T1, "Acme")
            await tx.upsert_tenant(T2, "Globex")
        await node_a.assign(T2, 3)
        assert await node_b.assignments() == {T2: 3}
        await node_a.assign(T2, None)
        assert await node_b.assignments() == {}
        with pytest.raises(StoreError, match=r"cluster\.shards is 2"):
            await node_a.ensure_shards(2)
    finally:
        await close(node_a, node_b, store_a, store_b)


# --- the fence ------------------------------------------------------------------------------


async def test_a_deposed_holders_fenced_commit_raises_and_writes_nothing(
    postgres_url: str,
) -> None:
    store_a, store_b, node_a, node_b = await two_nodes(postgres_url)
    try:
        assert await node_a.run(Acquire(0, 1))
        first = await store_a.commit(
            StateChanges(LiveState(calls=(call(T1, "c1", 1),), agents=(agent(ExtensionId(7)),))),
            [message("one")],
            fence=Fence(0, "a", 1),
        )
        await lapse(postgres_url, 0)
        # Lapsed, not yet taken: already refused.
        with pytest.raises(FencedError, match="shard 0: node 'a' no longer holds"):
            await store_a.commit(StateChanges(), [message("late")], fence=Fence(0, "a", 1))
        assert await node_b.run(Acquire(0, 2))
        before = (await store_b.load_live(), await store_b.pending_outbox(0))
        with pytest.raises(FencedError):
            await store_a.commit(
                StateChanges(
                    LiveState(calls=(call(T1, "c2", 2),)),
                    calls_removed=((T1, CallId("c1")),),
                    agents_removed=(ExtensionId(7),),
                ),
                [message("zombie")],
                delivered_up_to=first[0],
                fence=Fence(0, "a", 1),
            )
        assert (await store_b.load_live(), await store_b.pending_outbox(0)) == before
        assert [m for _, m in before[1]] == [message("one")]
        # The new holder commits under its own epoch; the old one's never again.
        await store_b.commit(StateChanges(), [message("two")], first[0], fence=Fence(0, "b", 2))
        assert [m for _, m in await store_a.pending_outbox(0)] == [message("two")]
        # Without a fence a commit is the one-daemon path, unchecked.
        assert await store_a.commit(StateChanges(), [message("plain")]) != []
    finally:
        await close(node_a, node_b, store_a, store_b)


# --- each shard's own outbox ------------------------------------------------------------------


async def test_two_shards_committing_together_keep_their_own_seqs_and_watermarks(
    postgres_url: str,
) -> None:
    store_a, store_b, node_a, node_b = await two_nodes(postgres_url)
    try:
        assert await node_a.run(Acquire(0, 1))
        assert await node_b.run(Acquire(1, 1))
        fence_a, fence_b = Fence(0, "a", 1), Fence(1, "b", 1)

        async def turns(store: Store, fence: Fence) -> list[tuple[int, OutboxMessage]]:
            sent: list[tuple[int, OutboxMessage]] = []
            for turn in range(30):
                batch = [message(f"s{fence.shard}-t{turn}-m{m}") for m in range(3)]
                seqs = await store.commit(StateChanges(), batch, fence=fence)
                assert seqs == sorted(set(seqs))
                assert len(seqs) == 3
                sent += zip(seqs, batch, strict=True)
            return sent

        sent_a, sent_b = await asyncio.gather(turns(store_a, fence_a), turns(store_b, fence_b))
        assert await store_a.pending_outbox(0) == sent_a
        assert await store_b.pending_outbox(1) == sent_b
        assert await store_a.pending_outbox(2) == []
        # Shard 1's watermark, past every seq given, deletes shard 1's rows only.
        last = max(seq for seq, _ in sent_a + sent_b)
        await store_b.commit(StateChanges(), [], delivered_up_to=last, fence=fence_b)
        assert await store_b.pending_outbox(1) == []
        assert await store_a.pending_outbox(0) == sent_a
        await store_a.commit(StateChanges(), [], delivered_up_to=sent_a[29][0], fence=fence_a)
        assert await store_a.pending_outbox(0) == sent_a[30:]
    finally:
        await close(node_a, node_b, store_a, store_b)


async def test_the_watermark_of_the_one_daemon_keeps_the_shards_rows(database: Databases) -> None:
    # Without a cluster every row is shard 0's; rows of a shard (left by a cluster, here
    # written by hand) are not another shard's to delete.
    path = database("o.db")
    async with await Store.open(path) as store:
        seqs = await store.commit(StateChanges(), [message("mine")])
        await raw_sql(
            path,
            "INSERT INTO outbox (shard, topic, payload, retain) VALUES (?, ?, ?, ?)",
            [(5, "P/1/cmd/other", b"other", 0)],
        )
        await store.commit(StateChanges(), [], delivered_up_to=seqs[0] + 100)
        assert await store.pending_outbox() == []
        assert [m.payload for _, m in await store.pending_outbox(5)] == [b"other"]


# --- a shard's live state -----------------------------------------------------------------------


async def test_load_live_of_some_tenants_returns_only_theirs(database: Databases) -> None:
    async with await Store.open(database("l.db")) as store:
        async with store.transaction() as tx:
            await tx.upsert_tenant(T1, "Acme")
            await tx.upsert_tenant(T2, "Globex")
            alice = (await tx.upsert_extension(T1, "101")).id
            bob = (await tx.upsert_extension(T2, "101")).id
        q1, q2 = QueueId(1), QueueId(2)
        await raw_sql(
            database("l.db"),
            "INSERT INTO queues (id, tenant_id, name, queue_number, strategy, timeout, status)"
            " VALUES (?, ?, 'Q', ?, 'ringall', 15, 'active')",
            [(1, 1, "600"), (2, 2, "600")],
        )
        mine = LiveState(
            calls=(call(T1, "a", 1),),
            agents=(agent(alice),),
            queues=(QueueMemoryRecord(q1, None, offered=2),),
            agent_stats=(AgentQueueStats(q1, alice, 999.5, 4, 321.25),),
        )
        theirs = LiveState(
            calls=(call(T2, "b", 2),),
            agents=(agent(bob),),
            queues=(QueueMemoryRecord(q2, None, offered=5),),
            agent_stats=(AgentQueueStats(q2, bob, 998.5, 1, 12.5),),
        )
        for state in (mine, theirs):
            await store.commit(StateChanges(state), [])
        assert await store.load_live([T1]) == mine
        assert await store.load_live([T2]) == theirs
        assert await store.load_live([]) == LiveState()
        everything = await store.load_live()
        assert everything.calls == mine.calls + theirs.calls
        assert {a.extension_id for a in everything.agents} == {alice, bob}


# --- configuration notices ----------------------------------------------------------------------


async def write_then_fail(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.upsert_tenant(TenantId(8), "Rolled back")
        raise RuntimeError("changed my mind")


async def test_a_configuration_change_through_one_store_is_heard_by_anothers_listener(
    postgres_url: str,
) -> None:
    heard: asyncio.Queue[TenantId] = asyncio.Queue()
    async with await Store.open(postgres_url) as writer, await Store.open(postgres_url) as node:
        listener = await node.listen_config(heard.put_nowait)
        try:
            with pytest.raises(RuntimeError, match="changed my mind"):
                await write_then_fail(writer)
            async with writer.transaction() as tx:
                await tx.upsert_tenant(T1, "Acme")
                await tx.upsert_extension(T1, "101", name="Alice")
                await tx.upsert_extension(T1, "102", name="Bob")
            async with writer.transaction() as tx:
                await tx.upsert_extension(T1, "101", name="Alice Smith")
                await tx.upsert_tenant(T2, "Globex")
            # Once per tenant and transaction, in commit order; nothing of the rollback.
            got = [await asyncio.wait_for(heard.get(), 10.0) for _ in range(3)]
            assert got == [T1, T1, T2]
            async with writer.transaction() as tx:
                await tx.upsert_tenant(TenantId(3), "Initech")
            assert await asyncio.wait_for(heard.get(), 10.0) == TenantId(3)
            assert heard.empty()
        finally:
            await listener.close()


# --- the real lease machines against the database -------------------------------------------------


class Cluster:
    """Nodes running the real `NodeLeases` on the real tables, each in a task of its own.

    After every action, for every shard: at most one node (dead or alive) counts a
    lease on it as valid now, on the one clock they share; a breach is kept in
    `violations`.
    """

    def __init__(self, shards: int, timing: LeaseTiming) -> None:
        self.shards = shards
        self.timing = timing
        self.stores: dict[str, Store] = {}
        self.tables: dict[str, ClusterStore] = {}
        self.machines: dict[str, NodeLeases] = {}
        self.running: dict[str, dict[int, int]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.violations: list[str] = []

    async def start(self, url: str, name: str) -> None:
        self.stores[name] = await Store.open(url)
        self.tables[name] = await self.stores[name].open_cluster(name, self.timing.lease_ttl_s)
        await self.tables[name].ensure_shards(self.shards)
        self.machines[name] = NodeLeases(name, self.shards, self.timing)
        self.running[name] = {}
        self.tasks[name] = asyncio.create_task(self._drive(name))

    async def kill(self, name: str) -> None:
        """Never call the node's machine again: its leases stay until they lapse."""
        self.tasks[name].cancel()
        await asyncio.gather(self.tasks[name], return_exceptions=True)

    async def close(self) -> None:
        for name in self.tasks:
            await self.kill(name)
            await self.tables[name].close()
            await self.stores[name].close()

    def _check(self, now: float) -> None:
        for shard in range(self.shards):
            valid = [
                name
                for name, machine in self.machines.items()
                if (until := machine.valid_until(shard)) is not None and until > now
            ]
            if len(valid) > 1:
                self.violations.append(f"shard {shard} valid on {valid} at {now}")

    async def _carry_out(self, name: str, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, StartShard):
                self.running[name][action.shard] = action.epoch
            elif isinstance(action, StopShard):
                self.running[name].pop(action.shard, None)
            else:
                won = await self.tables[name].run(action)
                more = self.machines[name].outcome(action, won, time.monotonic())
                await self._carry_out(name, more)
            self._check(time.monotonic())

    async def _drive(self, name: str) -> None:
        machine = self.machines[name]
        while True:
            await self._carry_out(name, machine.handle_timer(time.monotonic()))
            read_at = time.monotonic()
            leases, beats = (await self.tables[name].read()).for_machine(read_at)
            await self._carry_out(name, machine.observe(time.monotonic(), leases, beats))
            pause = machine.next_deadline() - time.monotonic()
            await asyncio.sleep(min(max(pause, 0.0), self.timing.renew_interval_s))

    async def until(self, condition: Callable[[], bool], limit_s: float = 15.0) -> None:
        """Wait for `condition`, failing after `limit_s` (a bound, not a timed assertion)."""
        deadline = time.monotonic() + limit_s
        while not condition():
            assert time.monotonic() < deadline, f"not reached: {self.running}"
            await asyncio.sleep(0.05)


async def test_two_nodes_lease_machines_on_the_real_database_never_overlap(
    postgres_url: str,
) -> None:
    """Two real lease machines on the real tables for a few seconds; one is killed."""
    timing = LeaseTiming(
        lease_ttl_s=1.0, renew_interval_s=0.2, heartbeat_ttl_s=1.0, clock_margin_s=0.05
    )
    cluster = Cluster(4, timing)
    running = cluster.running
    try:
        await cluster.start(postgres_url, "a")
        await cluster.start(postgres_url, "b")
        await cluster.until(lambda: len(running["a"]) == len(running["b"]) == 2)
        taken_from_b = dict(running["b"])
        await cluster.kill("b")
        await cluster.until(lambda: len(running["a"]) == 4)
        for shard, epoch in taken_from_b.items():
            assert running["a"][shard] > epoch
            # The dead node's turns are refused from now on.
            zombie = Fence(shard, "b", epoch)
            with pytest.raises(FencedError):
                await cluster.stores["b"].commit(StateChanges(), [message("z")], fence=zombie)
        assert cluster.violations == []
    finally:
        await cluster.close()
