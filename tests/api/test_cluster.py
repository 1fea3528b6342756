"""``GET /api/cluster``: empty without a cluster, admin only, and the lease table as it is.

With a cluster, on the real private PostgreSQL: two fake nodes take leases through
`ClusterStore` as the daemons will, and the endpoint shows holders, epochs, each
shard's tenants (hashed or assigned), a lapsed lease as free, and the nodes' liveness.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ringmaster.api import create_app
from ringmaster.api.provisioning import provision
from ringmaster.cluster.leases import Acquire, Beat
from ringmaster.cluster.shards import shard_of
from ringmaster.engine.model import TenantId
from ringmaster.settings import ApiSettings, ClusterSettings
from ringmaster.status import cluster_status, render_cluster
from ringmaster.store import Store

from ..store_backends import raw_sql
from .helpers import ADMIN_TOKEN, EngineStub, api_client

SHARDS = 4
TTL = 30.0  # long: the test lapses a lease by hand, never by waiting

#: Tenants 1 to 8, so that the hash fills more than one shard.
SEED = "".join(f'[[tenant]]\nid = {t}\nname = "T{t}"\n\n' for t in range(1, 9))


async def test_without_a_cluster_the_answer_is_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cluster")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"node": body["node"], "shards": 0, "nodes": [], "shard_list": []}
    assert body["node"] == ClusterSettings().node  # the host name by default


async def test_a_tenant_token_is_refused(
    tenant1: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    refused = await tenant1.get("/api/cluster")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "an admin token is required"}
    assert (await admin.get("/api/cluster")).status_code == 200


async def test_the_cluster_as_the_lease_table_says(postgres_url: str, tmp_path: Path) -> None:
    seed = tmp_path / "seed.toml"
    seed.write_text(SEED)
    store = await Store.open(postgres_url)
    node_a = await store.open_cluster("a", TTL, api_url="http://a:8080")
    node_b = await store.open_cluster("b", TTL)
    try:
        await provision(seed, store, clock=lambda: 0.0)
        await node_a.ensure_shards(SHARDS)
        assert await node_a.run(Beat("a"))
        assert await node_b.run(Beat("b"))
        assert await node_a.run(Acquire(0, 1))
        assert await node_b.run(Acquire(1, 1))
        assert await node_b.run(Acquire(2, 1))
        # Shard 2 lapses (its holder, say, died): shown free, its epoch kept.
        await raw_sql(postgres_url, "UPDATE cluster_leases SET expires_at = now() WHERE shard = 2")
        # Node b's heartbeat is old: listed, but not alive.
        await raw_sql(
            postgres_url,
            "UPDATE cluster_nodes SET last_seen = now() - interval '10 seconds' WHERE node = 'b'",
        )
        await node_a.assign(TenantId(1), 3)  # tenant 1 by hand to shard 3, whatever its hash says
        await node_a.assign(TenantId(2), 9)  # beyond the shards: in no shard, and no error

        # A heartbeat lives 5 s: `a`'s (just written) is alive even on a slow machine, `b`'s
        # (10 s old) is not.
        settings = ClusterSettings(shards=SHARDS, node="a", lease_ttl_s=TTL, heartbeat_ttl_s=5.0)
        app = create_app(
            EngineStub(),
            store,
            ApiSettings.model_validate({"admin_tokens": [ADMIN_TOKEN]}),
            cluster_settings=settings,
        )
        async with api_client(app, ADMIN_TOKEN) as client:
            response = await client.get("/api/cluster")
        assert response.status_code == 200, response.text
        body = response.json()

        hashed = {t: shard_of(t, SHARDS) for t in range(3, 9)}
        expected_tenants = [
            [t for t in range(3, 9) if hashed[t] == shard] + ([1] if shard == 3 else [])
            for shard in range(SHARDS)
        ]
        assert [sorted(s["tenants"]) for s in body["shard_list"]] == [
            sorted(t) for t in expected_tenants
        ]
        assert len(set(hashed.values())) > 1  # the hash spreads them
        assert [(s["shard"], s["holder"], s["epoch"]) for s in body["shard_list"]] == [
            (0, "a", 1),
            (1, "b", 1),
            (2, None, 1),
            (3, None, 0),
        ]
        expires = [s["expires_in_s"] for s in body["shard_list"]]
        assert all(0 < e <= TTL for e in expires[:2])
        assert expires[2:] == [None, None]
        assert body["node"] == "a"
        assert body["shards"] == SHARDS
        nodes = body["nodes"]
        assert [(n["node"], n["api_url"], n["alive"]) for n in nodes] == [
            ("a", "http://a:8080", True),
            ("b", "", False),
        ]
        assert 0 <= nodes[0]["last_seen_s_ago"] < settings.heartbeat_ttl_s
        assert nodes[1]["last_seen_s_ago"] >= 10
        # And `ringmaster status` shows it: this node, the holders, the free shards.
        section = render_cluster(cluster_status(body) or pytest.fail("no cluster section"))
        assert section.startswith("cluster: node a, 2 of 4 shards held\n  nodes: a, b (down, seen ")
        assert "    2      (free)  1" in section
    finally:
        await node_a.close()
        await node_b.close()
        await store.close()
