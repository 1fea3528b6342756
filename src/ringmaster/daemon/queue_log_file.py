"""``history.queue_log_file``: Asterisk's queue_log appended as calls go, for readers that tail it.

After each turn's commit, the service tells the writer the turn's time
(`QueueLogFile.committed`, a few instructions: the turn never waits for the file).
The writer, a task of its own, reads the lines of the time since its last write
from the committed history (on the store's reading connection, as the API reads
them: the file and ``GET /api/queue-log`` hold the same lines) and appends them on
a worker thread, one ``write`` per batch, at most once a second
(`WRITE_INTERVAL_S`): the turns of that second are taken together.

Rotation: the file is reopened when its path no longer names the file open
(logrotate's move, or a delete); a copy-and-truncate needs nothing, as the file
is opened for appending (each write lands at its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections import Counter
from pathlib import Path
from typing import IO

import structlog

from ringmaster.queue_log import Line
from ringmaster.store import Store

_log = structlog.get_logger("ringmaster.queue_log")

#: At most one read and write a second: each read pays for the calls waiting (their
#: places in line), so under load one read for many turns is most of the saving, and
#: the file's times are whole seconds anyway.
WRITE_INTERVAL_S = 1.0


class Appender:
    """Appends text to a file, reopening it when the path names another file (rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._inode: tuple[int, int] | None = None

    def append(self, text: str) -> None:
        """Write `text` at the file's end and flush it; blocking (run it off the loop)."""
        if self._file is not None and self._moved():
            self.close()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            stat = os.fstat(self._file.fileno())
            self._inode = (stat.st_dev, stat.st_ino)
        self._file.write(text)
        self._file.flush()

    def _moved(self) -> bool:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return True
        return (stat.st_dev, stat.st_ino) != self._inode

    def close(self) -> None:
        """Close the file (the next append opens it again)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class QueueLogFile:
    """Appends the queue_log lines of each committed turn to a file, off the turns.

    Args:
        path: The file (``history.queue_log_file``).
        agent_format: How an agent is named (``history.queue_log_agent``).
        since: Lines from this instant on are written (the daemon's start: what
            happened before it was written by the process before).
    """

    def __init__(self, path: Path, agent_format: str, since: float) -> None:
        self._appender = Appender(path)
        self._agent_format = agent_format
        #: The window's start, included: the instant of the last line written, so
        #: that a later turn's lines of that same instant are still read.
        self._since = since
        #: The lines already written at exactly `_since` (read again, not written again).
        self._written_at_since: Counter[str] = Counter()
        self._until = since
        self._due = asyncio.Event()
        self._stopping = asyncio.Event()

    def committed(self, now: float) -> None:
        """A turn with history writes at `now` is committed: its lines are due."""
        # Up to and including `now`: the window's end is excluded.
        self._until = max(self._until, math.nextafter(now, math.inf))
        self._due.set()

    async def write_due(self, store: Store) -> int:
        """Append the lines due; returns how many. A failure is logged and retried later."""
        self._due.clear()
        until = self._until
        if until <= self._since:
            return 0
        try:
            async with store.queue_log() as reader:
                lines = await reader.lines(
                    None, self._since, until, agent_format=self._agent_format
                )
            fresh = self._not_yet_written(lines)
            if fresh:
                text = "".join(f"{line.text}\n" for line in fresh)
                await asyncio.to_thread(self._appender.append, text)
        except Exception:  # the file is not worth the daemon: the history has it all
            _log.exception("queue_log.write_failed", path=str(self._appender.path))
            return 0
        if lines:
            last = lines[-1].at
            if last != self._since:
                self._since, self._written_at_since = last, Counter()
            self._written_at_since.update(line.text for line in fresh if line.at == last)
        return len(fresh)

    def _not_yet_written(self, lines: list[Line]) -> list[Line]:
        """The window's lines but those of `_since` written by an earlier window."""
        written = self._written_at_since.copy()
        fresh = []
        for line in lines:
            if line.at == self._since and written[line.text] > 0:
                written[line.text] -= 1
            else:
                fresh.append(line)
        return fresh

    async def run(self, store: Store) -> None:
        """Write the lines due as turns commit them, until `stop` (then the last ones)."""
        try:
            while not self._stopping.is_set():
                await self._due.wait()
                await self.write_due(store)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), WRITE_INTERVAL_S)
            await self.write_due(store)  # what the last turns committed meanwhile
        finally:
            self._appender.close()

    def close(self) -> None:
        """Close the file (`run` does it when it ends)."""
        self._appender.close()

    def stop(self) -> None:
        """Once the turns are over: write what is due and end `run`."""
        self._stopping.set()
        self._due.set()
