"""An extension removed while its agent rings or talks: what the PBX and the listeners are told.

The engine forgets a removed extension at once; what it still has to say about
that extension's ring or call names the number it had, remembered with the
ring (`RingRecord.number`) and with the call (`CallState.agent_number`).
"""

from __future__ import annotations

from dataclasses import replace

from ringmaster.engine import events as ev
from ringmaster.engine.commands import CancelRing, PublishCallCompleted
from ringmaster.engine.model import ExtensionId

from .sim import Sim, cancels, of_type, rings


def test_the_completed_call_of_an_agent_whose_extension_was_removed_names_its_number() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")  # rings 101
    sim.answer("c1", "101")
    sim.configure(ev.ExtensionRemoved(ExtensionId(1)))  # the call carries on
    sim.advance(30)
    (completed,) = of_type(sim.hangup("c1"), PublishCallCompleted)
    assert completed.extension == "101"
    assert completed.talk_s == 30


def test_the_completed_call_names_the_agent_removed_while_ringmaster_was_down() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.store.config.append(ev.ExtensionRemoved(ExtensionId(1)))  # while down
    sim.restart(down_for=10)
    (completed,) = of_type(sim.hangup("c1"), PublishCallCompleted)
    assert completed.extension == "101"


def test_a_ring_of_an_extension_removed_while_down_is_cancelled_at_restore_by_its_number() -> None:
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")  # rings 101 for 15 s
    sim.advance(3)
    sim.store.config.append(ev.ExtensionRemoved(ExtensionId(1)))  # while down
    out = sim.restart(down_for=2, apply_deadlines=False)
    # At once, not at the ring's timeout: nobody can answer it any more.
    assert cancels(out) == [("c1", "101", "agent_unavailable")]
    assert rings(out) == [("c1", "102")]
    assert sim.ringing() == {"c1": ["102"]}
    assert cancels(sim.advance(20)) == [("c1", "102", "timeout")]
    assert all(cancel.extension for cancel in of_type(sim.log, CancelRing))


def test_a_ring_stored_without_its_number_is_ended_at_restore_all_the_same() -> None:
    # A ring stored before the numbers were kept (store version 6): nothing
    # names the extension any more, but the call need not wait for the timeout.
    sim = Sim("roundrobin", agents=2)
    sim.arrive("c1")  # rings 101
    key = sim.call("c1").key
    stored = sim.store.calls[key]
    sim.store.calls[key] = replace(stored, rings=(replace(stored.rings[0], number=""),))
    sim.store.config.append(ev.ExtensionRemoved(ExtensionId(1)))  # while down
    out = sim.restart(down_for=2)
    assert cancels(out) == [("c1", "", "agent_unavailable")]
    assert rings(out) == [("c1", "102")]


def test_a_ringall_call_keeps_its_other_rings_when_one_extension_went_while_down() -> None:
    sim = Sim("ringall", agents=3)
    sim.arrive("c1")  # rings 101, 102 and 103
    sim.store.config.append(ev.ExtensionRemoved(ExtensionId(2)))  # while down
    out = sim.restart(down_for=2)
    assert cancels(out) == [("c1", "102", "agent_unavailable")]
    assert rings(out) == []
    assert sim.ringing() == {"c1": ["101", "103"]}
    assert sim.phase("c1") == "ringing"
