"""One node's lease machine, input by input, with the exact actions it returns."""

from __future__ import annotations

from ringmaster.cluster.leases import (
    Acquire,
    Beat,
    Heartbeat,
    Lease,
    LeaseTiming,
    NodeLeases,
    Release,
    Renew,
    StartShard,
    StopShard,
)
from ringmaster.cluster.placement import balanced

from .sim import TIMING

TTL = TIMING.lease_ttl_s
RENEW = TIMING.renew_interval_s
MARGIN = TIMING.clock_margin_s
FREE = float("-inf")


def lone(shards: int = 2) -> tuple[NodeLeases, list[Heartbeat]]:
    """Node a, alone, holding every shard at epoch 1 since time 0."""
    node = NodeLeases("a", shards, TIMING)
    beats = [Heartbeat("a", 0.0)]
    for action in node.observe(0.0, [], beats):
        if isinstance(action, Acquire):
            node.outcome(action, True, 0.01)
    node.outcome(Beat("a"), True, 0.01)
    return node, beats


def rows(node: str | None, epoch: int, expires_at: float, shards: int = 2) -> list[Lease]:
    return [Lease(s, node, epoch, expires_at) for s in range(shards)]


def test_the_timing_defaults_meet_the_takeover_target() -> None:
    # Takeover waits for the lease: between TTL - RENEW and TTL after the kill.
    assert LeaseTiming(2.0, 0.5, 2.0, 0.1) == TIMING
    assert RENEW * 3 <= TTL


def test_a_lone_node_takes_every_free_shard_and_starts_each_once_taken() -> None:
    node = NodeLeases("a", 2, TIMING)
    actions = node.observe(0.0, [], [])
    assert actions == [Beat("a"), Acquire(0, 1), Acquire(1, 1)]
    assert node.outcome(Acquire(0, 1), True, 0.01) == [StartShard(0, 1)]
    assert node.outcome(Acquire(1, 1), False, 0.01) == []  # another node won the row
    assert node.held == {0: 1}
    # Counted from when the statement left, less the margin: never after the database's expiry.
    assert node.valid_until(0) == 0.0 + TTL - MARGIN


def test_a_held_lease_is_renewed_every_interval_and_its_deadline_says_when() -> None:
    node, beats = lone()
    assert node.next_deadline() == RENEW
    assert node.observe(0.2, rows("a", 1, TTL), beats) == []
    actions = node.observe(RENEW, rows("a", 1, TTL), beats)
    assert actions == [Beat("a"), Renew(0, 1), Renew(1, 1)]
    # Renewals in flight: the deadline is their lapse, not a renewal already due.
    node.outcome(Beat("a"), True, RENEW)
    assert node.next_deadline() == 2 * RENEW
    assert node.outcome(Renew(0, 1), True, RENEW + 0.01) == []
    assert node.valid_until(0) == RENEW + TTL - MARGIN


def test_a_refused_renewal_stops_the_shard_at_once() -> None:
    node, beats = lone()
    node.observe(RENEW, rows("a", 1, TTL), beats)
    assert node.outcome(Renew(1, 1), False, RENEW + 0.01) == [StopShard(1)]
    assert node.held == {0: 1}


def test_unanswered_renewals_keep_the_shard_until_the_lease_lapses_here() -> None:
    node, beats = lone()
    node.observe(RENEW, rows("a", 1, TTL), beats)
    assert node.outcome(Renew(0, 1), None, RENEW + 1.0) == []
    assert node.handle_timer(TTL - MARGIN - 0.001) == []
    assert node.handle_timer(TTL - MARGIN) == [StopShard(0), StopShard(1)]
    assert node.held == {}


def test_an_answer_that_comes_after_the_lease_would_lapse_starts_nothing() -> None:
    node = NodeLeases("a", 1, TIMING)
    node.observe(0.0, [], [])
    assert node.outcome(Acquire(0, 1), True, TTL) == []
    assert node.held == {}


def test_a_deposed_holder_stops_before_anything_else() -> None:
    node, beats = lone()
    assert node.observe(0.3, [Lease(0, "b", 2, 5.0), Lease(1, "a", 1, TTL)], beats) == [
        StopShard(0)
    ]


def test_a_returning_node_gets_its_shards_handed_over_stop_first() -> None:
    shards = 8
    node = NodeLeases("a", shards, TIMING)
    for action in node.observe(0.0, [], [Heartbeat("a", 0.0)]):
        if isinstance(action, Acquire):
            node.outcome(action, True, 0.01)
    beats = [Heartbeat("a", 0.3), Heartbeat("b", 0.3)]
    to_b = sorted(s for s, holder in balanced(shards, ["a", "b"]).items() if holder == "b")
    assert to_b  # b's share is not empty, or this tests nothing
    actions = node.observe(0.3, rows("a", 1, TTL, shards), beats)
    expected = [a for s in to_b for a in (StopShard(s), Release(s, 1))]
    assert actions == expected
    assert sorted(node.held) == sorted(set(range(shards)) - set(to_b))


def test_the_preferred_node_waits_for_a_lease_held_elsewhere_and_takes_it_once_free() -> None:
    node = NodeLeases("b", 1, TIMING)
    held = [Lease(0, "c", 4, 0.3)]
    beats = [Heartbeat("b", 0.0)]  # c is not live: shard 0 is b's
    assert node.observe(0.0, held, beats) == [Beat("b")]
    assert node.next_deadline() == 0.3  # the lease's expiry, before the next heartbeat
    node.outcome(Beat("b"), True, 0.0)
    assert node.observe(0.3, held, beats) == [Acquire(0, 5)]
    released = NodeLeases("b", 1, TIMING)
    assert released.observe(0.0, [Lease(0, None, 4, 0.0)], beats) == [Beat("b"), Acquire(0, 5)]


def test_a_restarted_node_takes_its_own_lease_back_at_once_with_a_new_epoch() -> None:
    node = NodeLeases("a", 1, TIMING)
    assert node.observe(0.0, [Lease(0, "a", 3, 1.9)], []) == [Beat("a"), Acquire(0, 4)]


def test_a_restarted_node_frees_its_old_lease_that_is_now_another_nodes() -> None:
    node = NodeLeases("a", 4, TIMING)
    beats = [Heartbeat("a", 0.0), Heartbeat("b", 0.0)]
    not_mine = next(s for s, h in balanced(4, ["a", "b"]).items() if h == "b")
    actions = node.observe(0.0, [Lease(not_mine, "a", 3, 1.9)], beats)
    assert Release(not_mine, 3) in actions


def test_a_dead_nodes_heartbeat_expiry_is_a_deadline() -> None:
    node, _ = lone(1)
    node.outcome(Beat("a"), True, 0.0)
    node.observe(0.1, rows("a", 1, TTL, 1), [Heartbeat("a", 0.1), Heartbeat("b", -1.8)])
    assert node.next_deadline() == -1.8 + TIMING.heartbeat_ttl_s


def test_shutdown_stops_then_releases_every_shard() -> None:
    node, _ = lone()
    assert node.shutdown() == [StopShard(0), Release(0, 1), StopShard(1), Release(1, 1)]
    assert node.held == {}


def test_while_statements_are_out_the_timer_waits_for_the_first_lapse() -> None:
    node, beats = lone()
    assert node.next_lapse() == TTL - MARGIN
    node.observe(RENEW, rows("a", 1, TTL), beats)
    node.outcome(Renew(0, 1), True, RENEW + 0.01)
    # Shard 0 renewed, shard 1's answer still out: its older lease lapses first.
    assert node.next_lapse() == TTL - MARGIN
    node.outcome(Renew(1, 1), True, RENEW + 0.02)
    assert node.next_lapse() == RENEW + TTL - MARGIN
    assert NodeLeases("b", 1, TIMING).next_lapse() is None
