"""`ringmaster agent` and `ringmaster call` as processes of their own, against a running daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringmaster.daemon.broker import MosquittoProcess

from ..api.helpers import QUEUE
from .pbx import ringmaster_command
from .test_api_live import live

pytestmark = pytest.mark.integration


async def ringmaster(api_url: str, *args: str) -> tuple[int, str, str]:
    """Run ``ringmaster ARGS --api URL`` as a supervisor would in a terminal."""
    return await ringmaster_command(*args, "--api", api_url)


async def test_agent_pause_asks_the_pbx_and_the_agent_is_paused_once_it_confirms(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with live(mosquitto, tmp_path, agents=1) as (pbx, api):
        url = str(api.base_url).rstrip("/")
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "available")

        done = await ringmaster(url, "agent", "pause", "101", "--tenant", "1", "--reason", "lunch")

        assert done == (
            0,
            "asked the PBX to set agent 101 paused (lunch); it is available until the PBX"
            " confirms\n",
            "",
        )
        asked = await pbx.expect("cmd/agent_state")
        assert (asked["extension"], asked["state"], asked["reason"]) == ("101", "paused", "lunch")
        await pbx.send("agent/state", extension="101", state="paused", reason="lunch")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "paused")

        done = await ringmaster(url, "agent", "unpause", "101", "--tenant", "1")
        assert done[0] == 0, done
        asked = await pbx.expect("cmd/agent_state", lambda p: p["state"] == "available")
        assert asked["extension"] == "101"

        # An agent the tenant does not have: the API's 404, one line, nothing sent.
        refused = await ringmaster(url, "agent", "logout", "999", "--tenant", "1")
        assert refused[:2] == (1, "")
        assert refused[2].startswith("ringmaster agent logout: ")
        assert "404" in refused[2]


async def test_call_move_priority_and_hangup_act_on_a_waiting_call(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with live(mosquitto, tmp_path, agents=1) as (pbx, api):
        url = str(api.base_url).rstrip("/")
        support = await api.post("/api/queues", json=QUEUE)  # 700 Support, nobody enrolled
        assert support.status_code == 201, support.text
        support_id = support.json()["id"]
        for call_id in ("c1", "c2"):
            await pbx.send("call/arrived", call_id=call_id, did="+100")
        await pbx.expect("event/call/queued", lambda p: p["call_id"] == "c2")

        # The queue by the number a supervisor sees on the wallboard.
        moved = await ringmaster(url, "call", "move", "c1", "700", "--tenant", "1")
        assert moved == (0, "call c1 moved to queue 700 Support\n", "")
        overflowed = await pbx.expect("event/call/overflowed", lambda p: p["call_id"] == "c1")
        assert overflowed["target"] == {"type": "queue", "queue_id": support_id}
        assert [
            c["call_id"] for c in (await api.get(f"/api/queues/{support_id}/calls")).json()
        ] == ["c1"]

        raised = await ringmaster(url, "call", "priority", "c2", "7", "--tenant", "1")
        assert raised == (0, "call c2 now has priority 7\n", "")
        assert [c["priority"] for c in (await api.get("/api/queues/1/calls")).json()] == [7]

        hung_up = await ringmaster(url, "call", "hangup", "c2", "--tenant", "1")
        assert hung_up == (0, "call c2 hung up\n", "")
        route = await pbx.expect("cmd/route", lambda p: p["call_id"] == "c2")
        assert route["target"] == {"type": "hangup", "reason": "supervisor"}

        # Mistakes are one line each, and change nothing.
        no_queue = await ringmaster(url, "call", "move", "c1", "999", "--tenant", "1")
        assert no_queue == (
            1,
            "",
            "ringmaster call move: tenant 1 has no queue numbered '999'\n",
        )
        no_value = await ringmaster(url, "call", "send", "c1", "--tenant", "1")
        assert no_value == (
            1,
            "",
            "ringmaster call send: give the extension number to send it to\n",
        )
        gone = await ringmaster(url, "call", "hangup", "c2", "--tenant", "1")
        assert gone[:2] == (1, "")
        assert "404" in gone[2]
        assert [
            c["call_id"] for c in (await api.get(f"/api/queues/{support_id}/calls")).json()
        ] == ["c1"]
