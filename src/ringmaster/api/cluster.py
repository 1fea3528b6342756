"""``/api/cluster``: this node, the cluster's nodes, and who holds each tenant shard.

What the database says (docs/cluster.md): the lease and heartbeat tables as read in
one transaction, and each shard's tenants by `cluster.shards.shard_of` over the
stored tenants and the explicit assignments. Read on connections of their own (the
store's reading connection for the tenants, a cluster connection opened for the
request), never the daemon's: a request neither waits for a turn nor holds one up.
Without a cluster (``cluster.shards = 0``, SQLite or PostgreSQL) the answer is empty,
so monitoring can ask every daemon alike.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from ringmaster.api.auth import Caller
from ringmaster.api.context import Context
from ringmaster.api.schemas import Error
from ringmaster.cluster.shards import ShardError, shard_of
from ringmaster.engine.model import TenantId
from ringmaster.settings import ClusterSettings
from ringmaster.store import StoreError

_log = structlog.get_logger("ringmaster.api")

router = APIRouter(prefix="/api/cluster", tags=["cluster"])

_TENANT_PAGE = 1000


class ClusterNode(BaseModel):
    """A node of the cluster, as its last heartbeat left it."""

    node: str = Field(description="Its name (`cluster.node`).")
    last_seen_s_ago: float = Field(
        description="Seconds since its last heartbeat, by the database's clock."
    )
    api_url: str = Field(description="Its admin API, as it wrote it (empty when it did not say).")
    alive: bool = Field(
        description="Its heartbeat is younger than this node's `cluster.heartbeat_ttl_s`."
    )


class ShardHolder(BaseModel):
    """One tenant shard: its lease and its tenants."""

    shard: int = Field(description="The shard, 0 to `shards` - 1.")
    holder: str | None = Field(
        description="The node holding its lease; null when the shard is free or its lease lapsed."
    )
    epoch: int = Field(
        description="The lease's epoch, raised at every change of holder (0: never taken)."
    )
    expires_in_s: float | None = Field(
        description="Seconds until the holder's lease lapses unless renewed; null without a holder."
    )
    tenants: list[int] = Field(
        description="The ids of its tenants (the hash of the id, or an explicit assignment)."
    )


class ClusterOut(BaseModel):
    """This node, and the cluster as the database says (empty lists without a cluster)."""

    node: str = Field(description="This daemon's `cluster.node`.")
    shards: int = Field(description="`cluster.shards`: 0 when the daemon runs no cluster.")
    nodes: list[ClusterNode] = Field(description="Every node that wrote a heartbeat, by name.")
    shard_list: list[ShardHolder] = Field(description="Every shard, by number.")


@router.get(
    "",
    summary="The cluster's nodes and who holds each shard",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": Error,
            "description": "The cluster's tables cannot be read now",
        }
    },
)
async def read_cluster(request: Request, context: Context, caller: Caller) -> ClusterOut:
    """This node's name and, for every shard, its holder, epoch and tenants (admin only).

    Without a cluster (``cluster.shards = 0``) the lists are empty and the database
    is not asked.
    """
    if not caller.is_admin:
        # The shards name every tenant: nothing of one tenant's.
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an admin token is required")
    settings: ClusterSettings = request.app.state.cluster
    if not settings.shards:
        return ClusterOut(node=settings.node, shards=0, nodes=[], shard_list=[])
    tenants: list[TenantId] = []
    async with context.read() as tx:
        while True:
            page = await tx.tenants(limit=_TENANT_PAGE, offset=len(tenants))
            tenants += [tenant.tenant_id for tenant in page.items]
            if not page.items or len(tenants) >= page.total:
                break
    try:
        cluster = await context.store.open_cluster(settings.node, settings.lease_ttl_s)
    except (StoreError, OSError) as error:
        _log.warning("api.cluster_unreadable", error=str(error))
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the cluster's tables cannot be read now"
        ) from None
    try:
        view = await cluster.read()
        assignment = {int(t): s for t, s in (await cluster.assignments()).items()}
    finally:
        await cluster.close()
    by_shard: dict[int, list[int]] = {shard: [] for shard in range(settings.shards)}
    for tenant_id in tenants:
        try:
            by_shard[shard_of(tenant_id, settings.shards, assignment)].append(tenant_id)
        except ShardError as error:
            # An assignment beyond the shards: no shard runs the tenant; say so, not 500.
            _log.warning("api.cluster_unplaced_tenant", tenant_id=tenant_id, error=str(error))
    leases = {row.shard: row for row in view.leases}
    shard_list = []
    for shard, shard_tenants in by_shard.items():
        row = leases.get(shard)
        held = row is not None and row.holder is not None and row.expires_in >= 0
        shard_list.append(
            ShardHolder(
                shard=shard,
                holder=row.holder if held and row is not None else None,
                epoch=0 if row is None else row.epoch,
                expires_in_s=row.expires_in if held and row is not None else None,
                tenants=shard_tenants,
            )
        )
    return ClusterOut(
        node=settings.node,
        shards=settings.shards,
        nodes=[
            ClusterNode(
                node=n.node,
                last_seen_s_ago=n.age,
                api_url=n.api_url,
                alive=n.age < settings.heartbeat_ttl_s,
            )
            for n in view.nodes
        ],
        shard_list=shard_list,
    )
