"""A shard stopped while its turn commits: the fenced commit is dealt with, not left to asyncio.

Seen in every hand-back under load (bench/cluster_takeover.py, the nodes' logs): the
turn's commit is shielded from the cancellation of `StopShard`, the lease is released
meanwhile, the commit is fenced, and nobody awaits it, so asyncio logs "Task exception
was never retrieved" (level error) with a FencedError for each such shard. The turn
being refused is by design (docs/cluster.md: a turn in flight is fenced); an error line
per hand-back is not.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from ringmaster.contract import OutboxMessage
from ringmaster.daemon.service import Service, ShardRole
from ringmaster.settings import load_settings
from ringmaster.store import FencedError


class CommitFencedOnRelease:
    """A store whose commit waits until the lease is released, then is fenced."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.released = asyncio.Event()

    async def commit(self, *args: Any, **kwargs: Any) -> list[int]:
        """Refuse the turn once the lease is gone, as the fence statement does."""
        self.started.set()
        await self.released.wait()
        raise FencedError("shard 0: node 'a' no longer holds the lease at epoch 1")


async def test_a_turn_cancelled_by_stop_shard_and_then_fenced_logs_no_unretrieved_error() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    settings = load_settings(
        None,
        database={"url": "postgresql://ringmaster@127.0.0.1:1/unused"},
        cluster={"shards": 2, "node": "a"},
        api={"enabled": False},
    )
    service = Service(settings, shard=ShardRole(0, 1, "a"))
    store = CommitFencedOnRelease()
    message = OutboxMessage("P/1/event/call/queued", b"{}")
    turn = asyncio.create_task(
        service._store_and_send(store, [], [message], 0.0, ())  # type: ignore[arg-type]
    )
    await store.started.wait()
    turn.cancel()  # StopShard: at once
    store.released.set()  # the lease released: the commit is fenced
    with pytest.raises(asyncio.CancelledError):
        await turn
    for _ in range(3):
        await asyncio.sleep(0)
    del turn
    gc.collect()
    await asyncio.sleep(0)
    assert [c.get("message") for c in reported] == []
