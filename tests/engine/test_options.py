"""Every queue and enrolment option of docs/options.md, on a virtual clock."""

from __future__ import annotations

import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    Announce,
    Command,
    Originate,
    PublishAgentState,
    PublishCallAnswered,
    PublishCallbackRequested,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    PublishCallRejected,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.model import (
    AgentCondition,
    AgentStatus,
    CallId,
    DeviceState,
    ExtensionId,
    ExtensionTarget,
    PenaltyRule,
    Presence,
    QueueId,
    QueueStatus,
    QueueTarget,
    RingFailure,
    SkillRule,
)

from .sim import OTHER, Sim, T, cancels, of_type, restart_changes_nothing, rings, serve

Q1, Q2, Q3 = QueueId(1), QueueId(2), QueueId(3)
ALL_CONDITIONS = frozenset(AgentCondition)


def without_agent_states(commands: list[Command]) -> list[Command]:
    """The commands but the agent-state events, which interleave with everything."""
    return [c for c in commands if not isinstance(c, PublishAgentState)]


def overflows(commands: list[Command]) -> list[tuple[str, int, str, int | None, str | None]]:
    """(call_id, from queue, reason, to queue, to extension) of every PublishCallOverflowed."""
    return [
        (c.call_id, c.queue_id, c.reason, c.to_queue, c.to_extension)
        for c in of_type(commands, PublishCallOverflowed)
    ]


def announced(commands: list[Command]) -> list[tuple[str, int, int | None]]:
    """(call_id, position, estimated wait) of every Announce, in order."""
    return [(c.call_id, c.position, c.estimated_wait_s) for c in of_type(commands, Announce)]


# --- retry ----------------------------------------------------------------------------


def test_retry_is_the_pause_between_rounds_to_the_second() -> None:
    sim = Sim("roundrobin", agents=1, timeout=10, retry=7)
    sim.arrive("c1")
    out = sim.advance(10)
    assert cancels(out) == [("c1", "101", "timeout")]
    assert rings(out) == []
    assert rings(sim.advance(6.999)) == []
    assert rings(sim.advance(0.001)) == [("c1", "101")]


def test_retry_zero_starts_the_next_round_at_once() -> None:
    sim = Sim("roundrobin", agents=2, timeout=10, retry=0)
    sim.arrive("c1")
    sim.advance(10)  # 101 -> 102
    out = sim.advance(10)
    assert cancels(out) == [("c1", "102", "timeout")]
    assert rings(out) == [("c1", "101")]


def test_a_round_that_ends_with_nobody_free_pauses_from_then() -> None:
    # 101 pauses while ringing: the round is over and its pause starts now,
    # so when 101 comes back after it, the older call is rung at once.
    sim = Sim("linear", agents=1, retry=5)
    sim.add_queue(2, "linear", enrolled=[1])
    sim.arrive("c1")
    sim.presence(Presence.PAUSED, "101")
    assert sim.call("c1").retry_at == sim.now + 5
    sim.advance(10)
    sim.arrive("d1", did="+101")  # younger, in the other queue
    assert rings(sim.login("101")) == [("c1", "101")]


# --- wrap-up --------------------------------------------------------------------------


@pytest.mark.parametrize(("own", "rest"), [(5, 5), (0, 0), (None, 30)])
def test_an_enrolments_wrapup_time_overrides_the_queues(own: int | None, rest: int) -> None:
    sim = Sim("roundrobin", agents=1, wrapup_time=30)
    sim.enrol(1, 1, wrapup_time=own)
    serve(sim, "c1")
    out = sim.arrive("c2")
    if rest:
        assert rings(out) == []
        assert rings(sim.advance(rest - 0.001)) == []
        out = sim.advance(0.001)
    assert rings(out) == [("c2", "101")]


def test_one_wrapup_holds_in_all_the_agents_queues_and_comes_from_the_calls_queue() -> None:
    sim = Sim("roundrobin", agents=1, wrapup_time=20)
    sim.add_queue(2, "roundrobin", enrolled=[1])  # no wrap-up of its own
    sim.enrol(2, 1, wrapup_time=0)
    serve(sim, "c1", did="+100")  # a call of queue 1: 20 s of wrap-up...
    assert rings(sim.arrive("d1", did="+101")) == []  # ...which queue 2 respects
    assert rings(sim.advance(19.999)) == []
    assert rings(sim.advance(0.001)) == [("d1", "101")]
    sim.answer("d1", "101")
    sim.hangup("d1")  # a call of queue 2: no wrap-up at all, in either queue
    assert rings(sim.arrive("c2", did="+100")) == [("c2", "101")]


# --- max_len --------------------------------------------------------------------------


def test_a_call_beyond_max_len_is_rejected_when_the_overflow_is_a_hangup() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_len=2)
    sim.arrive("c1")
    sim.arrive("c2")
    out = sim.arrive("c3")
    assert out == [
        RouteToHangup(T, CallId("c3"), "queue_full"),
        PublishCallRejected(T, CallId("c3"), "+100", "queue_full", sim.now),
    ]
    assert sim.phase("c3") == "rejected"
    assert sim.line() == ["c1", "c2"]
    snapshot = sim.engine.snapshot(Q1, sim.now)
    assert (snapshot.offered, snapshot.overflowed) == (2, 1)
    sim.hangup("c1")  # a place frees up
    assert of_type(sim.arrive("c4"), PublishCallQueued)[0].position == 2


def test_a_ringing_call_still_takes_its_place_in_the_line() -> None:
    sim = Sim("ringall", agents=1, max_len=1)
    assert rings(sim.arrive("c1")) == [("c1", "101")]
    assert of_type(sim.arrive("c2"), RouteToHangup)[0].reason == "queue_full"


def test_a_call_beyond_max_len_goes_to_an_overflow_extension() -> None:
    sim = Sim(
        "ringall", agents=1, logged_in=False, max_len=1, overflow=ExtensionTarget(ExtensionId(3))
    )
    sim.add_extension(3)
    sim.arrive("c1")
    out = sim.arrive("c2")
    assert out == [
        PublishCallOverflowed(T, CallId("c2"), Q1, "queue_full", 0.0, sim.now, to_extension="103"),
        RouteToExtension(T, CallId("c2"), "103"),
    ]
    assert sim.phase("c2") == "routed"


def test_a_call_beyond_max_len_joins_the_overflow_queue() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_len=1, overflow=QueueTarget(Q2))
    sim.add_extension(2)
    sim.add_queue(2, "ringall", enrolled=[2])
    sim.arrive("c1")
    out = sim.arrive("c2")
    assert out == [
        PublishCallOverflowed(T, CallId("c2"), Q1, "queue_full", 0.0, sim.now, to_queue=Q2),
        PublishCallQueued(T, CallId("c2"), Q2, "+100", "5550001", 1, sim.now),
    ]
    assert sim.line(2) == ["c2"]
    assert sim.engine.snapshot(Q2, sim.now).offered == 1
    assert rings(sim.login("102")) == [("c2", "102")]  # queue 2's agents now serve it


# --- max_wait and overflow ------------------------------------------------------------


def test_a_call_overflows_after_exactly_max_wait_and_its_rings_are_cancelled() -> None:
    sim = Sim("ringall", agents=2, max_wait=30)
    sim.arrive("c1")
    sim.advance(20)  # second round: both ring again from 20 to 35
    assert sim.advance(9.999) == []
    out = sim.advance(0.001)
    assert sorted(cancels(out)) == [("c1", "101", "overflow"), ("c1", "102", "overflow")]
    assert of_type(out, PublishCallOverflowed) == [
        PublishCallOverflowed(T, CallId("c1"), Q1, "max_wait", 30.0, sim.now)
    ]
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c1"), "max_wait")]
    assert of_type(out, PublishCallRejected) == []  # it was queued: an overflow, not a rejection
    assert sim.phase("c1") == "routed"
    assert sim.engine.snapshot(Q1, sim.now).overflowed == 1
    assert sim.ringing() == {}


def test_max_wait_to_an_extension_routes_the_call_there() -> None:
    sim = Sim(
        "ringall", agents=1, logged_in=False, max_wait=30, overflow=ExtensionTarget(ExtensionId(1))
    )
    sim.arrive("c1")
    out = sim.advance(30)
    assert out == [
        PublishCallOverflowed(T, CallId("c1"), Q1, "max_wait", 30.0, sim.now, to_extension="101"),
        RouteToExtension(T, CallId("c1"), "101"),
    ]


def test_an_overflowed_call_keeps_its_arrival_time_in_the_next_queue() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=30, overflow=QueueTarget(Q2))
    sim.add_queue(2, "ringall", enrolled=[1], max_wait=20)
    sim.arrive("c1", did="+100")
    sim.advance(15)
    sim.arrive("late", did="+101")  # arrived after c1, straight into queue 2
    out = sim.advance(15)
    assert without_agent_states(out) == [
        PublishCallOverflowed(T, CallId("c1"), Q1, "max_wait", 30.0, sim.now, to_queue=Q2),
        PublishCallQueued(T, CallId("c1"), Q2, "+100", "5550001", 1, sim.now),
    ]
    assert sim.line(2) == ["c1", "late"]
    # queue 2's max_wait counts from when the call joined it: `late` leaves
    # first, 20 s after its own arrival, c1 20 s after its overflow.
    assert overflows(sim.advance(5)) == [("late", 2, "max_wait", None, None)]
    assert overflows(sim.advance(14.999)) == []
    assert overflows(sim.advance(0.001)) == [("c1", 2, "max_wait", None, None)]


def test_overflow_chains_are_cut_after_five_hops() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=10, overflow=QueueTarget(Q2))
    sim.add_queue(2, "ringall", enrolled=[1], max_wait=10, overflow=QueueTarget(Q1))
    sim.arrive("c1")
    out = sim.advance(60)
    assert overflows(out) == [
        ("c1", 1, "max_wait", 2, None),
        ("c1", 2, "max_wait", 1, None),
        ("c1", 1, "max_wait", 2, None),
        ("c1", 2, "max_wait", 1, None),
        ("c1", 1, "max_wait", 2, None),
        ("c1", 2, "too_many_hops", None, None),
    ]
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c1"), "too_many_hops")]
    assert sim.phase("c1") == "routed"


def test_overflow_chains_of_full_queues_are_cut_on_arrival_too() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_len=1, overflow=QueueTarget(Q1))
    sim.arrive("c1")  # queue 1 is now full, and overflows into itself
    out = sim.arrive("c2")
    assert overflows(out) == [("c2", 1, "queue_full", 1, None)] * 5 + [
        ("c2", 1, "too_many_hops", None, None)
    ]
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c2"), "too_many_hops")]


@pytest.mark.parametrize("target", ["inactive", "missing", "other tenant"])
def test_an_overflow_to_a_queue_that_cannot_take_the_call_hangs_it_up(target: str) -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=10, overflow=QueueTarget(Q2))
    if target == "inactive":
        sim.add_queue(2, "ringall", enrolled=[1], status=QueueStatus.INACTIVE)
    elif target == "other tenant":
        sim.add_queue(2, "ringall", tenant=OTHER)
    sim.arrive("c1")
    out = sim.advance(10)
    assert out == [
        PublishCallOverflowed(T, CallId("c1"), Q1, "max_wait", 10.0, sim.now),
        RouteToHangup(T, CallId("c1"), "max_wait"),
    ]


def test_a_call_refused_on_arrival_for_a_missing_overflow_target_is_rejected() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_len=1, overflow=QueueTarget(Q3))
    sim.arrive("c1")
    out = sim.arrive("c2")
    assert out == [
        RouteToHangup(T, CallId("c2"), "queue_full"),
        PublishCallRejected(T, CallId("c2"), "+100", "queue_full", sim.now),
    ]


def test_an_overflow_to_a_deleted_extension_hangs_up() -> None:
    sim = Sim(
        "ringall", agents=1, logged_in=False, max_wait=10, overflow=ExtensionTarget(ExtensionId(9))
    )
    sim.arrive("c1")
    assert of_type(sim.advance(10), RouteToHangup) == [RouteToHangup(T, CallId("c1"), "max_wait")]


# --- join_empty and leave_when_empty --------------------------------------------------


def put_in(sim: Sim, condition: AgentCondition) -> list[Command]:
    """Put agent 101 (the queue's only one) in `condition`.

    For `busy` and `wrapup` it takes a call, "c0", which must ring it.
    """
    if condition is AgentCondition.PAUSED:
        return sim.presence(Presence.PAUSED, "101", reason="lunch")
    if condition is AgentCondition.LOGGED_OUT:
        return sim.presence(Presence.LOGGED_OUT, "101")
    if condition is AgentCondition.UNAVAILABLE:
        return sim.device("101", DeviceState.UNAVAILABLE)
    out = sim.answer("c0", "101")
    if condition is AgentCondition.WRAPUP:
        out += sim.hangup("c0")
    return out


@pytest.mark.parametrize("condition", list(AgentCondition))
def test_join_empty_refuses_a_call_when_every_agent_is_in_a_listed_condition(
    condition: AgentCondition,
) -> None:
    sim = Sim("ringall", agents=1, wrapup_time=30, join_empty=frozenset({condition}))
    sim.arrive("c0")
    put_in(sim, condition)
    out = sim.arrive("c1")
    assert out == [
        RouteToHangup(T, CallId("c1"), "queue_empty"),
        PublishCallRejected(T, CallId("c1"), "+100", "queue_empty", sim.now),
    ]


@pytest.mark.parametrize("condition", list(AgentCondition))
def test_join_empty_lets_a_call_join_when_the_agents_condition_is_not_listed(
    condition: AgentCondition,
) -> None:
    sim = Sim("ringall", agents=1, wrapup_time=30, join_empty=ALL_CONDITIONS - {condition})
    sim.arrive("c0")
    put_in(sim, condition)
    assert of_type(sim.arrive("c1"), PublishCallQueued) != []


def test_join_empty_needs_every_agent_in_a_listed_condition() -> None:
    sim = Sim("ringall", agents=2, join_empty=frozenset({AgentCondition.PAUSED}))
    sim.presence(Presence.PAUSED, "101")
    sim.presence(Presence.LOGGED_OUT, "102")  # logged out is not listed
    assert of_type(sim.arrive("c1"), PublishCallQueued) != []
    sim.presence(Presence.PAUSED, "102")
    assert of_type(sim.arrive("c2"), PublishCallRejected)[0].reason == "queue_empty"


def test_a_ringing_agent_is_not_busy_for_join_empty() -> None:
    sim = Sim("ringall", agents=1, join_empty=frozenset({AgentCondition.BUSY}))
    assert rings(sim.arrive("c0")) == [("c0", "101")]
    assert of_type(sim.arrive("c1"), PublishCallQueued) != []


def test_join_empty_refuses_a_call_to_a_queue_without_agents() -> None:
    # As Asterisk's joinempty: no members at all is empty, whatever the conditions.
    sim = Sim("ringall", agents=1, join_empty=frozenset({AgentCondition.PAUSED}))
    sim.configure(ev.ExtensionRemoved(ExtensionId(1)))  # still enrolled, but gone
    assert of_type(sim.arrive("c1"), PublishCallRejected)[0].reason == "queue_empty"


def test_join_empty_sends_the_call_to_the_overflow_target() -> None:
    sim = Sim(
        "ringall",
        agents=1,
        logged_in=False,
        join_empty=frozenset({AgentCondition.LOGGED_OUT}),
        overflow=ExtensionTarget(ExtensionId(2)),
    )
    sim.add_extension(2)
    assert sim.arrive("c1") == [
        PublishCallOverflowed(T, CallId("c1"), Q1, "queue_empty", 0.0, sim.now, to_extension="102"),
        RouteToExtension(T, CallId("c1"), "102"),
    ]


@pytest.mark.parametrize("condition", list(AgentCondition))
def test_leave_when_empty_sends_the_waiting_calls_but_callbacks_to_overflow(
    condition: AgentCondition,
) -> None:
    sim = Sim("ringall", agents=1, wrapup_time=30, leave_when_empty=frozenset({condition}))
    sim.arrive("c0")  # rings 101
    sim.advance(1)
    sim.arrive("c1")
    sim.arrive("c2")
    sim.callback("c2", "5559999")
    out = put_in(sim, condition)
    left = ["c1"] if condition in (AgentCondition.BUSY, AgentCondition.WRAPUP) else ["c0", "c1"]
    assert overflows(out) == [(c, 1, "queue_empty", None, None) for c in left]
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId(c), "queue_empty") for c in left]
    if "c0" in left:  # it was ringing: the ring ended with the agent's change
        assert cancels(out) == [("c0", "101", "agent_unavailable")]
    assert sim.line() == ["c2"]  # the callback keeps its place


@pytest.mark.parametrize("condition", list(AgentCondition))
def test_leave_when_empty_keeps_calls_when_the_condition_is_not_listed(
    condition: AgentCondition,
) -> None:
    # (An agent in wrap-up was busy first: leave that out too.)
    listed = ALL_CONDITIONS - {condition}
    if condition is AgentCondition.WRAPUP:
        listed -= {AgentCondition.BUSY}
    sim = Sim("ringall", agents=1, wrapup_time=30, leave_when_empty=listed)
    sim.arrive("c0")
    sim.arrive("c1")
    out = put_in(sim, condition)
    assert overflows(out) == []
    assert "c1" in sim.line()


def test_a_ringing_agent_is_not_busy_for_leave_when_empty() -> None:
    sim = Sim("ringall", agents=1, leave_when_empty=frozenset({AgentCondition.BUSY}))
    sim.arrive("c0")
    out = sim.arrive("c1")  # 101 rings for c0: c1 waits, it does not leave
    assert overflows(out) == []
    assert sim.line() == ["c0", "c1"]


def test_a_call_joining_a_queue_that_leave_when_empty_finds_empty_leaves_at_once() -> None:
    # join_empty lets it in (it lists nothing), but nobody can serve it.
    sim = Sim("ringall", agents=1, leave_when_empty=frozenset({AgentCondition.PAUSED}))
    sim.presence(Presence.PAUSED, "101")
    out = sim.arrive("c1")
    assert [type(c) for c in out] == [PublishCallQueued, PublishCallOverflowed, RouteToHangup]
    assert overflows(out) == [("c1", 1, "queue_empty", None, None)]


def test_a_queue_that_overflows_into_itself_when_empty_cuts_the_loop() -> None:
    sim = Sim(
        "ringall",
        agents=1,
        leave_when_empty=frozenset({AgentCondition.PAUSED}),
        overflow=QueueTarget(Q1),
    )
    sim.arrive("c1")
    out = sim.presence(Presence.PAUSED, "101")
    assert overflows(out) == [("c1", 1, "queue_empty", 1, None)] * 5 + [
        ("c1", 1, "too_many_hops", None, None)
    ]


def test_leave_when_empty_empties_the_line_when_the_last_agent_is_unenrolled() -> None:
    sim = Sim(
        "ringall", agents=1, logged_in=False, leave_when_empty=frozenset({AgentCondition.PAUSED})
    )
    sim.arrive("c1")  # 101 is logged out, which is not listed: c1 waits
    assert sim.line() == ["c1"]
    out = sim.configure(ev.AgentUnenrolled(Q1, ExtensionId(1)))
    assert overflows(out) == [("c1", 1, "queue_empty", None, None)]


def test_leave_when_empty_sends_the_calls_on_to_an_overflow_queue() -> None:
    sim = Sim(
        "ringall",
        agents=1,
        leave_when_empty=frozenset({AgentCondition.PAUSED}),
        overflow=QueueTarget(Q2),
    )
    sim.add_extension(2)
    sim.add_queue(2, "ringall", enrolled=[2])
    sim.login("102")
    sim.presence(Presence.PAUSED, "102")
    sim.arrive("c1")  # rings 101
    out = sim.presence(Presence.PAUSED, "101")
    assert overflows(out) == [("c1", 1, "queue_empty", 2, None)]
    assert sim.line(2) == ["c1"]
    assert rings(sim.login("102")) == [("c1", "102")]


# --- weight ---------------------------------------------------------------------------


def test_a_shared_agent_takes_the_heavier_queues_call_first() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.add_queue(2, "ringall", enrolled=[1], weight=5)
    sim.arrive("light-old-urgent", did="+100", priority=9)
    sim.advance(10)
    sim.arrive("heavy", did="+101")
    out = sim.login("101")
    assert rings(out) == [("heavy", "101")]
    sim.answer("heavy", "101")
    assert rings(sim.hangup("heavy")) == [("light-old-urgent", "101")]


def test_a_weight_changed_live_takes_effect_for_the_waiting_calls() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.add_queue(2, "ringall", enrolled=[1], weight=5)
    sim.arrive("light", did="+100")
    sim.arrive("heavy", did="+101")
    sim.update_queue(1, weight=10)
    assert rings(sim.login("101")) == [("light", "101")]


def test_the_heavier_queues_call_gives_way_when_it_cannot_take_the_agent() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.add_queue(2, "ringall", enrolled=[1], weight=5)
    sim.route("+300", queue=2, skills={"french": 5})
    sim.arrive("light", did="+100")
    sim.arrive("heavy-french", did="+300")  # 101 speaks no French
    assert rings(sim.login("101")) == [("light", "101")]


# --- service level --------------------------------------------------------------------


def test_service_level_counts_answers_and_abandons_within_the_threshold() -> None:
    sim = Sim("ringall", agents=1, timeout=100, service_level=10)
    assert sim.engine.snapshot(Q1, sim.now).service_level_pct is None  # nothing answered yet
    sim.arrive("c1")
    sim.advance(5)
    sim.answer("c1", "101")  # 5 s: within
    sim.arrive("c2")
    sim.advance(15)
    sim.hangup("c1")
    sim.answer("c2", "101")  # 15 s: not within
    sim.arrive("c3")
    sim.advance(3)
    sim.hangup("c3")  # abandoned after 3 s: within
    sim.arrive("c4")
    sim.advance(12)
    sim.hangup("c4")  # abandoned after 12 s: not within
    sim.arrive("c5")
    sim.advance(10)
    sim.hangup("c2")
    sim.answer("c5", "101")  # exactly 10 s: within
    snapshot = sim.engine.snapshot(Q1, sim.now)
    assert snapshot.service_level_s == 10
    assert (snapshot.answered, snapshot.answered_within) == (3, 2)
    assert (snapshot.abandoned, snapshot.abandoned_within) == (2, 1)
    assert snapshot.service_level_pct == 66.7


def test_service_level_counters_survive_a_restart() -> None:
    sim = Sim("ringall", agents=1, service_level=10)
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.arrive("c2")
    sim.hangup("c2")
    sim.restart()
    snapshot = sim.engine.snapshot(Q1, sim.now)
    assert (snapshot.answered_within, snapshot.abandoned_within) == (1, 1)
    assert snapshot.service_level_pct == 100.0


# --- announcements --------------------------------------------------------------------


def test_a_waiting_caller_is_announced_on_joining_and_then_every_announce_frequency() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, announce_frequency=30)
    out = sim.arrive("c1")
    assert of_type(out, Announce) == [Announce(T, CallId("c1"), Q1, 1, None)]
    assert sim.advance(29.999) == []
    assert announced(sim.advance(0.001)) == [("c1", 1, None)]
    assert announced(sim.advance(30)) == [("c1", 1, None)]
    assert sim.advance(29) == []


def test_callers_are_announced_when_their_position_changes_either_way() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, announce_frequency=300)
    sim.arrive("c1")
    sim.arrive("c2")
    sim.arrive("c3")
    assert announced(sim.hangup("c1")) == [("c2", 1, None), ("c3", 2, None)]
    out = sim.arrive("urgent", priority=5)
    assert announced(out) == [("urgent", 1, None), ("c2", 2, None), ("c3", 3, None)]
    out = sim.arrive("c4")  # behind everyone: nobody else moved
    assert announced(out) == [("c4", 4, None)]


def test_position_announcements_do_not_move_the_periodic_ones() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, announce_frequency=30)
    sim.arrive("c1")
    sim.advance(10)
    sim.arrive("c2")
    sim.advance(10)
    assert announced(sim.hangup("c1")) == [("c2", 1, None)]
    assert announced(sim.advance(20)) == [("c2", 1, None)]  # 30 s after c2 joined


def test_a_callback_gets_no_announcements() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, announce_frequency=30)
    sim.arrive("c1")
    sim.arrive("c2")
    sim.callback("c2", "5559999")
    assert announced(sim.advance(30)) == [("c1", 1, None)]
    out = sim.arrive("c0", priority=5)  # c2 moves back, but nobody is listening
    assert announced(out) == [("c0", 1, None), ("c1", 2, None)]


def answer_after(sim: Sim, gap: float, call_id: str, previous: str) -> None:
    """Let `gap` seconds pass, end the call `previous` and answer `call_id` (agent 101)."""
    sim.advance(gap)
    sim.hangup(previous)
    assert sim.ringing() == {call_id: ["101"]}
    sim.answer(call_id, "101")


def test_the_estimated_wait_is_the_place_in_line_times_the_smoothed_answer_interval() -> None:
    sim = Sim("ringall", agents=1, timeout=1000, announce_frequency=600)
    sim.arrive("c1")
    sim.answer("c1", "101")  # the first answer: no interval yet
    sim.arrive("c2")
    sim.arrive("c3")
    sim.arrive("c4")
    assert announced(sim.arrive("c5")) == [("c5", 4, None)]
    answer_after(sim, 40, "c2", previous="c1")  # the first interval: 40 s
    assert announced(sim.log)[-3:] == [("c3", 1, 40), ("c4", 2, 80), ("c5", 3, 120)]
    answer_after(sim, 23, "c3", previous="c2")  # 40 + (23 - 40) / 4 = 35.75
    assert announced(sim.log)[-2:] == [("c4", 1, 36), ("c5", 2, 72)]


def test_free_agents_shorten_the_estimated_wait_but_never_below_zero() -> None:
    sim = Sim("ringall", agents=3, timeout=1000, announce_frequency=600)
    sim.add_extension(1, skills={"french": 5})
    sim.route("+300", queue=1, skills={"french": 5})
    sim.presence(Presence.PAUSED, "102", "103")
    sim.arrive("c1", did="+300")
    sim.answer("c1", "101")
    sim.arrive("c2", did="+300")
    sim.advance(40)
    sim.hangup("c1")
    sim.answer("c2", "101")  # an interval of 40 s; 101 is busy again
    sim.login("102", "103")  # free, but they speak no French
    out = sim.arrive("c3", did="+300")
    out += sim.arrive("c4", did="+300")
    out += sim.arrive("c5", did="+300")
    # (position - 2 free agents) x 40 s, and never below 0
    assert announced(out) == [("c3", 1, 0), ("c4", 2, 0), ("c5", 3, 40)]


def test_announce_frequency_changed_live_applies_to_the_waiting_calls() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.advance(100)
    assert of_type(sim.log, Announce) == []
    sim.update_queue(announce_frequency=20)
    assert sim.advance(19.999) == []
    assert announced(sim.advance(0.001)) == [("c1", 1, None)]
    sim.update_queue(announce_frequency=5)  # shorter: the next comes within 5 s
    assert announced(sim.advance(5)) == [("c1", 1, None)]
    sim.update_queue(announce_frequency=0)
    assert sim.advance(100) == []
    assert sim.arrive("c2") == [
        PublishCallQueued(T, CallId("c2"), Q1, "+100", "5550001", 2, sim.now)
    ]


# --- penalties ------------------------------------------------------------------------


def test_one_at_a_time_strategies_ring_the_lowest_penalty_first_then_the_higher() -> None:
    sim = Sim("linear", agents=3, timeout=10)
    sim.enrol(1, 1, penalty=2)
    sim.enrol(1, 2, penalty=0)
    sim.enrol(1, 3, penalty=1)
    assert rings(sim.arrive("c1")) == [("c1", "102")]
    assert rings(sim.advance(10)) == [("c1", "103")]  # the lower one was tried
    assert rings(sim.advance(10)) == [("c1", "101")]
    sim.advance(10)
    assert rings(sim.advance(5)) == [("c1", "102")]  # a new round starts at the bottom


def test_a_higher_penalty_rings_when_no_lower_one_is_free() -> None:
    sim = Sim("linear", agents=2)
    sim.enrol(1, 2, penalty=3)
    sim.presence(Presence.PAUSED, "101")
    assert rings(sim.arrive("c1")) == [("c1", "102")]


def test_ringall_rings_the_lowest_tier_and_adds_no_higher_one_while_it_rings() -> None:
    sim = Sim("ringall", agents=3, timeout=10, logged_in=False)
    sim.enrol(1, 3, penalty=1)
    sim.login("101", "103")
    assert rings(sim.arrive("c1")) == [("c1", "101")]
    assert rings(sim.login("102")) == [("c1", "102")]  # same tier: added
    assert sim.ringing() == {"c1": ["101", "102"]}
    out = sim.advance(10)  # the lower tier was tried: now the higher one
    assert rings(out) == [("c1", "103")]


def test_changing_an_enrolments_penalty_takes_effect_for_the_waiting_calls() -> None:
    sim = Sim("ringall", agents=2, timeout=10)
    sim.enrol(1, 2, penalty=1)
    sim.arrive("c1")
    assert sim.ringing() == {"c1": ["101"]}
    assert rings(sim.enrol(1, 2, penalty=0)) == [("c1", "102")]


def test_penalty_rules_widen_the_call_at_the_right_second_without_another_event() -> None:
    sim = Sim(
        "linear",
        agents=3,
        timeout=100,
        retry=100,
        penalty_rules=(PenaltyRule(0, 0), PenaltyRule(30, 2), PenaltyRule(60, 5)),
    )
    sim.enrol(1, 2, penalty=2)
    sim.enrol(1, 3, penalty=5)
    sim.presence(Presence.PAUSED, "101")
    sim.advance(0.1)  # an arrival between whole seconds must not upset the rules
    assert rings(sim.arrive("c1")) == []  # only penalty 0 at first, and 101 is paused
    assert rings(sim.advance(29.999)) == []
    assert rings(sim.advance(0.001)) == [("c1", "102")]
    sim.fail("c1", "102", RingFailure.BUSY)
    assert rings(sim.advance(29.999)) == []
    assert rings(sim.advance(0.001)) == [("c1", "103")]


def test_before_the_first_penalty_rule_any_penalty_may_ring() -> None:
    sim = Sim("linear", agents=1, penalty_rules=(PenaltyRule(30, 0),))
    sim.enrol(1, 1, penalty=4)
    assert rings(sim.arrive("c1")) == [("c1", "101")]


def test_penalty_rules_count_from_when_the_call_joined_the_queue() -> None:
    sim = Sim("linear", agents=1, logged_in=False, max_wait=50, overflow=QueueTarget(Q2))
    sim.add_queue(2, "linear", enrolled=[1], penalty_rules=(PenaltyRule(0, 0), PenaltyRule(20, 9)))
    sim.enrol(2, 1, penalty=9)
    sim.arrive("c1")
    sim.advance(50)  # overflows into queue 2, 50 s after arriving
    sim.login("101")  # penalty 9 is not allowed in queue 2 until 20 s there
    assert sim.line(2) == ["c1"]
    assert sim.ringing() == {}
    assert rings(sim.advance(20)) == [("c1", "101")]


# --- position -------------------------------------------------------------------------


def test_position_orders_the_agents_and_ties_go_by_enrolment_order() -> None:
    sim = Sim("linear", agents=0)
    for extension_id, position in [(1, 3), (2, 1), (3, 2), (4, 1)]:
        sim.add_extension(extension_id)
        sim.enrol(1, extension_id, position=position)
    sim.login("101", "102", "103", "104")
    sim.arrive("c1")
    order = [rings(sim.advance(15))[0][1] for _ in range(3)]
    assert ["102", *order] == ["102", "104", "103", "101"]


def test_a_position_changed_live_reorders_the_queue() -> None:
    sim = Sim("linear", agents=3)
    sim.enrol(1, 1, position=9)
    assert rings(sim.arrive("c1")) == [("c1", "102")]


# --- max_no_answer --------------------------------------------------------------------


def test_max_no_answer_pauses_the_agent_after_that_many_unanswered_rings_in_a_row() -> None:
    sim = Sim("linear", agents=2, timeout=10)
    sim.enrol(1, 1, max_no_answer=2)
    sim.arrive("c1")
    out = sim.advance(10)  # the first: a timeout
    assert of_type(out, PublishAgentState) == [
        PublishAgentState(T, "101", AgentStatus.AVAILABLE, sim.now),
        PublishAgentState(T, "102", AgentStatus.RINGING, sim.now),
    ]
    sim.answer("c1", "102")
    sim.arrive("c2")
    out = sim.fail("c2", "101", RingFailure.NO_ANSWER)  # the second: reported by the PBX
    assert PublishAgentState(T, "101", AgentStatus.PAUSED, sim.now, "no_answer") in out
    assert sim.ringing() == {}  # 102 is busy, and 101 paused
    sim.hangup("c1")
    sim.answer("c2", "102")
    sim.hangup("c2")
    assert rings(sim.arrive("c3")) == [("c3", "102")]  # 101 is skipped while paused
    sim.answer("c3", "102")
    out = sim.login("101")  # the PBX's next `available` unpauses it
    assert PublishAgentState(T, "101", AgentStatus.AVAILABLE, sim.now) in out
    assert rings(sim.arrive("c4")) == [("c4", "101")]


def test_an_answer_resets_the_unanswered_count() -> None:
    sim = Sim("linear", agents=2, timeout=10)
    sim.enrol(1, 1, max_no_answer=2)
    sim.arrive("c1")
    sim.advance(10)  # 101: one unanswered
    sim.hangup("c1")
    serve(sim, "c2")  # 101 answers: back to none
    sim.arrive("c3")
    out = sim.advance(10)  # one again, not two
    assert [s.state for s in of_type(out, PublishAgentState) if s.extension == "101"] == [
        AgentStatus.AVAILABLE
    ]


@pytest.mark.parametrize(
    "failure", [RingFailure.BUSY, RingFailure.REJECTED, RingFailure.UNREACHABLE]
)
def test_only_unanswered_rings_count_towards_max_no_answer(failure: RingFailure) -> None:
    sim = Sim("linear", agents=2, timeout=10)
    sim.enrol(1, 1, max_no_answer=1)
    sim.arrive("c1")
    out = sim.fail("c1", "101", failure)
    assert PublishAgentState(T, "101", AgentStatus.AVAILABLE, sim.now) in out


def test_rings_cancelled_because_another_answered_do_not_count() -> None:
    sim = Sim("ringall", agents=2, timeout=10)
    sim.enrol(1, 1, max_no_answer=1)
    sim.arrive("c1")
    out = sim.answer("c1", "102")
    assert cancels(out) == [("c1", "101", "answered_elsewhere")]
    assert PublishAgentState(T, "101", AgentStatus.AVAILABLE, sim.now) in out


def test_unanswered_rings_count_in_any_queue() -> None:
    sim = Sim("linear", agents=2, timeout=10)
    sim.add_queue(2, "linear", enrolled=[1], timeout=10)
    sim.enrol(1, 1, max_no_answer=2)
    sim.arrive("d1", did="+101")
    sim.advance(10)  # one unanswered ring in queue 2 (which has no limit)
    sim.hangup("d1")
    sim.arrive("c1")
    out = sim.advance(10)  # the second, in queue 1: its limit is reached
    assert PublishAgentState(T, "101", AgentStatus.PAUSED, sim.now, "no_answer") in out


# --- delays after a failed ring -------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "failure"),
    [
        ("busy_delay", RingFailure.BUSY),
        ("reject_delay", RingFailure.REJECTED),
        ("no_answer_delay", RingFailure.NO_ANSWER),
    ],
)
def test_a_delay_skips_the_agent_in_every_queue_for_exactly_that_long(
    option: str, failure: RingFailure
) -> None:
    sim = Sim("linear", agents=2, logged_in=False)
    sim.add_queue(2, "linear", enrolled=[1])
    sim.enrol(1, 1, **{option: 30})
    sim.login("101")
    sim.arrive("c1")
    sim.fail("c1", "101", failure)
    assert sim.phase("c1") == "queued"  # nobody else to ring
    assert rings(sim.arrive("d1", did="+101")) == []  # queue 2 skips 101 as well
    assert rings(sim.advance(29.999)) == []
    assert rings(sim.advance(0.001)) == [("c1", "101")]


def test_a_delay_after_a_ring_timeout_counts_as_no_answer() -> None:
    sim = Sim("linear", agents=1, timeout=10, retry=0)
    sim.enrol(1, 1, no_answer_delay=30)
    sim.arrive("c1")
    out = sim.advance(10)
    assert cancels(out) == [("c1", "101", "timeout")]
    assert rings(out) == []  # retry 0 would ring it again at once, but it is skipped
    assert rings(sim.advance(29.999)) == []
    assert rings(sim.advance(0.001)) == [("c1", "101")]


def test_a_delay_applies_only_to_its_own_failure() -> None:
    sim = Sim("linear", agents=1, retry=0)
    sim.enrol(1, 1, busy_delay=30)
    sim.arrive("c1")
    assert rings(sim.fail("c1", "101", RingFailure.REJECTED)) == [("c1", "101")]


def test_the_delay_is_the_one_of_the_queue_whose_ring_failed() -> None:
    sim = Sim("linear", agents=1, retry=0)
    sim.add_queue(2, "linear", enrolled=[1], retry=0)
    sim.enrol(2, 1, busy_delay=30)  # only queue 2 delays
    sim.arrive("c1")
    assert rings(sim.fail("c1", "101", RingFailure.BUSY)) == [("c1", "101")]


# --- skills ---------------------------------------------------------------------------


def skilled_sim(strategy: str = "ringall") -> Sim:
    """101 speaks Spanish at 4, 102 at 5 with billing at 3, 103 nothing; "+300" needs Spanish 5."""
    sim = Sim(strategy, agents=3, timeout=10)
    sim.add_extension(1, skills={"spanish": 4})
    sim.add_extension(2, skills={"spanish": 5, "billing": 3})
    sim.route("+300", queue=1, skills={"spanish": 5})
    return sim


def test_a_routes_skills_ring_only_the_agents_who_have_them() -> None:
    sim = skilled_sim()
    assert rings(sim.arrive("c1", did="+300")) == [("c1", "102")]  # 101's level is too low
    assert rings(sim.arrive("c2")) == [("c2", "101"), ("c2", "103")]  # "+100" requires nothing


def test_an_arrivals_skills_add_to_the_routes_and_win_on_the_same_skill() -> None:
    sim = skilled_sim()
    assert rings(sim.arrive("c1", did="+300", skills={"spanish": 3})) == [
        ("c1", "101"),
        ("c1", "102"),
    ]
    sim.hangup("c1")
    assert rings(sim.arrive("c2", did="+300", skills={"billing": 4})) == []  # 102 has 3
    assert rings(sim.arrive("c3", did="+100", skills={"billing": 3})) == [("c3", "102")]


def test_skill_rules_relax_the_requirement_at_the_right_second() -> None:
    sim = skilled_sim("linear")
    sim.update_queue(skill_rules=(SkillRule(20, 1), SkillRule(40, 5)))
    sim.presence(Presence.PAUSED, "102")
    sim.advance(0.1)
    assert rings(sim.arrive("c1", did="+300")) == []
    assert rings(sim.advance(19.999)) == []
    assert rings(sim.advance(0.001)) == [("c1", "101")]  # Spanish 4 now suffices
    sim.presence(Presence.PAUSED, "101")
    assert rings(sim.advance(19.999)) == []
    # Lowered to 0 the requirement is dropped: 103, who has no Spanish at all.
    assert rings(sim.advance(0.001)) == [("c1", "103")]


def test_a_skill_added_to_a_free_agent_rings_the_waiting_call() -> None:
    sim = skilled_sim()
    sim.presence(Presence.PAUSED, "102")
    sim.arrive("c1", did="+300")
    assert rings(sim.add_extension(3, skills={"spanish": 9})) == [("c1", "103")]


def test_an_enrolled_extension_that_was_deleted_never_takes_a_skilled_call() -> None:
    sim = skilled_sim()
    sim.configure(ev.ExtensionRemoved(ExtensionId(2)))
    assert rings(sim.arrive("c1", did="+300")) == []
    assert rings(sim.arrive("c2", did="+300", skills={"spanish": 4})) == [("c2", "101")]


# --- callbacks ------------------------------------------------------------------------


def test_a_callback_keeps_the_callers_place_and_is_called_back_when_answered() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=30)
    sim.arrive("c1")
    sim.arrive("c2")
    out = sim.callback("c1", "5551234")
    assert out == [PublishCallbackRequested(T, CallId("c1"), Q1, "5551234", 1, sim.now)]
    assert sim.hangup("c1") == []  # the caller's leg goes: ignored
    snapshot = sim.engine.snapshot(Q1, sim.now)
    assert (snapshot.waiting, snapshot.callbacks) == (2, 1)
    out = sim.advance(100)  # max_wait does not move a callback on
    assert overflows(out) == [("c2", 1, "max_wait", None, None)]
    assert sim.line() == ["c1"]
    out = sim.login("101")
    assert of_type(out, Ring) == [Ring(T, CallId("c1"), "101", Q1, 15, "5551234", "1.1")]
    out = sim.answer("c1", "101")
    assert without_agent_states(out)[:2] == [
        Originate(T, CallId("c1"), "101", "5551234"),
        PublishCallAnswered(T, CallId("c1"), Q1, "101", 100.0, sim.now),
    ]
    assert sim.engine.snapshot(Q1, sim.now).callbacks == 0
    sim.advance(60)
    out = sim.hangup("c1")  # the PBX's hangup at the end completes it
    assert of_type(out, PublishCallCompleted) == [
        PublishCallCompleted(T, CallId("c1"), Q1, "101", 60.0, sim.now)
    ]


def test_a_caller_hanging_up_while_their_callback_rings_is_ignored() -> None:
    sim = Sim("ringall", agents=1)
    sim.arrive("c1")
    sim.callback("c1", "5551234")
    assert sim.hangup("c1") == []
    assert sim.ringing() == {"c1": ["101"]}


def test_a_duplicate_callback_request_is_ignored() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.callback("c1", "5551234")
    assert sim.callback("c1", "5551234") == []


def test_a_callback_for_an_unknown_or_answered_call_is_reported() -> None:
    sim = Sim("ringall", agents=1)
    sim.arrive("c1")
    sim.answer("c1", "101")
    for call_id in ("nope", "c1"):
        out = sim.callback(call_id, "5551234")
        assert [type(c) for c in out] == [RejectInput]
    sim.hangup("c1")
    assert [type(c) for c in sim.callback("c1", "5551234")] == [RejectInput]
    assert sim.phase("c1") == "completed"


# --- live option changes --------------------------------------------------------------


def test_max_wait_set_live_counts_from_when_the_call_joined() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.arrive("c2")
    sim.advance(20)
    sim.arrive("c3")
    sim.update_queue(max_wait=30)
    assert overflows(sim.advance(9.999)) == []
    assert overflows(sim.advance(0.001)) == [
        ("c1", 1, "max_wait", None, None),
        ("c2", 1, "max_wait", None, None),
    ]
    assert sim.line() == ["c3"]
    sim.update_queue(max_wait=60)  # longer: c3 waits on
    assert overflows(sim.advance(49.999)) == []
    sim.update_queue(max_wait=0)  # forever
    assert overflows(sim.advance(1000)) == []


def test_a_max_wait_shortened_below_the_time_waited_overflows_at_once() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=300)
    sim.arrive("c1")
    sim.advance(100)
    sim.update_queue(max_wait=60)
    assert sim.engine.next_deadline() == sim.now - 40
    assert overflows(sim.advance(0)) == [("c1", 1, "max_wait", None, None)]


def test_an_overflow_target_changed_live_applies_to_the_waiting_calls() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=30)
    sim.add_extension(4)
    sim.arrive("c1")
    sim.update_queue(overflow=ExtensionTarget(ExtensionId(4)))
    assert of_type(sim.advance(30), RouteToExtension) == [RouteToExtension(T, CallId("c1"), "104")]


def test_a_queue_saved_without_changes_moves_no_deadline() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=30, announce_frequency=20)
    sim.arrive("c1")
    sim.advance(10)
    sim.update_queue()
    assert announced(sim.advance(10)) == [("c1", 1, None)]
    assert overflows(sim.advance(10)) == [("c1", 1, "max_wait", None, None)]


# --- restarts -------------------------------------------------------------------------


def test_a_waiting_callback_survives_a_restart() -> None:
    def before(sim: Sim) -> None:
        sim.arrive("c1")
        sim.arrive("c2")
        sim.callback("c1", "5551234")
        sim.advance(5)

    def after(sim: Sim) -> None:
        assert sim.hangup("c1") == []
        sim.advance(100)
        sim.login("101")
        sim.answer("c1", "101")

    out = restart_changes_nothing(
        lambda: Sim("ringall", agents=1, logged_in=False, max_wait=30), before, after
    )
    assert overflows(out) == [("c2", 1, "max_wait", None, None)]
    assert of_type(out, Originate) == [Originate(T, CallId("c1"), "101", "5551234")]


def test_a_skip_delay_survives_a_restart() -> None:
    def make() -> Sim:
        sim = Sim("linear", agents=1)
        sim.enrol(1, 1, busy_delay=30)
        return sim

    def before(sim: Sim) -> None:
        sim.arrive("c1")
        sim.fail("c1", "101", RingFailure.BUSY)
        sim.advance(10)

    def after(sim: Sim) -> None:
        assert rings(sim.advance(19.999)) == []
        sim.advance(0.001)

    assert rings(restart_changes_nothing(make, before, after)) == [("c1", "101")]


def test_a_max_wait_deadline_survives_a_restart() -> None:
    def before(sim: Sim) -> None:
        sim.arrive("c1")
        sim.advance(10)

    def after(sim: Sim) -> None:
        assert sim.advance(19.999) == []
        sim.advance(0.001)

    out = restart_changes_nothing(
        lambda: Sim("ringall", agents=1, logged_in=False, max_wait=30), before, after
    )
    assert overflows(out) == [("c1", 1, "max_wait", None, None)]


def test_the_unanswered_count_survives_a_restart() -> None:
    def make() -> Sim:
        sim = Sim("linear", agents=1, timeout=10)
        sim.enrol(1, 1, max_no_answer=2)
        return sim

    def before(sim: Sim) -> None:
        sim.arrive("c1")
        sim.advance(10)

    def after(sim: Sim) -> None:
        sim.advance(15)  # the retry pause, then the second unanswered ring

    out = restart_changes_nothing(make, before, after)
    assert PublishAgentState(T, "101", AgentStatus.PAUSED, 1025.0, "no_answer") in out


def test_an_announce_timer_survives_a_restart() -> None:
    def before(sim: Sim) -> None:
        sim.arrive("c1")
        sim.advance(10)

    def after(sim: Sim) -> None:
        assert sim.advance(19.999) == []
        sim.advance(30.001)

    out = restart_changes_nothing(
        lambda: Sim("ringall", agents=1, logged_in=False, announce_frequency=30), before, after
    )
    assert announced(out) == [("c1", 1, None), ("c1", 1, None)]


def test_a_penalty_rule_deadline_survives_a_restart() -> None:
    def make() -> Sim:
        sim = Sim("linear", agents=1, penalty_rules=(PenaltyRule(0, 0), PenaltyRule(30, 1)))
        sim.enrol(1, 1, penalty=1)
        return sim

    def before(sim: Sim) -> None:
        sim.arrive("c1")
        sim.advance(10)

    def after(sim: Sim) -> None:
        assert sim.advance(19.999) == []
        sim.advance(0.001)

    assert rings(restart_changes_nothing(make, before, after)) == [("c1", "101")]
