"""``history.queue_log_file``: each committed turn's queue_log lines appended, off the turn,
the same as the API's; the file reopened when rotated."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from ringmaster.daemon.queue_log_file import Appender, QueueLogFile
from ringmaster.history import HistoryRecorder
from ringmaster.store import Store
from tests.test_history_store import Recorded, play, store_config


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    async with await Store.open(tmp_path / "queue_log.sqlite3") as opened:
        yield opened


async def committed(
    store: Store, sim: Recorded, writer: QueueLogFile, recorder: HistoryRecorder
) -> None:
    """The sim's turns so far committed one by one, each told to the writer, as the service does."""
    for turn in sim.turns:
        await play(store, [turn], recorder)
        writer.committed(turn[0])
    sim.turns.clear()


async def api_lines(store: Store, since: float) -> list[str]:
    async with store.queue_log() as reader:
        return [line.text for line in await reader.lines(None, since, 1e12)]


async def test_each_turns_lines_are_appended_once_as_the_api_has_them(
    store: Store, tmp_path: Path
) -> None:
    sim = Recorded("linear", agents=2, timeout=15)
    await store_config(store, sim)
    recorder = HistoryRecorder()
    path = tmp_path / "log" / "queue_log"
    writer = QueueLogFile(path, "Local/{number}", since=sim.now)
    await committed(store, sim, writer, recorder)
    sim.arrive("c1")
    await committed(store, sim, writer, recorder)
    # ADDMEMBER of 101 and 102 for their enrolment and for their login, ENTERQUEUE
    assert await writer.write_due(store) == 5
    sim.advance(15)
    sim.answer("c1", "102")
    sim.advance(30)
    sim.hangup("c1")
    await committed(store, sim, writer, recorder)
    assert await writer.write_due(store) == 3  # RINGNOANSWER, CONNECT, COMPLETECALLER
    assert await writer.write_due(store) == 0  # nothing new: nothing written twice
    writer.close()
    assert path.read_text().splitlines() == await api_lines(store, 0.0)


async def test_lines_from_before_the_daemon_started_are_not_written_again(
    store: Store, tmp_path: Path
) -> None:
    sim = Recorded("linear", agents=1)
    await store_config(store, sim)
    recorder = HistoryRecorder()
    sim.arrive("c1")  # 1000, under the process before
    await play(store, sim.turns, recorder)
    sim.turns.clear()
    sim.advance(10)
    writer = QueueLogFile(tmp_path / "queue_log", "Local/{number}", since=sim.now)
    sim.hangup("c1")
    await committed(store, sim, writer, recorder)
    await writer.write_due(store)
    writer.close()
    assert [line.split("|")[4] for line in (tmp_path / "queue_log").read_text().splitlines()] == [
        "ABANDON"
    ]


def test_a_file_moved_away_is_reopened_at_its_path(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    appender = Appender(path)
    appender.append("1|a\n")
    path.rename(tmp_path / "queue_log.1")  # logrotate's default: move, then a new file
    appender.append("2|b\n")
    appender.close()
    assert (tmp_path / "queue_log.1").read_text() == "1|a\n"
    assert path.read_text() == "2|b\n"


def test_a_file_copied_and_truncated_is_written_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    appender = Appender(path)
    appender.append("1|a\n")
    shutil.copy(path, tmp_path / "queue_log.1")  # logrotate's copytruncate
    with path.open("r+") as file:
        file.truncate(0)
    appender.append("2|b\n")
    appender.close()
    assert (tmp_path / "queue_log.1").read_text() == "1|a\n"
    assert path.read_bytes() == b"2|b\n"  # no hole of zeros where the old lines were


async def test_the_writer_task_writes_as_turns_commit_and_the_rest_at_stop(
    store: Store, tmp_path: Path
) -> None:
    sim = Recorded("linear", agents=1)
    await store_config(store, sim)
    recorder = HistoryRecorder()
    path = tmp_path / "queue_log"
    writer = QueueLogFile(path, "Local/{number}", since=sim.now)
    task = asyncio.create_task(writer.run(store))
    sim.arrive("c1")
    await committed(store, sim, writer, recorder)
    sim.advance(5)
    sim.hangup("c1")
    await committed(store, sim, writer, recorder)
    writer.stop()
    await task
    assert [line.split("|")[4] for line in path.read_text().splitlines()] == [
        "ADDMEMBER",  # enrolled
        "ADDMEMBER",  # logged in
        "ENTERQUEUE",
        "ABANDON",
    ]


async def test_lines_of_one_instant_committed_in_two_turns_are_all_written_once(
    store: Store, tmp_path: Path
) -> None:
    # The writer may read between two turns of the same instant (a virtual clock here;
    # a coarse one in a daemon): the second turn's lines must not fall before its window.
    sim = Recorded("linear", agents=1)
    await store_config(store, sim)
    recorder = HistoryRecorder()
    path = tmp_path / "queue_log"
    writer = QueueLogFile(path, "Local/{number}", since=sim.now)
    await committed(store, sim, writer, recorder)
    await writer.write_due(store)
    sim.arrive("c1")  # at the same instant as the enrolment and the login
    await committed(store, sim, writer, recorder)
    await writer.write_due(store)
    await writer.write_due(store)
    writer.close()
    assert [line.split("|")[4] for line in path.read_text().splitlines()] == [
        "ADDMEMBER",
        "ADDMEMBER",
        "ENTERQUEUE",
    ]
