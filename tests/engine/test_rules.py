"""Every rule of the contract's "Semantics every implementation must keep", on a virtual clock."""

from __future__ import annotations

import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    PublishAgentState,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallCompleted,
    PublishCallQueued,
    PublishCallRejected,
    PublishCallRinging,
    PublishQueueSnapshot,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    DeviceState,
    ExtensionId,
    Presence,
    QueueId,
    QueueStatus,
    RingFailure,
)

from .sim import OTHER, Sim, T, cancels, of_type, rings

# --- DID routes -----------------------------------------------------------------


def test_a_call_on_a_did_without_a_route_is_rejected_and_rings_nobody() -> None:
    sim = Sim()
    out = sim.arrive("c1", did="+999")
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c1"), "no_route")]
    assert of_type(out, PublishCallRejected) == [
        PublishCallRejected(T, CallId("c1"), "+999", "no_route", sim.now)
    ]
    assert rings(out) == []
    assert sim.phase("c1") == "rejected"


def test_a_route_to_a_queue_of_another_tenant_rings_nobody() -> None:
    sim = Sim()
    sim.add_queue(2, "ringall", tenant=OTHER)
    sim.route("+555", queue=2)  # tenant 1's DID pointing at tenant 2's queue
    out = sim.arrive("c1", did="+555")
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c1"), "no_route")]
    assert rings(out) == []


def test_an_inactive_queue_rejects_new_calls_and_keeps_serving_those_waiting() -> None:
    sim = Sim("roundrobin", agents=1)
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.arrive("c2")  # waits: the only agent is busy
    config = sim.engine.queue(QueueId(1)).config  # type: ignore[union-attr]
    sim.configure(
        ev.QueueSaved(
            config.__class__(
                **{
                    **{f: getattr(config, f) for f in config.__slots__},
                    "status": QueueStatus.INACTIVE,
                }
            )
        )
    )
    out = sim.arrive("c3")
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c3"), "queue_inactive")]
    assert of_type(out, PublishCallRejected)[0].reason == "queue_inactive"
    assert rings(sim.hangup("c1")) == [("c2", "101")]


def test_a_route_to_an_extension_sends_the_call_there() -> None:
    sim = Sim()
    sim.route("+200", extension=2)
    out = sim.arrive("c1", did="+200")
    assert out == [RouteToExtension(T, CallId("c1"), "102")]
    assert sim.phase("c1") == "routed"


def test_a_route_to_an_extension_of_another_tenant_is_no_route() -> None:
    sim = Sim()
    sim.add_extension(9, tenant=OTHER)
    sim.route("+200", extension=9)
    assert of_type(sim.arrive("c1", did="+200"), RouteToHangup)[0].reason == "no_route"


def test_a_queued_call_is_announced_with_its_position() -> None:
    sim = Sim("roundrobin", agents=1, logged_in=False)
    first = of_type(sim.arrive("c1"), PublishCallQueued)
    second = of_type(sim.arrive("c2"), PublishCallQueued)
    assert first == [PublishCallQueued(T, CallId("c1"), QueueId(1), "+100", "5550001", 1, sim.now)]
    assert second[0].position == 2


# --- who may be rung --------------------------------------------------------------


@pytest.mark.parametrize(
    ("presence", "device"),
    [
        (Presence.PAUSED, DeviceState.IDLE),
        (Presence.LOGGED_OUT, DeviceState.IDLE),
        (Presence.AVAILABLE, DeviceState.IN_USE),
        (Presence.AVAILABLE, DeviceState.UNAVAILABLE),
        (Presence.AVAILABLE, DeviceState.RINGING),
    ],
)
def test_only_available_idle_agents_are_rung(presence: Presence, device: DeviceState) -> None:
    sim = Sim("ringall", agents=2)
    sim.presence(presence, "101")
    sim.device("101", device)
    assert rings(sim.arrive("c1")) == [("c1", "102")]


def test_an_agent_ringing_for_one_call_is_not_rung_for_another() -> None:
    sim = Sim("ringall", agents=2)
    assert rings(sim.arrive("c1")) == [("c1", "101"), ("c1", "102")]
    assert rings(sim.arrive("c2")) == []
    # one answers: the other is freed by the cancel and goes to the next call
    out = sim.answer("c1", "101")
    assert cancels(out) == [("c1", "102", "answered_elsewhere")]
    assert rings(out) == [("c2", "102")]


def test_an_agent_connected_to_a_call_is_not_rung_until_it_ends() -> None:
    sim = Sim("roundrobin", agents=1)
    sim.arrive("c1")
    sim.answer("c1", "101")
    assert rings(sim.arrive("c2")) == []
    assert rings(sim.hangup("c1")) == [("c2", "101")]


def test_an_agent_in_wrapup_is_not_rung_until_it_ends() -> None:
    sim = Sim("roundrobin", agents=1, wrapup_time=30)
    sim.arrive("c1")
    sim.answer("c1", "101")
    out = sim.hangup("c1")
    assert of_type(out, PublishAgentState)[-1].state is AgentStatus.WRAPUP
    assert rings(sim.arrive("c2")) == []
    assert rings(sim.advance(29.9)) == []
    out = sim.advance(0.1)
    assert rings(out) == [("c2", "101")]


def test_a_logged_in_agent_is_rung_for_a_waiting_call_at_once() -> None:
    sim = Sim("leastrecent", agents=2, logged_in=False)
    sim.arrive("c1")
    assert rings(sim.login("102")) == [("c1", "102")]


def test_an_extension_that_no_longer_exists_is_skipped() -> None:
    sim = Sim("roundrobin", agents=2)
    # The product lets an extension be deleted while still enrolled.
    sim.configure(ev.ExtensionRemoved(ExtensionId(1)))
    assert rings(sim.arrive("c1")) == [("c1", "102")]
    assert cancels(sim.advance(15)) == [("c1", "102", "timeout")]
    assert rings(sim.advance(5)) == [("c1", "102")]  # after the retry, 102 again


def test_pausing_while_ringing_cancels_the_ring_and_moves_on() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    out = sim.presence(Presence.PAUSED, "101", reason="lunch")
    assert cancels(out) == [("c1", "101", "agent_unavailable")]
    assert rings(out) == [("c1", "102")]
    states = of_type(out, PublishAgentState)
    assert PublishAgentState(T, "101", AgentStatus.PAUSED, sim.now, "lunch") in states


# --- ring timeouts and failures -----------------------------------------------------


def test_a_ring_is_cancelled_at_its_timeout_and_the_queue_moves_on() -> None:
    sim = Sim("roundrobin", agents=2, timeout=20)
    out = sim.arrive("c1")
    assert of_type(out, Ring) == [Ring(T, CallId("c1"), "101", QueueId(1), 20, "5550001", "1.1")]
    assert sim.engine.next_deadline() == sim.now + 20
    assert sim.advance(19.999) == []
    out = sim.advance(0.001)
    assert cancels(out) == [("c1", "101", "timeout")]
    assert rings(out) == [("c1", "102")]


def test_a_ring_failure_moves_on_at_once() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    out = sim.fail("c1", "101", RingFailure.BUSY)
    assert cancels(out) == []  # the PBX ended it: nothing to cancel
    assert rings(out) == [("c1", "102")]


def test_after_a_full_round_the_call_waits_retry_seconds_before_the_next() -> None:
    sim = Sim("roundrobin", agents=2, timeout=10, retry=5)
    sim.arrive("c1")
    assert rings(sim.advance(10)) == [("c1", "102")]
    out = sim.advance(10)
    assert cancels(out) == [("c1", "102", "timeout")]
    assert rings(out) == []
    assert rings(sim.advance(4.9)) == []
    assert rings(sim.advance(0.1)) == [("c1", "101")]


def test_an_untried_agent_who_frees_up_during_the_retry_pause_is_rung() -> None:
    sim = Sim("roundrobin", agents=2, timeout=10)
    sim.presence(Presence.PAUSED, "102")
    sim.arrive("c1")
    sim.advance(10)  # 101 timed out; the round is over, the pause begins
    assert rings(sim.login("102")) == [("c1", "102")]


# --- ringall ----------------------------------------------------------------------------


def test_ringall_rings_everyone_eligible_and_the_first_answer_wins() -> None:
    sim = Sim("ringall", agents=3)
    out = sim.arrive("c1")
    assert rings(out) == [("c1", "101"), ("c1", "102"), ("c1", "103")]
    assert [c.extension for c in of_type(out, PublishCallRinging)] == ["101", "102", "103"]
    out = sim.answer("c1", "102")
    assert sorted(cancels(out)) == [
        ("c1", "101", "answered_elsewhere"),
        ("c1", "103", "answered_elsewhere"),
    ]
    assert of_type(out, PublishCallAnswered) == [
        PublishCallAnswered(T, CallId("c1"), QueueId(1), "102", 0.0, sim.now)
    ]
    assert sim.phase("c1") == "connected"


def test_an_answer_from_an_extension_not_ringing_changes_nothing_and_is_reported() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")  # rings 101 only
    before = sim.ringing()
    out = sim.answer("c1", "102")
    assert [type(c) for c in out] == [RejectInput]
    assert "not ringing" in of_type(out, RejectInput)[0].error
    assert sim.ringing() == before
    assert sim.phase("c1") == "ringing"


def test_ringall_adds_an_agent_who_becomes_free_while_the_call_rings() -> None:
    sim = Sim("ringall", agents=2, logged_in=False)
    sim.login("101")
    sim.arrive("c1")
    assert rings(sim.login("102")) == [("c1", "102")]


def test_ringall_rings_everyone_again_after_a_timeout_and_the_retry() -> None:
    sim = Sim("ringall", agents=2, timeout=10, retry=5)
    sim.arrive("c1")
    out = sim.advance(10)
    assert sorted(cancels(out)) == [("c1", "101", "timeout"), ("c1", "102", "timeout")]
    assert rings(sim.advance(5)) == [("c1", "101"), ("c1", "102")]


# --- leastrecent -----------------------------------------------------------------------


def test_leastrecent_rings_the_agent_idle_longest_in_this_queue_first() -> None:
    sim = Sim("leastrecent", agents=3)
    # Never-answered agents first, in enrolment order: 101.
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.advance(5)
    assert rings(sim.arrive("c2")) == [("c2", "102")]
    sim.answer("c2", "102")
    sim.advance(5)
    assert rings(sim.arrive("c3")) == [("c3", "103")]
    sim.answer("c3", "103")
    sim.hangup("c2")  # 102's call ends first...
    sim.advance(1)
    sim.hangup("c1")  # ...then 101's...
    sim.advance(1)
    sim.hangup("c3")  # ...then 103's
    assert rings(sim.arrive("c4")) == [("c4", "102")]
    sim.advance(15)  # no answer: the next least recent
    assert sim.ringing() == {"c4": ["101"]}


def test_leastrecent_puts_agents_who_never_answered_first() -> None:
    sim = Sim("leastrecent", agents=2)
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.hangup("c1")
    assert rings(sim.arrive("c2")) == [("c2", "102")]


# --- roundrobin ----------------------------------------------------------------------------


def test_roundrobin_remembers_where_it_stopped_across_calls() -> None:
    sim = Sim("roundrobin", agents=3)
    order = []
    for i in range(5):
        out = sim.arrive(f"c{i}")
        ((call_id, extension),) = rings(out)
        order.append(extension)
        sim.answer(call_id, extension)
        sim.hangup(call_id)
    assert order == ["101", "102", "103", "101", "102"]


def test_roundrobin_skips_busy_agents_and_keeps_its_order() -> None:
    sim = Sim("roundrobin", agents=3)
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.arrive("c2")
    sim.answer("c2", "102")
    sim.hangup("c1")
    assert rings(sim.arrive("c3")) == [("c3", "103")]
    sim.answer("c3", "103")
    assert rings(sim.arrive("c4")) == [("c4", "101")]


# --- order of service --------------------------------------------------------------------------


def test_waiting_calls_are_served_highest_priority_first_then_longest_waiting() -> None:
    sim = Sim("roundrobin", agents=1, logged_in=False)
    sim.arrive("low-old")
    sim.advance(1)
    sim.arrive("high", priority=5)
    sim.advance(1)
    sim.arrive("low-new")
    sim.advance(1)
    sim.arrive("high-new", priority=5)
    served = []
    out = sim.login("101")
    for _ in range(4):
        ((call_id, extension),) = rings(out)
        served.append(call_id)
        sim.answer(call_id, extension)
        out = sim.hangup(call_id)
    assert served == ["high", "high-new", "low-old", "low-new"]


def test_an_agent_in_several_queues_is_offered_the_best_call_of_all() -> None:
    sim = Sim("roundrobin", agents=1, logged_in=False)
    sim.add_queue(2, "leastrecent", enrolled=[1])
    sim.add_queue(3, "ringall", enrolled=[1])
    sim.arrive("q1-old", did="+100")
    sim.advance(1)
    sim.arrive("q2-older-but-low", did="+101")
    sim.advance(1)
    sim.arrive("q3-urgent", did="+102", priority=9)
    sim.advance(1)
    out = sim.login("101")
    assert rings(out) == [("q3-urgent", "101")]
    sim.answer("q3-urgent", "101")
    out = sim.hangup("q3-urgent")
    assert rings(out) == [("q1-old", "101")]


# --- hangups --------------------------------------------------------------------------------------


def test_a_hangup_while_ringing_abandons_the_call_and_cancels_its_rings() -> None:
    sim = Sim("ringall", agents=2)
    sim.arrive("c1")
    sim.advance(7.5)
    out = sim.hangup("c1")
    assert sorted(cancels(out)) == [("c1", "101", "caller_hangup"), ("c1", "102", "caller_hangup")]
    assert of_type(out, PublishCallAbandoned) == [
        PublishCallAbandoned(T, CallId("c1"), QueueId(1), 7.5, sim.now)
    ]
    assert sim.phase("c1") == "abandoned"
    assert sim.engine.next_deadline() is None


def test_a_hangup_while_waiting_abandons_the_call() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    out = sim.hangup("c1")
    assert [type(c) for c in out if not isinstance(c, PublishQueueSnapshot)] == [
        PublishCallAbandoned
    ]


def test_a_hangup_after_the_answer_completes_the_call_and_frees_the_agent() -> None:
    sim = Sim("roundrobin", agents=1)
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.advance(42)
    out = sim.hangup("c1")
    assert of_type(out, PublishCallCompleted) == [
        PublishCallCompleted(T, CallId("c1"), QueueId(1), "101", 42.0, sim.now)
    ]
    assert of_type(out, PublishAgentState) == [
        PublishAgentState(T, "101", AgentStatus.AVAILABLE, sim.now)
    ]


# --- idempotence ---------------------------------------------------------------


def test_every_inbound_message_is_idempotent() -> None:
    sim = Sim("ringall", agents=2)
    assert rings(sim.arrive("c1"))
    assert sim.arrive("c1") == []
    sim.answer("c1", "101")
    assert sim.answer("c1", "101") == []
    assert sim.fail("c1", "102") == []
    assert sim.login("101") == []
    assert sim.device("101", DeviceState.IDLE) == []
    sim.hangup("c1")
    assert sim.hangup("c1") == []
    assert sim.arrive("c1") == []  # a late redelivery of the arrival
    assert sim.answer("c1", "101") == []


def test_unknown_calls_and_extensions_are_reported_and_change_nothing() -> None:
    sim = Sim()
    for out in (
        sim.answer("nope", "101"),
        sim.fail("nope", "101"),
        sim.login("999"),
        sim.device("999", DeviceState.IN_USE),
        sim.hangup("nope"),
    ):
        assert [type(c) for c in out] == [RejectInput]
    # Only the hangup is remembered (issue 9): its call may arrive late.
    assert list(sim.store.calls) == [(T, "nope")]
    assert sim.phase("nope") == "abandoned"


# --- configuration takes effect live ----------------------------------------------


def test_enrolling_an_agent_takes_effect_on_a_waiting_call() -> None:
    sim = Sim("roundrobin", agents=1, logged_in=False)
    sim.add_extension(7)
    sim.login("107")
    sim.arrive("c1")
    assert rings(sim.configure(ev.AgentEnrolled(QueueId(1), ExtensionId(7)))) == [("c1", "107")]


def test_unenrolling_a_ringing_agent_cancels_the_ring() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    out = sim.configure(ev.AgentUnenrolled(QueueId(1), ExtensionId(1)))
    assert cancels(out) == [("c1", "101", "agent_unavailable")]
    assert rings(out) == [("c1", "102")]


def test_removing_a_queue_hangs_up_its_waiting_calls() -> None:
    sim = Sim("ringall", agents=1)
    sim.arrive("c1")
    out = sim.configure(ev.QueueRemoved(QueueId(1)))
    assert cancels(out) == [("c1", "101", "overflow")]
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c1"), "queue_removed")]
    assert sim.phase("c1") == "routed"


def test_snapshots_count_agents_by_state() -> None:
    sim = Sim("ringall", agents=3)
    sim.presence(Presence.PAUSED, "103")
    sim.engine.take_snapshots(sim.now)
    sim.arrive("c1")
    sim.advance(12.5)
    (published,) = sim.engine.take_snapshots(sim.now)
    assert sim.engine.take_snapshots(sim.now) == []  # nothing changed since
    snapshot = published.snapshot
    assert snapshot.longest_wait_s == 12.5
    assert snapshot.waiting == 1
    assert snapshot.agents["ringing"] == 2
    assert snapshot.agents["paused"] == 1
    assert snapshot.offered == 1


def test_the_longest_wait_counts_old_calls_of_low_priority_too() -> None:
    sim = Sim("roundrobin", agents=1, logged_in=False)
    sim.arrive("old-low", priority=0)
    sim.advance(30)
    sim.arrive("new-high", priority=9)
    sim.advance(5)
    sim.arrive("mid", priority=4)
    (published,) = sim.engine.take_snapshots(sim.now)
    assert published.snapshot.waiting == 3
    assert published.snapshot.longest_wait_s == 35.0
