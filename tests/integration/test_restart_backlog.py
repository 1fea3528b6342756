"""After a restart, the messages the broker kept come before the deadlines that passed.

A daemon killed with SIGKILL while a ring is on; the PBX bridges the call (publishes
`answered`) while the daemon is down; the ring's timeout passes; the daemon starts
again. The broker hands the new process the `answered` it kept in the session: it
must be taken in before the ring's deadline is applied, so the call is answered and
the ring is never cancelled for `timeout`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from ringmaster.broker import MosquittoProcess

from .pbx import DaemonProcess, daemon_env, pbx_on, provisioned, write_config

pytestmark = pytest.mark.integration

RING_TIMEOUT_S = 1


async def test_an_answer_kept_by_the_broker_beats_a_ring_timeout_that_passed_while_down(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = f"rm{uuid.uuid4().hex[:10]}", tmp_path / "rm.sqlite3"
    await provisioned(
        db, write_config(tmp_path / "c.toml", "ringall", agents=1, timeout=RING_TIMEOUT_S)
    )
    daemon = DaemonProcess(daemon_env(mosquitto, prefix, db), tmp_path / "daemon.log")
    async with pbx_on(mosquitto, prefix) as pbx, daemon:
        daemon.start()
        await pbx.expect("status", lambda p: p["state"] == "online" and "at" in p)
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        rung_at = time.monotonic()
        daemon.kill()
        mark = pbx.mark()
        # The agent picks up while the ring is live; ringmaster is away.
        await pbx.send("call/answered", call_id="c1", extension=ring["extension"])
        assert time.monotonic() - rung_at < RING_TIMEOUT_S, "answered too late to test"
        # Not a measurement: the ring's deadline has to be in the past at the restart.
        await asyncio.sleep(RING_TIMEOUT_S + 0.5)
        daemon.start()

        await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1", after=mark)
        await pbx.send("call/hangup", call_id="c1")
        await pbx.expect("event/call/completed", lambda p: p["call_id"] == "c1", after=mark)
        assert daemon.terminate() == 0

    assert pbx.count("cmd/cancel_ring", lambda p: p["call_id"] == "c1") == 0
    assert pbx.count("error") == 0
    assert pbx.count("event/call/abandoned") == 0
