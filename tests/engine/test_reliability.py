"""Issue 9's engine items: answers the PBX bridged, ring ids, retry pauses, early hangups."""

from __future__ import annotations

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    CancelRing,
    Command,
    PublishCallAnswered,
    PublishCallCompleted,
    PublishCallRejected,
    PublishCallRinging,
    RejectInput,
    Ring,
    RouteToHangup,
)
from ringmaster.engine.core import DEFAULT_ENDED_CALL_TTL, MAX_EARLY_HANGUPS
from ringmaster.engine.model import (
    CallId,
    DeviceState,
    Presence,
    QueueId,
    QueueTarget,
    RingFailure,
    Tenant,
)
from ringmaster.engine.state import MAX_ENDED_RINGS

from .sim import Sim, T, cancels, of_type, rings

# --- the retry pause (item 5) -------------------------------------------------------------


def test_an_agent_rung_during_the_retry_pause_is_not_rung_again_as_its_ring_times_out() -> None:
    """A round that starts while a ring is on counts that ring as tried in it.

    The pause after round one ends while 102 (rung during it, as it became
    free) still rings; when that ring times out, 102 has had its ring in the
    new round too: the call pauses again rather than ringing 102 that instant.
    """
    sim = Sim("roundrobin", agents=2)
    sim.device("102", DeviceState.IN_USE)
    assert rings(sim.arrive("c1")) == [("c1", "101")]
    assert cancels(sim.advance(15)) == [("c1", "101", "timeout")]  # pause until +20
    sim.presence(Presence.PAUSED, "101")
    sim.advance(1)
    assert rings(sim.device("102", DeviceState.IDLE)) == [("c1", "102")]  # untried: at once
    out = sim.advance(15)  # the pause ended at +20; 102's ring times out at +31
    assert cancels(out) == [("c1", "102", "timeout")]
    assert rings(out) == []
    assert rings(sim.advance(5)) == [("c1", "102")]  # a full `retry` after its ring ended


def test_a_ring_that_fails_during_the_retry_pause_makes_the_pause_last_from_its_end() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.device("102", DeviceState.IN_USE)
    assert rings(sim.arrive("c1")) == [("c1", "101")]
    sim.advance(1)
    sim.fail("c1", "101", RingFailure.BUSY)  # round over: pause until +6
    sim.presence(Presence.PAUSED, "101")
    sim.advance(1)
    assert rings(sim.device("102", DeviceState.IDLE)) == [("c1", "102")]
    sim.advance(1)
    assert rings(sim.fail("c1", "102", RingFailure.NO_ANSWER)) == []  # at +3
    assert rings(sim.advance(4.9)) == []  # +6 is only 3 s after 102's ring ended
    assert rings(sim.advance(0.1)) == [("c1", "102")]  # +8: `retry` after it


# --- ring ids (item 4) ----------------------------------------------------------------------


def ring_ids(commands: list[Command]) -> list[tuple[str, str, str]]:
    """(call_id, extension, ring_id) of every Ring, in order."""
    return [(c.call_id, c.extension, c.ring_id) for c in of_type(commands, Ring)]


def test_every_ring_has_an_id_that_its_ringing_event_and_its_cancel_repeat() -> None:
    sim = Sim("ringall", agents=2)
    out = sim.arrive("c1")
    assert ring_ids(out) == [("c1", "101", "1.1"), ("c1", "102", "1.2")]
    assert [(e.extension, e.ring_id) for e in of_type(out, PublishCallRinging)] == [
        ("101", "1.1"),
        ("102", "1.2"),
    ]
    out = sim.answer("c1", "102")
    assert [(c.extension, c.ring_id) for c in of_type(out, CancelRing)] == [("101", "1.1")]
    assert ring_ids(sim.arrive("c2")) == [("c2", "101", "2.1")]


def test_a_stale_ring_failed_does_not_end_a_newer_ring_of_the_same_agent() -> None:
    sim = Sim("roundrobin", agents=1)
    assert ring_ids(sim.arrive("c1")) == [("c1", "101", "1.1")]
    sim.advance(15)  # ring 1.1 timed out; pause
    assert ring_ids(sim.advance(5)) == [("c1", "101", "1.2")]
    # The PBX's failure of the first ring arrives late: it is about ring 1.1.
    out = sim.send(ev.RingFailed(T, CallId("c1"), "101", RingFailure.NO_ANSWER, ring_id="1.1"))
    assert out == []
    assert sim.ringing() == {"c1": ["101"]}
    out = sim.send(ev.RingFailed(T, CallId("c1"), "101", RingFailure.BUSY, ring_id="1.2"))
    assert cancels(out) == []
    assert sim.ringing() == {}
    # Without a ring id a failure keeps its v1 meaning: the extension's ring ends.
    sim.advance(5)
    assert sim.ringing() == {"c1": ["101"]}
    sim.fail("c1", "101")
    assert sim.ringing() == {}


def test_an_answer_naming_a_ring_of_another_extension_is_refused() -> None:
    sim = Sim("ringall", agents=2)
    sim.arrive("c1")
    out = sim.send(ev.RingAnswered(T, CallId("c1"), "101", ring_id="1.2"))
    assert [r.error for r in of_type(out, RejectInput)] == [
        "ring 1.2 is not a ring of extension 101 for call c1"
    ]
    assert sim.phase("c1") == "ringing"
    out = sim.send(ev.RingAnswered(T, CallId("c1"), "101", ring_id="1.1"))
    assert sim.phase("c1") == "connected"


def test_ring_ids_survive_a_restart_and_go_on_counting() -> None:
    sim = Sim("roundrobin", agents=2)
    assert ring_ids(sim.arrive("c1")) == [("c1", "101", "1.1")]
    sim.restart(down_for=3)
    assert [r.ring_id for r in sim.call("c1").rings.values()] == ["1.1"]
    out = sim.send(ev.RingFailed(T, CallId("c1"), "101", RingFailure.BUSY, ring_id="1.1"))
    assert ring_ids(out) == [("c1", "102", "1.2")]


# --- answers the PBX bridged (item 3) -------------------------------------------------------


def errors(commands: list[Command]) -> list[str]:
    return [c.error for c in of_type(commands, RejectInput)]


def test_an_answer_to_a_ring_that_just_timed_out_connects_the_call() -> None:
    """The PBX is the truth about the bridge: its `answered` crossed our cancel."""
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    out = sim.advance(15)
    assert cancels(out) == [("c1", "101", "timeout")]
    assert rings(out) == [("c1", "102")]
    out = sim.answer("c1", "101")
    assert errors(out) == []
    assert cancels(out) == [("c1", "102", "answered_elsewhere")]
    assert [(a.extension, a.wait_s) for a in of_type(out, PublishCallAnswered)] == [("101", 15)]
    assert sim.phase("c1") == "connected"
    assert sim.call("c1").agent_id == 1
    assert sim.answer("c1", "101") == []  # a duplicate
    assert of_type(sim.hangup("c1"), PublishCallCompleted)[0].extension == "101"


def test_a_late_answer_naming_its_ring_is_honoured_and_one_naming_no_ring_is_not() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")  # ring 1.1 on 101
    sim.advance(15)  # 1.1 timed out; ring 1.2 on 102
    out = sim.send(ev.RingAnswered(T, CallId("c1"), "101", ring_id="1.7"))
    assert errors(out) == ["ring 1.7 is not a ring of extension 101 for call c1"]
    out = sim.send(ev.RingAnswered(T, CallId("c1"), "101", ring_id="1.2"))  # 102's ring
    assert errors(out) == ["ring 1.2 is not a ring of extension 101 for call c1"]
    assert sim.phase("c1") == "ringing"
    out = sim.send(ev.RingAnswered(T, CallId("c1"), "101", ring_id="1.1"))
    assert errors(out) == []
    assert sim.phase("c1") == "connected"


def test_a_late_answer_takes_the_agent_from_the_call_it_was_ringing_for_meanwhile() -> None:
    sim = Sim("roundrobin", agents=1)
    sim.arrive("c1")
    sim.arrive("c2")
    out = sim.advance(15)  # c1's ring times out (c1 pauses); 101 rings for c2
    assert cancels(out) == [("c1", "101", "timeout")]
    assert rings(out) == [("c2", "101")]
    out = sim.answer("c1", "101")
    assert errors(out) == []
    # c2's ring goes: the PBX bridged 101 to c1, so 101 cannot take c2
    assert cancels(out) == [("c2", "101", "agent_unavailable")]
    assert sim.phase("c1") == "connected"
    assert sim.phase("c2") == "queued"
    sim.hangup("c1")
    # c2 moves on as after any ring cancelled for `agent_unavailable`: 101 was
    # tried in this round, so it rings again after the `retry` pause.
    assert sim.ringing() == {}
    assert rings(sim.advance(5)) == [("c2", "101")]


def test_a_late_answer_is_refused_when_the_agent_took_another_call_or_the_call_is_over() -> None:
    sim = Sim("roundrobin", agents=1)
    sim.arrive("c1")
    sim.arrive("c2")
    sim.advance(15)  # 101 rings for c2
    sim.answer("c2", "101")
    out = sim.answer("c1", "101")
    assert errors(out) == ["extension 101 is not ringing for call c1"]
    assert sim.phase("c1") == "queued"
    sim.hangup("c1")
    assert errors(sim.answer("c1", "101")) == ["extension 101 is not ringing for call c1"]
    assert sim.phase("c1") == "abandoned"


def test_an_answer_after_the_pbx_said_the_ring_failed_is_refused() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    sim.fail("c1", "101")
    assert errors(sim.answer("c1", "101")) == ["extension 101 is not ringing for call c1"]
    assert sim.ringing() == {"c1": ["102"]}


def test_an_answer_for_a_ring_that_timed_out_while_ringmaster_was_down_is_honoured() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    out = sim.restart(down_for=20)  # the ring timed out meanwhile
    assert cancels(out) == [("c1", "101", "timeout")]
    out = sim.answer("c1", "101")
    assert errors(out) == []
    assert cancels(out) == [("c1", "102", "answered_elsewhere")]
    assert sim.phase("c1") == "connected"


def test_ended_rings_survive_a_restart() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    sim.advance(15)
    sim.restart(down_for=1)
    assert errors(sim.send(ev.RingAnswered(T, CallId("c1"), "101", ring_id="1.1"))) == []
    assert sim.phase("c1") == "connected"


def test_a_call_remembers_a_bounded_number_of_ended_rings() -> None:
    sim = Sim("roundrobin", agents=1, timeout=1, retry=1)
    sim.arrive("c1")
    sim.advance(500)
    ended = sim.call("c1").ended_rings
    assert len(ended) == MAX_ENDED_RINGS
    assert ended[-1].ring_id == f"1.{sim.call('c1').rings_started - 1}"  # the latest kept


# --- a hangup that overtakes its arrival (item 6) -----------------------------------------------


def test_an_arrival_after_its_hangup_ends_at_once_without_ringing_anyone() -> None:
    sim = Sim("ringall", agents=2)
    out = sim.hangup("c1")
    assert errors(out) == ["unknown call c1"]  # as in v1: the PBX hears of it
    out = sim.arrive("c1")
    assert rings(out) == []
    assert [(r.call_id, r.reason) for r in of_type(out, RouteToHangup)] == [("c1", "caller_hangup")]
    assert [(r.call_id, r.reason) for r in of_type(out, PublishCallRejected)] == [
        ("c1", "caller_hangup")
    ]
    assert sim.phase("c1") == "rejected"
    assert sim.arrive("c1") == []  # a duplicate of the arrival changes nothing
    assert sim.hangup("c1") == []
    assert rings(sim.arrive("c2")) == [("c2", "101"), ("c2", "102")]


def test_a_hangup_for_an_unknown_call_is_remembered_as_long_as_an_ended_call() -> None:
    sim = Sim("ringall", agents=1)
    sim.hangup("c1")
    assert sim.hangup("c1") == []  # remembered: a repeat is a duplicate
    sim.advance(DEFAULT_ENDED_CALL_TTL + 1)
    sim.send(ev.TenantSaved(Tenant(T, "Acme")))  # any event forgets what is too old
    assert sim.engine.call(T, CallId("c1")) is None
    assert rings(sim.arrive("c1")) == [("c1", "101")]  # then the call_id is new again


def test_a_remembered_hangup_survives_a_restart() -> None:
    sim = Sim("ringall", agents=1)
    sim.hangup("c1")
    sim.restart(down_for=5)
    out = sim.arrive("c1")
    assert rings(out) == []
    assert sim.phase("c1") == "rejected"


def test_a_flood_of_hangups_for_unknown_calls_is_remembered_up_to_a_bound() -> None:
    sim = Sim("ringall", agents=1)
    for i in range(MAX_EARLY_HANGUPS + 10):
        sim.engine.handle(ev.CallHungUp(T, CallId(f"bogus{i}")), sim.now)
    assert sim.engine.call(T, CallId("bogus0")) is None  # the oldest went first
    assert sim.engine.call(T, CallId(f"bogus{MAX_EARLY_HANGUPS + 9}")) is not None
    remembered = [
        i
        for i in range(MAX_EARLY_HANGUPS + 10)
        if sim.engine.call(T, CallId(f"bogus{i}")) is not None
    ]
    assert len(remembered) == MAX_EARLY_HANGUPS
    changes = sim.engine.take_changes()
    assert len(changes.live.calls) == MAX_EARLY_HANGUPS  # what the store keeps is bounded too


def test_a_late_answer_to_a_ring_cancelled_by_an_overflow_connects_the_call_where_it_is() -> None:
    sim = Sim("ringall", agents=2, max_wait=10, overflow=QueueTarget(QueueId(2)))
    sim.add_queue(2, "ringall", enrolled=[2])
    sim.device("102", DeviceState.IN_USE)
    sim.arrive("c1")  # rings 101 in queue 1
    out = sim.advance(10)  # max_wait: to queue 2, where nobody can take it yet
    assert cancels(out) == [("c1", "101", "overflow")]
    assert sim.line(2) == ["c1"]
    out = sim.answer("c1", "101")  # the PBX had bridged 101 before the cancel
    assert errors(out) == []
    assert [(a.queue_id, a.extension) for a in of_type(out, PublishCallAnswered)] == [
        (QueueId(2), "101")
    ]
    assert sim.phase("c1") == "connected"
    assert sim.line(2) == []
