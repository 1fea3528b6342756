"""The daemon's outbox: stored messages waiting to be published, and the watermark."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ringmaster.contract import OutboxMessage, parse_tenant

#: How many stored messages are handed to the link and awaiting PUBACK at once.
#: paho itself keeps at most 20 on the wire (and mosquitto's receive maximum is 20
#: too); the rest of the window waits in paho, ready to go on each PUBACK.
PUBLISH_WINDOW = 32


@dataclass
class Outbox:
    """Stored messages waiting to be published: each tenant's in order, tenants in turn.

    One tenant's flood of decisions (thousands of queued calls' events) waits
    behind nobody else's ring: messages are handed to the link (`send`) taking
    the tenants' oldest in turn, at most `window` of them unconfirmed at once.
    A message is handed over as soon as it is put here, or as soon as a
    confirmation (`published`) makes room: no task and no await per message.
    The watermark still counts in stored (seq) order: a message counts as
    unconfirmed from the moment it is put here.
    """

    prefix: str = ""
    #: Hands a message to the link: True when it is done at once (at most once,
    #: QoS 0), else `published` is called with its seq later. None: nothing is
    #: handed over (before the link is attached, and once publishing stopped).
    send: Callable[[int, OutboxMessage], bool] | None = None
    window: int = PUBLISH_WINDOW
    #: Called each time the watermark moves (then `unrecorded` has it).
    on_watermark: Callable[[], None] | None = None
    #: Waiting to be handed over, by tenant (None: topics of no tenant), oldest first.
    lanes: dict[int | None, deque[tuple[int, OutboxMessage]]] = field(default_factory=dict)
    #: Handed over and awaiting `published`.
    sending: int = 0
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
    #: Whether `pump` is running (a confirmation inside `send` must not re-enter it).
    pumping: bool = False

    def take(self, seq: int) -> None:
        """Message `seq` (the newest yet) awaits the broker's confirmation."""
        self.in_flight.append(seq)

    def put(self, seq: int, message: OutboxMessage) -> None:
        """Queue a stored message for publishing (in seq order), handing it over if room."""
        self.take(seq)
        tenant_id = parse_tenant(self.prefix, message.topic)
        lane = self.lanes.get(tenant_id)
        if lane is None:
            lane = self.lanes[tenant_id] = deque()
        lane.append((seq, message))
        self.unfinished += 1
        self.finished.clear()
        self.pump()

    def pump(self) -> None:
        """Hand waiting messages over while the window has room."""
        send = self.send
        if send is None or self.pumping:
            return
        lanes = self.lanes
        self.pumping = True
        try:
            while lanes and self.sending < self.window:
                tenant_id = next(iter(lanes))
                lane = lanes.pop(tenant_id)
                seq, message = lane.popleft()
                if lane:
                    lanes[tenant_id] = lane  # to the back
                if send(seq, message):
                    self._done(seq)
                else:
                    self.sending += 1
        finally:
            self.pumping = False

    def published(self, seq: int) -> None:
        """The link reports a message handed over published: room for the next."""
        self.sending -= 1
        self._done(seq)
        self.pump()

    def _done(self, seq: int) -> None:
        self.unfinished -= 1
        if not self.unfinished:
            self.finished.set()
        if self.confirm(seq) and self.on_watermark is not None:
            self.on_watermark()

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
