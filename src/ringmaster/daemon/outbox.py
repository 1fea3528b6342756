"""The daemon's outbox: stored messages waiting to be published, and the watermark."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from ringmaster.contract import OutboxMessage, parse_tenant


@dataclass
class Outbox:
    """Stored messages waiting to be published: each tenant's in order, tenants in turn.

    One tenant's flood of decisions (thousands of queued calls' events) waits
    behind nobody else's ring: publishers take the tenants' oldest messages in
    turn. The watermark still counts in stored (seq) order: a message counts
    as unconfirmed from the moment it is put here.
    """

    prefix: str = ""
    #: Waiting for a publisher, by tenant (None: topics of no tenant), oldest first.
    lanes: dict[int | None, deque[tuple[int, OutboxMessage]]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: Put here and not yet published (confirmed or given up): `join` waits for 0.
    unfinished: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    #: Put here and not yet confirmed, in seq order.
    in_flight: deque[int] = field(default_factory=deque)
    #: Confirmed while an older message was still in flight (after a reconnect,
    #: PUBACKs may come out of order).
    confirmed_early: set[int] = field(default_factory=set)
    #: Every message with a seq up to this one is confirmed by the broker.
    delivered_up_to: int | None = None
    #: The watermark as last committed: those rows are gone from the store.
    recorded_up_to: int | None = None

    def take(self, seq: int) -> None:
        """Message `seq` (the newest yet) awaits the broker's confirmation."""
        self.in_flight.append(seq)

    def put(self, seq: int, message: OutboxMessage) -> None:
        """Queue a stored message for publishing (in seq order)."""
        self.take(seq)
        tenant_id = parse_tenant(self.prefix, message.topic)
        lane = self.lanes.get(tenant_id)
        if lane is None:
            lane = self.lanes[tenant_id] = deque()
        lane.append((seq, message))
        self.unfinished += 1
        self.finished.clear()
        self.ready.set()

    async def get(self) -> tuple[int, OutboxMessage]:
        """The next message to publish: the oldest of the tenant whose turn it is."""
        while not self.lanes:
            self.ready.clear()
            await self.ready.wait()
        tenant_id = next(iter(self.lanes))
        lane = self.lanes.pop(tenant_id)
        item = lane.popleft()
        if lane:
            self.lanes[tenant_id] = lane  # to the back
        return item

    def done(self) -> None:
        """A message taken with `get` is published."""
        self.unfinished -= 1
        if not self.unfinished:
            self.finished.set()

    async def join(self) -> None:
        """Wait until every message put here is published."""
        if self.unfinished:
            await self.finished.wait()

    def confirm(self, seq: int) -> bool:
        """The broker confirmed message `seq`; True if the watermark moved."""
        in_flight = self.in_flight
        if in_flight[0] != seq:
            self.confirmed_early.add(seq)
            return False
        in_flight.popleft()
        early = self.confirmed_early
        while in_flight and in_flight[0] in early:
            early.discard(in_flight[0])
            seq = in_flight.popleft()
        self.delivered_up_to = seq
        return True

    def unrecorded(self) -> int | None:
        """The watermark, if it moved since it was last committed."""
        if self.delivered_up_to == self.recorded_up_to:
            return None
        return self.delivered_up_to
