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
from pathlib import Path
from typing import Any

import pytest

from ringmaster.daemon import service
from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.daemon.mqtt import MqttLink

from .pbx import pbx_and_daemon, pbx_and_daemon_process

pytestmark = pytest.mark.integration

#: Long enough that the kill and the answer surely come inside it on a busy machine.
RING_TIMEOUT_S = 3


async def test_an_answer_kept_by_the_broker_beats_a_ring_timeout_that_passed_while_down(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with pbx_and_daemon_process(
        mosquitto, tmp_path, "ringall", agents=1, timeout=RING_TIMEOUT_S
    ) as (pbx, daemon):
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
        await asyncio.sleep(rung_at + RING_TIMEOUT_S + 0.5 - time.monotonic())
        daemon.start()

        await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1", after=mark)
        await pbx.send("call/hangup", call_id="c1")
        await pbx.expect("event/call/completed", lambda p: p["call_id"] == "c1", after=mark)
        assert daemon.terminate() == 0

    assert pbx.count("cmd/cancel_ring", lambda p: p["call_id"] == "c1") == 0
    assert pbx.count("error") == 0
    assert pbx.count("event/call/abandoned") == 0


async def test_without_the_sync_message_deadlines_wait_a_bounded_time_and_no_turn_spins(
    mosquitto: MosquittoProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when an ACL refuses P/sync: the backlog's end is never seen.
    real_from_settings = MqttLink.from_settings

    def without_sync(*args: Any, **kwargs: Any) -> MqttLink:
        kwargs["sync"] = False
        return real_from_settings(*args, **kwargs)

    monkeypatch.setattr(MqttLink, "from_settings", without_sync)
    monkeypatch.setattr(service, "BACKLOG_HOLD_MAX_S", 0.2)
    turns = 0
    real_turn = service.Service._turn

    async def counted(self: service.Service, *args: Any) -> None:
        nonlocal turns
        turns += 1
        await real_turn(self, *args)

    monkeypatch.setattr(service.Service, "_turn", counted)
    async with pbx_and_daemon(
        mosquitto, tmp_path, "ringall", agents=1, timeout=RING_TIMEOUT_S
    ) as pbx:
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        # The ring's timeout still applies, after the hold's bound.
        cancel = await pbx.expect("cmd/cancel_ring", lambda p: p["call_id"] == "c1")
        assert cancel["reason"] == "timeout"
    # A handful of turns (messages, the timeout, the watermark), not a loop re-armed
    # for a bound already past.
    assert turns < 50, turns
