"""The outbox's watermark rides with the next turn's commit; a quiet daemon still records it."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from ringmaster.contract import OutboxMessage
from ringmaster.daemon import service
from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.daemon.outbox import Outbox
from ringmaster.engine.records import StateChanges
from ringmaster.history import HistoryWrite
from ringmaster.store import Store
from ringmaster.store.records import Fence

from .pbx import WAIT_S, daemon_in_process, pbx_on, provisioned, write_config

pytestmark = pytest.mark.integration

#: (topics stored, watermark recorded) of each commit, in order.
Commits = list[tuple[list[str], int | None]]


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> Commits:
    seen: Commits = []
    real_commit = Store.commit

    async def recording_commit(
        self: Store,
        changes: StateChanges,
        outbox: Sequence[OutboxMessage],
        delivered_up_to: int | None = None,
        history: Sequence[HistoryWrite] = (),
        *,
        fence: Fence | None = None,
    ) -> list[int]:
        seen.append(([m.topic for m in outbox], delivered_up_to))
        return await real_commit(self, changes, outbox, delivered_up_to, history, fence=fence)

    monkeypatch.setattr(Store, "commit", recording_commit)
    return seen


def test_the_watermark_waits_for_the_oldest_message_in_flight() -> None:
    outbox = Outbox()
    for seq in (7, 8, 9):
        outbox.take(seq)
    # After a reconnect PUBACKs may come out of order: 8 alone says nothing of 7.
    assert not outbox.confirm(8)
    assert outbox.unrecorded() is None
    assert outbox.confirm(7)
    assert outbox.unrecorded() == 8
    outbox.recorded_up_to = 8
    assert outbox.unrecorded() is None
    assert outbox.confirm(9)
    assert outbox.unrecorded() == 9


async def test_a_turn_commits_what_was_confirmed_before_it_in_the_same_transaction(
    mosquitto: MosquittoProcess, tmp_path: Path, commits: Commits, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No idle flush during the test: only turns may record the watermark.
    monkeypatch.setattr(service, "WATERMARK_FLUSH_S", 3600.0)
    prefix, db = f"rm{uuid.uuid4().hex[:10]}", tmp_path / "rm.sqlite3"
    await provisioned(db, write_config(tmp_path / "c.toml", "ringall"))
    async with pbx_on(mosquitto, prefix) as pbx, daemon_in_process(mosquitto, prefix, db):
        await pbx.send("agent/state", extension="101", state="available")
        # Seen by the PBX, so the broker has confirmed it to the daemon.
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "101")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("cmd/ring")
        during = list(commits)
    ring_turn = next(mark for topics, mark in during if f"{prefix}/1/cmd/ring" in topics)
    assert ring_turn is not None
    assert all(topics for topics, _ in during)  # no commit of the watermark alone


async def test_a_quiet_daemon_commits_what_the_broker_confirmed(
    mosquitto: MosquittoProcess, tmp_path: Path, commits: Commits
) -> None:
    prefix, db = f"rm{uuid.uuid4().hex[:10]}", tmp_path / "rm.sqlite3"
    await provisioned(db, write_config(tmp_path / "c.toml", "ringall"))

    def left_in_outbox() -> int:
        with sqlite3.connect(db) as reader:
            ((count,),) = reader.execute("SELECT count(*) FROM outbox").fetchall()
        return int(count)

    async def drained() -> None:
        while await asyncio.to_thread(left_in_outbox):  # noqa: ASYNC110 (a file, no event)
            await asyncio.sleep(0.01)

    async with pbx_on(mosquitto, prefix) as pbx, daemon_in_process(mosquitto, prefix, db):
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("cmd/ring")
        # Nothing else arrives, yet what the broker confirmed leaves the store.
        await asyncio.wait_for(drained(), WAIT_S)
        assert any(not topics and mark is not None for topics, mark in commits)
