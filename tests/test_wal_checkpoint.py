"""The WAL is checkpointed off the turn's commit, and still starts over: store/sqlite/checkpoint.py.

A trace at 100 calls/s showed one turn in about seventy stalled 14-21 ms: the commit
that took the WAL past SQLite's 1,000 pages ran the checkpoint (and its fsyncs) in
the turn. These tests write real SQLite files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest

from ringmaster.contract import OutboxMessage
from ringmaster.engine.records import StateChanges
from ringmaster.store import Store
from ringmaster.store.sqlite import checkpoint
from ringmaster.store.sqlite.connection import SqliteConnection

PAGE = 4096
#: One turn's messages: about 25 pages of payload.
TURN = [OutboxMessage(f"ringmaster/1/cmd/ring/{i}", b"x" * 4000) for i in range(25)]


def _checkpointer(store: Store) -> checkpoint.WalCheckpointer:
    assert isinstance(store._db, SqliteConnection)
    assert store._db.checkpointer is not None
    return store._db.checkpointer


def _under_way(checkpointer: checkpoint.WalCheckpointer) -> asyncio.Task[None] | None:
    """The checkpoint started last (read through a call: each read may differ)."""
    return checkpointer._task


def _by_hand(store: Store, monkeypatch: pytest.MonkeyPatch) -> checkpoint.WalCheckpointer:
    """The store's checkpointer, checkpointing only when the test says."""
    checkpointer = _checkpointer(store)
    monkeypatch.setattr(checkpointer, "committed", lambda: None)
    return checkpointer


def _around_rounds(
    checkpointer: checkpoint.WalCheckpointer,
    monkeypatch: pytest.MonkeyPatch,
    around: Callable[[int, Callable[[], Awaitable[object]]], Awaitable[object]],
) -> None:
    """Have `around(n, run)` run each round (the n-th since this call), `run` being the round."""
    run_round = checkpointer._db.execute_fetchall
    rounds = [0]

    async def round_run_around(sql: str) -> object:
        rounds[0] += 1
        return await around(rounds[0], lambda: run_round(sql))

    monkeypatch.setattr(checkpointer._db, "execute_fetchall", round_run_around)


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_a_turns_commit_never_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rm.db"
    async with await Store.open(path) as store:
        _by_hand(store, monkeypatch)
        await store.commit(StateChanges(), TURN[:1])
        size = path.stat().st_size
        for _ in range(60):  # some 1,500 pages: past SQLite's own threshold (1,000)
            await store.commit(StateChanges(), TURN)
        # Nothing was copied into the file: no commit checkpointed.
        assert path.stat().st_size == size
        assert _wal(path) > 1_000 * PAGE


async def test_the_checkpointer_copies_and_the_wal_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rm.db"
    async with await Store.open(path) as store:
        checkpointer = _by_hand(store, monkeypatch)
        for _ in range(2):  # the second: the migrations' frames are gone from the WAL
            await store.commit(StateChanges(), TURN)
            log, copied = await checkpointer.checkpoint()
            assert copied == log > 0
        one_turn = _wal(path)
        for _ in range(40):
            await store.commit(StateChanges(), TURN)
            log, copied = await checkpointer.checkpoint()
            # Each commit started the WAL over: it holds that commit's frames only.
            assert copied == log <= one_turn // PAGE
        assert _wal(path) <= one_turn + 2 * PAGE  # written over, not appended to
        assert path.stat().st_size > 40 * len(TURN) * 4000  # copied into the file
    async with await Store.open(path) as store:
        assert len(await store.pending_outbox()) == 42 * len(TURN)


async def test_every_few_commits_start_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "CHECKPOINT_EVERY_COMMITS", 3)
    path = tmp_path / "rm.db"
    async with await Store.open(path) as store:
        checkpointer = _checkpointer(store)
        await store.commit(StateChanges(), TURN)
        await store.commit(StateChanges(), TURN)
        assert _under_way(checkpointer) is None
        size = path.stat().st_size
        await store.commit(StateChanges(), TURN)
        first = _under_way(checkpointer)
        assert first is not None
        await first
        assert path.stat().st_size > size + 3 * len(TURN) * 4000  # the three, copied
        await store.commit(StateChanges(), TURN)
        assert _under_way(checkpointer) is first  # the next one waits for two more


async def test_frames_committed_while_a_round_runs_are_copied_before_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon commits while a round copies (on another thread): a checkpoint that
    # stopped at a round seeing all *its* frames copied left those new ones behind,
    # and the WAL never started over (it grew to the writer's safety net, 40 MB).
    path = tmp_path / "rm.db"
    async with await Store.open(path) as store:
        checkpointer = _by_hand(store, monkeypatch)
        assert isinstance(store._db, SqliteConnection)
        writer = store._db.db
        first_round = [True]

        async def with_a_commit_meanwhile(_: int, run: Callable[[], Awaitable[object]]) -> object:
            if not first_round[0]:
                return await run()
            first_round[0] = False
            # The writer begins before the round copies and commits after it.
            await writer.execute("BEGIN IMMEDIATE")
            await writer.execute(
                "INSERT INTO outbox (shard, topic, payload, retain) VALUES (0, 't', ?, 0)",
                (b"x" * 4000 * len(TURN),),
            )
            rows = await run()
            await writer.execute("COMMIT")
            return rows

        _around_rounds(checkpointer, monkeypatch, with_a_commit_meanwhile)
        await store.commit(StateChanges(), TURN)
        await checkpointer.checkpoint()
        two_turns = _wal(path)
        for _ in range(20):
            first_round[0] = True
            await store.commit(StateChanges(), TURN)
            log, copied = await checkpointer.checkpoint()
            assert not first_round[0]  # a commit did land while a round ran
            assert copied == log
        assert _wal(path) <= two_turns + 2 * PAGE


async def test_a_reader_in_the_wal_ends_the_rounds_it_keeps_from_progressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rm.db"
    async with await Store.open(path) as store:
        checkpointer = _by_hand(store, monkeypatch)
        await store.commit(StateChanges(), TURN)
        async with aiosqlite.connect(path, isolation_level=None) as reader:
            await reader.execute("BEGIN")
            await reader.execute_fetchall("SELECT count(*) FROM outbox")  # its snapshot
            await store.commit(StateChanges(), TURN)
            rounds: list[int] = []

            async def counted(n: int, run: Callable[[], Awaitable[object]]) -> object:
                rounds.append(n)
                return await run()

            _around_rounds(checkpointer, monkeypatch, counted)
            log, copied = await checkpointer.checkpoint()
            # The frames after the reader's snapshot cannot be copied: a second round
            # that gets no further ends it, rather than all MAX_ROUNDS in a row.
            assert copied < log
            assert len(rounds) == 2
            await reader.execute("COMMIT")
        log, copied = await checkpointer.checkpoint()
        assert copied == log
