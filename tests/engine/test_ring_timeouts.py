"""Rings started at once share one timeout entry; each still times out as its own.

`_start_rings` pushes one deadline for all the rings it starts (a `ringall`
call: 12), so that an answer leaves one void entry in the heap, not 12. What
falls due must be what one entry per ring gave: each ring still on ends, in
extension order, and a ring started later (an agent free meanwhile) or after
a restart (one entry per ring again) keeps its own timeout.
"""

from __future__ import annotations

from ringmaster.engine.model import DeviceState, Presence

from .sim import Sim, cancels, rings


def test_the_rings_of_a_ringall_call_time_out_together_in_extension_order() -> None:
    sim = Sim("ringall", agents=4, timeout=15, retry=5)
    sim.device(Sim.number(4), DeviceState.IN_USE)
    sim.arrive("c1")
    sim.advance(5)
    assert rings(sim.device(Sim.number(4), DeviceState.IDLE)) == [("c1", Sim.number(4))]
    out = sim.advance(10)
    assert cancels(out) == [("c1", Sim.number(i), "timeout") for i in (1, 2, 3)]
    out = sim.advance(5)
    assert cancels(out) == [("c1", Sim.number(4), "timeout")]


def test_a_ring_ended_before_its_timeout_is_left_alone_and_the_others_time_out() -> None:
    sim = Sim("ringall", agents=3, timeout=15)
    sim.arrive("c1")
    sim.advance(2)
    out = sim.presence(Presence.PAUSED, Sim.number(2))
    assert cancels(out) == [("c1", Sim.number(2), "agent_unavailable")]
    out = sim.advance(13)
    assert cancels(out) == [("c1", Sim.number(1), "timeout"), ("c1", Sim.number(3), "timeout")]


def test_an_answer_voids_the_shared_timeout() -> None:
    sim = Sim("ringall", agents=3, timeout=15)
    sim.arrive("c1")
    assert len(sim.engine._deadlines) == 1  # one entry for the three rings
    sim.answer("c1", Sim.number(2))
    assert sim.engine.next_deadline() is None
    assert cancels(sim.advance(30)) == []


def test_after_a_restart_each_ring_times_out_as_before() -> None:
    sim = Sim("ringall", agents=3, timeout=15)
    sim.arrive("c1")
    sim.advance(5)
    sim.restart()
    out = sim.advance(10)
    assert cancels(out) == [("c1", Sim.number(i), "timeout") for i in (1, 2, 3)]
