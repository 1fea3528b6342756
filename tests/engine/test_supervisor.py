"""A supervisor's requests: move, reprioritise, send or hang up a call; ask for a presence."""

from __future__ import annotations

from typing import Any

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    Announce,
    CancelRing,
    Command,
    PublishAgentState,
    PublishCallOverflowed,
    PublishCallQueued,
    RouteToExtension,
    RouteToHangup,
    SetAgentState,
)
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CancelReason,
    ExtensionId,
    Presence,
    QueueId,
    QueueStatus,
)

from .sim import OTHER, Sim, T, cancels, of_type, rings

Q1, Q2 = QueueId(1), QueueId(2)


def two_queues(**options: Any) -> Sim:
    """Queue 1 with agents 101 and 102, queue 2 with agent 103 (logged out)."""
    sim = Sim("ringall", agents=2, **options)
    sim.add_extension(3)
    sim.add_queue(2, "ringall", enrolled=[3])
    return sim


def move(sim: Sim, call_id: str, queue_id: int) -> list[Command]:
    return sim.send(ev.MoveCall(T, CallId(call_id), QueueId(queue_id)))


def priority(sim: Sim, call_id: str, value: int) -> list[Command]:
    return sim.send(ev.SetCallPriority(T, CallId(call_id), value))


def send(sim: Sim, call_id: str, extension: str) -> list[Command]:
    return sim.send(ev.SendCallToExtension(T, CallId(call_id), extension))


def hang_up(sim: Sim, call_id: str) -> list[Command]:
    return sim.send(ev.HangUpCall(T, CallId(call_id)))


def status(sim: Sim, extension_id: int) -> AgentStatus:
    agent = sim.engine.agent(ExtensionId(extension_id))
    assert agent is not None
    return agent.status


def without_agent_states(commands: list[Command]) -> list[Command]:
    return [c for c in commands if not isinstance(c, PublishAgentState)]


# --- moving a call ------------------------------------------------------------------------


def test_moving_a_ringing_call_cancels_its_rings_and_queues_it_in_the_other_queue() -> None:
    sim = two_queues()
    sim.arrive("c1")  # rings 101 and 102
    sim.advance(4)
    out = move(sim, "c1", 2)
    assert without_agent_states(out) == [
        CancelRing(T, CallId("c1"), "101", CancelReason.OVERFLOW, "1.1"),
        CancelRing(T, CallId("c1"), "102", CancelReason.OVERFLOW, "1.2"),
        PublishCallOverflowed(T, CallId("c1"), Q1, "supervisor", 4.0, sim.now, to_queue=Q2),
        PublishCallQueued(T, CallId("c1"), Q2, "+100", "5550001", 1, sim.now),
    ]
    assert (sim.line(1), sim.line(2)) == ([], ["c1"])
    assert sim.phase("c1") == "queued"
    assert sim.call("c1").entered_at == sim.now  # its wait in queue 2 starts now
    assert sim.call("c1").hops == 1  # counted as an overflow's hop
    assert sim.engine.snapshot(Q1, sim.now).overflowed == 1
    # Queue 1's agents are free again; queue 2's agent serves the call.
    assert rings(sim.login("103")) == [("c1", "103")]


def test_moving_a_call_to_a_queue_with_a_free_agent_rings_it_at_once() -> None:
    sim = two_queues(logged_in=False)
    sim.login("103")
    sim.arrive("c1")  # nobody in queue 1
    out = move(sim, "c1", 2)
    assert rings(out) == [("c1", "103")]
    assert sim.phase("c1") == "ringing"


def test_a_moved_call_is_never_cut_for_too_many_hops() -> None:
    sim = two_queues(logged_in=False)
    sim.arrive("c1")
    for hop in range(8):
        out = move(sim, "c1", 2 if hop % 2 == 0 else 1)
        assert of_type(out, RouteToHangup) == []
    assert sim.line(1) == ["c1"]


def test_a_move_to_the_same_an_inactive_or_another_tenants_queue_changes_nothing() -> None:
    sim = two_queues()
    sim.add_queue(3, "ringall", status=QueueStatus.INACTIVE)
    sim.add_queue(4, "ringall", tenant=OTHER)
    sim.arrive("c1")
    for queue_id in (1, 3, 4, 99):
        assert move(sim, "c1", queue_id) == []
    assert sim.ringing() == {"c1": ["101", "102"]}


# --- priority -------------------------------------------------------------------------------


def test_raising_a_calls_priority_has_it_rung_before_an_older_call() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.arrive("c2")
    assert priority(sim, "c2", 5) == []  # nothing published: the next snapshot shows it
    assert sim.line() == ["c2", "c1"]
    assert sim.call("c2").priority == 5
    assert rings(sim.login("101")) == [("c2", "101")]


def test_a_priority_change_re_announces_the_places_that_moved() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, announce_frequency=30)
    sim.arrive("c1")
    sim.arrive("c2")
    sim.arrive("c3")
    out = priority(sim, "c3", 3)
    assert [(c.call_id, c.position) for c in of_type(out, Announce)] == [
        ("c3", 1),
        ("c1", 2),
        ("c2", 3),
    ]
    assert priority(sim, "c3", 3) == []  # the same priority again: nothing to do


def test_a_changed_priority_survives_a_restart() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.arrive("c2")
    priority(sim, "c2", 7)
    sim.restart(down_for=1)
    assert sim.call("c2").priority == 7
    assert sim.line() == ["c2", "c1"]
    assert rings(sim.login("101")) == [("c2", "101")]


def test_a_priority_out_of_range_changes_nothing() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    assert priority(sim, "c1", 10) == priority(sim, "c1", -1) == []
    assert sim.call("c1").priority == 0


# --- sending and hanging up ------------------------------------------------------------------


def test_sending_a_ringing_call_to_an_extension_routes_it_there() -> None:
    sim = two_queues()
    sim.arrive("c1")
    sim.advance(2)
    out = send(sim, "c1", "103")
    assert without_agent_states(out) == [
        CancelRing(T, CallId("c1"), "101", CancelReason.OVERFLOW, "1.1"),
        CancelRing(T, CallId("c1"), "102", CancelReason.OVERFLOW, "1.2"),
        PublishCallOverflowed(T, CallId("c1"), Q1, "supervisor", 2.0, sim.now, to_extension="103"),
        RouteToExtension(T, CallId("c1"), "103"),
    ]
    assert sim.phase("c1") == "routed"
    assert sim.line() == []
    assert {a.status for a in sim.engine.agents() if a.number in ("101", "102")} == {
        AgentStatus.AVAILABLE
    }


def test_sending_a_call_to_an_unknown_or_another_tenants_extension_changes_nothing() -> None:
    sim = two_queues()
    sim.add_extension(9, tenant=OTHER)
    sim.arrive("c1")
    assert send(sim, "c1", "199") == send(sim, "c1", "109") == []
    assert sim.phase("c1") == "ringing"


def test_hanging_up_a_ringing_call() -> None:
    sim = Sim("ringall", agents=1)
    sim.arrive("c1")
    out = hang_up(sim, "c1")
    assert without_agent_states(out) == [
        CancelRing(T, CallId("c1"), "101", CancelReason.OVERFLOW, "1.1"),
        PublishCallOverflowed(T, CallId("c1"), Q1, "supervisor", 0.0, sim.now),
        RouteToHangup(T, CallId("c1"), "supervisor"),
    ]
    assert sim.phase("c1") == "routed"
    assert hang_up(sim, "c1") == []  # ended: nothing more


def test_a_callback_can_be_hung_up() -> None:
    sim = Sim("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.callback("c1", "5550002")
    sim.hangup("c1")  # the caller's leg: the callback waits on
    out = hang_up(sim, "c1")
    assert of_type(out, RouteToHangup) == [RouteToHangup(T, CallId("c1"), "supervisor")]
    assert sim.engine.snapshot(Q1, sim.now).callbacks == 0


# --- calls that are not waiting ------------------------------------------------------------------


def test_requests_for_an_answered_call_change_nothing() -> None:
    sim = two_queues()
    sim.arrive("c1")
    sim.answer("c1", "101")
    requests: list[ev.SupervisorEvent] = [
        ev.MoveCall(T, CallId("c1"), Q2),
        ev.SetCallPriority(T, CallId("c1"), 9),
        ev.SendCallToExtension(T, CallId("c1"), "103"),
        ev.HangUpCall(T, CallId("c1")),
    ]
    for request in requests:
        assert sim.send(request) == []
    assert sim.phase("c1") == "connected"
    assert sim.call("c1").priority == 0


def test_requests_for_an_unknown_or_another_tenants_call_change_nothing() -> None:
    sim = two_queues()
    sim.arrive("c1")
    requests: list[ev.SupervisorEvent] = [
        ev.MoveCall(T, CallId("nope"), Q2),
        ev.SetCallPriority(T, CallId("nope"), 9),
        ev.SendCallToExtension(T, CallId("nope"), "103"),
        ev.HangUpCall(T, CallId("nope")),
        ev.MoveCall(OTHER, CallId("c1"), Q2),
        ev.HangUpCall(OTHER, CallId("c1")),
    ]
    for request in requests:
        assert sim.send(request) == []
    assert sim.ringing() == {"c1": ["101", "102"]}


# --- presence ------------------------------------------------------------------------------


def test_an_agent_state_request_is_passed_on_and_changes_nothing_until_the_pbx_confirms() -> None:
    sim = Sim("ringall", agents=2)
    out = sim.send(ev.RequestAgentState(T, "101", Presence.PAUSED, "lunch"))
    assert out == [SetAgentState(T, "101", Presence.PAUSED, "lunch")]
    assert status(sim, 1) is AgentStatus.AVAILABLE
    assert rings(sim.arrive("c1")) == [("c1", "101"), ("c1", "102")]  # still rung
    sim.hangup("c1")
    sim.presence(Presence.PAUSED, "101", reason="lunch")  # the PBX confirms
    assert status(sim, 1) is AgentStatus.PAUSED


def test_an_agent_state_request_for_an_unknown_extension_changes_nothing() -> None:
    sim = Sim("ringall", agents=1)
    sim.add_extension(5, tenant=OTHER)
    assert sim.send(ev.RequestAgentState(T, "199", Presence.PAUSED)) == []
    assert sim.send(ev.RequestAgentState(T, "105", Presence.LOGGED_OUT)) == []
    assert cancels(sim.log) == []


def test_an_agent_state_request_is_idempotent_and_so_is_its_confirmation() -> None:
    sim = Sim("ringall", agents=1)
    request = ev.RequestAgentState(T, "101", Presence.PAUSED, "lunch")
    assert (
        sim.send(request)
        == sim.send(request)
        == [SetAgentState(T, "101", Presence.PAUSED, "lunch")]
    )
    assert of_type(sim.presence(Presence.PAUSED, "101", reason="lunch"), PublishAgentState) != []
    assert sim.presence(Presence.PAUSED, "101", reason="lunch") == []  # confirmed twice
    assert status(sim, 1) is AgentStatus.PAUSED
