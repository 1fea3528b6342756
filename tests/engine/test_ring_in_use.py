"""`ring_in_use`: a queue that also rings agents whose phone is on a call that is not ours.

Asterisk's `ringinuse`. Off (the default), an agent whose device is `in_use` is busy
for every queue, as the contract says; on, that queue rings the agent anyway, unless
the call the phone is on is one of ours, or the agent is otherwise unable to take one.
"""

from __future__ import annotations

from ringmaster.engine.model import DeviceState, Presence

from .sim import Sim, rings


def test_off_an_agent_on_another_call_is_not_rung() -> None:
    sim = Sim("ringall", agents=2)
    sim.device(Sim.number(1), DeviceState.IN_USE)
    assert rings(sim.arrive("c1")) == [("c1", Sim.number(2))]


def test_on_an_agent_on_another_call_is_rung_too() -> None:
    sim = Sim("ringall", agents=2, ring_in_use=True)
    sim.device(Sim.number(1), DeviceState.IN_USE)
    assert sorted(rings(sim.arrive("c1"))) == [("c1", Sim.number(1)), ("c1", Sim.number(2))]


def test_on_an_agent_who_goes_in_use_stays_free_and_a_waiting_call_rings_them() -> None:
    sim = Sim("linear", agents=1, ring_in_use=True)
    sim.presence(Presence.PAUSED, Sim.number(1))
    sim.arrive("c1")
    sim.device(Sim.number(1), DeviceState.IN_USE)
    assert rings(sim.presence(Presence.AVAILABLE, Sim.number(1))) == [("c1", Sim.number(1))]


def test_on_an_agent_on_one_of_our_calls_is_not_rung() -> None:
    sim = Sim("ringall", agents=1, ring_in_use=True, wrapup_time=0)
    sim.arrive("c1")
    sim.answer("c1", Sim.number(1))
    sim.device(Sim.number(1), DeviceState.IN_USE)
    assert rings(sim.arrive("c2")) == []


def test_on_a_phone_that_is_ringing_or_gone_is_not_rung() -> None:
    sim = Sim("ringall", agents=2, ring_in_use=True)
    sim.device(Sim.number(1), DeviceState.RINGING)
    sim.device(Sim.number(2), DeviceState.UNAVAILABLE)
    assert rings(sim.arrive("c1")) == []


def test_it_is_per_queue() -> None:
    sim = Sim("ringall", agents=1)
    sim.add_queue(2, "ringall", enrolled=[1], ring_in_use=True)
    sim.device(Sim.number(1), DeviceState.IN_USE)
    assert rings(sim.arrive("c1")) == []
    assert rings(sim.arrive("c2", did="+101")) == [("c2", Sim.number(1))]


def test_turning_it_on_rings_a_waiting_call_at_once_and_off_stops_new_rings() -> None:
    sim = Sim("ringall", agents=1)
    sim.device(Sim.number(1), DeviceState.IN_USE)
    sim.arrive("c1")
    assert rings(sim.update_queue(1, ring_in_use=True)) == [("c1", Sim.number(1))]
    sim.hangup("c1")
    sim.update_queue(1, ring_in_use=False)
    assert rings(sim.arrive("c2")) == []


def test_an_agent_enrolled_while_in_use_is_rung_by_a_queue_that_has_it() -> None:
    sim = Sim("ringall", agents=1)
    sim.add_extension(2)
    sim.login(Sim.number(2))
    sim.device(Sim.number(2), DeviceState.IN_USE)
    sim.add_queue(2, "ringall", enrolled=[], ring_in_use=True)
    sim.arrive("c1", did="+101")
    assert rings(sim.enrol(2, 2)) == [("c1", Sim.number(2))]


def test_it_survives_a_restart() -> None:
    sim = Sim("ringall", agents=1, ring_in_use=True)
    sim.device(Sim.number(1), DeviceState.IN_USE)
    sim.restart()
    assert rings(sim.arrive("c1")) == [("c1", Sim.number(1))]
