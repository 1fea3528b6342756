"""The reports of a short real run: calls through mosquitto to a daemon in this process,
then its API's reports over HTTP and `ringmaster report` as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ringmaster.daemon.broker import MosquittoProcess, free_port

from .pbx import WAIT_S, Pbx, daemon_in_process, new_store, pbx_on

pytestmark = pytest.mark.integration

ONE_DAY = timedelta(days=1)


def is_agent(extension: str, payload: dict[str, Any]) -> bool:
    return bool(payload["extension"] == extension)


async def a_short_run(pbx: Pbx) -> None:
    """101 and 102 log in, 102 goes to lunch; c1 is answered by 101 and hung up, c2's
    caller hangs up while 101 rings, c3 is answered and still talking."""
    for extension in ("101", "102"):
        await pbx.send("agent/state", extension=extension, state="available")
        await pbx.expect("event/agent/state", partial(is_agent, extension))
    await pbx.send("agent/state", extension="102", state="paused", reason="lunch")
    await pbx.expect("event/agent/state", lambda p: p["state"] == "paused")
    await pbx.send("call/arrived", call_id="c1", did="+100", caller_id="5551234")
    await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
    await pbx.send("call/answered", call_id="c1", extension="101")
    await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1")
    await pbx.send("call/hangup", call_id="c1")
    await pbx.expect("event/call/completed", lambda p: p["call_id"] == "c1")
    await pbx.send("call/arrived", call_id="c2", did="+100", caller_id="5559876")
    await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c2")
    await pbx.send("call/hangup", call_id="c2")
    await pbx.expect("event/call/abandoned", lambda p: p["call_id"] == "c2")
    await pbx.send("call/arrived", call_id="c3", did="+100", caller_id="5550000")
    await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c3")
    await pbx.send("call/answered", call_id="c3", extension="101")
    await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c3")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=WAIT_S) as response:
        return json.loads(response.read())


async def run_command(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ringmaster",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT_S):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_reports_of_a_short_real_run(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=2)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    began = time.time()
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        daemon_in_process(mosquitto, prefix, db, api_port=port),
    ):
        await a_short_run(pbx)
        ended = time.time()
        query = {
            "tenant_id": 1,
            "from": datetime.fromtimestamp(began - 3600, UTC).isoformat(),
            "to": datetime.fromtimestamp(ended + 3600, UTC).isoformat(),
            "interval": "1d",
        }
        encoded = urllib.parse.urlencode(query)
        queues = await asyncio.to_thread(get, f"{api}/api/reports/queues?{encoded}")
        agents = await asyncio.to_thread(get, f"{api}/api/reports/agents?{encoded}")
        start = datetime.fromisoformat(queues["items"][-1]["start"])
        day = start.date().isoformat()
        daily = f"{api}/api/reports/queues?" + urllib.parse.urlencode(
            {"tenant_id": 1, "from": f"{day}T00:00:00Z", "to": f"{start.date() + ONE_DAY}T00:00Z"}
        )
        that_day = await asyncio.to_thread(get, daily)
        code, out, err = await run_command("report", "--tenant", "1", "--api", api, "--day", day)

    def total(items: list[dict[str, Any]], name: str) -> int:
        return sum(item[name] for item in items)

    counts = {n: total(queues["items"], n) for n in ("offered", "answered", "abandoned")}
    assert counts == {"offered": 3, "answered": 2, "abandoned": 1}
    assert total(queues["items"], "rejected") + total(queues["items"], "overflowed") == 0
    by_agent: dict[str, dict[str, Any]] = {}
    for item in agents["items"]:
        mine = by_agent.setdefault(item["extension"], {"answered": 0, "pause": set()})
        mine["answered"] += item["answered"]
        mine["pause"] |= set(item["pause_s"])
    assert by_agent == {
        "101": {"answered": 2, "pause": set()},
        "102": {"answered": 0, "pause": {"lunch"}},
    }
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"600 Q (queue 1), {day} (UTC)")
    offered_that_day = total(that_day["items"], "offered")
    assert lines[-1].split()[:2] == ["DAY", str(offered_that_day)]
