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

from ringmaster.planning.simulate.results import QueueResult, SimulationResult
from ringmaster.planning.simulate.run import Progress, simulate
from ringmaster.planning.simulate.scenario import (
    HandleDistribution,
    QueuePlan,
    Scenario,
    SimulationError,
    Workload,
    scenario_from_spec,
    single_queue,
)
from ringmaster.planning.simulate.staffing import StaffingAnswer, StaffingStep, staff_for

__all__ = [
    "HandleDistribution",
    "Progress",
    "QueuePlan",
    "QueueResult",
    "Scenario",
    "SimulationError",
    "SimulationResult",
    "StaffingAnswer",
    "StaffingStep",
    "Workload",
    "scenario_from_spec",
    "simulate",
    "single_queue",
    "staff_for",
]
