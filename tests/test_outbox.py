"""The outbox hands stored messages to the link without a task per message."""

from __future__ import annotations

from ringmaster.contract import OutboxMessage
from ringmaster.daemon.outbox import Outbox

PREFIX = "rm"


class FakeLink:
    """Takes what the outbox hands over; monitoring messages are done at once if `qos0`."""

    def __init__(self, *, qos0: bool = False) -> None:
        self.sent: list[int] = []
        self.qos0 = qos0

    def send(self, seq: int, message: OutboxMessage) -> bool:
        self.sent.append(seq)
        return self.qos0 and "/event/" in message.topic


def message(tenant: int, what: str = "cmd/ring") -> OutboxMessage:
    return OutboxMessage(f"{PREFIX}/{tenant}/{what}", b"{}")


def test_nothing_is_handed_over_before_a_link_is_attached() -> None:
    outbox = Outbox(PREFIX)
    outbox.put(1, message(1))
    assert outbox.unfinished == 1
    link = FakeLink()
    outbox.send = link.send
    outbox.pump()
    assert link.sent == [1]


def test_the_window_bounds_what_awaits_a_puback_and_each_confirmation_hands_the_next() -> None:
    link = FakeLink()
    outbox = Outbox(PREFIX, send=link.send, window=2)
    for seq in (1, 2, 3, 4):
        outbox.put(seq, message(1))
    assert link.sent == [1, 2]
    outbox.published(2)
    assert link.sent == [1, 2, 3]
    assert outbox.unrecorded() is None  # 1 is still unconfirmed
    outbox.published(1)
    assert link.sent == [1, 2, 3, 4]
    assert outbox.unrecorded() == 2
    outbox.published(3)
    outbox.published(4)
    assert (outbox.unfinished, outbox.sending, outbox.finished.is_set()) == (0, 0, True)
    assert outbox.unrecorded() == 4


def test_tenants_take_turns_and_each_keeps_its_order() -> None:
    link = FakeLink()
    outbox = Outbox(PREFIX, send=link.send, window=1)
    outbox.put(1, message(1))  # handed over at once
    for seq, tenant in ((2, 1), (3, 1), (4, 1), (5, 2), (6, 2)):
        outbox.put(seq, message(tenant))
    for seq in (1, 2, 5, 3, 6, 4):
        assert link.sent[-1] == seq
        outbox.published(seq)
    assert link.sent == [1, 2, 5, 3, 6, 4]


def test_a_message_done_at_once_moves_the_watermark_and_takes_no_room() -> None:
    link = FakeLink(qos0=True)
    moves: list[int | None] = []
    outbox = Outbox(PREFIX, send=link.send, window=1)
    outbox.on_watermark = lambda: moves.append(outbox.unrecorded())
    outbox.put(1, message(1, "event/agent/state"))
    outbox.put(2, message(1))
    outbox.put(3, message(1, "event/call/queued"))
    assert link.sent == [1, 2]  # 3 waits: 2 holds the window
    assert moves == [1]
    outbox.published(2)
    assert link.sent == [1, 2, 3]
    assert moves == [1, 2, 3]
    assert outbox.unfinished == 0
