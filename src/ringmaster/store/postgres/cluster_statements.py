"""The cluster's statements (PostgreSQL only): the lease machine's, the fence, the reads.

Each lease statement is the compare-and-set `ringmaster.cluster.leases` spells out in its
action's docstring, by the database's clock (``now()``); ``$ttl`` is seconds, a float.
Durations, never instants, are read back (``expires_at - now()``, ``now() - last_seen``),
so that no two machines' clocks are compared (docs/cluster.md, "Clocks").
"""

from __future__ import annotations

from typing import Final

_TTL: Final = "now() + $4::float8 * interval '1 second'"

#: Parameters: node, API address.
BEAT: Final = (
    "INSERT INTO cluster_nodes (node, last_seen, api_url) VALUES ($1, now(), $2)"
    " ON CONFLICT (node) DO UPDATE SET last_seen = now(), api_url = excluded.api_url"
)
#: Parameters: shard, node, the new epoch, ttl.
ACQUIRE: Final = (
    f"UPDATE cluster_leases SET holder = $2, epoch = $3, expires_at = {_TTL}"
    " WHERE shard = $1 AND epoch = $3 - 1"
    " AND (holder IS NULL OR expires_at < now() OR holder = $2)"
)
#: Parameters: shard, node, epoch, ttl.
RENEW: Final = (
    f"UPDATE cluster_leases SET expires_at = {_TTL}"
    " WHERE shard = $1 AND holder = $2 AND epoch = $3 AND expires_at >= now()"
)
#: Parameters: shard, node, epoch. One row back if it was released, with its notice,
#: sent when the statement's own transaction commits.
RELEASE: Final = (
    "WITH released AS ("
    " UPDATE cluster_leases SET holder = NULL, expires_at = now()"
    " WHERE shard = $1 AND holder = $2 AND epoch = $3 RETURNING shard"
    ") SELECT pg_notify('ringmaster_leases', shard::text) FROM released"
)
#: The first statement of a fenced turn's transaction (parameters: shard, node, epoch):
#: no row, no turn. FOR SHARE holds the row until the commit, so an acquisition (an
#: UPDATE of it) is entirely before or entirely after the turn.
FENCE: Final = (
    "SELECT 1 FROM cluster_leases"
    " WHERE shard = $1 AND holder = $2 AND epoch = $3 AND expires_at >= now() FOR SHARE"
)
#: Parameter: the number of shards. Every lease row exists before any acquisition.
ENSURE_SHARDS: Final = (
    "INSERT INTO cluster_leases (shard) SELECT generate_series(0, $1::integer - 1)"
    " ON CONFLICT DO NOTHING"
)
#: Parameter: the number of shards: rows beyond it (a changed ``cluster.shards``).
SHARDS_BEYOND: Final = "SELECT shard FROM cluster_leases WHERE shard >= $1 ORDER BY shard"

#: Seconds until each lease lapses (negative once lapsed; -infinity never taken).
LEASES: Final = (
    "SELECT shard, holder, epoch, CASE WHEN isfinite(expires_at)"
    " THEN extract(epoch FROM expires_at - now())::float8 ELSE '-infinity'::float8 END"
    " FROM cluster_leases ORDER BY shard"
)
#: Seconds since each node's last heartbeat.
NODES: Final = (
    "SELECT node, extract(epoch FROM now() - last_seen)::float8, api_url"
    " FROM cluster_nodes ORDER BY node"
)
ASSIGNMENTS: Final = "SELECT tenant_id, shard FROM cluster_tenant_shards ORDER BY tenant_id"
#: Parameters: tenant, shard.
ASSIGN: Final = (
    "INSERT INTO cluster_tenant_shards (tenant_id, shard) VALUES ($1, $2)"
    " ON CONFLICT (tenant_id) DO UPDATE SET shard = excluded.shard"
)
UNASSIGN: Final = "DELETE FROM cluster_tenant_shards WHERE tenant_id = $1"

#: The channels: a tenant's configuration changed (payload: its id); a lease was released.
CONFIG_CHANNEL: Final = "ringmaster_config"
LEASES_CHANNEL: Final = "ringmaster_leases"
