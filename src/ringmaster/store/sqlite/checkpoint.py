"""WAL checkpoints on a connection of their own, off the turn's commit.

In WAL mode a commit appends the pages it changed to the WAL; a *checkpoint* copies
them back into the database file. With ``synchronous=NORMAL`` SQLite fsyncs only then
(the WAL before copying, the file after), and once when a commit writes the header of
a WAL started over (that one stays in a turn: once per checkpoint, on a small file).
By default the connection whose commit takes the WAL past 1,000 pages runs the
checkpoint inside that commit: for the daemon that was one turn in about seventy
stalled 10-20 ms, up to 52 (a trace at 100 calls/s, docs/performance.md), and every
message waiting behind that turn with it.

Here the writer's own automatic checkpoint is only a safety net (`WRITER_AUTOCHECKPOINT`
pages), and `WalCheckpointer` checkpoints from a second connection, on its own thread,
while the writer goes on committing. A PASSIVE checkpoint never blocks the writer, but
the writer only starts the WAL over (rather than appending to it for ever) when it
begins a transaction and finds *every* frame already copied; a commit that lands while
a checkpoint runs leaves frames behind. So `checkpoint` goes round again, each round
copying only what was committed during the one before (a few pages: quick), until a
round finds nothing left; the writer's next transaction then starts the WAL over. (Not
while a reader's transaction still reads from the WAL: a round copies no frame past
the oldest reader's, and the writer starts over only when no reader is in the WAL;
the API's reads are short, and a round that makes no progress ends the checkpoint.)
"""

from __future__ import annotations

import asyncio

import aiosqlite
import structlog

from ringmaster.store.records import SYNCHRONOUS, Synchronous

_log = structlog.get_logger("ringmaster.store")

#: The writer's own automatic checkpoint (pages): SQLite's default is 1,000. Reached
#: only if the checkpointer falls behind or fails; then a commit checkpoints, as
#: before, and the WAL (4 KiB pages: about 40 MB) stays bounded.
WRITER_AUTOCHECKPOINT = 10_000

#: Commits between two checkpoints. A turn's commit writes about 15 pages at 100
#: calls/s, so this is about SQLite's own 1,000 pages there; and an idle daemon's
#: few commits do not each cost a checkpoint's two fsyncs.
CHECKPOINT_EVERY_COMMITS = 64

#: Rounds of one `checkpoint` before it leaves the rest to the next one: a writer
#: that commits faster than a round copies would otherwise keep it going for ever.
MAX_ROUNDS = 8


class WalCheckpointer:
    """Checkpoints a SQLite file's WAL from its own connection, when the writer commits.

    The writer calls `committed` after each commit; every `CHECKPOINT_EVERY_COMMITS`
    commits a checkpoint starts (as a task), or with the next commit after the one
    under way ends.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        # Use `open`.
        self._db = db
        self._task: asyncio.Task[None] | None = None
        self._commits = 0
        self._closed = False

    @classmethod
    async def open(
        cls, path: str, synchronous: Synchronous, busy_timeout_ms: int
    ) -> WalCheckpointer:
        """A checkpointer on `path` (in WAL mode), syncing as `synchronous` says.

        Raises:
            ValueError: `synchronous` is not a setting SQLite knows.
        """
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            # The checkpoint's fsyncs follow the checkpointing connection's setting.
            await db.execute(f"PRAGMA synchronous = {synchronous}")
        except BaseException:
            await db.close()
            raise
        return cls(db)

    def committed(self) -> None:
        """The writer committed: checkpoint now if enough commits are waiting for one."""
        self._commits += 1
        if (
            self._closed
            or self._commits < CHECKPOINT_EVERY_COMMITS
            or (self._task is not None and not self._task.done())
        ):
            return
        self._commits = 0
        self._task = asyncio.get_running_loop().create_task(self._checkpoint_logged())

    async def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL's frames into the file, round after round, until none are new.

        A round copies every frame committed when it began; one that finds no frame
        committed since the round before leaves the WAL wholly copied, and the
        writer's next transaction starts it over.

        Returns:
            The WAL's frames and how many of them are copied, as the last round saw them.
        """
        log = copied = previous_log = previous_copied = -1
        for _ in range(MAX_ROUNDS):
            rows = await self._db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
            ((_busy, log, copied),) = rows
            if log <= 0 or (log == previous_log and copied >= log):
                break
            if copied <= previous_copied:
                break  # no progress: a reader holds the WAL (or it started over meanwhile)
            previous_log, previous_copied = log, copied
        else:
            # The writer commits faster than a round copies: the next checkpoint goes on,
            # and the writer's own (WRITER_AUTOCHECKPOINT) bounds the WAL meanwhile.
            _log.debug("store.checkpoint_unfinished", frames=log, copied=copied)
        return log, copied

    async def _checkpoint_logged(self) -> None:
        try:
            await self.checkpoint()
        except Exception:  # the writer's own checkpoint is the safety net
            _log.exception("store.checkpoint_failed")

    async def close(self) -> None:
        """Wait for a checkpoint under way, then close the connection (even if cancelled)."""
        self._closed = True
        try:
            if self._task is not None:
                await asyncio.wait({self._task})
        finally:
            await self._db.close()
