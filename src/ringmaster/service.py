"""The daemon: one event loop around the engine, the store and the MQTT link.

Each turn of the loop takes every inbound message already waiting (a batch),
hands them to the engine with the current time, stores the engine's changes
together with the messages they imply (the outbox) in one SQLite transaction,
and only then acknowledges the inbound messages to the broker and publishes
the outbox. So a `kill -9` at any instant either loses the batch before it was
stored (and the broker redelivers it) or finds it stored with its commands
(and they are published after the restart). The engine wakes for its own
deadlines through exactly one `loop.call_later`, re-armed after every turn.

Which stored messages the broker has confirmed (the outbox's watermark) rides
along with the next turn's transaction, so a turn costs one commit; a daemon
that goes quiet records it `WATERMARK_FLUSH_S` after the confirmation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from ringmaster import sdnotify
from ringmaster.api import ApiServer, check_exposure, create_app
from ringmaster.broker import EmbeddedBroker
from ringmaster.contract import (
    ContractError,
    parse_inbound,
    render,
    render_error,
    render_internal_error,
)
from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    CancelRing,
    Command,
    Originate,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallbackRequested,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    PublishCallRejected,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.core import Engine
from ringmaster.mqtt import InboundMessage, MqttLink
from ringmaster.settings import MqttEndpoint, Settings
from ringmaster.store import OutboxMessage, Store

_log = structlog.get_logger("ringmaster.service")

#: How many inbound messages one turn takes at most: bounds the latency a
#: burst adds to the first message of the next turn.
MAX_BATCH = 512

#: How many outbound messages are published and awaiting PUBACK at once: one
#: publisher coroutine each, so a burst of thousands costs no task per message.
#: paho itself keeps at most 20 on the wire (and mosquitto's receive maximum is
#: 20 too); the rest of the window waits in paho, ready to go on each PUBACK.
PUBLISH_WINDOW = 32

#: How long a confirmation waits for a turn to commit it before a turn is
#: woken just for that: bounds how much a kill -9 of a quiet daemon repeats.
WATERMARK_FLUSH_S = 0.005


class _Wake:
    """A marker in the inbound queue: the engine's deadline has come."""


_WAKE = _Wake()


@dataclass
class _Apply:
    """Configuration changes (already stored) for the engine, from the admin API."""

    events: list[ev.ConfigEvent]
    done: asyncio.Future[None]


@dataclass
class _Outbox:
    """Stored messages waiting to be published, in the order they were decided."""

    pending: asyncio.Queue[tuple[int, OutboxMessage]] = field(default_factory=asyncio.Queue)
    #: Taken by a publisher, oldest first (publishers take in seq order).
    in_flight: deque[int] = field(default_factory=deque)
    #: Confirmed while an older message was still in flight (after a reconnect,
    #: PUBACKs may come out of order).
    confirmed_early: set[int] = field(default_factory=set)
    #: Every message with a seq up to this one is confirmed by the broker.
    delivered_up_to: int | None = None
    #: The watermark as last committed: those rows are gone from the store.
    recorded_up_to: int | None = None

    def take(self, seq: int) -> None:
        """A publisher took message `seq` from `pending`."""
        self.in_flight.append(seq)

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


class Service:
    """Ringmaster's daemon: run it with `await Service(settings).run()`.

    Args:
        settings: The loaded settings.
        clock: Wall-clock time in seconds; the engine's notion of now. Stored
            deadlines are wall-clock times, so they keep meaning across restarts.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._prefix = settings.mqtt.topic_prefix
        # The `random` strategy's generator: the service owns it, the engine draws.
        self._engine = Engine(rng=random.Random())
        self._inbox: asyncio.Queue[InboundMessage | _Wake | _Apply] = asyncio.Queue()
        self._outbox = _Outbox()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        """Set once the store is loaded and the MQTT link subscribed (systemd's READY=1)."""

    @property
    def engine(self) -> Engine:
        """The engine, read-only for the admin API and tests."""
        return self._engine

    async def apply(self, events: list[ev.ConfigEvent]) -> None:
        """Give configuration changes to the engine, in turn with everything else.

        The caller stores the configuration first, so that a restart sees it;
        this returns once the engine has applied it and whatever it decided at
        once (say, ringing a newly enrolled agent for a waiting call) is stored.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(_Apply(events, done))
        await done

    def stop(self) -> None:
        """Ask the service to stop cleanly (what SIGTERM does)."""
        self._stopping.set()

    async def run(self) -> None:
        """Run until `stop` (or SIGTERM/SIGINT): state is flushed and P/status set offline.

        Raises:
            SettingsError: The admin API would listen beyond loopback without a token.
        """
        if self._settings.api.enabled:
            check_exposure(self._settings.api)  # before anything starts
        async with contextlib.AsyncExitStack() as stack:
            endpoint = self._settings.mqtt.endpoint()
            if endpoint is None:
                broker = EmbeddedBroker.from_settings(self._settings.broker)
                await stack.enter_async_context(broker)
                endpoint = MqttEndpoint(broker.host, broker.port, None, None, tls=False)
                _log.info("broker.embedded", url=broker.url)
            store = await Store.open(self._settings.database.path)
            stack.push_async_callback(store.close)
            await self._load(store)
            link = MqttLink.from_settings(self._settings.mqtt, endpoint=endpoint)
            link.start()
            stack.push_async_callback(link.close)
            api: ApiServer | None = None
            if self._settings.api.enabled:
                app = create_app(self, store, self._settings.api, clock=self._clock)
                api = ApiServer(app, self._settings.api)
                await api.start()
                stack.push_async_callback(api.stop)  # on an error; a clean stop is in _serve
            self._install_signal_handlers()
            await self._serve(store, link, api)

    # --- start-up ------------------------------------------------------------------

    async def _load(self, store: Store) -> None:
        started = time.perf_counter()
        now = self._clock()
        for event in await store.load_config():
            self._engine.handle(event, now)
        self._engine.take_changes()  # configuration is already stored as configuration
        live = await store.load_live()
        commands = self._engine.restore(live, now)
        # Anything decided before a crash but not confirmed published goes first,
        # in its original order; then what the restart itself decided.
        for seq, message in await store.pending_outbox():
            self._outbox.pending.put_nowait((seq, message))
        await self._store_and_send(store, commands, self._render(commands, now), now)
        self._arm_timer()
        _log.info(
            "store.loaded",
            calls=len(live.calls),
            agents=len(live.agents),
            seconds=round(time.perf_counter() - started, 3),
        )

    # --- the loop ------------------------------------------------------------------------

    async def _serve(self, store: Store, link: MqttLink, api: ApiServer | None) -> None:
        async with asyncio.TaskGroup() as tasks:
            reader = tasks.create_task(self._read(link), name="mqtt-reader")
            publishers = [
                tasks.create_task(self._publish(link), name=f"publisher-{n}")
                for n in range(PUBLISH_WINDOW)
            ]
            watchdog = tasks.create_task(self._watchdog(), name="watchdog")
            turns = tasks.create_task(self._turns(store, link), name="engine")
            await link.wait_connected()
            self.ready.set()
            sdnotify.notify("READY=1")
            _log.info("service.ready", prefix=self._prefix, broker=f"{link.host}:{link.port}")
            await self._stopping.wait()
            sdnotify.notify("STOPPING=1")
            _log.info("service.stopping")
            if api is not None:
                # First, while the turns still run: a request in flight may await apply().
                await api.stop()
            reader.cancel()
            self._inbox.put_nowait(_WAKE)  # let the current turn finish and the loop see stop
            await turns
            await self._drain_outbox()
            for publisher in publishers:
                publisher.cancel()
            watchdog.cancel()
        for timer in (self._timer, self._flush_timer):
            if timer is not None:
                timer.cancel()
        # Record what was confirmed, so a restart does not publish it again.
        await store.commit(self._engine.take_changes(), [], self._outbox.delivered_up_to)

    async def _read(self, link: MqttLink) -> None:
        async for message in link.messages():
            self._inbox.put_nowait(message)

    async def _turns(self, store: Store, link: MqttLink) -> None:
        while not self._stopping.is_set():
            batch = [await self._inbox.get()]
            while len(batch) < MAX_BATCH and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            await self._turn(store, link, batch)

    async def _turn(
        self, store: Store, link: MqttLink, batch: list[InboundMessage | _Wake | _Apply]
    ) -> None:
        now = self._clock()
        commands: list[Command] = []
        # What the commands render to, and the answers to rejected messages, in order.
        messages: list[OutboxMessage] = []
        handled: list[InboundMessage] = []
        applied: list[_Apply] = []
        for message in batch:
            if isinstance(message, _Wake):
                continue
            if isinstance(message, _Apply):
                applied.append(message)
                try:
                    for config_event in message.events:
                        decided = self._engine.handle(config_event, now)
                        messages += self._render(decided, now)
                        commands += decided
                except Exception as error:  # an engine bug: the API answers 500
                    _log.exception("engine.bug", events=len(message.events))
                    message.done.set_exception(error)
                continue
            handled.append(message)
            decided, rendered = self._take(message, now)
            commands += decided
            messages += rendered
        decided = self._engine.handle_timer(now)
        messages += self._render(decided, now)
        commands += decided
        await self._store_and_send(store, commands, messages, now)
        for message in handled:
            link.ack(message)
        for change in applied:
            if not change.done.done():
                change.done.set_result(None)
        self._arm_timer()

    def _take(
        self, message: InboundMessage, now: float
    ) -> tuple[list[Command], list[OutboxMessage]]:
        """One inbound message's commands and the messages to publish for it; never raises.

        A message that breaks the contract is answered on the error topic. Whatever
        else goes wrong with it (a bug in parsing, in the engine or in rendering) is
        never the other messages' fault, nor a reason to stop serving every other
        call: it is logged with its traceback and answered with an internal error.
        Either way the message is acknowledged with its batch, so that the broker
        does not deliver it again and again.
        """
        try:
            event = parse_inbound(self._prefix, message.topic, message.payload)
            commands = self._engine.handle(event, now)
            return commands, self._render(commands, now)
        except ContractError as error:
            _log.warning("inbound.rejected", topic=error.topic, error=error.error)
            return [], [render_error(self._prefix, error, now=now)]
        except Exception:
            # Should the engine have acted before failing, its state changes are
            # stored with the turn; only this message's commands are lost.
            _log.exception("inbound.failed", topic=message.topic)
            answer = render_internal_error(self._prefix, message.topic, message.payload, now=now)
            return [], [answer]

    def _render(self, commands: Sequence[Command], now: float) -> list[OutboxMessage]:
        return [render(self._prefix, command, now=now) for command in commands]

    async def _store_and_send(
        self, store: Store, commands: list[Command], messages: list[OutboxMessage], now: float
    ) -> None:
        """Store the engine's changes with `messages` (`commands` rendered), then publish."""
        snapshots = self._engine.take_snapshots(now)
        commands = [*commands, *snapshots]
        messages = [*messages, *self._render(snapshots, now)]
        changes = self._engine.take_changes()
        delivered_up_to = self._outbox.unrecorded()
        if not messages and not changes and delivered_up_to is None:
            return
        # Shielded: once SQLite is committing, a cancelled await would leave us
        # unsure whether it landed; let it finish either way.
        seqs = await asyncio.shield(store.commit(changes, messages, delivered_up_to))
        if delivered_up_to is not None:
            self._outbox.recorded_up_to = delivered_up_to
        for seq, message in zip(seqs, messages, strict=True):
            self._outbox.pending.put_nowait((seq, message))
        for command in commands:
            _log_decision(command)

    def _arm_timer(self) -> None:
        deadline = self._engine.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._timer_at = None
        self._inbox.put_nowait(_WAKE)

    # --- publishing ---------------------------------------------------------------------

    async def _publish(self, link: MqttLink) -> None:
        # One of PUBLISH_WINDOW publishers. Each takes the oldest pending message
        # and hands it to paho before it first awaits, so messages leave in the
        # order they were stored (QoS 1 keeps that order on one connection).
        outbox = self._outbox
        while True:
            seq, message = await outbox.pending.get()
            outbox.take(seq)
            await link.publish(message)
            if outbox.confirm(seq) and self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_later(
                    WATERMARK_FLUSH_S, self._flush_due
                )
            outbox.pending.task_done()

    def _flush_due(self) -> None:
        # Confirmed but not yet committed: the outbox rows are still in the store,
        # and a kill -9 now publishes them again after the restart (at least once).
        # Usually a turn has committed the watermark since; if not, wake one for it.
        self._flush_timer = None
        if self._outbox.unrecorded() is not None:
            self._inbox.put_nowait(_WAKE)

    async def _drain_outbox(self, timeout_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self._outbox.pending.join(), timeout_s)
        except TimeoutError:
            _log.warning("outbox.not_drained", left=self._outbox.pending.qsize())

    # --- systemd and signals ------------------------------------------------------------

    async def _watchdog(self) -> None:
        period = sdnotify.watchdog_period()
        if period is None:
            return
        # Pinged from the event loop itself: a loop stuck for longer than the
        # watchdog's timeout is exactly what systemd should restart.
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(period)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)


#: The decisions worth a log line, by the name they are logged under. Agent
#: states and snapshots are visible on MQTT and too chatty for the log.
_LOGGED: dict[type, str] = {
    Ring: "ring",
    CancelRing: "cancel_ring",
    RouteToExtension: "route",
    RouteToHangup: "route_hangup",
    PublishCallQueued: "call.queued",
    PublishCallAnswered: "call.answered",
    PublishCallAbandoned: "call.abandoned",
    PublishCallCompleted: "call.completed",
    PublishCallRejected: "call.rejected",
    PublishCallOverflowed: "call.overflowed",
    PublishCallbackRequested: "call.callback_requested",
    Originate: "originate",
}


def _log_decision(command: Command) -> None:
    if isinstance(command, RejectInput):
        _log.warning("inbound.refused", tenant=command.event.tenant_id, error=command.error)
        return
    name = _LOGGED.get(type(command))
    if name is not None:
        # Every field, so each line has the call_id, tenant, queue and extension.
        fields = {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
        fields["tenant"] = fields.pop("tenant_id")
        fields.pop("at", None)
        _log.info(
            name, **{k: v.value if isinstance(v, enum.Enum) else v for k, v in fields.items()}
        )
