"""A supervisor's controls through the daemon's API, to the PBX over a real mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringmaster.daemon.broker import MosquittoProcess

from ..api.helpers import QUEUE
from .test_api_live import live

pytestmark = pytest.mark.integration


async def test_a_pause_reaches_the_pbx_and_shows_once_the_pbx_confirms_it(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with live(mosquitto, tmp_path, agents=1) as (pbx, api):
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "available")

        response = await api.post(
            "/api/agents/1/101/presence", json={"state": "paused", "reason": "lunch"}
        )
        assert response.status_code == 202, response.text
        assert response.json()["state"] == "available"
        asked = await pbx.expect("cmd/agent_state")
        assert {k: asked[k] for k in ("extension", "state", "reason")} == {
            "extension": "101",
            "state": "paused",
            "reason": "lunch",
        }
        # The request is published with the turn that handled it: the agent is as it was.
        agents = (await api.get("/api/queues/1/agents")).json()
        assert [(a["number"], a["status"]) for a in agents] == [("101", "available")]

        # The PBX applies it and confirms, as for any pause.
        await pbx.send("agent/state", extension="101", state="paused", reason="lunch")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "paused")
        agents = (await api.get("/api/queues/1/agents")).json()
        assert [(a["number"], a["status"]) for a in agents] == [("101", "paused")]


async def test_a_waiting_call_moved_to_another_queue_rings_its_agent(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with live(mosquitto, tmp_path, agents=1) as (pbx, api):
        # Support (700) with its own agent, 150, logged in; Sales' 101 is not.
        made = await api.post("/api/extensions", json={"tenant_id": 1, "number": "150"})
        assert made.status_code == 201, made.text
        support = await api.post("/api/queues", json=QUEUE)
        assert support.status_code == 201, support.text
        support_id = support.json()["id"]
        enrolled = await api.post(
            f"/api/queues/{support_id}/agents", json={"extension_id": made.json()["id"]}
        )
        assert enrolled.status_code == 201, enrolled.text
        await pbx.send("agent/state", extension="150", state="available")
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "150")

        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("event/call/queued", lambda p: p["call_id"] == "c1")
        response = await api.post("/api/calls/1/c1/move", json={"queue_id": support_id})
        assert response.status_code == 200, response.text
        assert (response.json()["queue_id"], response.json()["ringing"]) == (support_id, ["150"])

        overflowed = await pbx.expect("event/call/overflowed", lambda p: p["call_id"] == "c1")
        assert (overflowed["reason"], overflowed["target"]) == (
            "supervisor",
            {"type": "queue", "queue_id": support_id},
        )
        queued = await pbx.expect(
            "event/call/queued", lambda p: p["call_id"] == "c1" and p["queue_id"] == support_id
        )
        assert queued["position"] == 1
        ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        assert (ring["extension"], ring["queue_id"]) == ("150", support_id)
        assert (await api.get("/api/queues/1/calls")).json() == []
