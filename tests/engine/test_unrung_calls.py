"""A queue's `unrung` calls: the calls of its line with no ring on, in line order.

`_offer_lines` walks only these for a strategy that rings one agent at a
time, so they must be exactly the calls of the line that have no ring, after
any event, a restart included (the decisions themselves are checked by the
golden corpus and `test_properties`).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ringmaster.engine import events as ev
from ringmaster.engine.model import CallId, ExtensionId, QueueId

from .sim import Sim, T
from .test_properties import (
    AGENTS,
    ALL_STRATEGIES,
    CALLS,
    Action,
    Scenario,
    actions,
    play,
    scenarios,
)

#: What else changes a line or a call's rings, beside `actions`' events and restarts:
#: a supervisor's requests, and configuration that takes a queue or an agent away.
more = st.one_of(
    st.tuples(st.just("priority"), st.sampled_from(CALLS), st.integers(0, 9)),
    st.tuples(st.just("move"), st.sampled_from(CALLS), st.sampled_from([1, 2])),
    st.tuples(st.just("send_to"), st.sampled_from(CALLS), st.sampled_from(["201", "202"])),
    st.tuples(st.just("hang_up"), st.sampled_from(CALLS)),
    st.tuples(st.just("remove_queue"), st.sampled_from([1, 2])),
    st.tuples(st.just("remove_extension"), st.integers(1, AGENTS)),
)


def play_more(sim: Sim, action: Action) -> None:
    kind, *args = action
    if kind == "priority":
        sim.send(ev.SetCallPriority(T, CallId(args[0]), args[1]))
    elif kind == "move":
        sim.send(ev.MoveCall(T, CallId(args[0]), QueueId(args[1])))
    elif kind == "send_to":
        sim.send(ev.SendCallToExtension(T, CallId(args[0]), args[1]))
    elif kind == "hang_up":
        sim.send(ev.HangUpCall(T, CallId(args[0])))
    elif kind == "remove_queue":
        sim.configure(ev.QueueRemoved(QueueId(args[0])))
    elif kind == "remove_extension":
        sim.configure(ev.ExtensionRemoved(ExtensionId(args[0])))
    elif kind in ("set_queue", "enrol") and sim.engine.queue(QueueId(args[0])) is None:
        return  # the harness changes a queue's configuration it reads: gone, nothing to do
    else:
        play(sim, action)


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


@settings(max_examples=200, deadline=None)
@given(
    scenario=scenarios(ALL_STRATEGIES),
    script=st.lists(st.one_of(actions, actions, more), min_size=20, max_size=60),
)
def test_unrung_calls_stay_right_through_supervisors_and_removals(
    scenario: Scenario, script: list[Action]
) -> None:
    """A priority changed, a call moved, sent or hung up, a queue or extension removed."""
    sim = scenario.build()
    for action in script:
        play_more(sim, action)
        check_unrung(sim)
