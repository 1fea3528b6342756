"""The run: the engine on a virtual clock, fed by simulated callers and agents."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ringmaster.engine import events as ev
from ringmaster.engine.commands import CancelRing, Ring, RouteToExtension, RouteToHangup
from ringmaster.engine.core import Engine
from ringmaster.engine.model import CallId
from ringmaster.planning.simulate.results import QueueResult, SimulationResult, Tally
from ringmaster.planning.simulate.scenario import (
    HandleDistribution,
    Scenario,
    SimulationError,
    Workload,
)

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

    # Nothing is sent about a call after it ends, so the engine need not remember it;
    # nothing watches the monitoring events, so the engine need not make them.
    engine = Engine(ended_call_ttl=0.0, rng=strategy_rng, publish_events=False)
    for event in (*scenario.config, *scenario.logins):
        engine.handle(event, 0.0)
    if workload.wrapup_s is not None:
        for plan in scenario.queues:
            queue = engine.queue(plan.queue_id)
            assert queue is not None  # the scenario's own queue
            saved = ev.QueueSaved(replace(queue.config, wrapup_time=workload.wrapup_s))
            engine.handle(saved, 0.0)
    engine.take_changes()

    tallies = [Tally() for _ in scenario.queues]
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

    # The answers to one event's rings are all due at the same instant, with
    # consecutive tokens: nothing else can come between them in the heap. So
    # only the first still pending is in the heap, and the others follow it
    # (`followers`): a `ringall` answer cancels the other 11 before they
    # would come up, and they never go in.
    followers: dict[int, list[tuple[int, str, str]]] = {}

    def push_answers(at: float, due: list[tuple[int, str, str]]) -> None:
        for index, (token, call_id, extension) in enumerate(due):
            if pending.get((call_id, extension)) == token:  # else cancelled: for good
                push(heap, (at, _ANSWER, token, token, call_id, extension))
                if index + 1 < len(due):
                    followers[token] = due[index + 1 :]
                return

    def commands(out: Sequence[object], now: float) -> None:
        nonlocal waiting
        due: list[tuple[int, str, str]] = []
        for command in out:
            if isinstance(command, Ring):
                if no_answer and agents_rng.random() < no_answer:
                    continue  # let it ring: the engine's own timeout ends it
                token = next(seq)
                pending[(command.call_id, command.extension)] = token
                due.append((token, command.call_id, command.extension))
            elif isinstance(command, CancelRing):
                pending.pop((command.call_id, command.extension), None)
            elif isinstance(command, (RouteToHangup, RouteToExtension)):
                # Rejected, or overflowed out of the queues: the call leaves the simulation.
                call = calls.pop(command.call_id, None)
                if call is not None:
                    waiting -= 1
                    if call.counted:
                        tallies[call.queue].rejected += 1
        if due:
            push_answers(now + ring_delay, due)

    # The engine's next deadline changes only when it handles something: asked
    # again after each event, not for each answer that a cancel made void
    # (a `ringall` call leaves 11 of them in the heap).
    deadline = engine.next_deadline()
    while True:
        if heap and (deadline is None or heap[0][0] < deadline):
            now, kind, _, token, call_id, extension = pop(heap)
        elif deadline is not None:
            now = deadline
            commands(engine.handle_timer(now), now)
            deadline = engine.next_deadline()
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
            after = followers.pop(token, None)
            if pending.get((call_id, extension)) != token:
                if after:
                    push_answers(now, after)
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
            if after:
                push_answers(now, after)
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
        deadline = engine.next_deadline()  # each way here handled an event
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
