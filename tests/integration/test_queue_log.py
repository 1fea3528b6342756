"""Asterisk's queue_log of real calls through mosquitto: the API's lines and the file's."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ringmaster.daemon.broker import MosquittoProcess, free_port
from ringmaster.settings import load_settings

from .pbx import new_store, pbx_on, running

pytestmark = pytest.mark.integration


async def test_an_answered_call_and_an_abandoned_one_in_the_api_and_the_file(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    port, path = free_port(), tmp_path / "log" / "queue_log"
    settings = load_settings(
        None,
        mqtt={"url": mosquitto.url, "topic_prefix": prefix, "client_id": f"rm-{prefix}"},
        database={"path": db},
        api={"enabled": True, "port": port},
        history={"queue_log_file": path, "queue_log_agent": "PJSIP/{number}"},
    )
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        running(settings),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api,
    ):
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "available")
        await pbx.send("call/arrived", call_id="c1", did="+100", caller_id="5551234")
        ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        await pbx.send("call/arrived", call_id="c2", did="+100", caller_id="5559876")
        await pbx.expect("event/call/queued", lambda p: p["call_id"] == "c2")
        await pbx.send("call/answered", call_id="c1", extension="101")
        await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1")
        await pbx.send("call/hangup", call_id="c2")
        await pbx.expect("event/call/abandoned", lambda p: p["call_id"] == "c2")
        await pbx.send("call/hangup", call_id="c1")
        await pbx.expect("event/call/completed", lambda p: p["call_id"] == "c1")
        answer = await api.get("/api/queue-log", params={"tenant_id": 1})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    # Written as they went, the rest at the stop: the file holds what the API answered.
    assert path.read_text() == answer.text
    fields = [line.split("|") for line in answer.text.splitlines()]
    assert [f[1:5] for f in fields] == [
        # Logged in, in the queue provisioning enrolled it in (before the history began).
        ["NONE", "600", "PJSIP/101", "ADDMEMBER"],
        ["c1", "600", "NONE", "ENTERQUEUE"],
        ["c2", "600", "NONE", "ENTERQUEUE"],
        ["c1", "600", "PJSIP/101", "CONNECT"],
        ["c2", "600", "NONE", "ABANDON"],
        ["c1", "600", "PJSIP/101", "COMPLETECALLER"],
    ]
    assert fields[1][5:] == ["", "5551234", "1"]  # url, caller id, position
    assert fields[2][5:] == ["", "5559876", "2"]
    assert fields[3][6] == ring.get("ring_id")  # the agent's leg: the ring answered
    assert fields[4][5:7] == ["1", "2"]  # first in line when it hung up, second on entry
    assert fields[5][7] == "1"
    epochs = [int(f[0]) for f in fields]
    assert epochs == sorted(epochs)
    assert int(fields[5][5]) == epochs[3] - epochs[1]  # holdtime
    assert int(fields[5][6]) == epochs[5] - epochs[3]  # calltime
