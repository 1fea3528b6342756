"""`_refresh_ring_edge`, the fast path of a ring's start and end, against `_refresh_agent`.

The fast path must leave the engine exactly as the general one would, for any
agent state it is handed: it takes the shortcut only for a free agent rung and
a ringing agent free again, and hands every other state to the general path.
Two queues see the agent: a `ringall` one and a ranked (`leastrecent`) one
with `ring_in_use`, so both kinds of free set and `free_in_use` are exercised.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ringmaster.engine.core import Engine
from ringmaster.engine.model import CallId, DeviceState, ExtensionId, Presence, TenantId

from .sim import Sim

NOW = 1_000.0
KEY = (TenantId(1), CallId("c1"))

any_state = st.fixed_dictionaries(
    {
        "presence": st.sampled_from(Presence),
        "presence_reason": st.sampled_from(["", "lunch", "no_answer"]),
        "device": st.sampled_from(DeviceState),
        "wrapup_until": st.sampled_from([None, NOW - 1, NOW, NOW + 5]),
        "skip_until": st.sampled_from([None, NOW - 1, NOW + 5]),
        "ringing_for": st.sampled_from([None, KEY]),
        "connected_to": st.sampled_from([None, KEY]),
    }
)
#: Free, or ringing and free otherwise: the states the fast path starts from.
near_free = st.fixed_dictionaries(
    {
        "presence": st.just(Presence.AVAILABLE),
        "presence_reason": st.just(""),
        "device": st.sampled_from([DeviceState.IDLE, DeviceState.IDLE, DeviceState.IN_USE]),
        "wrapup_until": st.sampled_from([None, NOW - 1, NOW]),
        "skip_until": st.sampled_from([None, NOW - 1]),
        "ringing_for": st.sampled_from([None, KEY]),
        "connected_to": st.just(None),
    }
)
agent_states = st.one_of(near_free, any_state)


@st.composite
def transitions(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A state, and the next: its ring toggled (perhaps with more), or any other."""
    before = draw(agent_states)
    if draw(st.booleans()):
        after = dict(before, ringing_for=None if before["ringing_for"] else KEY)
        changes = draw(st.dictionaries(st.sampled_from(sorted(before)), st.none(), max_size=1))
        for name in changes:  # e.g. a wrap-up or skip that ends, a reason that goes
            after[name] = draw(any_state)[name]
        return before, after
    return before, draw(agent_states)


def _engine_state(engine: Engine) -> dict[str, Any]:
    agent = engine.agent(ExtensionId(1))
    assert agent is not None
    queues = {}
    for queue in engine.queues():
        ranked = list(queue.ranked.in_order()) if queue.ranked is not None else None
        queues[queue.queue_id] = (
            sorted(queue.free),
            ranked,
            dict(queue.status_counts),
            dict(queue.condition_counts),
        )
    return {
        "agent": {f.name: getattr(agent, f.name) for f in fields(agent)},
        "queues": queues,
        "touched": set(engine._touched),
        "empty_check": set(engine._empty_check),
        "to_distribute": set(engine._to_distribute),
        "dirty_agents": set(engine._dirty_agents),
        "out": list(engine._out),
    }


@settings(max_examples=400, deadline=None)
@given(transition=transitions())
def test_the_fast_path_leaves_the_engine_as_the_general_one(
    transition: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    before, after = transition
    sim = Sim("ringall", agents=1)
    sim.add_queue(2, "leastrecent", enrolled=[1], ring_in_use=True)
    engine = sim.engine
    agent = engine.agent(ExtensionId(1))
    assert agent is not None
    # The agent as the engine last settled it, then changed as a ring's start
    # or end (or anything else) changes it.
    for name, value in before.items():
        setattr(agent, name, value)
    engine._refresh_agent(agent, NOW)
    engine._finish(NOW)
    for changed in (engine._touched, engine._empty_check, engine._dirty_agents):
        changed.clear()
    for name, value in after.items():
        setattr(agent, name, value)
    general = copy.deepcopy(engine)
    general_agent = general.agent(ExtensionId(1))
    assert general_agent is not None

    general._refresh_agent(general_agent, NOW)
    engine._refresh_ring_edge(agent, NOW)

    assert _engine_state(engine) == _engine_state(general)


def test_a_ring_start_and_end_take_the_fast_path() -> None:
    # The cases the fast path is for: were they handed to the general path,
    # the comparison above would hold trivially.
    sim = Sim("ringall", agents=1)
    engine = sim.engine
    agent = engine.agent(ExtensionId(1))
    assert agent is not None
    calls: list[str] = []
    general = engine._refresh_agent

    def spy(agent: Any, now: float) -> None:
        calls.append("general")
        general(agent, now)

    engine._refresh_agent = spy  # type: ignore[method-assign]
    agent.ringing_for = KEY
    engine._refresh_ring_edge(agent, NOW)
    agent.ringing_for = None
    engine._refresh_ring_edge(agent, NOW)
    assert calls == []
    assert agent.free
