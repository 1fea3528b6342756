"""What is simulated: the queues and agents (a scenario) and the traffic (a workload)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ringmaster.engine import events as ev
from ringmaster.engine.model import (
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
