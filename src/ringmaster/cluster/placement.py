"""Which live node should hold which shard.

Rendezvous (highest-random-weight) hashing gives every (shard, node) pair a fixed
pseudo-random weight, and plain HRW gives each shard to its heaviest node. That
moves only the shards of a node that leaves (and only those come back when it
returns), but it does not spread evenly: with 16 shards on 3 nodes one node often
gets 8 or more. Here the pairs are taken heaviest first and a shard goes to the
node of its pair unless that node already has its quota, so every node ends with
``shards // nodes`` or one more (`balanced`).

Both are functions of the set of live node names and nothing else: every node that
sees the same heartbeats computes the same placement, and a node that returns to
the same set of live nodes gets exactly the shards it had before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .shards import mix64


def weight(shard: int, node: str) -> int:
    """The pair's rendezvous weight: a fixed 64-bit hash of the shard and the node name.

    BLAKE2b of the node name (so any name, in any language, hashes the same way)
    mixed with the shard number.
    """
    digest = hashlib.blake2b(node.encode(), digest_size=8).digest()
    return mix64(int.from_bytes(digest, "big") ^ mix64(shard))


def plain(shards: int, nodes: Iterable[str]) -> dict[int, str]:
    """Plain rendezvous hashing: each shard on its heaviest node (uneven; for comparison).

    Returns:
        shard -> node for every shard; empty when there is no node.
    """
    live = sorted(set(nodes))
    if not live:
        return {}
    return {s: max(live, key=lambda n: (weight(s, n), n)) for s in range(shards)}


def balanced(shards: int, nodes: Iterable[str]) -> dict[int, str]:
    """Balanced rendezvous hashing: every node gets ``shards // len(nodes)`` or one more.

    The (shard, node) pairs are visited heaviest first; a pair places its shard on
    its node when the shard is not yet placed and the node is under its quota. Of
    the nodes, the first ``shards % len(nodes)`` to fill their ``shards // len(nodes)``
    may take one more. Every shard is placed: a shard left over would mean every
    node full, which is all shards placed.

    Args:
        shards: The number of shards.
        nodes: The names of the live nodes (duplicates are ignored).

    Returns:
        shard -> node for every shard; empty when there is no node.
    """
    live = sorted(set(nodes))
    if not live:
        return {}
    base, extra = divmod(shards, len(live))
    pairs = sorted(
        ((weight(s, n), n, s) for s in range(shards) for n in live),
        reverse=True,
    )
    placed: dict[int, str] = {}
    load = dict.fromkeys(live, 0)
    larger = 0  # nodes that took base + 1
    for _, node, shard in pairs:
        if shard in placed:
            continue
        count = load[node]
        if count < base or (count == base and larger < extra):
            if count == base:
                larger += 1
            placed[shard] = node
            load[node] = count + 1
            if len(placed) == shards:
                break
    return placed


def moved(before: dict[int, str], after: dict[int, str]) -> set[int]:
    """The shards whose node differs between two placements."""
    return {s for s in after if before.get(s) != after[s]}
