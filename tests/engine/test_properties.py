"""Invariants over random event sequences (Hypothesis), restarts and options included.

Each example draws a scenario (two queues with random strategies and options,
agents with random skills and enrolment options) and a script of PBX events,
operator changes, callbacks, clock advances and restarts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    Announce,
    CancelRing,
    Command,
    PublishCallAbandoned,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.core import Engine
from ringmaster.engine.model import (
    DEFAULT_ENROLMENT,
    AgentCondition,
    CallId,
    CallPhase,
    CancelReason,
    DeviceState,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    PenaltyRule,
    Presence,
    QueueId,
    QueueTarget,
    RingFailure,
    SkillRule,
)
from ringmaster.engine.rules import MAX_OVERFLOW_HOPS
from ringmaster.engine.state import AgentState, CallState, QueueState
from ringmaster.engine.strategies import strategy_names

from .sim import Sim, T, of_type

AGENTS = 4
CALLS = [f"c{i}" for i in range(8)]
EXTENSIONS = [Sim.number(i) for i in range(1, AGENTS + 1)]
#: The route of "+300" (to queue 1) requires this.
ROUTE_SKILLS = {"spanish": 5}
#: Strategies whose generator a restart does not carry over.
RANDOM = {"random", "wrandom"}

# --- scenarios ----------------------------------------------------------------------------

conditions = st.frozensets(st.sampled_from(AgentCondition), max_size=3)
queue_options = st.fixed_dictionaries(
    {},
    optional={
        "retry": st.sampled_from([0, 5]),
        "wrapup_time": st.sampled_from([0, 10]),
        "max_len": st.sampled_from([0, 1, 3]),
        "max_wait": st.sampled_from([0, 25, 60]),
        "overflow": st.sampled_from(
            [
                HangupTarget(),
                QueueTarget(QueueId(1)),
                QueueTarget(QueueId(2)),
                QueueTarget(QueueId(9)),  # missing: a hangup
                ExtensionTarget(ExtensionId(4)),
            ]
        ),
        "join_empty": conditions,
        "leave_when_empty": conditions,
        "weight": st.sampled_from([0, 5]),
        "announce_frequency": st.sampled_from([0, 15]),
        "ring_progressive_delay": st.sampled_from([3, 10]),
        "penalty_rules": st.sampled_from(
            [(), (PenaltyRule(0, 0), PenaltyRule(20, 2)), (PenaltyRule(15, 1),)]
        ),
        "skill_rules": st.sampled_from([(), (SkillRule(20, 3),), (SkillRule(10, 1),)]),
    },
)
enrolment_options = st.fixed_dictionaries(
    {},
    optional={
        "penalty": st.integers(0, 3),
        "position": st.none() | st.integers(0, 4),
        "wrapup_time": st.none() | st.sampled_from([0, 15]),
        "max_no_answer": st.sampled_from([0, 1, 2]),
        "busy_delay": st.sampled_from([0, 7]),
        "reject_delay": st.sampled_from([0, 7]),
        "no_answer_delay": st.sampled_from([0, 7]),
    },
)
skill_maps = st.dictionaries(st.sampled_from(["spanish", "billing"]), st.integers(1, 10))


@dataclass(frozen=True)
class Scenario:
    """Queue 1 (agents 1-4) and queue 2 (agents 2-4), with their options."""

    strategies: tuple[str, str]
    options: tuple[dict[str, Any], dict[str, Any]]
    skills: tuple[dict[str, int], ...]
    enrolments: tuple[tuple[int, int, dict[str, Any]], ...]

    def build(self) -> Sim:
        sim = Sim(self.strategies[0], agents=AGENTS, timeout=10, logged_in=False, **self.options[0])
        sim.add_queue(2, self.strategies[1], timeout=10, enrolled=[2, 3, 4], **self.options[1])
        sim.route("+300", queue=1, skills=ROUTE_SKILLS)
        for extension_id, skills in enumerate(self.skills, start=1):
            sim.add_extension(extension_id, skills=skills)
        for queue_id, extension_id, options in self.enrolments:
            sim.enrol(queue_id, extension_id, **options)
        sim.login(*EXTENSIONS)
        return sim


def scenarios(strategies: st.SearchStrategy[str]) -> st.SearchStrategy[Scenario]:
    return st.builds(
        Scenario,
        strategies=st.tuples(strategies, strategies),
        options=st.tuples(queue_options, queue_options),
        skills=st.tuples(*[skill_maps] * AGENTS),
        enrolments=st.lists(
            st.tuples(st.sampled_from([1, 2]), st.integers(1, AGENTS), enrolment_options),
            max_size=4,
        ).map(tuple),
    )


ALL_STRATEGIES = st.sampled_from(sorted(strategy_names()))
RESTARTABLE = st.sampled_from(sorted(strategy_names() - RANDOM))

# --- scripts -------------------------------------------------------------------------------

arrive = st.tuples(
    st.just("arrive"),
    st.sampled_from(CALLS),
    st.sampled_from(["+100", "+101", "+300", "+9"]),
    st.integers(0, 9),
    st.just({}) | skill_maps,
)
answer_ringing = st.tuples(st.just("answer_ringing"), st.sampled_from(CALLS))
advance = st.tuples(st.just("advance"), st.floats(0, 40))
# Branches are drawn alike, so the common events are listed more than once.
events = st.one_of(
    arrive,
    arrive,
    answer_ringing,
    answer_ringing,
    advance,
    advance,
    st.tuples(st.just("answer"), st.sampled_from(CALLS), st.sampled_from(EXTENSIONS)),
    st.tuples(
        st.just("fail"),
        st.sampled_from(CALLS),
        st.sampled_from(EXTENSIONS),
        st.sampled_from(RingFailure),
    ),
    st.tuples(st.just("fail_ringing"), st.sampled_from(CALLS), st.sampled_from(RingFailure)),
    # The PBX echoes ring ids (an addition): the ring on now's, or an older one's.
    st.tuples(st.just("fail_echo"), st.sampled_from(CALLS), st.sampled_from(RingFailure)),
    st.tuples(st.just("fail_stale"), st.sampled_from(CALLS), st.integers(0, 5)),
    # An answer naming any ring the call had, on now or over (a late answer).
    st.tuples(st.just("answer_echo"), st.sampled_from(CALLS), st.integers(0, 5)),
    st.tuples(st.just("hangup"), st.sampled_from(CALLS)),
    st.tuples(st.just("callback"), st.sampled_from(CALLS), st.sampled_from(["5551", "5552"])),
    st.tuples(
        st.just("presence"),
        st.sampled_from(EXTENSIONS),
        st.sampled_from(
            [Presence.AVAILABLE, Presence.AVAILABLE, Presence.PAUSED, Presence.LOGGED_OUT]
        ),
    ),
    st.tuples(
        st.just("device"),
        st.sampled_from(EXTENSIONS),
        st.sampled_from([DeviceState.IDLE, DeviceState.IDLE, *DeviceState]),
    ),
    st.tuples(st.just("set_queue"), st.sampled_from([1, 2]), queue_options),
    st.tuples(st.just("enrol"), st.sampled_from([1, 2]), st.integers(1, AGENTS), enrolment_options),
)
actions = st.one_of(events, st.tuples(st.just("restart"), st.floats(0, 30)))

Action = tuple[Any, ...]


def on_a_ringing_extension(
    call_id: str, then: Callable[[str], list[Command]], sim: Sim
) -> list[Command]:
    """Answer (or fail) a ring that is on: random extensions seldom hit one."""
    ringing = sim.ringing().get(call_id)
    return then(ringing[0]) if ringing else []


def fail_echoing(call_id: str, reason: RingFailure, sim: Sim) -> list[Command]:
    """The PBX reports the failure of a ring on now, echoing its ring id."""
    call = sim.engine.call(T, CallId(call_id))
    if call is None or not call.rings:
        return []
    ring = min(call.rings.values(), key=lambda r: r.extension_id)
    number = Sim.number(ring.extension_id)
    return sim.send(ev.RingFailed(T, CallId(call_id), number, reason, ring_id=ring.ring_id))


def fail_stale(call_id: str, pick: int, sim: Sim) -> list[Command]:
    """A late `ring_failed` for a ring of the call that is over (a broker outage's backlog).

    It must change nothing: not the ring its extension may have now, nor anything else.
    """
    live = {r.ring_id for c in sim.engine.calls() if c.call_id == call_id for r in c.rings.values()}
    over = [
        (c.extension, c.ring_id)
        for c in of_type(sim.log, Ring)
        if c.call_id == call_id and c.ring_id not in live
    ]
    if not over:
        return []
    extension, ring_id = over[-1 - pick % len(over)]
    before = sim.ringing()
    forgotten = sim.engine.call(T, CallId(call_id)) is None  # ended over ended_call_ttl ago
    out = sim.send(ev.RingFailed(T, CallId(call_id), extension, RingFailure.NO_ANSWER, ring_id))
    if forgotten:
        # Long over, the call is unknown: the PBX is told so (P/T/error), nothing else.
        assert [type(c) for c in out] == [RejectInput], out
    else:
        assert out == [], "a failure of an older ring changed something"
    assert sim.ringing() == before
    return out


def answer_echoing(call_id: str, pick: int, sim: Sim) -> list[Command]:
    """The PBX bridged one of the call's rings, maybe one ringmaster already ended."""
    rung = [(c.extension, c.ring_id) for c in of_type(sim.log, Ring) if c.call_id == call_id]
    if not rung:
        return []
    extension, ring_id = rung[-1 - pick % len(rung)]
    call = sim.engine.call(T, CallId(call_id))
    waiting = call is not None and call.phase in (CallPhase.QUEUED, CallPhase.RINGING)
    out = sim.send(ev.RingAnswered(T, CallId(call_id), extension, ring_id))
    if not waiting:
        after = sim.engine.call(T, CallId(call_id))  # unchanged (ended calls are copies)
        assert after is None or (call is not None and after.to_record() == call.to_record())
        assert not of_type(out, Ring)
    return out


def set_queue(sim: Sim, queue_id: int, options: dict[str, Any]) -> list[Command]:
    # A deadline a change moved into the past is due at once: the service
    # re-arms its timer after every input, and a past time fires at once.
    return sim.update_queue(queue_id, **options) + sim.advance(0)


PLAYERS: dict[str, Callable[[Sim, list[Any]], list[Command]]] = {
    "arrive": lambda sim, a: sim.arrive(a[0], a[1], priority=a[2], skills=a[3]),
    "answer": lambda sim, a: sim.answer(a[0], a[1]),
    "answer_ringing": lambda sim, a: on_a_ringing_extension(
        a[0], lambda e: sim.answer(a[0], e), sim
    ),
    "fail": lambda sim, a: sim.fail(a[0], a[1], a[2]),
    "fail_ringing": lambda sim, a: on_a_ringing_extension(
        a[0], lambda e: sim.fail(a[0], e, a[1]), sim
    ),
    "fail_echo": lambda sim, a: fail_echoing(a[0], a[1], sim),
    "fail_stale": lambda sim, a: fail_stale(a[0], a[1], sim),
    "answer_echo": lambda sim, a: answer_echoing(a[0], a[1], sim),
    "hangup": lambda sim, a: sim.hangup(a[0]),
    "callback": lambda sim, a: sim.callback(a[0], a[1]),
    "presence": lambda sim, a: sim.presence(a[1], a[0]),
    "device": lambda sim, a: sim.device(a[0], a[1]),
    "set_queue": lambda sim, a: set_queue(sim, a[0], a[1]),
    "enrol": lambda sim, a: sim.enrol(a[0], a[1], **a[2]),
    "advance": lambda sim, a: sim.advance(a[0]),
    "restart": lambda sim, a: sim.restart(down_for=a[0]),
}


def play(sim: Sim, action: Action) -> list[Command]:
    kind, *args = action
    return PLAYERS[kind](sim, args)


# --- the oracle ------------------------------------------------------------------------------


def free_by_the_rules(agent: AgentState, now: float) -> bool:
    return (
        agent.presence is Presence.AVAILABLE
        and agent.device is DeviceState.IDLE
        and agent.ringing_for is None
        and agent.connected_to is None
        and (agent.wrapup_until is None or agent.wrapup_until <= now)
        and (agent.skip_until is None or agent.skip_until <= now)
    )


def condition(agent: AgentState, now: float) -> AgentCondition | None:  # noqa: PLR0911
    """Why the agent cannot take a call, by docs/options.md (ringing is no reason)."""
    if agent.connected_to is not None:
        return AgentCondition.BUSY
    if agent.ringing_for is not None:
        return None
    if agent.presence is Presence.LOGGED_OUT:
        return AgentCondition.LOGGED_OUT
    if agent.presence is Presence.PAUSED:
        return AgentCondition.PAUSED
    if agent.device is DeviceState.UNAVAILABLE:
        return AgentCondition.UNAVAILABLE
    if agent.device is not DeviceState.IDLE:
        return AgentCondition.BUSY
    if agent.wrapup_until is not None and agent.wrapup_until > now:
        return AgentCondition.WRAPUP
    return None


def penalty(queue: QueueState, extension_id: ExtensionId) -> int:
    return queue.options.get(extension_id, DEFAULT_ENROLMENT).penalty


def may_take(
    scenario: Scenario, queue: QueueState, call: CallState, extension_id: ExtensionId, now: float
) -> bool:
    """The call's penalty limit and skill requirement, as they stand at `now`, allow the agent."""
    config = queue.config
    limit = None
    for penalty_rule in config.penalty_rules:
        if call.entered_at + penalty_rule.after <= now:
            limit = penalty_rule.max_penalty
    if limit is not None and penalty(queue, extension_id) > limit:
        return False
    lowered = 0
    for skill_rule in config.skill_rules:
        if call.entered_at + skill_rule.after <= now:
            lowered = skill_rule.lower_by
    skills = scenario.skills[extension_id - 1]
    return all(skills.get(skill, 0) >= level - lowered for skill, level in call.skills.items())


def check_waiting_call(
    scenario: Scenario, sim: Sim, queue: QueueState, call: CallState, free: set[ExtensionId]
) -> None:
    """Between events no waiting call wants a free agent it may take and has not tried."""
    now = sim.now
    config = queue.config
    assert call.phase in (CallPhase.QUEUED, CallPhase.RINGING), call
    untried = {e for e in free if may_take(scenario, queue, call, e, now)} - call.tried
    if call.phase is CallPhase.QUEUED:
        assert not untried, (call, untried)
        # A round that ended (someone was tried, nobody is left) pauses for `retry`.
        assert not call.tried or call.retry_at is not None, call
    progress_due = call.progress_at is not None and call.progress_at <= now
    if config.strategy == "ringall" or (config.strategy == "ringprogressive" and progress_due):
        # Only a higher tier than the lowest ringing may wait (docs: penalty).
        lowest_ringing = min(penalty(queue, e) for e in call.rings) if call.rings else None
        assert lowest_ringing is None or all(penalty(queue, e) > lowest_ringing for e in untried), (
            call,
            untried,
        )
    if config.max_wait and not call.is_callback:
        assert call.entered_at + config.max_wait > now, "a call outstayed max_wait"
    if call.is_callback or not config.announce_frequency:
        assert call.announce_at is None
    else:
        assert call.announce_at is not None
        assert call.announce_at > now, "an announcement is overdue"
    assert call.hops <= MAX_OVERFLOW_HOPS


def check_invariants(scenario: Scenario, sim: Sim, out: list[Command]) -> None:
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
        if isinstance(command, Announce):  # nobody listens to a callback's hold music
            announced = engine.call(command.tenant_id, command.call_id)
            assert announced is not None
            assert not announced.is_callback
    for queue in engine.queues():
        agents = [a for e in queue.enrolled if (a := engine.agent(e)) is not None]
        free = {a.extension_id for a in agents if free_by_the_rules(a, sim.now)}
        assert queue.free == free
        waiting: list[CallState] = []
        for entry in queue.line:
            in_line = engine.call(*entry[3])
            assert in_line is not None
            assert in_line.queue_id == queue.queue_id
            check_waiting_call(scenario, sim, queue, in_line, free)
            waiting.append(in_line)
        listed = queue.config.leave_when_empty
        if listed and all(condition(a, sim.now) in listed for a in agents):
            assert all(c.is_callback for c in waiting), "leave_when_empty"
        assert queue.callbacks == sum(1 for c in waiting if c.is_callback)


def check_arrival(sim: Sim, action: Action, out: list[Command]) -> None:
    """A call that joined a queue on arrival requires its route's skills and its own."""
    queued = [c for c in out if isinstance(c, PublishCallQueued) and c.call_id == action[1]]
    if queued and action[2] in ("+300", "+100", "+101"):
        call = sim.engine.call(T, CallId(action[1]))
        assert call is not None
        route = ROUTE_SKILLS if action[2] == "+300" else {}
        assert dict(call.skills) == {**route, **action[4]}


@dataclass
class RetryPauses:
    """docs/mqtt.md, Rings: an agent whose ring for a call ended unanswered (it
    timed out, or the PBX reported it failed) is not rung again for that call in
    the same queue before the queue's `retry` seconds have passed since.

    Where the rule does not reach: a queue whose `retry` is 0 has no pause, and
    a call that overflows starts afresh in its target queue (even one it left
    before), so an overflow forgets what the call's rings were.
    """

    #: (call_id, extension) -> (queue, when the ring ended, the queue's retry then)
    ended: dict[tuple[str, str], tuple[int, float, int]] = field(default_factory=dict)
    #: (call_id, extension) -> the queue of the ring on now
    ringing_in: dict[tuple[str, str], int] = field(default_factory=dict)
    seen: int = 0

    def retries(self, sim: Sim) -> dict[int, int]:
        return {q.queue_id: q.config.retry for q in sim.engine.queues()}

    def check(
        self,
        sim: Sim,
        action: Action,
        ringing_before: dict[str, list[str]],
        retry_before: dict[int, int],
    ) -> None:
        retry_after = self.retries(sim)

        def retry_of(queue_id: int) -> int:
            # A `set_queue` may change `retry` in the very action: the smaller counts.
            return min(retry_before.get(queue_id, 0), retry_after.get(queue_id, 0))

        if action[0] in ("fail", "fail_ringing", "fail_echo"):
            call_id = action[1]
            before = ringing_before.get(call_id, [])
            extension = action[2] if action[0] == "fail" else (before[0] if before else None)
            key = (call_id, extension or "")
            if extension in before and key in self.ringing_in:
                queue_id = self.ringing_in.pop(key)
                self.ended[key] = (queue_id, sim.now, retry_of(queue_id))
        for at, command in sim.timed[self.seen :]:
            if isinstance(command, Ring):
                key = (command.call_id, command.extension)
                if key in self.ended:
                    queue_id, ended_at, retry = self.ended.pop(key)
                    # A queue whose `retry` became shorter since (0: no pause)
                    # goes by the shorter one.
                    retry = min(retry, retry_of(queue_id))
                    if queue_id == command.queue_id:
                        assert at >= ended_at + retry, (
                            f"{command.extension} rung again for {command.call_id} at {at}, "
                            f"{at - ended_at:g} s after its ring ended unanswered (retry {retry})"
                        )
                self.ringing_in[key] = command.queue_id
            elif isinstance(command, CancelRing):
                key = (command.call_id, command.extension)
                queue_id_of_ring = self.ringing_in.pop(key, None)
                if command.reason is CancelReason.TIMEOUT and queue_id_of_ring is not None:
                    self.ended[key] = (queue_id_of_ring, at, retry_of(queue_id_of_ring))
            elif isinstance(command, PublishCallOverflowed):
                self.forget(command.call_id)
        self.seen = len(sim.timed)
        # Rings the PBX failed, or that ended with their call, are no longer on.
        ringing_now = {(c, e) for c, extensions in sim.ringing().items() for e in extensions}
        for key in [k for k in self.ringing_in if k not in ringing_now]:
            del self.ringing_in[key]
        for call_id in {k[0] for k in self.ended}:
            if sim.engine.call(T, CallId(call_id)) is None:
                self.forget(call_id)

    def forget(self, call_id: str) -> None:
        for key in [k for k in self.ended if k[0] == call_id]:
            del self.ended[key]


def final_outcomes(log: list[Command]) -> Counter[str]:
    """How many times each call ended: answered and hung up, abandoned, or sent away."""
    finals: Counter[str] = Counter()
    for command in log:
        if isinstance(
            command,
            (PublishCallAbandoned, PublishCallCompleted, RouteToExtension, RouteToHangup),
        ):
            finals[command.call_id] += 1
    return finals


@settings(max_examples=300, deadline=None)
# Scripts of 20 events or more: shorter ones rarely get as far as an answer,
# an overflow or a callback.
@given(scenario=scenarios(ALL_STRATEGIES), script=st.lists(actions, min_size=20, max_size=60))
def test_invariants_hold_over_any_sequence_of_events(
    scenario: Scenario, script: list[Action]
) -> None:
    sim = scenario.build()
    arrivals: Counter[str] = Counter()
    pauses = RetryPauses(seen=len(sim.timed))
    for action in script:
        ringing_before, retry_before = sim.ringing(), pauses.retries(sim)
        out = play(sim, action)
        check_invariants(scenario, sim, out)
        pauses.check(sim, action, ringing_before, retry_before)
        if action[0] == "arrive":
            check_arrival(sim, action, out)
            if out:  # not a duplicate: the call_id (new, or forgotten) starts a call
                arrivals[action[1]] += 1
    # Every call ends in exactly one final state: hang everything up, remove
    # the queues (callbacks outlive their callers' hangups), and count.
    for call_id in CALLS:
        sim.hangup(call_id)
    sim.configure(ev.QueueRemoved(QueueId(1)), ev.QueueRemoved(QueueId(2)))
    sim.advance(100)
    assert list(sim.engine.calls()) == []
    assert final_outcomes(sim.log) == arrivals
    # every ring that was started was ended: answered, cancelled or failed
    assert not sim.ringing()


@settings(max_examples=150, deadline=None)
@given(
    scenario=scenarios(RESTARTABLE),
    script=st.lists(events, min_size=10, max_size=40),
    cut=st.integers(0, 40),
)
def test_a_restart_at_any_point_changes_nothing_that_follows(
    scenario: Scenario, script: list[Action], cut: int
) -> None:
    """Run the same script twice, once with a restart in the middle: same commands after it.

    Not for `random` and `wrandom`: their generator's state is not stored (a
    restart draws anew).
    """
    straight = scenario.build()
    restarted = scenario.build()
    for i, action in enumerate(script):
        if i == cut:
            assert [c for c in restarted.restart() if isinstance(c, Ring | CancelRing)] == []
        expected = play(straight, action)
        assert play(restarted, action) == expected


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios(RESTARTABLE), script=st.lists(events, min_size=10, max_size=40))
def test_ranked_free_agents_choose_as_ranking_all_of_them_would(
    scenario: Scenario, script: list[Action]
) -> None:
    """The ordered free agents (`engine.free_agents`) are only a faster way to the same choice.

    The same script runs twice, once with every queue's ordered index switched
    off, so that each ring is chosen by ranking all the eligible agents.
    """
    indexed = scenario.build()
    ranked_everything = scenario.build()
    for queue in ranked_everything.engine.queues():
        queue.ranked = None
    real_rank_free_agents = Engine._rank_free_agents

    def without_index(engine: Engine, queue: QueueState) -> None:
        real_rank_free_agents(engine, queue)
        if engine is ranked_everything.engine:
            queue.ranked = None  # a live strategy change would build it again

    Engine._rank_free_agents = without_index  # type: ignore[method-assign, assignment]
    try:
        for action in script:
            assert play(ranked_everything, action) == play(indexed, action)
    finally:
        Engine._rank_free_agents = real_rank_free_agents  # type: ignore[method-assign]


# Rounds and pauses need agents who come and go while a call rings, and small
# steps of time around the ring timeouts and retry pauses: a script of its own.
round_events = st.one_of(
    st.tuples(
        st.just("arrive"), st.sampled_from(CALLS[:2]), st.just("+100"), st.just(0), st.just({})
    ),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 2.5, 5.0, 10.0])),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 2.5, 5.0, 10.0])),
    st.tuples(st.just("fail_ringing"), st.sampled_from(CALLS[:2]), st.sampled_from(RingFailure)),
    st.tuples(
        st.just("presence"),
        st.sampled_from(EXTENSIONS[:3]),
        st.sampled_from([Presence.AVAILABLE, Presence.PAUSED]),
    ),
    st.tuples(
        st.just("device"),
        st.sampled_from(EXTENSIONS[:3]),
        st.sampled_from([DeviceState.IDLE, DeviceState.IN_USE]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    strategy=ALL_STRATEGIES,
    retry=st.sampled_from([3, 5, 12]),
    script=st.lists(
        st.one_of(round_events, st.tuples(st.just("restart"), st.just(0.0))),
        min_size=10,
        max_size=50,
    ),
)
def test_no_agent_is_rung_again_for_a_call_before_the_retry_pause_is_over(
    strategy: str, retry: int, script: list[Action]
) -> None:
    sim = Sim(strategy, agents=3, timeout=10, retry=retry)
    pauses = RetryPauses(seen=len(sim.timed))
    for action in script:
        ringing_before, retry_before = sim.ringing(), pauses.retries(sim)
        play(sim, action)
        pauses.check(sim, action, ringing_before, retry_before)
