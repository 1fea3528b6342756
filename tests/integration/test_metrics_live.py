"""``GET /metrics`` of a daemon serving a call through a real mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ringmaster.daemon.broker import MosquittoProcess

from .pbx import new_store, pbx_on
from .test_api_live import daemon_api

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**given: str) -> frozenset[tuple[str, str]]:
    return frozenset(given.items())


async def test_a_served_call_moves_the_counters_and_histograms(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    async with pbx_on(mosquitto, prefix) as pbx, daemon_api(mosquitto, prefix, db) as api:
        before = samples((await api.get("/metrics")).text)
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "available")
        await pbx.send("call/arrived", call_id="c1", did="+100", caller_id="5550001")
        ring = await pbx.expect("cmd/ring")
        await pbx.send("call/answered", call_id="c1", extension="101", ring_id=ring["ring_id"])
        await pbx.expect("event/call/answered")
        await pbx.send("call/hangup", call_id="c1")
        await pbx.expect("event/call/completed")
        await pbx.send_raw("call/hangup", b"{not json")
        await pbx.expect("error")
        response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    after = samples(response.text)
    queue = {"tenant": "1", "queue": "1"}
    assert ("ringmaster_calls_offered_total", labels(**queue)) not in before
    assert after["ringmaster_calls_offered_total", labels(**queue)] == 1
    assert after["ringmaster_calls_answered_total", labels(**queue)] == 1
    assert after["ringmaster_calls_abandoned_total", labels(**queue)] == 0
    wait = labels(**queue, outcome="answered")
    assert after["ringmaster_call_wait_seconds_count", wait] == 1
    assert after["ringmaster_call_talk_seconds_count", labels(**queue)] == 1
    assert after["ringmaster_ring_decision_seconds_count", labels(turn="arrival")] == 1
    assert after["ringmaster_inbound_rejected_total", labels(reason="malformed")] == 1
    turns = "ringmaster_turn_duration_seconds_count", labels()
    assert after[turns] > before[turns]
    assert after["ringmaster_mqtt_connected", labels()] == 1
    assert after["ringmaster_queue_agents", labels(**queue, state="available")] == 1
    assert after["ringmaster_queue_calls_waiting", labels(**queue)] == 0
