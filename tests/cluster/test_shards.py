"""A tenant's shard: stable, spread, and overridden by an explicit assignment."""

from __future__ import annotations

from collections import Counter

import pytest

from ringmaster.cluster.shards import ShardError, mix64, shard_of, tenants_of


def test_the_hash_is_splitmix64s_finaliser() -> None:
    # The first output of SplitMix64 seeded with 0, as published with the generator
    # (and in Java's SplittableRandom): the hash is the reference one, not a lookalike.
    assert mix64(0) == 0xE220A8397B1DCDAF


def test_a_tenants_shard_never_changes() -> None:
    # Pinned: a change here moves tenants between shards on a running cluster.
    assert [shard_of(t, 16) for t in range(1, 9)] == [1, 14, 13, 10, 10, 0, 7, 6]
    assert shard_of(7, 64) == mix64(7) % 64


@pytest.mark.parametrize("shards", [1, 16, 32, 64])
def test_tenants_spread_over_the_shards(shards: int) -> None:
    counts = Counter(shard_of(t, shards) for t in range(1, 10_001))
    assert set(counts) == set(range(shards))
    mean = 10_000 / shards
    # Binomial spread: every shard within 25 % of the mean for 10,000 tenants.
    assert all(abs(count - mean) <= 0.25 * mean for count in counts.values())


def test_an_explicit_assignment_wins_for_the_tenants_it_names() -> None:
    hashed = shard_of(7, 16)
    other = (hashed + 1) % 16
    assert shard_of(7, 16, {7: other}) == other
    assert shard_of(8, 16, {7: other}) == shard_of(8, 16)


def test_tenants_of_lists_the_tenants_a_shard_holds() -> None:
    tenants = list(range(1, 40))
    by_shard = [tenants_of(s, tenants, 4, {5: 3}) for s in range(4)]
    assert sorted(t for held in by_shard for t in held) == tenants
    assert 5 in by_shard[3]


@pytest.mark.parametrize(
    ("shards", "assignment", "message"),
    [
        (0, None, "at least 1 shard"),
        (-3, None, "at least 1 shard"),
        (16, {7: 16}, "tenant 7 is assigned to shard 16, outside 0..15"),
        (16, {7: -1}, "outside 0..15"),
    ],
)
def test_a_bad_shard_count_or_assignment_is_refused(
    shards: int, assignment: dict[int, int] | None, message: str
) -> None:
    with pytest.raises(ShardError, match=message):
        shard_of(7, shards, assignment)
