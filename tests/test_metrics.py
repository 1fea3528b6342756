"""The daemon's Prometheus metrics, against an engine on a virtual clock (tests/engine/sim.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from ringmaster.daemon.inbox import Received
from ringmaster.daemon.metrics import DaemonMetrics
from ringmaster.daemon.mqtt import InboundMessage
from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command
from ringmaster.engine.model import AgentCondition, CallId, Presence, QueueId, QueueTarget
from tests.engine.sim import Sim, T, rings

#: How long the daemon took from taking an arrival in to storing its turn.
DECIDED_IN = 0.004


class Daemon:
    """A Sim whose every step is one of the daemon's turns, observed by `DaemonMetrics`."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.connected = True
        self.outbox = 0
        self.metrics = DaemonMetrics(
            sim.engine,
            clock=lambda: sim.now,
            mqtt_connected=lambda: self.connected,
            outbox_depth=lambda: self.outbox,
        )

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def turn(self, commands: Sequence[Command], batch: Sequence[Received] = ()) -> list[Command]:
        self.metrics.observe_turn(batch, commands, seconds=0.002, finished=self.sim.now)
        return list(commands)

    def arrive(self, call_id: str, did: str = "+100") -> list[Command]:
        event = ev.CallArrived(T, CallId(call_id), did, "5550001", "", 0, {})
        received = Received(
            InboundMessage("rm/1/pbx/call/arrived", b"{}", 1, 0, 1),
            self.sim.now - DECIDED_IN,
            event,
        )
        return self.turn(self.sim.send(event), [received])

    def answer(self, call_id: str, extension: str) -> list[Command]:
        return self.turn(self.sim.answer(call_id, extension))

    def hangup(self, call_id: str) -> list[Command]:
        return self.turn(self.sim.hangup(call_id))

    def advance(self, seconds: float) -> list[Command]:
        return self.turn(self.sim.advance(seconds))

    def value(self, metric: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(metric, labels)

    def queue_value(self, metric: str, queue: int = 1, **labels: str) -> float | None:
        return self.value(metric, tenant=str(T), queue=str(queue), **labels)


def test_queue_gauges_are_read_from_the_engine_when_scraped() -> None:
    daemon = Daemon(Sim("ringall", agents=3))
    assert daemon.queue_value("ringmaster_queue_calls_waiting") == 0
    assert daemon.queue_value("ringmaster_queue_agents", state="available") == 3
    daemon.arrive("c1")
    daemon.sim.advance(7)  # no turn observed: the gauges need none
    assert daemon.queue_value("ringmaster_queue_calls_waiting") == 1
    assert daemon.queue_value("ringmaster_queue_longest_wait_seconds") == 7
    assert daemon.queue_value("ringmaster_queue_agents", state="ringing") == 3
    assert daemon.queue_value("ringmaster_queue_agents", state="available") == 0
    assert daemon.queue_value("ringmaster_queue_agents", state="paused") == 0
    info = daemon.queue_value(
        "ringmaster_queue_info", name="Queue 1", number="601", strategy="ringall", status="active"
    )
    assert info == 1


def test_a_served_call_moves_the_counters_and_histograms_once() -> None:
    daemon = Daemon(Sim("ringall", agents=2))
    ((_, extension), *_) = rings(daemon.arrive("c1"))
    daemon.advance(4)
    daemon.answer("c1", extension)
    daemon.advance(10)
    daemon.hangup("c1")
    daemon.advance(300)
    assert daemon.queue_value("ringmaster_calls_offered_total") == 1
    assert daemon.queue_value("ringmaster_calls_answered_total") == 1
    assert daemon.queue_value("ringmaster_calls_abandoned_total") == 0
    assert daemon.queue_value("ringmaster_call_wait_seconds_count", outcome="answered") == 1
    assert daemon.queue_value("ringmaster_call_wait_seconds_sum", outcome="answered") == 4
    assert (
        daemon.queue_value("ringmaster_call_wait_seconds_bucket", le="5.0", outcome="answered") == 1
    )
    assert (
        daemon.queue_value("ringmaster_call_wait_seconds_bucket", le="2.0", outcome="answered") == 0
    )
    assert daemon.queue_value("ringmaster_call_talk_seconds_count") == 1
    assert daemon.queue_value("ringmaster_call_talk_seconds_sum") == 10
    assert daemon.value("ringmaster_ring_decision_seconds_count", turn="arrival") == 1
    arrival = daemon.value("ringmaster_ring_decision_seconds_sum", turn="arrival")
    assert arrival == pytest.approx(DECIDED_IN)
    assert daemon.value("ringmaster_turn_duration_seconds_count") == 6


def test_an_abandoned_call_is_counted_with_its_wait() -> None:
    daemon = Daemon(Sim("ringall", agents=1))
    daemon.arrive("c1")
    daemon.advance(7)
    daemon.hangup("c1")
    assert daemon.queue_value("ringmaster_calls_abandoned_total") == 1
    assert daemon.queue_value("ringmaster_call_wait_seconds_sum", outcome="abandoned") == 7
    assert daemon.queue_value("ringmaster_calls_answered_total") == 0


def test_overflowed_and_rejected_calls_are_counted_by_reason() -> None:
    daemon = Daemon(Sim("ringall", agents=1, logged_in=False, max_wait=30))
    daemon.arrive("c1")
    daemon.advance(31)  # max_wait, overflow to a hangup
    daemon.arrive("c2", did="+999")  # no route: rejected
    daemon.arrive("c3")
    daemon.advance(31)
    assert daemon.metrics.pending_arrivals == 0  # both left unrung: neither is waited for
    overflowed = daemon.queue_value("ringmaster_calls_overflowed_total", reason="max_wait")
    assert overflowed == 2
    assert daemon.value("ringmaster_calls_rejected_total", tenant=str(T), reason="no_route") == 1
    assert daemon.queue_value("ringmaster_calls_offered_total") == 2  # c2 reached no queue
    # The rejected call's hangup and its rejection event are one call.
    assert (
        sum(
            sample.value
            for metric in daemon.registry.collect()
            if metric.name == "ringmaster_calls_rejected"
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
        == 1
    )


def test_a_call_refused_on_arrival_is_never_waited_for() -> None:
    daemon = Daemon(
        Sim("ringall", agents=1, logged_in=False, join_empty=frozenset({AgentCondition.LOGGED_OUT}))
    )
    daemon.arrive("c1")
    assert daemon.value("ringmaster_calls_rejected_total", tenant=str(T), reason="queue_empty") == 1
    assert daemon.metrics.pending_arrivals == 0


def test_a_call_overflowing_into_another_queue_is_offered_to_both() -> None:
    sim = Sim("ringall", agents=1, logged_in=False, max_wait=30)
    sim.add_queue(2, "ringall", enrolled=[1])
    sim.update_queue(1, overflow=QueueTarget(QueueId(2)))
    daemon = Daemon(sim)
    daemon.arrive("c1")
    daemon.advance(31)
    assert daemon.queue_value("ringmaster_calls_offered_total", queue=1) == 1
    assert daemon.queue_value("ringmaster_calls_offered_total", queue=2) == 1
    assert daemon.queue_value("ringmaster_calls_overflowed_total", queue=1, reason="max_wait") == 1
    assert daemon.queue_value("ringmaster_queue_calls_waiting", queue=2) == 1


def test_a_call_rung_only_after_waiting_is_timed_as_a_later_turn() -> None:
    daemon = Daemon(Sim("ringall", agents=1, logged_in=False))
    daemon.arrive("c1")
    daemon.arrive("c2")
    daemon.advance(5)
    daemon.hangup("c2")  # never rung: never timed
    daemon.turn(daemon.sim.login("101"))
    assert daemon.value("ringmaster_ring_decision_seconds_count", turn="arrival") is None
    assert daemon.value("ringmaster_ring_decision_seconds_count", turn="later") == 1
    later = daemon.value("ringmaster_ring_decision_seconds_sum", turn="later")
    assert later == pytest.approx(5 + DECIDED_IN)
    assert daemon.metrics.pending_arrivals == 0


def test_inbound_rejections_are_counted_by_reason() -> None:
    daemon = Daemon(Sim("ringall", agents=2))
    daemon.turn(daemon.sim.hangup("nobody"))  # the engine's: unknown call
    daemon.turn(daemon.sim.presence(Presence.AVAILABLE, "999"))  # unknown extension
    daemon.arrive("c1")
    daemon.answer("c1", "101")
    daemon.answer("c1", "102")  # answered already, by another: refused by the rules
    daemon.metrics.inbound_rejected("malformed")  # the contract's, before any turn
    assert daemon.value("ringmaster_inbound_rejected_total", reason="unknown_call") == 1
    assert daemon.value("ringmaster_inbound_rejected_total", reason="unknown_extension") == 1
    assert daemon.value("ringmaster_inbound_rejected_total", reason="refused") == 1
    assert daemon.value("ringmaster_inbound_rejected_total", reason="malformed") == 1


def test_the_daemons_health() -> None:
    daemon = Daemon(Sim("ringall", agents=1))
    daemon.outbox = 12
    assert daemon.value("ringmaster_mqtt_connected") == 1
    assert daemon.value("ringmaster_outbox_messages") == 12
    daemon.connected = False
    assert daemon.value("ringmaster_mqtt_connected") == 0
    assert daemon.value("ringmaster_event_loop_lag_seconds") == 0
    cpu = daemon.value("process_cpu_seconds_total")
    assert cpu is not None
    assert cpu > 0


def test_labels_never_name_a_call_or_an_extension() -> None:
    daemon = Daemon(Sim("ringall", agents=2))
    ((_, extension), *_) = rings(daemon.arrive("call-xyz"))
    daemon.answer("call-xyz", extension)
    daemon.hangup("call-xyz")
    daemon.turn(daemon.sim.hangup("call-unknown"))
    values = {
        value
        for metric in daemon.registry.collect()
        for sample in metric.samples
        for value in sample.labels.values()
    }
    assert values  # the test looks at something
    assert not {v for v in values if "call-" in v or v in ("101", "102")}


def test_each_daemon_has_a_registry_of_its_own() -> None:
    one, two = Daemon(Sim("ringall", agents=1)), Daemon(Sim("ringall", agents=1))
    one.arrive("c1")
    assert one.queue_value("ringmaster_calls_offered_total") == 1
    assert two.queue_value("ringmaster_calls_offered_total") is None


def test_the_text_format() -> None:
    daemon = Daemon(Sim("ringall", agents=1))
    daemon.arrive("c1")
    text = daemon.metrics.render().decode()
    assert "# TYPE ringmaster_calls_offered_total counter" in text
    assert 'ringmaster_calls_offered_total{queue="1",tenant="1"} 1.0' in text
    assert "# TYPE ringmaster_call_wait_seconds histogram" in text
