"""`Sim`: an engine, a virtual clock and a pretend store (after h11's ConnectionPair)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ringmaster.engine import events as ev
from ringmaster.engine.commands import CancelRing, Command, Ring
from ringmaster.engine.core import Engine
from ringmaster.engine.model import (
    CallId,
    DeviceState,
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    Presence,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    RingFailure,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import LiveState, StateChanges
from ringmaster.engine.state import CallState
from ringmaster.engine.strategies import RandomSource

T = TenantId(1)
OTHER = TenantId(2)
C = TypeVar("C")

#: While a test runs, every `Sim` it builds (tests/engine/conftest.py keeps
#: their command streams as a golden record of the scenario tests).
BUILT: list[Sim] | None = None


def of_type(commands: Iterable[Any], kind: type[C]) -> list[C]:
    return [c for c in commands if isinstance(c, kind)]


def rings(commands: Iterable[Command]) -> list[tuple[str, str]]:
    """(call_id, extension) of every Ring, in order."""
    return [(c.call_id, c.extension) for c in of_type(commands, Ring)]


def cancels(commands: Iterable[Command]) -> list[tuple[str, str, str]]:
    return [(c.call_id, c.extension, c.reason.value) for c in of_type(commands, CancelRing)]


@dataclass
class PretendStore:
    """Keeps what `take_changes` hands out, as the SQLite store would."""

    config: list[ev.ConfigEvent] = field(default_factory=list)
    calls: dict[Any, Any] = field(default_factory=dict)
    agents: dict[Any, Any] = field(default_factory=dict)
    queues: dict[Any, Any] = field(default_factory=dict)
    stats: dict[Any, Any] = field(default_factory=dict)

    def apply(self, changes: StateChanges) -> None:
        for call in changes.live.calls:
            self.calls[call.key] = call
        for agent in changes.live.agents:
            self.agents[agent.extension_id] = agent
        for queue in changes.live.queues:
            self.queues[queue.queue_id] = queue
        for stats in changes.live.agent_stats:
            self.stats[(stats.queue_id, stats.extension_id)] = stats
        for key in changes.calls_removed:
            self.calls.pop(key, None)
        for extension_id in changes.agents_removed:
            self.agents.pop(extension_id, None)
        for queue_id in changes.queues_removed:
            self.queues.pop(queue_id, None)
        for stats_key in changes.agent_stats_removed:
            self.stats.pop(stats_key, None)

    def live(self) -> LiveState:
        return LiveState(
            calls=tuple(self.calls.values()),
            agents=tuple(self.agents.values()),
            queues=tuple(self.queues.values()),
            agent_stats=tuple(self.stats.values()),
        )


class Sim:
    """One tenant with one queue (id 1, DID "+100") and its agents, on a virtual clock.

    Extensions are numbered "101", "102", ... with ids 1, 2, ...; queue N has
    the DID "+(99 + N)". Every command the engine returns is also appended to
    `log`. Queue options beyond the named ones (`max_wait=30`, `overflow=...`)
    go straight to queue 1's `QueueConfig`; `rng` feeds `random` and `wrandom`
    and survives restarts (as the service's generator survives nothing: a
    restarted daemon seeds anew, so restart tests leave those two out).
    """

    def __init__(
        self,
        strategy: str = "ringall",
        agents: int = 3,
        *,
        timeout: int = 15,
        retry: int = 5,
        wrapup_time: int = 0,
        logged_in: bool = True,
        rng: RandomSource | None = None,
        **options: Any,
    ) -> None:
        if BUILT is not None:
            BUILT.append(self)
        self.rng = rng
        self.engine = Engine(rng=rng)
        self.now = 1_000.0
        self.store = PretendStore()
        self.log: list[Command] = []
        #: Every command with the virtual time it was returned at (`advance`
        #: returns those of several deadlines at once).
        self.timed: list[tuple[float, Command]] = []
        self.configure(ev.TenantSaved(Tenant(T, "Acme")), ev.TenantSaved(Tenant(OTHER, "Other")))
        for i in range(1, agents + 1):
            self.add_extension(i)
        self.add_queue(
            1,
            strategy,
            timeout=timeout,
            retry=retry,
            wrapup_time=wrapup_time,
            enrolled=range(1, agents + 1),
            **options,
        )
        if logged_in:
            self.login(*(self.number(i) for i in range(1, agents + 1)))

    # --- configuration ------------------------------------------------------

    @staticmethod
    def number(extension_id: int) -> str:
        return str(100 + extension_id)

    def configure(self, *events: ev.ConfigEvent) -> list[Command]:
        out: list[Command] = []
        for event in events:
            self.store.config.append(event)
            out += self.send(event)
        return out

    def add_extension(
        self, extension_id: int, tenant: TenantId = T, *, skills: Mapping[str, int] | None = None
    ) -> list[Command]:
        """Create (or change) extension "1NN"; saving it again changes its skills."""
        return self.configure(
            ev.ExtensionSaved(
                Extension(
                    ExtensionId(extension_id),
                    tenant,
                    self.number(extension_id),
                    skills=dict(skills or {}),
                )
            )
        )

    def add_queue(
        self,
        queue_id: int,
        strategy: str,
        *,
        tenant: TenantId = T,
        timeout: int = 15,
        retry: int = 5,
        wrapup_time: int = 0,
        status: QueueStatus = QueueStatus.ACTIVE,
        enrolled: Iterable[int] = (),
        **options: Any,
    ) -> list[Command]:
        """Create a queue with DID "+(99 + queue_id)"; `options` go to its `QueueConfig`."""
        config = QueueConfig(
            QueueId(queue_id),
            tenant,
            f"Queue {queue_id}",
            str(600 + queue_id),
            strategy,
            timeout,
            status,
            retry,
            wrapup_time,
            **options,
        )
        return self.configure(
            ev.QueueSaved(config),
            *(ev.AgentEnrolled(QueueId(queue_id), ExtensionId(e)) for e in enrolled),
            ev.DidRouteSaved(DidRoute(tenant, f"+{99 + queue_id}", QueueTarget(QueueId(queue_id)))),
        )

    def config(self, queue_id: int = 1) -> QueueConfig:
        queue = self.engine.queue(QueueId(queue_id))
        assert queue is not None
        return queue.config

    def update_queue(self, queue_id: int = 1, **changes: Any) -> list[Command]:
        """Save a queue again with some options changed, as a PATCH does."""
        return self.configure(ev.QueueSaved(replace(self.config(queue_id), **changes)))

    def enrol(self, queue_id: int, extension_id: int, **options: Any) -> list[Command]:
        """Enrol an extension in a queue, or change its enrolment options."""
        return self.configure(
            ev.AgentEnrolled(
                QueueId(queue_id), ExtensionId(extension_id), EnrolmentOptions(**options)
            )
        )

    def route(
        self,
        did: str,
        *,
        queue: int | None = None,
        extension: int | None = None,
        tenant: TenantId = T,
        skills: Mapping[str, int] | None = None,
    ) -> list[Command]:
        target = (
            QueueTarget(QueueId(queue))
            if queue is not None
            else ExtensionTarget(ExtensionId(extension or 0))
        )
        return self.configure(ev.DidRouteSaved(DidRoute(tenant, did, target, dict(skills or {}))))

    # --- what the PBX says --------------------------------------------------------

    def send(self, event: ev.Event) -> list[Command]:
        out = self.engine.handle(event, self.now)
        self.store.apply(self.engine.take_changes())
        self.log += out
        self.timed += [(self.now, c) for c in out]
        return out

    def arrive(
        self,
        call_id: str,
        did: str = "+100",
        *,
        priority: int = 0,
        caller_id: str = "5550001",
        tenant: TenantId = T,
        skills: Mapping[str, int] | None = None,
    ) -> list[Command]:
        return self.send(
            ev.CallArrived(
                tenant, CallId(call_id), did, caller_id, "", priority, dict(skills or {})
            )
        )

    def answer(self, call_id: str, extension: str) -> list[Command]:
        return self.send(ev.RingAnswered(T, CallId(call_id), extension))

    def fail(
        self, call_id: str, extension: str, reason: RingFailure = RingFailure.NO_ANSWER
    ) -> list[Command]:
        return self.send(ev.RingFailed(T, CallId(call_id), extension, reason))

    def hangup(self, call_id: str) -> list[Command]:
        return self.send(ev.CallHungUp(T, CallId(call_id)))

    def callback(self, call_id: str, number: str) -> list[Command]:
        return self.send(ev.CallbackRequested(T, CallId(call_id), number))

    def login(self, *numbers: str) -> list[Command]:
        return self.presence(Presence.AVAILABLE, *numbers)

    def presence(self, presence: Presence, *numbers: str, reason: str = "") -> list[Command]:
        out: list[Command] = []
        for number in numbers:
            out += self.send(ev.AgentPresenceChanged(T, number, presence, reason))
        return out

    def device(self, number: str, state: DeviceState) -> list[Command]:
        return self.send(ev.DeviceStateChanged(T, number, state))

    # --- time and restarts ----------------------------------------------------------

    def advance(self, seconds: float) -> list[Command]:
        """Move the clock on, waking the engine at each deadline on the way."""
        target = self.now + seconds
        out: list[Command] = []
        while (deadline := self.engine.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            due = self.engine.handle_timer(self.now)
            self.timed += [(self.now, c) for c in due]
            out += due
            self.store.apply(self.engine.take_changes())
        self.now = target
        self.log += out
        return out

    def restart(self, down_for: float = 0.0, *, apply_deadlines: bool = True) -> list[Command]:
        """Throw the engine away and build a new one from the pretend store.

        Like the service, apply the deadlines that passed while down only after
        restoring (the service first takes in the broker's backlog; with
        `apply_deadlines=False` the test sends that backlog itself).
        """
        self.now += down_for
        self.engine = Engine(rng=self.rng)
        for event in self.store.config:
            self.engine.handle(event, self.now)
        self.engine.take_changes()
        out = self.engine.restore(self.store.live(), self.now)
        if apply_deadlines:
            out += self.engine.handle_timer(self.now)
        self.store.apply(self.engine.take_changes())
        self.log += out
        self.timed += [(self.now, c) for c in out]
        return out

    # --- looking ------------------------------------------------------------------------

    def ringing(self) -> dict[str, list[str]]:
        """call_id -> extensions ringing for it now."""
        return {
            call.call_id: sorted(self.number(e) for e in call.rings)
            for call in self.engine.calls()
            if call.rings
        }

    def call(self, call_id: str) -> CallState:
        call = self.engine.call(T, CallId(call_id))
        assert call is not None
        return call

    def phase(self, call_id: str) -> str:
        return self.call(call_id).phase.value

    def line(self, queue_id: int = 1) -> list[str]:
        """The call_ids waiting in a queue, best first."""
        queue = self.engine.queue(QueueId(queue_id))
        assert queue is not None
        return [entry[3][1] for entry in queue.line]


def serve(sim: Sim, call_id: str, did: str = "+100", talk_s: float = 10) -> str:
    """Arrive, answer whoever rings, talk, hang up; return who took it."""
    ((_, extension),) = rings(sim.arrive(call_id, did))
    sim.answer(call_id, extension)
    sim.advance(talk_s)
    sim.hangup(call_id)
    return extension


def numbers(extension_ids: Sequence[int]) -> list[str]:
    return [Sim.number(e) for e in extension_ids]


def restart_changes_nothing(
    make: Callable[[], Sim], before: Callable[[Sim], object], after: Callable[[Sim], object]
) -> list[Command]:
    """Play `before`, then `after`, on two sims, one restarted between: same commands.

    Returns the commands of `after` (from the sim that was not restarted).
    """
    straight, restarted = make(), make()
    before(straight)
    before(restarted)
    assert [c for c in restarted.restart() if isinstance(c, Ring | CancelRing)] == []
    start_straight, start_restarted = len(straight.log), len(restarted.log)
    after(straight)
    after(restarted)
    assert restarted.log[start_restarted:] == straight.log[start_straight:]
    return straight.log[start_straight:]
