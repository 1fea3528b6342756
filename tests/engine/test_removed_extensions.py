"""An extension removed while its agent rings or talks: what the PBX and the listeners are told.

The engine forgets a removed extension at once; what it still has to say about
that extension's ring or call names the number it had, remembered with the
ring (`RingRecord.number`) and with the call (`CallState.agent_number`).
"""

from __future__ import annotations

from ringmaster.engine import events as ev
from ringmaster.engine.commands import PublishCallCompleted
from ringmaster.engine.model import ExtensionId

from .sim import Sim, of_type


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
