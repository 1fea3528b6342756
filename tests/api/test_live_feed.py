"""The live feed: which tenants changed, and the streams that wait for it."""

from __future__ import annotations

import asyncio

from ringmaster.api.feed import LiveFeed


def test_a_change_of_everything_reaches_a_tenant_the_feed_never_heard_of() -> None:
    # A stream reads tenant 1's version before it builds its board. The queue it
    # skipped (stored, not yet in the engine) is applied by a configuration turn,
    # which changes "every tenant": tenant 1 too, though nothing named it before.
    feed = LiveFeed()
    seen = feed.version(1)
    feed.changed_all()
    assert feed.version(1) != seen


async def test_a_waiting_stream_wakes_on_its_tenants_change_only() -> None:
    feed = LiveFeed()
    seen = feed.version(1)
    waiting = asyncio.create_task(feed.wait(1, seen))
    await asyncio.sleep(0)
    feed.changed([2])
    await asyncio.sleep(0)
    assert not waiting.done()
    feed.changed([1])
    assert await waiting != seen


async def test_a_change_of_everything_wakes_every_waiting_stream() -> None:
    feed = LiveFeed()
    waiting = [asyncio.create_task(feed.wait(t, feed.version(t))) for t in (1, 2)]
    await asyncio.sleep(0)
    feed.changed_all()
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=1)


async def test_closing_ends_every_wait() -> None:
    feed = LiveFeed()
    waiting = asyncio.create_task(feed.wait(1, feed.version(1)))
    await asyncio.sleep(0)
    feed.close()
    await asyncio.wait_for(waiting, timeout=1)
    assert feed.closed
