"""The history of a call whose daemon was killed (SIGKILL) in the middle of it is exact.

Written in each turn's own commit: what the killed process had committed is there
once, what it had not is redone from the broker's redelivery, and the restarted
process goes on updating the rows the first one opened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.engine import events as ev
from ringmaster.engine.commands import PublishCallAbandoned, PublishCallQueued
from ringmaster.engine.model import CallId, QueueId, TenantId
from ringmaster.engine.records import StateChanges
from ringmaster.history import HistoryRecorder
from ringmaster.settings import load_settings
from ringmaster.store import Store
from ringmaster.store.history import VisitFilter

from .pbx import WAIT_S, new_store, pbx_and_daemon_process, running

pytestmark = pytest.mark.integration


def agent_in(number: str, state: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """A payload about extension `number` (in `state`, when given)."""
    return lambda p: p["extension"] == number and (state is None or p["state"] == state)


async def test_the_history_of_a_call_across_a_kill_9_is_exact(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with pbx_and_daemon_process(mosquitto, tmp_path, "ringall", agents=2, timeout=60) as (
        pbx,
        daemon,
    ):
        for number in ("101", "102"):
            await pbx.send("agent/state", extension=number, state="available")
            await pbx.expect(
                "event/agent/state",
                agent_in(number, "available"),
            )
        await pbx.send(
            "call/arrived",
            call_id="c1",
            did="+100",
            caller_id="5550001",
            caller_name="Ann",
            priority=3,
        )
        for number in ("101", "102"):
            await pbx.expect("cmd/ring", agent_in(number))
        mark = pbx.mark()
        await pbx.send("call/ring_failed", call_id="c1", extension="101", reason="busy")
        # Published once committed: the failed ring is in the store when this is seen.
        await pbx.expect(
            "event/agent/state",
            lambda p: (p["extension"], p["state"]) == ("101", "available"),
            after=mark,
        )
        daemon.kill()
        mark = pbx.mark()
        await pbx.send("call/answered", call_id="c1", extension="102")  # while it is down
        daemon.start()
        answered = await pbx.expect("event/call/answered", after=mark)
        await pbx.send("call/hangup", call_id="c1")
        completed = await pbx.expect("event/call/completed", after=mark)
        assert daemon.terminate() == 0

    async with await Store.open(tmp_path / "rm.sqlite3") as store, store.history() as reader:
        (visit,) = await reader.call(TenantId(1), CallId("c1"))
        activity = await reader.activity(TenantId(1))
    assert (visit.visit, visit.queue_number, visit.did, visit.caller_id, visit.caller_name) == (
        1,
        "600",
        "+100",
        "5550001",
        "Ann",
    )
    assert (visit.priority, visit.position, visit.outcome, visit.agent_number) == (
        3,
        1,
        "completed",
        "102",
    )
    assert visit.arrived_at == visit.entered_at
    assert visit.answered_at is not None
    assert visit.ended_at is not None
    # The figures the events published, and the times they were computed from.
    assert visit.wait_s == answered["wait_s"] == round(visit.answered_at - visit.entered_at, 3)
    assert visit.talk_s == completed["talk_s"]
    assert visit.talk_s == pytest.approx(visit.ended_at - visit.answered_at, abs=0.002)
    assert [(r.extension, r.outcome) for r in visit.rings] == [("101", "busy"), ("102", "answered")]
    assert visit.rings[1].ended_at == visit.answered_at
    agents = [(a.extension, a.kind, a.reason, a.state) for a in activity if a.kind != "enrol"]
    assert agents == [
        ("101", "login", "", "available"),
        ("102", "login", "", "available"),
        ("101", "state", "", "ringing"),
        ("102", "state", "", "ringing"),
        ("101", "ring_unanswered", "busy", None),
        ("101", "state", "", "available"),
        ("102", "state", "", "busy"),
        ("102", "state", "", "available"),
    ]


async def test_the_daemon_prunes_history_older_than_its_retention(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    now = time.time()
    old, recent = now - 3 * 86_400, now - 86_400 / 2
    async with await Store.open(db) as store:
        for call_id, at in (("old", old), ("recent", recent)):
            arrived = ev.CallArrived(TenantId(1), CallId(call_id), "+100", "5550001")
            queued = PublishCallQueued(
                TenantId(1), CallId(call_id), QueueId(1), "+100", "5550001", 1, at
            )
            abandoned = PublishCallAbandoned(TenantId(1), CallId(call_id), QueueId(1), 1.0, at)
            writes = HistoryRecorder().record(arrived, [queued, abandoned], at)
            await store.commit(StateChanges(), [], None, writes)
    settings = load_settings(
        None,
        mqtt={"url": mosquitto.url, "topic_prefix": prefix, "client_id": f"rm-{prefix}"},
        database={"path": db},
        api={"enabled": False},
        history={"retention_days": 1},
    )
    async with running(settings), await Store.open(db) as store:
        # Pruned at start-up, then every few minutes.
        async with asyncio.timeout(WAIT_S):
            while True:
                async with store.history() as reader:
                    left = [v.call_id for v in (await reader.visits(VisitFilter())).items]
                if left == ["recent"]:
                    break
                await asyncio.sleep(0.05)
