"""The admin API served by the daemon itself: changes take effect on the next call."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from ringmaster.broker import MosquittoProcess, free_port
from ringmaster.service import Service
from ringmaster.settings import SettingsError, load_settings

from .pbx import daemon_in_process, pbx_on, provisioned, write_config

pytestmark = pytest.mark.integration


def new_prefix() -> str:
    return f"rm{uuid.uuid4().hex[:10]}"


async def test_an_agent_enrolled_through_the_api_is_rung(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db, port = new_prefix(), tmp_path / "rm.sqlite3", free_port()
    await provisioned(db, write_config(tmp_path / "c.toml", "ringall", agents=1))
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        daemon_in_process(mosquitto, prefix, db, api_port=port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api,
    ):
        # A new extension, enrolled live: no restart, no provisioning.
        made = await api.post("/api/extensions", json={"tenant_id": 1, "number": "150"})
        assert made.status_code == 201, made.text
        extension_id = made.json()["id"]
        enrolled = await api.post("/api/queues/1/agents", json={"extension_id": extension_id})
        assert enrolled.status_code == 201, enrolled.text
        await pbx.send("agent/state", extension="150", state="available")
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "150")

        await pbx.send("call/arrived", call_id="c1", did="+100")
        ring = await pbx.expect("cmd/ring", lambda p: p["extension"] == "150")
        assert ring["call_id"] == "c1"
        calls = (await api.get("/api/queues/1/calls")).json()
        assert [(c["call_id"], c["state"], c["ringing"]) for c in calls] == [
            ("c1", "ringing", ["150"])
        ]
        agents = {a["number"]: a["status"] for a in (await api.get("/api/queues/1/agents")).json()}
        assert agents == {"101": "logged_out", "150": "ringing"}

        # Unenrolled live: its ring for the queue is cancelled.
        gone = await api.delete(f"/api/queues/1/agents/{extension_id}")
        assert gone.status_code == 204
        cancel = await pbx.expect("cmd/cancel_ring", lambda p: p["extension"] == "150")
        assert cancel["reason"] == "agent_unavailable"

        # Made inactive live: the waiting call stays, a new one is rejected.
        inactive = await api.patch("/api/queues/1", json={"status": "inactive"})
        assert inactive.json()["status"] == "inactive"
        await pbx.send("call/arrived", call_id="c2", did="+100")
        rejected = await pbx.expect("event/call/rejected")
        assert (rejected["call_id"], rejected["reason"]) == ("c2", "queue_inactive")
        calls = (await api.get("/api/queues/1/calls")).json()
        assert [c["call_id"] for c in calls] == ["c1"]


async def test_the_documented_curl_examples(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    prefix, db, port = new_prefix(), tmp_path / "rm.sqlite3", free_port()
    await provisioned(db, Path(__file__).parents[2] / "config" / "demo.toml")
    async with (
        daemon_in_process(mosquitto, prefix, db, api_port=port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api,
    ):
        body = (
            '{"tenant_id": 1, "name": "Support", "queue_number": "700",'
            ' "strategy": "ringall", "timeout": 20, "status": "active"}'
        )
        made = await api.post(
            "/api/queues", content=body, headers={"Content-Type": "application/json"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["queue_number"] == "700"
        queue = (await api.get("/api/queues/1")).json()
        assert [a["id"] for a in queue["agents"]] == [1, 2, 3]


async def test_the_daemon_refuses_an_open_api_beyond_loopback(tmp_path: Path) -> None:
    settings = load_settings(
        None, database={"path": tmp_path / "rm.sqlite3"}, api={"host": "0.0.0.0"}
    )
    with pytest.raises(SettingsError, match=r"api\.host"):
        await Service(settings).run()
    assert not (tmp_path / "rm.sqlite3").exists()  # refused before anything started
