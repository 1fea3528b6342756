"""Issue 9's engine items: answers the PBX bridged, ring ids, retry pauses, early hangups."""

from __future__ import annotations

from ringmaster.engine.model import DeviceState, Presence, RingFailure

from .sim import Sim, cancels, rings

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
