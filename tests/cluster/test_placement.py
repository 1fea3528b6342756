"""Placement: even spread, few moves when a node leaves or returns, the same answer everywhere."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringmaster.cluster.placement import balanced, moved, plain

NAMES = [f"node-{i}" for i in range(8)]
node_sets = st.sets(st.text(min_size=1, max_size=12), min_size=1, max_size=9)


def loads(placement: dict[int, str], nodes: Iterable[str]) -> list[int]:
    return [sum(1 for holder in placement.values() if holder == n) for n in nodes]


@pytest.mark.parametrize("shards", [16, 32, 64])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_every_node_holds_its_share_within_one(shards: int, count: int) -> None:
    for nodes in itertools.combinations(NAMES, count):
        placement = balanced(shards, nodes)
        assert sorted(placement) == list(range(shards))
        assert set(placement.values()) <= set(nodes)
        share = loads(placement, nodes)
        assert min(share) == shards // count
        assert max(share) - min(share) <= 1


@settings(max_examples=300, deadline=None)
@given(nodes=node_sets, shards=st.integers(min_value=0, max_value=96))
def test_the_spread_bound_holds_for_any_names_and_shard_count(nodes: set[str], shards: int) -> None:
    placement = balanced(shards, nodes)
    assert sorted(placement) == list(range(shards))
    share = loads(placement, nodes)
    assert min(share) == shards // len(nodes)
    assert max(share) - min(share) <= 1


def test_plain_rendezvous_hashing_does_not_meet_the_spread_bound() -> None:
    # Why `balanced` exists: the textbook scheme leaves nodes far apart.
    worst = max(
        max(share) - min(share)
        for nodes in itertools.combinations(NAMES, 3)
        for share in [loads(plain(16, nodes), nodes)]
    )
    assert worst > 1


@settings(max_examples=100, deadline=None)
@given(nodes=node_sets, shards=st.integers(min_value=1, max_value=64), data=st.data())
def test_every_node_computes_the_same_placement(
    nodes: set[str], shards: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(sorted(nodes)))
    assert balanced(shards, shuffled) == balanced(shards, nodes)
    assert balanced(shards, [*shuffled, *shuffled]) == balanced(shards, nodes)


@settings(max_examples=200, deadline=None)
@given(
    nodes=st.sets(st.text(min_size=1, max_size=12), min_size=2, max_size=7),
    shards=st.sampled_from([16, 32, 64]),
    data=st.data(),
)
def test_a_node_that_leaves_and_returns_moves_few_shards_and_gets_its_own_back(
    nodes: set[str], shards: int, data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(sorted(nodes)))
    before = balanced(shards, nodes)
    after = balanced(shards, nodes - {gone})
    its_own = {s for s, holder in before.items() if holder == gone}
    # Its shards must move, and the others stay balanced. How many more move is a
    # figure, not a bound: the greedy placement has none it can prove (Hypothesis
    # found 6 beyond the leaving node's 5 for 7 nodes and 32 shards, where one node's
    # share is 5); docs/cluster.md gives the measured mean and worst.
    assert its_own <= moved(before, after)
    assert all(holder != gone for holder in after.values())
    # Placement depends on the live set only: its return restores the placement.
    assert balanced(shards, nodes) == before


def test_no_node_no_placement() -> None:
    assert balanced(16, []) == {}
    assert plain(16, []) == {}
