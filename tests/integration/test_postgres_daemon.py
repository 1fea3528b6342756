"""The daemon on PostgreSQL (``database.url``), end to end through a real mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringmaster.api.provisioning import provision
from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.store import Store

from .pbx import DaemonProcess, daemon_env, new_prefix, pbx_on, write_config

pytestmark = pytest.mark.integration


async def test_a_call_through_a_daemon_on_postgresql_waits_on_across_a_kill_9(
    mosquitto: MosquittoProcess, tmp_path: Path, postgres_url: str
) -> None:
    prefix = new_prefix()
    async with await Store.open(postgres_url) as store:
        await provision(write_config(tmp_path / "c.toml", "ringall", timeout=60), store)
    env = daemon_env(mosquitto, prefix, tmp_path / "unused.sqlite3")
    del env["RINGMASTER_DATABASE__PATH"]
    env["RINGMASTER_DATABASE__URL"] = postgres_url
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    async with pbx_on(mosquitto, prefix) as pbx, daemon:
        daemon.start()
        await pbx.expect("status", lambda p: p["state"] == "online")
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        assert ring["extension"] == "101"
        # c2 waits: the only available agent is being rung for c1.
        await pbx.send("call/arrived", call_id="c2", did="+100")
        await pbx.expect("event/call/queued", lambda p: p["call_id"] == "c2")

        mark = pbx.mark()
        daemon.kill()
        await pbx.expect("status", lambda p: p["state"] == "offline", after=mark)
        daemon.start()
        await pbx.expect("status", lambda p: p["state"] == "online", after=mark)

        # c1's ring and c2's place came back from PostgreSQL: c1 is answered and ends,
        # then the agent it freed is rung for the waiting c2.
        await pbx.send("call/answered", call_id="c1", extension="101")
        await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1", after=mark)
        await pbx.send("call/hangup", call_id="c1")
        await pbx.expect("event/call/completed", lambda p: p["call_id"] == "c1", after=mark)
        ring2 = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c2", after=mark)
        assert ring2["extension"] == "101"
        assert daemon.terminate() == 0
    assert pbx.count("event/call/abandoned") == 0
    assert pbx.count("cmd/ring", lambda p: p["call_id"] == "c1") == 1  # not rung again
    assert postgres_url in (tmp_path / "daemon.log").read_text()  # store.opened names it
