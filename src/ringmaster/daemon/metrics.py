"""The daemon's Prometheus metrics (served on the admin API's `GET /metrics`).

Two sources, two costs:

- What is true now (calls waiting, the longest wait, agents by state, the MQTT
  link, the outbox) is read when Prometheus scrapes, by `_Collector`: no turn
  pays for a gauge, however often it changes.
- What happened (calls offered, answered, abandoned, overflowed, rejected, their
  waits and talk times) is counted from the commands each turn returns, once per
  turn in `observe_turn`: a command is looked up by its type, and only the few
  that mark a step of a call's life count. Each is one call's step in one queue,
  so nothing is counted twice.

Labels are bounded: tenant, queue, state, reason, outcome, turn; never a call id
nor an extension number. Each daemon has a registry of its own (tests run
several in one process). docs/metrics.md lists every metric.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ringmaster.daemon.inbox import Received
from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    Command,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    PublishCallRejected,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.core import Engine
from ringmaster.engine.model import AgentStatus, CallKey, QueueId, TenantId

#: Waiting times in seconds: the usual service-level thresholds (20, 30, 60 s) are bounds.
WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
#: Talk times in seconds.
TALK_BUCKETS = (10, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)
#: From taking an arrival in to storing its first ring: milliseconds when the daemon
#: decides at once, the call's wait when it waited for an agent.
DECISION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)
#: A turn: handling a batch, storing it (one commit) and handing its messages out.
TURN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

#: How often the event loop's lag is probed.
LAG_PROBE_S = 0.5

#: Arrivals remembered until their first ring: the calls waiting unrung, and a bound
#: in case a call ends in a way no command shows (its oldest forgotten first).
MAX_PENDING_ARRIVALS = 100_000

_QUEUE = ("tenant", "queue")


def _engine_rejection(error: str) -> str:
    # The engine's RejectInput says why in words; the metric needs one of a few.
    if error.startswith("unknown call"):
        return "unknown_call"
    if error.startswith("unknown extension"):
        return "unknown_extension"
    return "refused"


@dataclass(slots=True)
class _QueueSeries:
    """One queue's counters and histograms, looked up once rather than on every call."""

    offered: Counter
    answered: Counter
    abandoned: Counter
    wait_answered: Histogram
    wait_abandoned: Histogram
    talk: Histogram


class DaemonMetrics:
    """The daemon's metrics in a registry of their own.

    Args:
        engine: The engine whose queues are read at each scrape.
        clock: Wall-clock time, the service's (for the longest wait).
        mqtt_connected: Whether the MQTT link is up now.
        outbox_depth: How many stored messages are not yet published and confirmed.
        per_process: Also the process's figures and the event loop's lag; a cluster
            shard's leaves them to its node (`NodeMetrics`), which serves them once.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.time,
        mqtt_connected: Callable[[], bool] = lambda: False,
        outbox_depth: Callable[[], int] = lambda: 0,
        per_process: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        """Where every metric of this daemon is registered."""
        registry = self.registry
        self._offered = Counter(
            "ringmaster_calls_offered",
            "Calls that joined a queue's waiting line (a call overflowing into another "
            "queue is offered to both).",
            _QUEUE,
            registry=registry,
        )
        self._answered = Counter(
            "ringmaster_calls_answered", "Calls answered by an agent.", _QUEUE, registry=registry
        )
        self._abandoned = Counter(
            "ringmaster_calls_abandoned",
            "Calls whose caller hung up while waiting.",
            _QUEUE,
            registry=registry,
        )
        self._overflowed = Counter(
            "ringmaster_calls_overflowed",
            "Calls that left their queue unanswered for its overflow target.",
            (*_QUEUE, "reason"),
            registry=registry,
        )
        self._rejected = Counter(
            "ringmaster_calls_rejected",
            "Calls that never reached a queue (hung up by ringmaster).",
            ("tenant", "reason"),
            registry=registry,
        )
        self._wait = Histogram(
            "ringmaster_call_wait_seconds",
            "From a call's arrival to its answer or its abandonment.",
            (*_QUEUE, "outcome"),
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self._talk = Histogram(
            "ringmaster_call_talk_seconds",
            "From a call's answer to its end.",
            _QUEUE,
            buckets=TALK_BUCKETS,
            registry=registry,
        )
        self._decision = Histogram(
            "ringmaster_ring_decision_seconds",
            "From taking a call/arrived in to storing its first ring (ready to publish): "
            'turn="arrival" when the turn that handled the arrival rang, "later" when '
            "the call first waited for an agent.",
            ("turn",),
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self._turn = Histogram(
            "ringmaster_turn_duration_seconds",
            "One turn of the daemon: a batch of messages handled, stored and handed out.",
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self._inbound_rejected = Counter(
            "ringmaster_inbound_rejected",
            "Inbound messages refused (answered on P/T/error): by the contract (topic, "
            "too_large, malformed, invalid, internal) or by the engine's rules "
            "(unknown_call, unknown_extension, refused).",
            ("reason",),
            registry=registry,
        )
        self._lag = _loop_lag_gauge(registry) if per_process else None
        registry.register(_Collector(engine, clock, mqtt_connected, outbox_depth))
        if per_process:
            # The process's CPU time, memory and open files (Linux only: /proc), under
            # the names every Prometheus client gives them (`process_...`).
            ProcessCollector(registry=registry)
        self._queues: dict[tuple[TenantId, QueueId], _QueueSeries] = {}
        #: Arrivals queued without a ring yet, and when they were taken in.
        self._pending: dict[CallKey, float] = {}

    @property
    def pending_arrivals(self) -> int:
        """Calls taken in and waiting for their first ring (for the tests)."""
        return len(self._pending)

    def render(self) -> bytes:
        """Every metric in Prometheus's text format (version 0.0.4)."""
        return generate_latest(self.registry)

    def inbound_rejected(self, reason: str) -> None:
        """Count one inbound message refused before any turn (`ContractError.reason`)."""
        self._inbound_rejected.labels(reason).inc()

    def observe_turn(
        self,
        batch: Iterable[Received],
        commands: Sequence[Command],
        *,
        seconds: float,
        finished: float,
    ) -> None:
        """Count what one turn decided.

        Args:
            batch: The inbound messages the turn handled.
            commands: Every command the turn returned (the queue snapshots aside).
            seconds: How long the turn took, storing included.
            finished: The service's clock once the turn was stored: its rings are
                then handed to the publishers.
        """
        self._turn.observe(seconds)
        arrivals = {
            (event.tenant_id, event.call_id): received.at
            for received in batch
            if isinstance(event := received.event, ev.CallArrived)
        }
        queued: list[CallKey] = []
        pending = self._pending
        for command in commands:
            match command:
                case Ring():
                    key = (command.tenant_id, command.call_id)
                    if (at := arrivals.pop(key, None)) is not None:
                        self._decision.labels("arrival").observe(finished - at)
                    elif (at := pending.pop(key, None)) is not None:
                        self._decision.labels("later").observe(finished - at)
                case PublishCallQueued():
                    queued.append((command.tenant_id, command.call_id))
                case PublishCallAbandoned() | RouteToHangup() | RouteToExtension():
                    # The call leaves ringmaster's hands unrung: it will never ring.
                    key = (command.tenant_id, command.call_id)
                    arrivals.pop(key, None)
                    pending.pop(key, None)
                case _:
                    pass
            self._count(command)
        for key in queued:
            if (at := arrivals.get(key)) is not None:
                pending[key] = at
                if len(pending) > MAX_PENDING_ARRIVALS:
                    del pending[next(iter(pending))]

    def _count(self, command: Command) -> None:
        """Count one call's step, if `command` marks one."""
        match command:
            case PublishCallQueued():
                self._series(command.tenant_id, command.queue_id).offered.inc()
            case PublishCallAnswered():
                series = self._series(command.tenant_id, command.queue_id)
                series.answered.inc()
                series.wait_answered.observe(command.wait_s)
            case PublishCallAbandoned():
                series = self._series(command.tenant_id, command.queue_id)
                series.abandoned.inc()
                series.wait_abandoned.observe(command.wait_s)
            case PublishCallCompleted():
                self._series(command.tenant_id, command.queue_id).talk.observe(command.talk_s)
            case PublishCallOverflowed():
                tenant, queue = str(command.tenant_id), str(command.queue_id)
                self._overflowed.labels(tenant, queue, command.reason).inc()
            case PublishCallRejected():
                self._rejected.labels(str(command.tenant_id), command.reason).inc()
            case RejectInput():
                self._inbound_rejected.labels(_engine_rejection(command.error)).inc()
            case _:
                pass

    def _series(self, tenant_id: TenantId, queue_id: QueueId) -> _QueueSeries:
        series = self._queues.get((tenant_id, queue_id))
        if series is None:
            tenant, queue = str(tenant_id), str(queue_id)
            series = self._queues[(tenant_id, queue_id)] = _QueueSeries(
                offered=self._offered.labels(tenant, queue),
                answered=self._answered.labels(tenant, queue),
                abandoned=self._abandoned.labels(tenant, queue),
                wait_answered=self._wait.labels(tenant, queue, "answered"),
                wait_abandoned=self._wait.labels(tenant, queue, "abandoned"),
                talk=self._talk.labels(tenant, queue),
            )
        return series

    async def watch_loop_lag(self, period: float = LAG_PROBE_S) -> None:
        """Probe the event loop's lag every `period` seconds, until cancelled.

        The lag is how much later than asked a sleep wakes: the time callbacks
        that were due waited behind whatever held the loop (a long turn, a
        blocking call).
        """
        assert self._lag is not None, "a shard's metrics leave the loop's lag to its node"
        await _watch_loop_lag(self._lag, period)


def _loop_lag_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "ringmaster_event_loop_lag_seconds",
        f"How late the event loop last ran a callback due (probed every {LAG_PROBE_S} s).",
        registry=registry,
    )


async def _watch_loop_lag(gauge: Gauge, period: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        gauge.set(max(0.0, loop.time() - due))


class _Collector(Collector):
    """The gauges read at scrape time: the engine's queues, the link, the outbox."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float],
        mqtt_connected: Callable[[], bool],
        outbox_depth: Callable[[], int],
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._mqtt_connected = mqtt_connected
        self._outbox_depth = outbox_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        info = GaugeMetricFamily(
            "ringmaster_queue_info",
            "Always 1: a queue's name, number, strategy and status, to join on (tenant, queue).",
            labels=(*_QUEUE, "name", "number", "strategy", "status"),
        )
        waiting = GaugeMetricFamily(
            "ringmaster_queue_calls_waiting",
            "Calls in a queue's waiting line (queued or ringing), callbacks included.",
            labels=_QUEUE,
        )
        callbacks = GaugeMetricFamily(
            "ringmaster_queue_callbacks_waiting",
            "Callbacks among the calls waiting.",
            labels=_QUEUE,
        )
        longest = GaugeMetricFamily(
            "ringmaster_queue_longest_wait_seconds",
            "How long the longest-waiting call has waited (0 when none waits).",
            labels=_QUEUE,
        )
        agents = GaugeMetricFamily(
            "ringmaster_queue_agents",
            "A queue's enrolled agents by ringmaster's state of them.",
            labels=(*_QUEUE, "state"),
        )
        for queue in self._engine.queues():
            config = queue.config
            snapshot = self._engine.snapshot(config.queue_id, now)
            labels = [str(config.tenant_id), str(config.queue_id)]
            info.add_metric(
                [*labels, config.name, config.queue_number, config.strategy, snapshot.status], 1
            )
            waiting.add_metric(labels, snapshot.waiting)
            callbacks.add_metric(labels, snapshot.callbacks)
            longest.add_metric(labels, snapshot.longest_wait_s)
            for state in AgentStatus:
                agents.add_metric([*labels, state.value], snapshot.agents.get(state.value, 0))
        yield from (info, waiting, callbacks, longest, agents)
        yield GaugeMetricFamily(
            "ringmaster_mqtt_connected",
            "1 while the MQTT link to the broker is up, else 0.",
            value=1 if self._mqtt_connected() else 0,
        )
        yield GaugeMetricFamily(
            "ringmaster_outbox_messages",
            "Stored messages not yet published and confirmed by the broker.",
            value=self._outbox_depth(),
        )


class ShardsCollector(Collector):
    """A cluster node's metrics: every held shard's, each sample labelled with its shard.

    Each shard's `Service` counts in a registry of its own (`DaemonMetrics`); a scrape
    merges their families, adding ``shard="<n>"`` so that series of different shards
    never collide (the process's own figures and the event loop's lag are the node's,
    served once, not per shard). A shard's counters start again from 0 on the node
    that takes it over: Prometheus's ``rate()`` treats that as a counter reset.

    Args:
        shards: The shards this node runs now, with their metrics.
    """

    def __init__(self, shards: Callable[[], Iterable[tuple[int, DaemonMetrics]]]) -> None:
        self._shards = shards

    def collect(self) -> Iterator[Metric]:
        """The shards' families, merged by name, each sample with its shard's label."""
        families: dict[str, Metric] = {}
        for shard, metrics in sorted(self._shards(), key=lambda item: item[0]):
            for family in metrics.registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = Metric(family.name, family.documentation, family.type, family.unit)
                    families[family.name] = merged
                merged.samples += [
                    sample._replace(labels={**sample.labels, "shard": str(shard)})
                    for sample in family.samples
                ]
        yield from families.values()


class NodeMetrics:
    """A cluster node's metrics: its process, its event loop, and its shards' (merged).

    Args:
        shards: The shards the node runs now, with their metrics.
    """

    def __init__(self, shards: Callable[[], Iterable[tuple[int, DaemonMetrics]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        """Served on the node's ``GET /metrics``."""
        ProcessCollector(registry=self.registry)
        self._lag = _loop_lag_gauge(self.registry)
        self.registry.register(ShardsCollector(shards))

    async def watch_loop_lag(self, period: float = LAG_PROBE_S) -> None:
        """Probe the event loop's lag every `period` seconds, until cancelled."""
        await _watch_loop_lag(self._lag, period)
