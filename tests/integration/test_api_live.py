"""The admin API served by the daemon itself: changes take effect on the next call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ringmaster.daemon.broker import MosquittoProcess, free_port
from ringmaster.daemon.service import Service
from ringmaster.settings import SettingsError, load_settings

from ..api.helpers import QUEUE, QUEUE_OPTION_DEFAULTS, agent_out
from .pbx import Pbx, daemon_in_process, new_prefix, new_store, pbx_on, provisioned

pytestmark = pytest.mark.integration


@asynccontextmanager
async def daemon_api(
    mosquitto: MosquittoProcess, prefix: str, db: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The daemon on the store `db`, in this process, and a client of its admin API."""
    port = free_port()
    async with (
        daemon_in_process(mosquitto, prefix, db, api_port=port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api,
    ):
        yield api


@asynccontextmanager
async def live(
    mosquitto: MosquittoProcess, tmp_path: Path, agents: int
) -> AsyncIterator[tuple[Pbx, httpx.AsyncClient]]:
    """A PBX, and the daemon with its API: queue 1 (ringall, DID +100) of `agents` agents."""
    prefix, db = await new_store(tmp_path, "ringall", agents=agents)
    async with pbx_on(mosquitto, prefix) as pbx, daemon_api(mosquitto, prefix, db) as api:
        yield pbx, api


async def patched(api: httpx.AsyncClient, path: str, change: dict[str, Any]) -> None:
    """PATCH `change`: answered 200, the resource reads with it."""
    response = await api.patch(path, json=change)
    assert response.status_code == 200, response.text
    assert {key: response.json()[key] for key in change} == change


async def test_an_agent_enrolled_through_the_api_is_rung(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with live(mosquitto, tmp_path, agents=1) as (pbx, api):
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
        await patched(api, "/api/queues/1", {"status": "inactive"})
        await pbx.send("call/arrived", call_id="c2", did="+100")
        rejected = await pbx.expect("event/call/rejected")
        assert (rejected["call_id"], rejected["reason"]) == ("c2", "queue_inactive")
        calls = (await api.get("/api/queues/1/calls")).json()
        assert [c["call_id"] for c in calls] == ["c1"]


async def test_a_queue_option_changed_through_the_api_takes_effect_live(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with live(mosquitto, tmp_path, agents=2) as (pbx, api):
        await patched(api, "/api/queues/1", {"max_len": 1})

        # Nobody is logged in: the first call waits, the second finds the line full.
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("event/call/queued", lambda p: p["call_id"] == "c1")
        await pbx.send("call/arrived", call_id="c2", did="+100")
        route = await pbx.expect("cmd/route", lambda p: p["call_id"] == "c2")
        assert route["target"] == {"type": "hangup", "reason": "queue_full"}

        # Overflow to an extension instead, given by its number: the next call goes there.
        await patched(api, "/api/queues/1", {"overflow": {"type": "extension", "extension": "102"}})
        await pbx.send("call/arrived", call_id="c3", did="+100")
        route = await pbx.expect("cmd/route", lambda p: p["call_id"] == "c3")
        assert route["target"] == {"type": "extension", "extension": "102"}
        calls = (await api.get("/api/queues/1/calls")).json()
        assert [c["call_id"] for c in calls] == ["c1"]


async def test_an_agent_option_changed_through_the_api_takes_effect_live(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with live(mosquitto, tmp_path, agents=1) as (pbx, api):
        await patched(api, "/api/queues/1/agents/1", {"max_no_answer": 1})
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "available")

        # One unanswered ring is now enough to pause the agent.
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        await pbx.send("call/ring_failed", call_id="c1", extension="101", reason="no_answer")
        paused = await pbx.expect("event/agent/state", lambda p: p["state"] == "paused")
        assert (paused["extension"], paused["reason"]) == ("101", "no_answer")
        agents = (await api.get("/api/queues/1/agents")).json()
        assert [(a["number"], a["status"], a["max_no_answer"]) for a in agents] == [
            ("101", "paused", 1)
        ]


async def test_the_documented_curl_examples(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    prefix, db = new_prefix(), tmp_path / "rm.sqlite3"
    await provisioned(db, Path(__file__).parents[2] / "config" / "demo.toml")
    async with daemon_api(mosquitto, prefix, db) as api:
        body = (
            '{"tenant_id": 1, "name": "Support", "queue_number": "700",'
            ' "strategy": "ringall", "timeout": 20, "status": "active"}'
        )
        made = await api.post(
            "/api/queues", content=body, headers={"Content-Type": "application/json"}
        )
        assert made.status_code == 201, made.text
        assert made.json() == {"id": 4, **QUEUE, **QUEUE_OPTION_DEFAULTS, "agents": []}
        queue = (await api.get("/api/queues/1")).json()
        assert [a["id"] for a in queue["agents"]] == [1, 2, 3]

        # Queue options
        options = await api.patch(
            "/api/queues/4",
            json={
                "max_len": 10,
                "max_wait": 120,
                "overflow": {"type": "queue", "queue_id": 1},
                "join_empty": ["paused", "logged_out"],
                "announce_frequency": 30,
                "penalty_rules": [{"after": 30, "max_penalty": 2}],
            },
        )
        assert options.status_code == 200, options.text
        night = await api.patch(
            "/api/queues/4", json={"overflow": {"type": "extension", "extension": "106"}}
        )
        assert night.json()["overflow"] == {"type": "extension", "extension": "106"}

        # Agent options
        grace = await api.post(
            "/api/extensions", json={"tenant_id": 1, "number": "107", "name": "Grace"}
        )
        assert grace.json()["id"] == 7
        enrolled = await api.post(
            "/api/queues/4/agents", json={"extension_id": 7, "penalty": 2, "wrapup_time": 10}
        )
        assert enrolled.json() == {
            **agent_out(7, "107", "Grace", 0, penalty=2, wrapup_time=10),
            "status": "logged_out",
            "state_since": None,
        }
        promoted = await api.patch(
            "/api/queues/4/agents/7", json={"penalty": 0, "max_no_answer": 3, "wrapup_time": None}
        )
        assert promoted.status_code == 200, promoted.text
        assert (await api.patch("/api/queues/4/agents/8", json={})).json() == {
            "detail": "extension 8 is not in queue 4"
        }

        # Skills
        skilled = await api.patch(
            "/api/extensions/7", json={"skills": {"spanish": 8, "billing": 5}}
        )
        assert skilled.json()["skills"] == {"spanish": 8, "billing": 5}
        route = await api.post(
            "/api/did-routes",
            json={"tenant_id": 1, "did": "+15551230010", "queue_id": 4, "skills": {"spanish": 5}},
        )
        assert route.status_code == 201, route.text


async def test_a_change_is_in_the_audit_trail_after_a_restart(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    async with daemon_api(mosquitto, prefix, db) as api:
        patched = await api.patch("/api/queues/1", json={"timeout": 30})
        assert patched.status_code == 200, patched.text
    async with daemon_api(mosquitto, prefix, db) as api:
        page = await api.get("/api/audit", params={"resource": "queue", "resource_id": "1"})
    created, changed = page.json()["items"]
    assert (created["actor"], created["action"], created["after"]["timeout"]) == (
        "provision",
        "create",
        15,
    )
    assert changed["before"] == created["after"]
    assert (changed["actor"], changed["action"], changed["after"]["timeout"]) == (
        "local",
        "update",
        30,
    )


async def test_the_daemon_refuses_an_open_api_beyond_loopback(tmp_path: Path) -> None:
    settings = load_settings(
        None, database={"path": tmp_path / "rm.sqlite3"}, api={"host": "0.0.0.0"}
    )
    with pytest.raises(SettingsError, match=r"api\.host"):
        await Service(settings).run()
    assert not (tmp_path / "rm.sqlite3").exists()  # refused before anything started
