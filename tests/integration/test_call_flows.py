"""The daemon end to end through a real mosquitto and a real SQLite file, per strategy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ringmaster.daemon.broker import MosquittoProcess

from .pbx import Pbx, pbx_and_daemon, pbx_and_daemon_process

pytestmark = pytest.mark.integration

STRATEGIES = ["ringall", "leastrecent", "roundrobin"]


@pytest.fixture(params=STRATEGIES)
async def pbx(
    request: pytest.FixtureRequest, mosquitto: MosquittoProcess, tmp_path: Path
) -> AsyncIterator[Pbx]:
    """A PBX, and the daemon in this process: queue 600 of each strategy, agents 101 and 102."""
    async with pbx_and_daemon(mosquitto, tmp_path, request.param) as pbx:
        yield pbx


def for_call(call_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda payload: payload["call_id"] == call_id


async def test_a_call_from_arrival_to_completion(pbx: Pbx) -> None:
    await pbx.send("agent/state", extension="101", state="available")
    await pbx.expect("event/agent/state", lambda p: p["extension"] == "101")
    await pbx.send("call/arrived", call_id="c1", did="+100", caller_id="5551234")
    queued = await pbx.expect("event/call/queued")
    assert (queued["call_id"], queued["position"], queued["did"]) == ("c1", 1, "+100")
    ring = await pbx.expect("cmd/ring")
    assert {k: ring[k] for k in ("call_id", "extension", "timeout", "caller_id")} == {
        "call_id": "c1",
        "extension": "101",
        "timeout": 15,
        "caller_id": "5551234",
    }
    await pbx.send("call/answered", call_id="c1", extension="101")
    answered = await pbx.expect("event/call/answered")
    assert answered["extension"] == "101"
    await pbx.send("call/hangup", call_id="c1")
    completed = await pbx.expect("event/call/completed")
    assert (completed["call_id"], completed["extension"]) == ("c1", "101")
    snapshot = await pbx.expect("state/queue/1", lambda p: p.get("completed") == 1)
    assert snapshot["answered"] == 1
    assert snapshot["agents"]["available"] == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_ring_timeout_moves_on(
    mosquitto: MosquittoProcess, tmp_path: Path, strategy: str
) -> None:
    async with pbx_and_daemon(mosquitto, tmp_path, strategy, timeout=1, retry=0) as pbx:
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("agent/state", extension="102", state="available")
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "102")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        first = await pbx.expect("cmd/ring")
        cancel = await pbx.expect("cmd/cancel_ring")
        assert (cancel["call_id"], cancel["reason"]) == ("c1", "timeout")
        mark = pbx.mark()
        if strategy == "ringall":
            # everyone timed out; with retry 0 everyone is rung again at once
            again = await pbx.expect("cmd/ring", after=mark)
            assert again["call_id"] == "c1"
        else:
            nxt = await pbx.expect("cmd/ring", after=mark)
            assert nxt["extension"] != first["extension"]


async def test_an_abandoned_call_cancels_its_rings(pbx: Pbx) -> None:
    await pbx.send("agent/state", extension="101", state="available")
    await pbx.send("call/arrived", call_id="c1", did="+100")
    await pbx.expect("cmd/ring")
    await pbx.send("call/hangup", call_id="c1", cause="caller")
    cancel = await pbx.expect("cmd/cancel_ring")
    assert (cancel["extension"], cancel["reason"]) == ("101", "caller_hangup")
    abandoned = await pbx.expect("event/call/abandoned")
    assert abandoned["call_id"] == "c1"


async def test_a_malformed_payload_is_answered_on_the_error_topic_and_changes_nothing(
    pbx: Pbx,
) -> None:
    await pbx.send_raw("call/arrived", b"{not json")
    error = await pbx.expect("error")
    assert error["topic"] == f"{pbx.prefix}/1/pbx/call/arrived"
    await pbx.send("call/arrived", call_id="c1", did="+100", priority=10)
    error = await pbx.expect("error", lambda p: "priority" in p["error"])
    assert error["payload"]["call_id"] == "c1"
    await pbx.send("call/answered", call_id="nope", extension="101")
    await pbx.expect("error", lambda p: "unknown call" in p["error"])
    # the daemon is alive and nothing was queued by the bad arrival
    await pbx.send("call/arrived", call_id="c1", did="+100")
    queued = await pbx.expect("event/call/queued")
    assert queued["position"] == 1
    assert pbx.count("event/call/queued") == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_kill_9_in_the_middle_of_calls_loses_nothing_and_rings_nobody_twice(
    mosquitto: MosquittoProcess, tmp_path: Path, strategy: str
) -> None:
    async with pbx_and_daemon_process(mosquitto, tmp_path, strategy, timeout=60) as (pbx, daemon):
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("agent/state", extension="102", state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        await pbx.send("call/answered", call_id="c1", extension=ring["extension"])
        await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1")
        await pbx.send("call/arrived", call_id="c2", did="+100")
        ring2 = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c2")
        await pbx.send("call/arrived", call_id="c3", did="+100")
        await pbx.expect("event/call/queued", lambda p: p["call_id"] == "c3")

        mark = pbx.mark()
        daemon.kill()
        await pbx.expect("status", lambda p: p["state"] == "offline", after=mark)
        # While it is down, c1 ends: the broker keeps the message for it.
        await pbx.send("call/hangup", call_id="c1")
        daemon.start()

        await pbx.expect("event/call/completed", lambda p: p["call_id"] == "c1", after=mark)
        # c2's ring from before the kill is still on: its agent can answer it.
        await pbx.send("call/answered", call_id="c2", extension=ring2["extension"])
        await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c2", after=mark)
        # The agent that c1 freed goes to c3 (under ringall, once c2 no longer rings him).
        ring3 = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c3", after=mark)
        assert ring3["extension"] == ring["extension"]
        await pbx.send("call/answered", call_id="c3", extension=ring3["extension"])
        for call_id in ("c2", "c3"):
            await pbx.send("call/hangup", call_id=call_id)
            await pbx.expect("event/call/completed", for_call(call_id))
        assert daemon.terminate() == 0
        await pbx.expect("status", lambda p: p["state"] == "offline", after=mark + 1)

    rings = [
        (p.payload["call_id"], p.payload["extension"]) for p in pbx.seen if p.topic == "cmd/ring"
    ]
    assert len(rings) == len(set(rings)), rings  # nobody rung twice for the same call
    assert {c for c, _ in rings} == {"c1", "c2", "c3"}
    for call_id in ("c1", "c2", "c3"):
        assert pbx.count("event/call/completed", for_call(call_id)) == 1
        assert pbx.count("event/call/abandoned", for_call(call_id)) == 0
