"""Invariants over random event sequences (Hypothesis), restarts included."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ringmaster.engine.commands import (
    CancelRing,
    Command,
    PublishCallAbandoned,
    PublishCallCompleted,
    PublishCallRejected,
    Ring,
    RouteToExtension,
)
from ringmaster.engine.model import CallPhase, DeviceState, Presence, RingFailure
from ringmaster.engine.state import AgentState
from ringmaster.engine.strategies import strategy_names

from .sim import Sim

AGENTS = 4
CALLS = [f"c{i}" for i in range(8)]
EXTENSIONS = [Sim.number(i) for i in range(1, AGENTS + 1)]

actions = st.one_of(
    st.tuples(
        st.just("arrive"),
        st.sampled_from(CALLS),
        st.sampled_from(["+100", "+101", "+9"]),
        st.integers(0, 9),
    ),
    st.tuples(st.just("answer"), st.sampled_from(CALLS), st.sampled_from(EXTENSIONS)),
    st.tuples(st.just("answer_ringing"), st.sampled_from(CALLS)),
    st.tuples(
        st.just("fail"),
        st.sampled_from(CALLS),
        st.sampled_from(EXTENSIONS),
        st.sampled_from(RingFailure),
    ),
    st.tuples(st.just("hangup"), st.sampled_from(CALLS)),
    st.tuples(st.just("presence"), st.sampled_from(EXTENSIONS), st.sampled_from(Presence)),
    st.tuples(st.just("device"), st.sampled_from(EXTENSIONS), st.sampled_from(DeviceState)),
    st.tuples(st.just("advance"), st.floats(0, 40)),
    st.tuples(st.just("restart"), st.floats(0, 30)),
)


def free_by_the_rules(agent: AgentState, now: float) -> bool:
    return (
        agent.presence is Presence.AVAILABLE
        and agent.device is DeviceState.IDLE
        and agent.ringing_for is None
        and agent.connected_to is None
        and (agent.wrapup_until is None or agent.wrapup_until <= now)
    )


Action = tuple[Any, ...]


def play(sim: Sim, action: Action) -> list[Command]:  # noqa: PLR0911
    kind, *args = action
    if kind == "arrive":
        return sim.arrive(args[0], args[1], priority=args[2])
    if kind == "answer":
        return sim.answer(args[0], args[1])
    if kind == "answer_ringing":
        ringing = sim.ringing().get(args[0])
        return sim.answer(args[0], ringing[0]) if ringing else []
    if kind == "fail":
        return sim.fail(args[0], args[1], args[2])
    if kind == "hangup":
        return sim.hangup(args[0])
    if kind == "presence":
        return sim.presence(args[1], args[0])
    if kind == "device":
        return sim.device(args[0], args[1])
    if kind == "advance":
        return sim.advance(args[0])
    return sim.restart(down_for=args[0])


def check_invariants(sim: Sim, out: list[Command]) -> None:
    engine = sim.engine
    ringing_agents: Counter[int] = Counter()
    for call in engine.calls():
        for extension_id, ring in call.rings.items():
            ringing_agents[extension_id] += 1
            # no ring outlives its timeout
            assert ring.deadline > sim.now, "a ring outlived its timeout"
            agent = engine.agent(extension_id)
            assert agent is None or agent.ringing_for == call.key
        assert not call.phase.is_final
        assert (call.phase is CallPhase.RINGING) == bool(call.rings)
    # no agent rung for two calls at once
    assert all(n == 1 for n in ringing_agents.values()), ringing_agents
    connected = Counter(c.agent_id for c in engine.calls() if c.phase is CallPhase.CONNECTED)
    assert all(n == 1 for n in connected.values())
    # every Ring sent is on now, unless the same event already ended it
    cancelled = {(c.call_id, c.extension) for c in out if isinstance(c, CancelRing)}
    for command in out:
        if isinstance(command, Ring) and (command.call_id, command.extension) not in cancelled:
            rung = engine.call(command.tenant_id, command.call_id)
            assert rung is not None
            assert command.extension in sim.ringing().get(command.call_id, [])
    # between events, no waiting call has a free agent it has not tried
    for queue in engine.queues():
        assert queue.free == {
            e
            for e in queue.enrolled
            if (a := engine.agent(e)) is not None and free_by_the_rules(a, sim.now)
        }
        for entry in queue.line:
            waiting = engine.call(*entry[3])
            assert waiting is not None
            if waiting.phase is CallPhase.QUEUED or queue.config.strategy == "ringall":
                assert not (queue.free - waiting.tried), (waiting, queue.free)


@settings(max_examples=300, deadline=None)
@given(
    strategy=st.sampled_from(sorted(strategy_names())),
    wrapup=st.sampled_from([0, 10]),
    script=st.lists(actions, max_size=60),
)
def test_invariants_hold_over_any_sequence_of_events(
    strategy: str, wrapup: int, script: list[Action]
) -> None:
    sim = Sim(strategy, agents=AGENTS, timeout=10, wrapup_time=wrapup)
    sim.add_queue(
        2, "leastrecent" if strategy != "leastrecent" else "roundrobin", enrolled=[2, 3, 4]
    )
    for action in script:
        out = play(sim, action)
        check_invariants(sim, out)
    # Every call ends in exactly one final state: hang everything up and count.
    for call_id in CALLS:
        sim.hangup(call_id)
    sim.advance(100)
    finals: Counter[str] = Counter()
    for command in sim.log:
        if isinstance(
            command,
            (PublishCallAbandoned, PublishCallCompleted, PublishCallRejected, RouteToExtension),
        ):
            finals[command.call_id] += 1
    arrived = {a[1] for a in script if a[0] == "arrive"}
    # a call_id may be reused once forgotten; within this script none is forgotten
    assert set(finals) == arrived
    assert all(n == 1 for n in finals.values()), finals
    # every ring that was started was ended: answered, cancelled or failed
    assert not sim.ringing()


@settings(max_examples=150, deadline=None)
@given(
    strategy=st.sampled_from(sorted(strategy_names() - {"random"})),
    script=st.lists(actions.filter(lambda a: a[0] != "restart"), max_size=40),
    cut=st.integers(0, 40),
)
def test_a_restart_at_any_point_changes_nothing_that_follows(
    strategy: str, script: list[Action], cut: int
) -> None:
    """Run the same script twice, once with a restart in the middle: same commands after it.

    Not for `random`: its generator's state is not stored (a restart draws anew).
    """
    straight = Sim(strategy, agents=AGENTS, timeout=10)
    restarted = Sim(strategy, agents=AGENTS, timeout=10)
    for i, action in enumerate(script):
        if i == cut:
            assert [c for c in restarted.restart() if isinstance(c, (Ring, CancelRing))] == []
        expected = play(straight, action)
        assert play(restarted, action) == expected
