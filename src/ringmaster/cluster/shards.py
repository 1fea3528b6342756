"""Which shard a tenant belongs to.

A cluster has a fixed number of shards (``cluster.shards``); every tenant lives in
exactly one. The shard is a stable function of the tenant id, the same in every
process, on every machine and in every Python version (never ``hash()``, which is
salted per process for strings and may change between versions), unless the database
assigns the tenant explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping

from ringmaster.engine.model import TenantId

_MASK64 = (1 << 64) - 1


class ShardError(ValueError):
    """A shard count or an explicit assignment is out of range."""


def mix64(value: int) -> int:
    """SplitMix64's finaliser of ``value`` taken modulo 2**64: a fixed 64-bit integer hash.

    Written out here rather than taken from a library so that its output is part of
    this project's contract (tests/cluster/test_shards.py pins values): a tenant's
    shard must never change because a dependency changed. The constants are those of
    Steele, Lea and Flood, "Fast splittable pseudorandom number generators" (2014).
    """
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def shard_of(
    tenant_id: TenantId | int,
    shards: int,
    assignment: Mapping[int, int] | None = None,
) -> int:
    """The shard, in ``range(shards)``, that holds a tenant.

    Args:
        tenant_id: The tenant.
        shards: The cluster's number of shards (``cluster.shards``), at least 1.
        assignment: Explicit tenant -> shard choices, as stored in the database; a
            tenant listed there goes to that shard, any other to its hashed one.

    Returns:
        ``assignment[tenant_id]`` if given, else ``mix64(tenant_id) % shards``.

    Raises:
        ShardError: ``shards`` is below 1, or the assignment names a shard outside
            ``range(shards)`` for this tenant.
    """
    if shards < 1:
        raise ShardError(f"a cluster has at least 1 shard, not {shards}")
    if assignment is not None and tenant_id in assignment:
        shard = assignment[tenant_id]
        if not 0 <= shard < shards:
            raise ShardError(
                f"tenant {tenant_id} is assigned to shard {shard}, outside 0..{shards - 1}"
            )
        return shard
    return mix64(tenant_id) % shards


def tenants_of(
    shard: int,
    tenants: list[int] | tuple[int, ...],
    shards: int,
    assignment: Mapping[int, int] | None = None,
) -> list[int]:
    """The tenants, of those given, that the shard holds, in the order given."""
    return [t for t in tenants if shard_of(t, shards, assignment) == shard]
