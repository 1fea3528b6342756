"""A queue's `unrung` calls: the calls of its line with no ring on, in line order.

`_offer_lines` walks only these for a strategy that rings one agent at a
time, so they must be exactly the calls of the line that have no ring, after
any event, a restart included (the decisions themselves are checked by the
golden corpus and `test_properties`).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from .sim import Sim
from .test_properties import ALL_STRATEGIES, Action, Scenario, actions, play, scenarios


def check_unrung(sim: Sim) -> None:
    engine = sim.engine
    for queue in engine.queues():
        no_ring = []
        for entry in queue.line:
            call = engine.call(*entry[3])
            assert call is not None
            if not call.rings:
                no_ring.append(entry)
        assert queue.unrung == no_ring


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(ALL_STRATEGIES), script=st.lists(actions, min_size=20, max_size=60))
def test_unrung_calls_are_the_line_s_calls_without_a_ring(
    scenario: Scenario, script: list[Action]
) -> None:
    """Over any events and restarts (`actions` has both)."""
    sim = scenario.build()
    for action in script:
        play(sim, action)
        check_unrung(sim)
