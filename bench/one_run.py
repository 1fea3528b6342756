"""``python -m bench.one_run``: one short real run, and every supervisor's view of it.

A private mosquitto, a daemon on a fresh SQLite store (two agents, ringall), a scripted
PBX that plays a few calls through the broker; then every endpoint and command that
shows the numbers, printed as they answered. docs/reports.md's "One run, every view"
is this script's output.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from tests.integration.pbx import Pbx, daemon_in_process, new_store, pbx_on

from ringmaster.daemon.broker import free_port, start_mosquitto


def _is_agent(extension: str, payload: dict[str, Any]) -> bool:
    return bool(payload["extension"] == extension)


def _is_call(call_id: str, payload: dict[str, Any]) -> bool:
    return bool(payload["call_id"] == call_id)


async def _play(pbx: Pbx) -> None:
    """The calls: a few seconds of a small centre.

    101 and 102 log in, 102 pauses for lunch (so only 101 rings); c1 and c3 are
    answered by 101 after about 1.2 s and talk about 2.1 s; c2 hangs up while 101
    rings; then 102 comes back.
    """
    for extension in ("101", "102"):
        await pbx.send("agent/state", extension=extension, state="available")
        await pbx.expect("event/agent/state", partial(_is_agent, extension))
    await pbx.send("agent/state", extension="102", state="paused", reason="lunch")
    await pbx.expect("event/agent/state", lambda p: p["state"] == "paused")
    for call, answered in (("c1", True), ("c2", False), ("c3", True)):
        await pbx.send("call/arrived", call_id=call, did="+100", caller_id=f"555{call}")
        await pbx.expect("cmd/ring", partial(_is_call, call))
        await asyncio.sleep(1.2)  # a wait worth a figure
        if answered:
            await pbx.send("call/answered", call_id=call, extension="101")
            await pbx.expect("event/call/answered", partial(_is_call, call))
            await asyncio.sleep(2.1)  # a talk worth a figure
            await pbx.send("call/hangup", call_id=call)
            await pbx.expect("event/call/completed", partial(_is_call, call))
        else:
            await pbx.send("call/hangup", call_id=call)
            await pbx.expect("event/call/abandoned", partial(_is_call, call))
    await pbx.send("agent/state", extension="102", state="available")
    await pbx.expect("event/agent/state", lambda p: p["state"] == "available")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _show(title: str, command: str, text: str) -> None:
    print(f"### {title}\n\n```\n$ {command}\n{text.rstrip()}\n```\n")


async def _command(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ringmaster", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return out.decode()


async def main() -> None:
    """Run it and print the views."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        broker = start_mosquitto(tmp / "mosquitto")
        try:
            prefix, db = await new_store(tmp, "ringall", agents=2)
            port = free_port()
            api = f"http://127.0.0.1:{port}"
            began = time.time() - 60
            async with (
                pbx_on(broker, prefix) as pbx,
                daemon_in_process(broker, prefix, db, api_port=port),
            ):
                await _play(pbx)
                window = {
                    "tenant_id": 1,
                    "from": datetime.fromtimestamp(began, UTC).isoformat(timespec="seconds"),
                    "to": datetime.fromtimestamp(time.time() + 60, UTC).isoformat(
                        timespec="seconds"
                    ),
                }
                query = urllib.parse.urlencode(window)
                views = [
                    ("health", "/healthz"),
                    ("readiness", "/readyz"),
                    ("the calls", f"/api/calls?{query}"),
                    ("one call, with its rings", "/api/calls/1/c1"),
                    ("queues by hour", f"/api/reports/queues?{query}&interval=1h"),
                    ("agents by hour", f"/api/reports/agents?{query}&interval=1h"),
                    ("Asterisk's queue_log", f"/api/queue-log?{query}"),
                    ("metrics", "/metrics"),
                ]
                for title, path in views:
                    status, body = await asyncio.to_thread(_get, api + path)
                    if path == "/metrics":
                        body = "\n".join(
                            line
                            for line in body.splitlines()
                            if line.startswith("ringmaster_calls") and "_created" not in line
                        )
                    elif body.startswith(("{", "[")):
                        body = json.dumps(json.loads(body), indent=1)
                    _show(f"{title} ({status})", f"curl -s '$API{path}'", body)
                _show("status", "ringmaster status", await _command("status", "--api", api))
                _show(
                    "report",
                    "ringmaster report --tenant 1",
                    await _command("report", "--tenant", "1", "--api", api),
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
