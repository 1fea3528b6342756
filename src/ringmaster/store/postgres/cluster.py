"""The cluster's side of the store (PostgreSQL only): leases, heartbeats, notices.

`ClusterStore` carries out the statements of `ringmaster.cluster.leases.NodeLeases`
(`Beat`, `Acquire`, `Renew`, `Release`) exactly as their docstrings spell them, on a
connection of its own so that a renewal never waits behind a turn's commit, and reads
the tables back for `NodeLeases.observe`. A `Listener` hears the configuration notices
every write of the configuration sends (the schema's triggers), or the releases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ringmaster.cluster.leases import Acquire, Beat, Heartbeat, Lease, Release, Renew, Statement
from ringmaster.engine.model import TenantId
from ringmaster.store.postgres import cluster_statements as sql
from ringmaster.store.postgres.connection import PostgresConnection, connect_reader
from ringmaster.store.records import StoreError


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A row of ``cluster_leases`` as read.

    Attributes:
        shard: The shard.
        holder: Its node, None when free.
        epoch: The lease's epoch.
        expires_in: Seconds until it lapses by the database's clock (negative once
            lapsed, ``-inf`` for a lease never taken).
    """

    shard: int
    holder: str | None
    epoch: int
    expires_in: float


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A row of ``cluster_nodes``: a node, seconds since its heartbeat, its API's address."""

    node: str
    age: float
    api_url: str


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The lease and node tables, read in one transaction (one ``now()``)."""

    leases: list[LeaseRow]
    nodes: list[NodeRow]

    def for_machine(self, read_at: float) -> tuple[list[Lease], list[Heartbeat]]:
        """The rows as `NodeLeases.observe` takes them, on this node's clock.

        Args:
            read_at: This node's clock when the read was sent: the earliest the
                database's ``now()`` can have been, so other nodes' leases and
                heartbeats are never counted as lasting longer than they do.
        """
        leases = [Lease(r.shard, r.holder, r.epoch, read_at + r.expires_in) for r in self.leases]
        beats = [Heartbeat(n.node, read_at - n.age) for n in self.nodes]
        return leases, beats

    def live_nodes(self, heartbeat_ttl_s: float) -> list[NodeRow]:
        """The nodes whose last heartbeat is younger than `heartbeat_ttl_s`."""
        return [n for n in self.nodes if n.age < heartbeat_ttl_s]


class ClusterStore:
    """One node's statements on the cluster's tables. Open with `Store.open_cluster`.

    Args:
        db: A connection of its own.
        node: This node (``cluster.node``).
        lease_ttl_s: How long a lease lasts after its acquisition or renewal.
        api_url: This node's admin API, written with its heartbeat.
    """

    def __init__(self, db: PostgresConnection, node: str, lease_ttl_s: float, api_url: str) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self.node = node
        self.lease_ttl_s = lease_ttl_s
        self.api_url = api_url

    async def close(self) -> None:
        """Close the connection."""
        await self._db.close()

    async def ensure_shards(self, shards: int) -> None:
        """Insert the lease rows of shards ``0..shards-1`` that are missing.

        Raises:
            StoreError: The table holds shards beyond them: ``cluster.shards`` changed,
                which moves most tenants (a planned migration, docs/cluster.md).
        """
        async with self._lock:
            await self._db.execute(sql.ENSURE_SHARDS, (shards,))
            beyond = await self._db.fetch_all(sql.SHARDS_BEYOND, (shards,))
        if beyond:
            raise StoreError(
                f"cluster_leases holds shards up to {beyond[-1][0]}, but cluster.shards is"
                f" {shards}: changing the number of shards moves most tenants"
            )

    async def run(self, statement: Statement) -> bool:
        """Carry out one of the lease machine's statements, as its docstring says.

        Returns:
            Whether it changed its row (a `Beat` always does): the ``succeeded`` of
            `NodeLeases.outcome`. A connection error propagates (the answer is unknown).
        """
        async with self._lock:
            match statement:
                case Beat(node):
                    await self._db.execute(sql.BEAT, (node, self.api_url))
                    return True
                case Acquire(shard, epoch):
                    params = (shard, self.node, epoch, self.lease_ttl_s)
                    return await self._db.execute(sql.ACQUIRE, params) == 1
                case Renew(shard, epoch):
                    params = (shard, self.node, epoch, self.lease_ttl_s)
                    return await self._db.execute(sql.RENEW, params) == 1
                case Release(shard, epoch):
                    rows = await self._db.fetch_all(sql.RELEASE, (shard, self.node, epoch))
                    return len(rows) == 1
        raise TypeError(f"not a lease statement: {statement!r}")  # pragma: no cover

    async def read(self) -> ClusterView:
        """Every lease and every node, by the database's clock at one instant."""
        async with self._lock:
            await self._db.begin_read()
            try:
                leases = await self._db.fetch_all(sql.LEASES)
                nodes = await self._db.fetch_all(sql.NODES)
            finally:
                await self._db.commit()
        return ClusterView(
            [LeaseRow(int(s), h, int(e), float(x)) for s, h, e, x in leases],
            [NodeRow(n, float(age), url) for n, age, url in nodes],
        )

    async def assignments(self) -> dict[TenantId, int]:
        """The explicit tenant -> shard assignment (`cluster.shards.shard_of`'s)."""
        async with self._lock:
            rows = await self._db.fetch_all(sql.ASSIGNMENTS)
        return {TenantId(t): int(s) for t, s in rows}

    async def assign(self, tenant_id: TenantId, shard: int | None) -> None:
        """Assign a tenant to a shard, or (None) back to the hash; its listeners hear it."""
        async with self._lock:
            if shard is None:
                await self._db.execute(sql.UNASSIGN, (tenant_id,))
            else:
                await self._db.execute(sql.ASSIGN, (tenant_id, shard))


class Listener:
    """Hears the notices of one channel on a connection of its own. Close it when done.

    A notice sent while the connection was down is lost: after opening one (again),
    re-read what it would have said (for the configuration, every tenant held;
    docs/cluster.md).
    """

    def __init__(
        self, db: PostgresConnection, channel: str, callback: Callable[[str], None]
    ) -> None:
        self._db = db
        self._channel = channel
        self._callback = callback

    async def start(self) -> None:
        """Begin listening (the notices of transactions committed from now on)."""
        await self._db.conn.add_listener(self._channel, self._heard)

    def _heard(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._callback(payload)

    def is_closed(self) -> bool:
        """Whether its connection is gone (the server ended it, the network dropped it)."""
        return bool(self._db.conn.is_closed())

    async def close(self) -> None:
        """Stop listening and close the connection."""
        await self._db.close()


async def open_cluster(url: str, node: str, lease_ttl_s: float, api_url: str) -> ClusterStore:
    """A `ClusterStore` for `node` on a new connection to the database at `url`."""
    return ClusterStore(await connect_reader(url), node, lease_ttl_s, api_url)


async def listen_config(url: str, callback: Callable[[TenantId], None]) -> Listener:
    """A `Listener` of the configuration notices (a tenant's id each) on a new connection."""

    def heard(payload: str) -> None:
        callback(TenantId(int(payload)))

    listener = Listener(await connect_reader(url), sql.CONFIG_CHANNEL, heard)
    await listener.start()
    return listener


async def listen_leases(url: str, callback: Callable[[int], None]) -> Listener:
    """A `Listener` of the lease releases (the shard's number each) on a new connection."""

    def heard(payload: str) -> None:
        callback(int(payload))

    listener = Listener(await connect_reader(url), sql.LEASES_CHANNEL, heard)
    await listener.start()
    return listener
