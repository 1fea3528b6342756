"""The daemon's inbox: inbound messages as taken from the link, in each tenant's lane.

Messages are acknowledged in the order they came, each once it is done; the
admin API's configuration changes and supervisors' requests wait here for their
turn too; and messages
that break the contract are answered on the error topics, within a budget per
tenant, without taking a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ringmaster.contract import ContractError, OutboxMessage, render_error
from ringmaster.daemon.mqtt import InboundMessage, LinkClosedError, MqttLink
from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command

# The daemon's log, whichever of its modules writes a line.
_log = structlog.get_logger("ringmaster.service")

#: How many inbound messages one turn takes at most: bounds the latency a
#: burst adds to the first message of the next turn.
MAX_BATCH = 512

#: How many of one tenant's messages one turn takes at most, when others wait:
#: turns take the tenants' messages in turn, so one tenant's flood costs the
#: others at most this many of its messages per turn, not its whole backlog.
MAX_PER_TENANT = 64

#: Rejected messages answered one by one on a tenant's error topic per second,
#: and in a burst; beyond that they are counted and reported in one summary.
ERROR_RATE_PER_S = 50.0
ERROR_BURST = 100
#: How long after the first unreported rejection its summary is published.
ERROR_SUMMARY_S = 1.0


@dataclass(slots=True)
class Received:
    """An inbound message as the service took it from the link."""

    message: InboundMessage
    #: The service's clock when taken: deadlines due after it wait for it.
    at: float
    event: ev.PbxEvent | None = None
    #: Its effect is stored (or it had none): it may be acknowledged.
    done: bool = False


class Acks:
    """Acknowledges inbound messages in the order they came, each once it is done.

    MQTT 5 section 4.6: PUBACKs go in the order the PUBLISHes came, while the
    service finishes them out of order (tenants take turns, rejections need no
    turn). A message done early waits for the older ones.
    """

    def __init__(self, link: MqttLink, caught_up: Callable[[int], None]) -> None:
        self._link = link
        self._caught_up = caught_up
        self._order: deque[Received] = deque()

    def expect(self, received: Received) -> None:
        """`received` came from the link: it is acknowledged after every older one."""
        self._order.append(received)

    def done(self, received: Received) -> None:
        """`received` is handled: acknowledge it, once every older one is too."""
        received.done = True
        order = self._order
        while order and order[0].done:
            message = order.popleft().message
            self._link.ack(message)
            if message.caught_up:
                # Every message the broker had queued before our sync message is stored.
                self._caught_up(message.generation)


@dataclass
class Apply:
    """Configuration changes (already stored) for the engine, from the admin API."""

    events: list[ev.ConfigEvent]
    done: asyncio.Future[None]


@dataclass
class Act:
    """A supervisor's request for the engine, from the admin API; `done` gets its commands."""

    event: ev.SupervisorEvent
    done: asyncio.Future[list[Command]]


def take_batch(lanes: dict[int, deque[Received]]) -> list[Received]:
    """Up to `MAX_BATCH` messages: each tenant's oldest in turn, `MAX_PER_TENANT` at most."""
    batch: list[Received] = []
    for tenant_id in list(lanes):
        lane = lanes.pop(tenant_id)
        take = min(len(lane), MAX_PER_TENANT, MAX_BATCH - len(batch))
        batch += [lane.popleft() for _ in range(take)]
        if lane:
            lanes[tenant_id] = lane  # to the back: the next turn starts with the others
        if len(batch) >= MAX_BATCH:
            break
    return batch


@dataclass(slots=True)
class ErrorBudget:
    """One tenant's allowance of error messages (a token bucket), and what it withheld."""

    tokens: float = float(ERROR_BURST)
    refilled_at: float = 0.0
    withheld: int = 0
    last: ContractError | None = None

    def take(self, now: float) -> bool:
        """Whether one more error may be published now."""
        self.tokens = min(
            float(ERROR_BURST), self.tokens + (now - self.refilled_at) * ERROR_RATE_PER_S
        )
        self.refilled_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ErrorReplies:
    """Answers messages that break the contract on the error topics, then acknowledges them.

    Args:
        prefix: The topic prefix `P`.
        link: The MQTT link the answers are published on.
        acks: Where each answered message is acknowledged.
        clock: The service's clock.
    """

    def __init__(self, prefix: str, link: MqttLink, acks: Acks, clock: Callable[[], float]) -> None:
        self._prefix = prefix
        self._link = link
        self._acks = acks
        self._clock = clock
        self._budgets: dict[int | None, ErrorBudget] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def reject(self, received: Received, error: ContractError) -> None:
        """Answer a message that breaks the contract on the error topic, then acknowledge it.

        It changes nothing, so its answer is not stored: it is acknowledged once
        the broker confirmed the answer (a kill -9 before that repeats both). A
        tenant past its budget gets one summary per `ERROR_SUMMARY_S` instead of an
        answer per message: a flood must not flood the error topic too.
        """
        now = self._clock()
        budget = self._budgets.get(error.tenant_id)
        if budget is None:
            budget = self._budgets[error.tenant_id] = ErrorBudget(refilled_at=now)
        if not budget.take(now):
            budget.last = error
            budget.withheld += 1
            if budget.withheld == 1:
                asyncio.get_running_loop().call_later(
                    ERROR_SUMMARY_S, self._report_withheld, error.tenant_id
                )
            self._acks.done(received)
            return
        _log.warning("inbound.rejected", topic=error.topic[:200], error=error.error)
        self._send(error, received)

    def _report_withheld(self, tenant_id: int | None) -> None:
        budget = self._budgets[tenant_id]
        last, count = budget.last, budget.withheld
        budget.withheld, budget.last = 0, None
        if last is None or not count:
            return
        _log.warning("inbound.rejected_unreported", tenant=tenant_id, count=count)
        summary = ContractError(
            tenant_id,
            last.topic,
            f"{count} more messages broke the contract and are not answered one by one"
            f" (more than {ERROR_RATE_PER_S:g} per second); the last: {last.error}",
            None,
        )
        self._send(summary, None)

    def _send(self, error: ContractError, received: Received | None) -> None:
        try:
            message = render_error(self._prefix, error, now=self._clock())
        except Exception:  # a contract bug: still acknowledge, never redeliver forever
            _log.exception("contract.bug", topic=error.topic[:200])
            if received is not None:
                self._acks.done(received)
            return
        task = asyncio.get_running_loop().create_task(self._publish(message, received))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, message: OutboxMessage, received: Received | None) -> None:
        with contextlib.suppress(LinkClosedError):
            await self._link.publish(message)
            if received is not None:
                self._acks.done(received)

    def cancel(self) -> None:
        """Give up the answers not yet published: their messages stay unacknowledged."""
        for task in self._tasks:
            task.cancel()  # unacknowledged: the broker sends the message again
