"""Capacity planning on the real engine: a discrete-event simulation on a virtual clock.

`simulate(scenario, workload)` plays the part of the PBX and of the callers around an
`Engine`: calls arrive (Poisson, per queue, at a rate that may change per interval),
rung agents answer after a short ring delay (or, with the agents' no-answer
probability, let the ring time out), talk for a drawn handle time and hang up, and
callers whose patience runs out hang up while waiting. The engine decides who rings,
exactly as in production; the simulation only reacts to its commands.

The loop is pure: no I/O, no asyncio, no wall clock. It merges a heap of future PBX
actions with `engine.next_deadline()` and feeds the engine each input at its time, the
way the service does in real time (STYLE.md §2).

Randomness: one `random.Random(seed)` owns the run. It seeds one child stream for each
queue's callers (interarrival gap, handle time and patience are drawn together at each
arrival) and one for the agents (answer or not). So a caller's whole life is the same
whatever the staffing, which is what lets `staff_for` compare agent counts with common
random numbers.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ringmaster.engine import events as ev
from ringmaster.engine.commands import CancelRing, Ring, RouteToExtension, RouteToHangup
from ringmaster.engine.core import Engine
from ringmaster.engine.model import (
    CallId,
    DidRoute,
    Extension,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    OverflowTarget,
    Presence,
    QueueId,
    QueueTarget,
    Tenant,
    TenantId,
)
from ringmaster.provision import AgentEntry, ProvisionFile, QueueEntry


class SimulationError(Exception):
    """The scenario or the workload cannot be simulated as given."""


# --- what is simulated ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuePlan:
    """One queue of the scenario, as the simulation addresses it."""

    key: str  # the queue_number: what `--rate KEY=R` names
    name: str
    tenant_id: TenantId
    queue_id: QueueId
    did: str  # calls for this queue arrive on this DID
    agents: int
    wrapup_time: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """The engine's configuration, the agents to log in, and the queues to feed."""

    config: tuple[ev.ConfigEvent, ...]
    logins: tuple[ev.AgentPresenceChanged, ...]
    queues: tuple[QueuePlan, ...]

    def queue(self, key: str) -> QueuePlan:
        """The queue whose queue_number (or name) is `key`."""
        found = [q for q in self.queues if key in (q.key, q.name)]
        if len(found) != 1:
            known = ", ".join(q.key for q in self.queues)
            how = "no" if not found else "more than one"
            raise SimulationError(f"{how} queue {key!r} (queues: {known})")
        return found[0]


def single_queue(
    agents: int,
    strategy: str = "leastrecent",
    *,
    timeout: int = 15,
    retry: int = 5,
    wrapup: int = 0,
) -> Scenario:
    """One tenant, one queue "600" on DID "+600", and `agents` agents "101", "102", ..."""
    spec = ProvisionFile.model_validate(
        {
            "tenant": [{"id": 1, "name": "Simulated"}],
            "queue": [
                {
                    "tenant_id": 1,
                    "queue_number": "600",
                    "name": "Queue",
                    "strategy": strategy,
                    "timeout": timeout,
                    "retry": retry,
                    "wrapup_time": wrapup,
                }
            ],
        }
    )
    return scenario_from_spec(spec, staff={"600": agents})


def scenario_from_spec(spec: ProvisionFile, staff: Mapping[str, int] | None = None) -> Scenario:
    """Build a scenario from a checked provisioning file (see `provision.check_file`).

    Args:
        spec: The file's content.
        staff: Queue key -> agent count. Such a queue gets that many fresh agents
            instead of the ones the file lists (for "what if we had N agents").
    """
    staff = dict(staff or {})
    config: list[ev.ConfigEvent] = [
        ev.TenantSaved(Tenant(TenantId(t.id), t.name)) for t in spec.tenant
    ]
    ext_ids: dict[tuple[int, str], ExtensionId] = {}

    skills = {(e.tenant_id, e.number): e.skills for e in spec.extension}

    def extension(tenant_id: int, number: str) -> ExtensionId:
        key = (tenant_id, number)
        if key not in ext_ids:
            ext_ids[key] = ExtensionId(len(ext_ids) + 1)
            config.append(
                ev.ExtensionSaved(
                    Extension(ext_ids[key], TenantId(tenant_id), number, skills=skills.get(key, {}))
                )
            )
        return ext_ids[key]

    for e in spec.extension:
        extension(e.tenant_id, e.number)
    queue_ids = {(q.tenant_id, q.queue_number): QueueId(i) for i, q in enumerate(spec.queue, 1)}
    plans: list[QueuePlan] = []
    enrolled: set[ExtensionId] = set()
    for index, q in enumerate(spec.queue, start=1):
        queue_id = QueueId(index)
        queue = q.config(queue_id, _overflow(q, queue_ids, extension))
        config.append(ev.QueueSaved(queue))
        count = staff.pop(q.queue_number, None)
        if count is not None:
            agents = [AgentEntry(extension=f"s{q.queue_number}.{i}") for i in range(1, count + 1)]
        else:
            agents = list(q.agents or ())
        numbers = [agent.extension for agent in agents]
        for position, agent in enumerate(agents):
            extension_id = extension(q.tenant_id, agent.extension)
            config.append(ev.AgentEnrolled(queue_id, extension_id, agent.options(position)))
            enrolled.add(extension_id)
        routed = [
            r.did
            for r in spec.did_route
            if r.tenant_id == q.tenant_id and r.queue == q.queue_number
        ]
        did = routed[0] if routed else f"+sim{index}"  # a queue without a DID still gets calls
        if not routed:
            config.append(
                ev.DidRouteSaved(DidRoute(TenantId(q.tenant_id), did, QueueTarget(queue_id)))
            )
        plans.append(
            QueuePlan(
                q.queue_number,
                q.name,
                TenantId(q.tenant_id),
                queue_id,
                did,
                len(numbers),
                queue.wrapup_time,
            )
        )
    if staff:
        raise SimulationError(f"no queue {', '.join(map(repr, staff))} to staff")
    # Routes of the file that point at queues; routes to extensions carry no simulated calls.
    for r in spec.did_route:
        if r.queue is not None:
            target = QueueTarget(queue_ids[(r.tenant_id, r.queue)])
            config.append(
                ev.DidRouteSaved(DidRoute(TenantId(r.tenant_id), r.did, target, r.skills))
            )
    numbers_of = {extension_id: key for key, extension_id in ext_ids.items()}
    logins = tuple(
        ev.AgentPresenceChanged(TenantId(numbers_of[e][0]), numbers_of[e][1], Presence.AVAILABLE)
        for e in sorted(enrolled)
    )
    return Scenario(tuple(config), logins, tuple(plans))


class HandleDistribution(enum.Enum):
    """How handle (talk) times are drawn."""

    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"


@dataclass(frozen=True, slots=True)
class Workload:
    """The traffic and the callers' and agents' behaviour.

    Attributes:
        rates: Queue key -> calls per hour, one value per interval of `interval_s`
            seconds; the last value holds after the schedule ends.
        handle: The handle-time distribution, of mean `handle_mean_s` (for lognormal,
            `handle_sigma` is the sigma of the underlying normal).
        patience_mean_s: Callers hang up after an exponential wait of this mean; None:
            callers never give up.
        no_answer: The probability that a rung agent lets the ring time out.
        ring_delay_s: How long an agent who answers lets the phone ring first.
        wrapup_s: If set, every queue's wrap-up time (else each queue's own).
        calls: Stop arrivals after this many calls (all queues together), or
        duration_s: stop arrivals at this time; whichever comes first.
        warmup_s: Calls arriving before this time are simulated but not counted.
        sl_threshold_s: The service-level threshold T.
        drain_s: After arrivals stop, how long to wait for waiting calls to end.
        seed: The seed of the run's only source of randomness.
    """

    rates: Mapping[str, Sequence[float]]
    interval_s: float = 3600.0
    handle: HandleDistribution = HandleDistribution.EXPONENTIAL
    handle_mean_s: float = 180.0
    handle_sigma: float = 0.8
    patience_mean_s: float | None = None
    no_answer: float = 0.0
    ring_delay_s: float = 3.0
    wrapup_s: int | None = None
    calls: int | None = 10_000
    duration_s: float | None = None
    warmup_s: float = 0.0
    sl_threshold_s: float = 20.0
    drain_s: float = 4 * 3600.0
    seed: int = 1


# --- what comes out --------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    """A queue's running counts; `QueueResult.of` turns them into figures."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    rejected: int = 0
    answered_within: int = 0
    abandoned_within: int = 0
    waited: int = 0  # answered later than the ring delay: no agent took it at once
    talk_s: float = 0.0
    busy_s: float = 0.0  # talk + wrap-up of answered calls, clipped at the end
    longest_wait_s: float = 0.0
    waits: list[float] = field(default_factory=list)  # answered calls, in answer order


def _percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted data (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class QueueResult:
    """One queue's figures for the calls that arrived after the warm-up.

    The service levels follow Asterisk's queues.conf (configs/samples/queues.conf.sample,
    `servicelevel`): "SL = (total calls answered within threshold / total calls
    answered) * 100" and "SL2 = ((calls answered within threshold + calls abandoned
    within threshold) / (answered calls + abandoned calls)) * 100". SL2 thus counts a
    caller who gave up quickly as served in time. Both are fractions here, not percents.
    """

    queue: str
    name: str
    agents: int
    offered: int
    answered: int
    abandoned: int
    rejected: int
    waiting_at_end: int
    service_level: float
    service_level_2: float
    sl_threshold_s: float
    prob_wait: float  # share of answered calls no agent took at once (Erlang C's P(wait))
    asa_s: float
    aht_s: float
    abandon_rate: float
    occupancy: float
    longest_wait_s: float
    wait_p50_s: float
    wait_p90_s: float
    wait_p99_s: float
    waits: tuple[float, ...] = field(repr=False, compare=False)

    @classmethod
    def of(cls, plan: QueuePlan, tally: _Tally, threshold: float, span_s: float) -> QueueResult:
        """The figures of one queue's tally over a run of `span_s` seconds."""
        answered, abandoned = tally.answered, tally.abandoned
        ordered = sorted(tally.waits)
        ended = answered + abandoned
        capacity = plan.agents * span_s
        return cls(
            queue=plan.key,
            name=plan.name,
            agents=plan.agents,
            offered=tally.offered,
            answered=answered,
            abandoned=abandoned,
            rejected=tally.rejected,
            waiting_at_end=tally.offered - answered - abandoned - tally.rejected,
            service_level=tally.answered_within / answered if answered else 0.0,
            service_level_2=(tally.answered_within + tally.abandoned_within) / ended
            if ended
            else 0.0,
            sl_threshold_s=threshold,
            prob_wait=tally.waited / answered if answered else 0.0,
            asa_s=sum(tally.waits) / answered if answered else 0.0,
            aht_s=tally.talk_s / answered if answered else 0.0,
            abandon_rate=abandoned / ended if ended else 0.0,
            occupancy=min(1.0, tally.busy_s / capacity) if capacity > 0 else 0.0,
            longest_wait_s=tally.longest_wait_s,
            wait_p50_s=_percentile(ordered, 50),
            wait_p90_s=_percentile(ordered, 90),
            wait_p99_s=_percentile(ordered, 99),
            waits=tuple(tally.waits),
        )

    def to_json(self) -> dict[str, object]:
        """The figures as JSON-ready data (without the individual waits)."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "waits"}


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a run produced: per-queue figures and the run's own size."""

    queues: tuple[QueueResult, ...]
    calls: int  # every call simulated, warm-up included
    simulated_s: float
    seed: int

    def queue(self, key: str) -> QueueResult:
        """The result of the queue whose key is `key`."""
        return next(q for q in self.queues if q.queue == key)


# --- the loop -------------------------------------------------------------------------------

#: The engine keeps what changed until asked (`take_changes`), for the store; nothing
#: stores a simulation, so it is asked now and then only to keep memory flat.
_TAKE_CHANGES_EVERY = 4096

# PBX actions, in the order they happen when due at the same instant.
_ANSWER, _HANGUP, _ABANDON, _ARRIVE = range(4)


@dataclass(slots=True)
class _Call:
    queue: int  # index into scenario.queues
    arrived: float
    handle_s: float
    counted: bool  # arrived after the warm-up
    answered_at: float | None = None


Progress = Callable[[int], None]


def simulate(  # noqa: PLR0912, PLR0915 - one loop, kept together so that it reads as one
    scenario: Scenario, workload: Workload, progress: Progress | None = None
) -> SimulationResult:
    """Run the workload against the real engine configured as `scenario`.

    Args:
        scenario: Queues, agents and routes (all agents available at time 0).
        workload: Traffic, behaviour, run length and seed.
        progress: Called with the number of calls so far, every 1,000 arrivals.

    Returns:
        The figures per queue, for the calls that arrived after the warm-up.
    """
    _check(scenario, workload)
    master = random.Random(workload.seed)
    caller_rngs = [random.Random(master.getrandbits(64)) for _ in scenario.queues]
    agents_rng = random.Random(master.getrandbits(64))
    strategy_rng = random.Random(master.getrandbits(64))  # the `random` strategy's draws
    draw_handle = _handle_sampler(workload)
    patience_rate = 1.0 / workload.patience_mean_s if workload.patience_mean_s else 0.0
    rates = [[r / 3600.0 for r in workload.rates.get(q.key, (0.0,))] for q in scenario.queues]
    interval = workload.interval_s
    wrapups = [
        q.wrapup_time if workload.wrapup_s is None else workload.wrapup_s for q in scenario.queues
    ]
    ring_delay, no_answer = workload.ring_delay_s, workload.no_answer
    threshold, warmup = workload.sl_threshold_s, workload.warmup_s
    max_calls = workload.calls if workload.calls is not None else math.inf
    stop_at = workload.duration_s if workload.duration_s is not None else math.inf

    # Nothing is sent about a call after it ends, so the engine need not remember it.
    engine = Engine(ended_call_ttl=0.0, rng=strategy_rng)
    for event in (*scenario.config, *scenario.logins):
        engine.handle(event, 0.0)
    if workload.wrapup_s is not None:
        for plan in scenario.queues:
            queue = engine.queue(plan.queue_id)
            assert queue is not None  # the scenario's own queue
            saved = ev.QueueSaved(replace(queue.config, wrapup_time=workload.wrapup_s))
            engine.handle(saved, 0.0)
    engine.take_changes()

    tallies = [_Tally() for _ in scenario.queues]
    calls: dict[str, _Call] = {}
    pending: dict[tuple[str, str], int] = {}  # (call, extension) -> token of its answer
    heap: list[tuple[float, int, int, int, str, str]] = []  # (when, kind, seq, token, call, ext)
    seq = itertools.count()
    push, pop = heapq.heappush, heapq.heappop

    def next_arrival(index: int, now: float) -> float:
        # Poisson with a piecewise-constant rate: memorylessness lets a gap that
        # crosses an interval boundary be drawn afresh from the boundary.
        schedule = rates[index]
        rng = caller_rngs[index]
        while True:
            slot = int(now // interval)
            rate = schedule[min(slot, len(schedule) - 1)]
            end = (slot + 1) * interval if slot < len(schedule) - 1 else math.inf
            if rate > 0:
                gap = rng.expovariate(rate)
                if now + gap < end:
                    return now + gap
            if end == math.inf:
                return math.inf
            now = end

    arrivals_due = 0  # _ARRIVE entries in the heap: at most one per queue
    for index in range(len(scenario.queues)):
        first = next_arrival(index, 0.0)
        if first < stop_at:
            push(heap, (first, _ARRIVE, next(seq), index, "", ""))
            arrivals_due += 1

    arrived = 0
    waiting = 0  # calls not yet answered, abandoned or rejected
    now = 0.0
    since_changes = 0
    drain_until = math.inf

    def commands(out: Sequence[object], now: float) -> None:
        nonlocal waiting
        for command in out:
            kind = type(command)
            if kind is Ring:
                assert isinstance(command, Ring)
                if no_answer and agents_rng.random() < no_answer:
                    continue  # let it ring: the engine's own timeout ends it
                token = next(seq)
                pending[(command.call_id, command.extension)] = token
                push(
                    heap,
                    (now + ring_delay, _ANSWER, token, token, command.call_id, command.extension),
                )
            elif kind is CancelRing:
                assert isinstance(command, CancelRing)
                pending.pop((command.call_id, command.extension), None)
            elif kind is RouteToHangup or kind is RouteToExtension:
                # Rejected, or overflowed out of the queues: the call leaves the simulation.
                assert isinstance(command, RouteToHangup | RouteToExtension)
                call = calls.pop(command.call_id, None)
                if call is not None:
                    waiting -= 1
                    if call.counted:
                        tallies[call.queue].rejected += 1

    while True:
        deadline = engine.next_deadline()
        if heap and (deadline is None or heap[0][0] < deadline):
            now, kind, _, token, call_id, extension = pop(heap)
        elif deadline is not None:
            now = deadline
            commands(engine.handle_timer(now), now)
            if now > drain_until:
                break
            continue
        else:
            break
        if now > drain_until:
            break
        if kind == _ARRIVE:
            index = token
            arrivals_due -= 1
            if arrived >= max_calls:  # another queue's arrival took the last one
                if arrivals_due == 0:
                    drain_until = now + workload.drain_s
                continue
            plan = scenario.queues[index]
            rng = caller_rngs[index]
            arrived += 1
            call_id = str(arrived)
            handle_s = draw_handle(rng)
            patience = rng.expovariate(patience_rate) if patience_rate else math.inf
            call = _Call(index, now, handle_s, now >= warmup)
            calls[call_id] = call
            waiting += 1
            if call.counted:
                tallies[index].offered += 1
            if patience < math.inf:
                push(heap, (now + patience, _ABANDON, next(seq), 0, call_id, ""))
            following = next_arrival(index, now)
            if arrived < max_calls and following < stop_at:
                push(heap, (following, _ARRIVE, next(seq), index, "", ""))
                arrivals_due += 1
            elif arrivals_due == 0 and drain_until == math.inf:
                # The last arrival: what still waits gets `drain_s` to end.
                drain_until = now + workload.drain_s
            out = engine.handle(ev.CallArrived(plan.tenant_id, CallId(call_id), plan.did), now)
            commands(out, now)
            if progress is not None and arrived % 1000 == 0:
                progress(arrived)
        elif kind == _ANSWER:
            if pending.get((call_id, extension)) != token:
                continue  # cancelled while it rang
            del pending[(call_id, extension)]
            call = calls[call_id]
            plan = scenario.queues[call.queue]
            out = engine.handle(ev.RingAnswered(plan.tenant_id, CallId(call_id), extension), now)
            call.answered_at = now
            waiting -= 1
            wait = now - call.arrived
            push(heap, (now + call.handle_s, _HANGUP, next(seq), 0, call_id, ""))
            if call.counted:
                tally = tallies[call.queue]
                tally.answered += 1
                tally.waits.append(wait)
                tally.talk_s += call.handle_s
                tally.busy_s += call.handle_s + wrapups[call.queue]
                if wait <= threshold:
                    tally.answered_within += 1
                if wait > ring_delay:
                    tally.waited += 1
                tally.longest_wait_s = max(tally.longest_wait_s, wait)
            commands(out, now)
        elif kind == _HANGUP:
            call = calls.pop(call_id)
            out = engine.handle(
                ev.CallHungUp(scenario.queues[call.queue].tenant_id, CallId(call_id)), now
            )
            commands(out, now)
        else:  # _ABANDON
            gone = calls.get(call_id)
            if gone is None or gone.answered_at is not None:
                continue
            del calls[call_id]
            waiting -= 1
            if gone.counted:
                tally = tallies[gone.queue]
                tally.abandoned += 1
                if now - gone.arrived <= threshold:
                    tally.abandoned_within += 1
                tally.longest_wait_s = max(tally.longest_wait_s, now - gone.arrived)
            out = engine.handle(
                ev.CallHungUp(scenario.queues[gone.queue].tenant_id, CallId(call_id)), now
            )
            commands(out, now)
        since_changes += 1
        if since_changes >= _TAKE_CHANGES_EVERY:
            engine.take_changes()
            since_changes = 0
        if arrivals_due == 0 and waiting == 0:
            break  # every call was answered, abandoned or rejected

    end = now
    for call in calls.values():  # still talking or still waiting at the end
        if not call.counted:
            continue
        tally = tallies[call.queue]
        if call.answered_at is None:
            tally.longest_wait_s = max(tally.longest_wait_s, end - call.arrived)
        else:
            # Talk and wrap-up after the end of the run are not occupancy. (Wrap-ups
            # of calls that ended just before the end overrun it a little too.)
            busy_until = call.answered_at + call.handle_s + wrapups[call.queue]
            tally.busy_s -= max(0.0, busy_until - end)
    span = max(end - warmup, 1e-9)
    results = tuple(
        QueueResult.of(plan, tally, threshold, span)
        for plan, tally in zip(scenario.queues, tallies, strict=True)
    )
    return SimulationResult(results, arrived, end, workload.seed)


def _handle_sampler(workload: Workload) -> Callable[[random.Random], float]:
    mean = workload.handle_mean_s
    if workload.handle is HandleDistribution.EXPONENTIAL:
        return lambda rng: rng.expovariate(1.0 / mean)
    sigma = workload.handle_sigma
    mu = math.log(mean) - sigma * sigma / 2  # so that the lognormal's mean is `mean`
    return lambda rng: rng.lognormvariate(mu, sigma)


def _check(scenario: Scenario, workload: Workload) -> None:
    keys = {q.key for q in scenario.queues}
    unknown = [key for key in workload.rates if key not in keys]
    if unknown:
        raise SimulationError(f"a rate for an unknown queue: {', '.join(unknown)}")
    if not any(any(r > 0 for r in rates) for rates in workload.rates.values()):
        raise SimulationError("no queue has calls: give a rate")
    if any(r < 0 for rates in workload.rates.values() for r in rates):
        raise SimulationError("rates cannot be negative")
    if workload.calls is None and workload.duration_s is None:
        raise SimulationError("give a number of calls or a duration")
    if not 0.0 <= workload.no_answer < 1.0:
        raise SimulationError("the no-answer probability must be in [0, 1)")
    if workload.handle_mean_s <= 0 or workload.interval_s <= 0:
        raise SimulationError("the mean handle time and the interval must be positive")


# --- staffing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaffingStep:
    """One candidate agent count tried by `staff_for`, and how it did."""

    agents: int
    service_level: float
    meets: bool
    calls: int  # simulated for this candidate


@dataclass(frozen=True, slots=True)
class StaffingAnswer:
    """The smallest agent count that met the target, and how it was found.

    Attributes:
        agents: That count, or None if even `max_agents` did not meet the target.
        steps: Every count simulated, in the order tried.
        result: The run with `agents` agents (None when not found).
    """

    agents: int | None
    steps: tuple[StaffingStep, ...]
    result: SimulationResult | None


def staff_for(
    build: Callable[[int], Scenario],
    workload: Workload,
    *,
    queue: str,
    target: float,
    threshold_s: float,
    max_agents: int = 2000,
    on_step: Callable[[StaffingStep], None] | None = None,
) -> StaffingAnswer:
    """The smallest number of agents for which `queue` answers `target` of calls in time.

    "In time" is Asterisk's SL (answered within `threshold_s` / answered). Every
    candidate runs the same workload with the same seed (common random numbers: the
    same callers, with the same handle times and patience), so that the comparison
    between two counts is not drowned in noise. The search starts at the offered load
    (Erlangs, rounded up), steps up by growing strides (the first of about its square
    root, as in square-root staffing) until a count meets the target, then bisects.

    Args:
        build: Agent count -> the scenario with that many agents in `queue`.
        workload: What to run; its threshold is replaced by `threshold_s`.
        queue: The key of the queue to staff.
        target: The service level to reach, as a fraction (0.8 for 80%).
        threshold_s: The service-level threshold T, in seconds.
        max_agents: Give up above this many agents.
        on_step: Told about each candidate as soon as it has run.
    """
    workload = _with_threshold(workload, threshold_s)
    rates = workload.rates.get(queue, ())
    load = max(rates, default=0.0) * workload.handle_mean_s / 3600.0
    tried: dict[int, SimulationResult] = {}
    steps: list[StaffingStep] = []

    def meets(agents: int) -> bool:
        result = simulate(build(agents), workload)
        tried[agents] = result
        level = result.queue(queue).service_level
        ok = level >= target
        steps.append(StaffingStep(agents, level, ok, result.calls))
        if on_step is not None:
            on_step(steps[-1])
        return ok

    low = 0  # the largest count known to fail (0 agents answer nothing)
    start = min(max(1, math.ceil(load)), max_agents)
    stride = max(1, math.ceil(math.sqrt(load)))
    candidate = start
    while not meets(candidate):
        low = candidate
        if candidate >= max_agents:
            return StaffingAnswer(None, tuple(steps), None)
        candidate = min(candidate + stride, max_agents)
        stride *= 2
    high = candidate
    while high - low > 1:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return StaffingAnswer(high, tuple(steps), tried[high])


def _with_threshold(workload: Workload, threshold_s: float) -> Workload:
    return replace(workload, sl_threshold_s=threshold_s)


def _overflow(
    queue: QueueEntry,
    queue_ids: dict[tuple[int, str], QueueId],
    extension: Callable[[int, str], ExtensionId],
) -> OverflowTarget:
    """The queue's overflow target, by the simulation's own ids."""
    target = queue.overflow
    if target.type == "queue" and target.queue_number is not None:
        key = (queue.tenant_id, target.queue_number)
        if key not in queue_ids:
            raise SimulationError(
                f"queue {queue.queue_number!r} overflows to queue {target.queue_number!r},"
                " which the file does not define"
            )
        return QueueTarget(queue_ids[key])
    if target.type == "extension" and target.extension is not None:
        return ExtensionTarget(extension(queue.tenant_id, target.extension))
    return HangupTarget()
