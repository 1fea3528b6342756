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

Around this module: `inbox` (the tenants' lanes, acknowledgements in order,
answers to messages that break the contract), `outbox` (what waits to be
published, and the watermark) and `decision_log` (the decisions' log lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from ringmaster.api import check_exposure
from ringmaster.api.feed import LiveFeed
from ringmaster.api.served import NotServedHere
from ringmaster.contract import (
    ContractError,
    OutboxMessage,
    internal_error,
    parse_inbound,
    render,
    render_internal_error,
)
from ringmaster.daemon import sdnotify
from ringmaster.daemon.broker import EmbeddedBroker
from ringmaster.daemon.decision_log import log_decisions
from ringmaster.daemon.inbox import Acks, Act, Apply, ErrorReplies, Received, take_batch
from ringmaster.daemon.metrics import DaemonMetrics
from ringmaster.daemon.mqtt import InboundMessage, MqttLink
from ringmaster.daemon.outbox import Outbox
from ringmaster.daemon.queue_log_file import QueueLogFile
from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    Command,
)
from ringmaster.engine.core import Engine
from ringmaster.engine.model import TenantId
from ringmaster.engine.records import AgentRecord
from ringmaster.history import HistoryRecorder, HistoryWrite
from ringmaster.settings import MqttEndpoint, Settings
from ringmaster.store import Store
from ringmaster.store.records import Fence, FencedError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ringmaster.api.app import ApiServer
    from ringmaster.api.context import EngineHost

_log = structlog.get_logger("ringmaster.service")

#: How long a confirmation waits for a turn to commit it before a turn is
#: woken just for that: bounds how much a kill -9 of a quiet daemon repeats.
WATERMARK_FLUSH_S = 0.005

#: The longest a backlog holds up deadlines that are due: after a (re)connection,
#: counted from the connection, when the broker's queued messages do not end in
#: our sync message (say, an ACL refuses `P/sync`); in the inbox, counted from
#: the deadline, when one tenant's messages keep coming faster than turns take them.
BACKLOG_HOLD_MAX_S = 2.0

#: History pruning (`history.retention_days`): how often, and how many rows of each
#: table one transaction deletes; turns go on between batches.
HISTORY_PRUNE_PERIOD_S = 300.0
HISTORY_PRUNE_BATCH = 1000

#: What the engine handled in a turn (None: a timer or the restore) and decided for it.
Handled = Sequence[tuple[ev.Event | None, Sequence[Command]]]


@dataclass(frozen=True, slots=True)
class ShardRole:
    """The shard a cluster node runs a `Service` for (docs/cluster.md).

    Attributes:
        shard: The shard; its MQTT session is ``<mqtt.client_id>-shard-<n>``.
        epoch: The lease's epoch: every turn is committed under it (the fence).
        node: This node (``cluster.node``).
    """

    shard: int
    epoch: int
    node: str

    @property
    def fence(self) -> Fence:
        """What each of the shard's turns is committed under."""
        return Fence(self.shard, self.node, self.epoch)


def tenant_filters(prefix: str, tenants: Collection[TenantId]) -> list[str]:
    """The topic filters of a shard's tenants: each tenant's PBX topics, in id order."""
    return [f"{prefix}/{tenant}/pbx/#" for tenant in sorted(tenants)]


def _outcome_unawaited(commit: asyncio.Future[list[int]]) -> None:
    """Retrieve a commit's exception, so that none is reported as never retrieved.

    The turn that awaited it raises it; if the turn was cancelled first (`StopShard`
    while the commit ran), only this sees it: a fenced one is the expected end of a
    hand-back, anything else is logged.
    """
    if commit.cancelled() or (error := commit.exception()) is None:
        return
    if isinstance(error, FencedError):
        _log.info("turn.fenced", error=str(error))
    else:
        _log.warning("turn.commit_failed", error=str(error) or type(error).__name__)


async def prune_history(store: Store, days: int, clock: Callable[[], float]) -> None:
    """Delete history older than `days` (`history.retention_days`), a batch per transaction.

    Runs until cancelled; returns at once when `days` is 0 (kept forever).
    """
    if not days:
        return
    while True:
        try:
            cutoff = clock() - days * 86_400
            deleted = 0
            while (batch := await store.prune_history(cutoff, batch=HISTORY_PRUNE_BATCH)) > 0:
                deleted += batch
                await asyncio.sleep(0)  # a turn may go between two batches
            if deleted:
                _log.info("history.pruned", rows=deleted, retention_days=days)
        except Exception:  # the history is not worth the daemon: try again later
            _log.exception("history.prune_failed")
        await asyncio.sleep(HISTORY_PRUNE_PERIOD_S)


class Service:
    """Ringmaster's daemon: run it with `await Service(settings).run()`.

    Args:
        settings: The loaded settings.
        clock: Wall-clock time in seconds; the engine's notion of now. Stored
            deadlines are wall-clock times, so they keep meaning across restarts.
        shard: In a cluster, the shard this service runs (`run_shard`); None for
            the one daemon of every tenant (`run`).
        live: The live feed to tell, when several services share one (a cluster node's).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        shard: ShardRole | None = None,
        live: LiveFeed | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._shard = shard
        #: A shard's tenants (`run_shard`); None: every tenant.
        self._tenants: frozenset[TenantId] | None = None
        self._prefix = settings.mqtt.topic_prefix
        # The `random` strategy's generator: the service owns it, the engine draws.
        self._engine = Engine(rng=random.Random())
        self._history = HistoryRecorder()
        history = settings.history
        self._queue_log: QueueLogFile | None = (
            None
            if history.queue_log_file is None
            else QueueLogFile(history.queue_log_file, history.queue_log_agent, clock())
        )
        # The inbox: each tenant's parsed messages in order (a lane per tenant,
        # served in turn), the admin API's changes and supervisors' requests (in the
        # order they came), and a flag for "a turn is due".
        self._lanes: dict[int, deque[Received]] = {}
        self._applies: deque[Apply | Act] = deque()
        self._woken = False
        self._work = asyncio.Event()
        self._outbox = Outbox(self._prefix)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._link: MqttLink | None = None
        self._acks: Acks | None = None
        #: The connection whose backlog has been taken in, and when the current one came up.
        self._caught_up: int | None = None
        self._backlog_event = asyncio.Event()  # the first backlog is in
        self._connected_at = 0.0
        self._errors: ErrorReplies | None = None
        self._stopping = asyncio.Event()
        self._loaded = False  # configuration and live state restored from the store
        self.ready = asyncio.Event()
        """Set once the store is loaded and the MQTT link subscribed (systemd's READY=1)."""
        self.metrics = DaemonMetrics(
            self._engine,
            clock=clock,
            mqtt_connected=self._mqtt_connected,
            outbox_depth=lambda: self._outbox.unfinished,
            per_process=shard is None,
        )
        """The daemon's Prometheus metrics (the admin API's `GET /metrics`)."""
        self._live = live if live is not None else LiveFeed()
        #: Applies and acts a turn took and has not answered yet (answered if it never does).
        self._taken: list[Apply | Act] = []

    @property
    def engine(self) -> Engine:
        """The engine, read-only for the admin API and tests."""
        return self._engine

    def engine_for(self, tenant_id: int) -> Engine:
        """The engine that serves the tenant (`EngineHost.engine_for`): this one, for all."""
        return self._engine

    @property
    def live(self) -> LiveFeed:
        """Which tenants changed, turn by turn: the wallboard's live streams wait on it."""
        return self._live

    async def apply(self, events: list[ev.ConfigEvent]) -> None:
        """Give configuration changes to the engine, in turn with everything else.

        The caller stores the configuration first, so that a restart sees it;
        this returns once the engine has applied it and whatever it decided at
        once (say, ringing a newly enrolled agent for a waiting call) is stored.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applies.append(Apply(events, done))
        self._wake()
        await done

    async def act(self, event: ev.SupervisorEvent) -> list[Command]:
        """Give a supervisor's request to the engine, in turn with everything else.

        Returns once the engine has handled it and its commands are stored with
        that turn (they are then published): the commands, from which the caller
        reads what happened (none: nothing changed, say the call was answered
        meanwhile).
        """
        done: asyncio.Future[list[Command]] = asyncio.get_running_loop().create_future()
        self._applies.append(Act(event, done))
        self._wake()
        return await done

    def stop(self) -> None:
        """Ask the service to stop cleanly (what SIGTERM does)."""
        self._stopping.set()

    def not_ready(self) -> list[str]:
        """Why the daemon does not serve calls now, for the API's ``/readyz``; empty when it does.

        Ready means: the store loaded (configuration and live state restored), the
        MQTT link connected and subscribed, and the session's backlog taken in (or
        `BACKLOG_HOLD_MAX_S` passed since the connection, after which the service
        goes on without it too), and not stopping.
        """
        reasons: list[str] = []
        if not self._loaded:
            reasons.append("store: not loaded yet")
        link = self._link
        if link is None or not link.connected.is_set():
            reasons.append("mqtt: not connected")
        elif (
            self._caught_up != link.generation
            and self._clock() - self._connected_at < BACKLOG_HOLD_MAX_S
        ):
            reasons.append("mqtt: the session's backlog is not taken in yet")
        if self._stopping.is_set():
            reasons.append("stopping")
        return reasons

    async def run(self) -> None:
        """Run until `stop` (or SIGTERM/SIGINT): state is flushed and P/status set offline.

        Raises:
            SettingsError: The admin API would listen beyond loopback without a token.
        """
        _log.info("service.starting")  # after the interpreter and the imports
        if self._settings.api.enabled:
            check_exposure(self._settings.api)  # before anything starts
        async with contextlib.AsyncExitStack() as stack:
            endpoint = await broker_endpoint(self._settings, stack)
            store = await Store.open(self._settings.database.target)
            stack.push_async_callback(store.close)
            _log.info("store.opened", database=self._settings.database.redacted)
            await self._load(store)
            link = MqttLink.from_settings(self._settings.mqtt, endpoint=endpoint, sync=True)
            self._start_link(link)
            stack.push_async_callback(link.close)
            stop_on_signals(self.stop)
            await self._serve(store, link, stack)

    async def run_shard(
        self,
        store: Store,
        endpoint: MqttEndpoint,
        tenants: frozenset[TenantId],
        configuration: list[ev.ConfigEvent],
    ) -> None:
        """Run one shard of a cluster until cancelled (`StopShard`) or fenced out.

        The node that holds the shard's lease gives the store, the broker, the
        shard's tenants and their stored configuration. The engine is restored
        with those tenants' live state and the shard's outbox, then the shard's own
        MQTT session (client id ``<mqtt.client_id>-shard-<n>``, kept by the broker
        across holders) is connected, subscribed to the tenants' topics, and turns
        run, each committed under the lease's epoch. Cancelling stops at once: no
        further turn or publication; what a turn committed is published by the next
        holder, what it did not is delivered to it again.

        Raises:
            FencedError: The lease was taken over: a turn was refused, nothing written.
        """
        shard = self._shard
        assert shard is not None, "run_shard is for a cluster shard's service"
        self._tenants = tenants
        link: MqttLink | None = None
        try:
            await self._load(store, configuration)
            link = MqttLink.from_settings(
                self._settings.mqtt,
                endpoint=endpoint,
                # Not `tenants`: a tenant created while the shard loaded is in already.
                subscriptions=tenant_filters(self._prefix, self._tenants),
                sync=True,
                shard=shard.shard,
            )
            self._start_link(link)
            number = shard.shard
            turns = asyncio.create_task(self._turns(store, link), name=f"shard-{number}")
            stopping = asyncio.create_task(self._stopping.wait())
            self._start_publishing(link)
            try:
                await asyncio.wait({turns, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if turns.done():
                    turns.result()  # a fenced turn (or a bug) ends the shard here
            finally:
                self._stop_publishing(link)
                for task in (turns, stopping):
                    task.cancel()
                await asyncio.gather(turns, stopping, return_exceptions=True)
        finally:
            self._stopping.set()
            self._cancel_timers()
            for change in [*self._taken, *self._applies]:
                if not change.done.done():
                    tenant = change.event.tenant_id if isinstance(change, Act) else None
                    change.done.set_exception(NotServedHere(tenant))
            if link is not None:
                link.on_message = None  # unacknowledged: the broker gives it to the next holder
                await link.close()

    async def set_tenants(self, tenants: frozenset[TenantId]) -> None:
        """A shard's tenants changed (a tenant created, or assigned to another shard).

        The new ones' topics are subscribed to before this returns; a tenant that left
        is no longer subscribed to, and its messages still in flight are dropped (its
        new shard's holder gets them from its own session).
        """
        old = self._tenants if self._tenants is not None else frozenset()
        self._tenants = tenants
        link = self._link
        if link is not None:
            await link.subscribe(tenant_filters(self._prefix, tenants - old))
            await link.unsubscribe(tenant_filters(self._prefix, old - tenants))

    def _start_link(self, link: MqttLink) -> None:
        self._link = link
        self._acks = Acks(link, self._backlog_taken_in)
        self._errors = ErrorReplies(self._prefix, link, self._acks, self._clock)
        link.on_connected = self._link_connected
        link.on_message = self._take_in  # as paho reads it: no hop of the loop between
        link.start()

    # --- start-up ------------------------------------------------------------------

    async def _load(self, store: Store, configuration: list[ev.ConfigEvent] | None = None) -> None:
        started = time.perf_counter()
        now = self._clock()
        if configuration is None:
            configuration = await store.load_config()
        for event in configuration:
            self._engine.handle(event, now)
        self._engine.take_changes()  # configuration is already stored as configuration
        live = await store.load_live(self._tenants)
        self._seed_history(live.agents)
        # Deadlines that passed while we were down wait for the messages the broker
        # kept for us (see `_deadlines_held`): restore applies none of them.
        commands = self._engine.restore(live, now)
        # Anything decided before a crash but not confirmed published goes first,
        # in its original order; then what the restart itself decided.
        for seq, message in await store.pending_outbox(self._outbox_shard):
            self._outbox.put(seq, message)
        await self._store_and_send(
            store, commands, self._render(commands, now), now, [(None, commands)]
        )
        self._loaded = True
        self._live.changed_all()
        _log.info(
            "store.loaded",
            calls=len(live.calls),
            agents=len(live.agents),
            seconds=round(time.perf_counter() - started, 3),
        )

    # --- the loop ------------------------------------------------------------------------

    async def _start_api(self, store: Store, link: MqttLink) -> ApiServer:
        """The admin API, started once the calls are served.

        A restart's first ring does not wait for it: FastAPI's import was most of
        the time from the process's start to its first ring. It waits until the
        broker's backlog is in (or `BACKLOG_HOLD_MAX_S`), then imports and builds
        the app on a worker thread, so that turns go on meanwhile.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(BACKLOG_HOLD_MAX_S):
                await self._backlog_event.wait()
        api = await start_api(self, store, self._settings, self._clock, self.metrics.registry)
        _log.info("api.started", backlog_taken_in=self._caught_up == link.generation)
        return api

    async def _serve(self, store: Store, link: MqttLink, stack: contextlib.AsyncExitStack) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._start_publishing(link)
            pinging = tasks.create_task(watchdog(), name="watchdog")
            pruning = tasks.create_task(
                prune_history(store, self._settings.history.retention_days, self._clock),
                name="history-pruning",
            )
            loop_lag = tasks.create_task(self.metrics.watch_loop_lag(), name="loop-lag")
            queue_log = (
                None
                if self._queue_log is None
                else tasks.create_task(self._queue_log.run(store), name="queue-log-file")
            )
            turns = tasks.create_task(self._turns(store, link), name="engine")
            await link.wait_connected()
            api: ApiServer | None = None
            if self._settings.api.enabled:
                api = await self._start_api(store, link)
                stack.push_async_callback(api.stop)  # on an error; a clean stop is below
            self.ready.set()
            sdnotify.notify("READY=1")
            _log.info("service.ready", prefix=self._prefix, broker=f"{link.host}:{link.port}")
            await self._stopping.wait()
            sdnotify.notify("STOPPING=1")
            _log.info("service.stopping")
            if api is not None:
                # First, while the turns still run: a request in flight may await apply().
                await api.stop()
            link.on_message = None  # from here on, unhandled: the broker sends it again
            self._wake()  # let the current turn finish and the loop see stop
            await turns
            if self._queue_log is not None and queue_log is not None:
                self._queue_log.stop()
                await queue_log
            await self._drain_outbox()
            self._stop_publishing(link)
            pinging.cancel()
            pruning.cancel()
            loop_lag.cancel()
        self._cancel_timers()
        # Record what was confirmed, so a restart does not publish it again.
        await store.commit(self._engine.take_changes(), [], self._outbox.delivered_up_to)

    @property
    def _outbox_shard(self) -> int:
        return 0 if self._shard is None else self._shard.shard

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._flush_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._flush_timer = None
        self._timer_at = None
        if self._errors is not None:
            self._errors.cancel()

    def _take_in(self, message: InboundMessage) -> None:
        # Before any turn: parse, so that a message that breaks the contract costs no
        # turn, no commit and no place in a tenant's lane (a flood of them delays nobody).
        received = Received(message, self._clock())
        assert self._acks is not None
        self._acks.expect(received)
        if message.caught_up:
            self._acks.done(received)
            return
        try:
            event = parse_inbound(self._prefix, message.topic, message.payload)
        except ContractError as error:
            self._refuse(received, error)
            return
        except Exception:  # a contract bug: this message alone is refused
            _log.exception("contract.bug", topic=message.topic[:200])
            self._refuse(received, internal_error(self._prefix, message.topic, message.payload))
            return
        received.event = event
        if self._tenants is not None and event.tenant_id not in self._tenants:
            # Left this shard (subscribed to by its old session): its own shard's session
            # has it too. Acknowledged unhandled, not refused: it is not the PBX's error.
            self._acks.done(received)
            return
        lane = self._lanes.get(event.tenant_id)
        if lane is None:
            lane = self._lanes[event.tenant_id] = deque()
        lane.append(received)
        self._work.set()

    def _refuse(self, received: Received, error: ContractError) -> None:
        assert self._errors is not None
        self.metrics.inbound_rejected(error.reason)
        self._errors.reject(received, error)

    def _mqtt_connected(self) -> bool:
        return self._link is not None and self._link.connected.is_set()

    async def _turns(self, store: Store, link: MqttLink) -> None:
        while not self._stopping.is_set():
            if not (self._lanes or self._applies or self._woken):
                self._work.clear()
                await self._work.wait()
                continue
            self._woken = False
            applies = list(self._applies)
            self._applies.clear()
            self._taken = applies
            await self._turn(store, link, take_batch(self._lanes), applies)
            self._taken = []

    async def _turn(
        self, store: Store, link: MqttLink, batch: list[Received], applies: list[Apply | Act]
    ) -> None:
        started = time.perf_counter()
        now = self._clock()
        commands: list[Command] = []
        # What the commands render to, in the order they were decided.
        messages: list[OutboxMessage] = []
        handled: list[tuple[ev.Event | None, Sequence[Command]]] = []
        acted: list[tuple[Act, list[Command]]] = []
        for change in applies:
            if isinstance(change, Act):
                try:
                    decided = self._engine.handle(change.event, now)
                    messages += self._render(decided, now)
                except Exception as error:  # an engine bug: the API answers 500
                    _log.exception("engine.bug", event=type(change.event).__name__)
                    change.done.set_exception(error)
                    continue
                commands += decided
                handled.append((change.event, decided))
                acted.append((change, decided))
                continue
            try:
                for config_event in change.events:
                    decided = self._engine.handle(config_event, now)
                    messages += self._render(decided, now)
                    commands += decided
                    handled.append((config_event, decided))
            except Exception as error:  # an engine bug: the API answers 500
                _log.exception("engine.bug", events=len(change.events))
                change.done.set_exception(error)
        for received in batch:
            decided, rendered = self._take(received, now)
            commands += decided
            messages += rendered
            handled.append((received.event, decided))
        if not self._deadlines_held(now):
            decided = self._engine.handle_timer(now)
            messages += self._render(decided, now)
            commands += decided
            handled.append((None, decided))
        await self._store_and_send(store, commands, messages, now, handled)
        self._tell_live(
            commands, batch, configured=any(isinstance(change, Apply) for change in applies)
        )
        self.metrics.observe_turn(
            batch, commands, seconds=time.perf_counter() - started, finished=self._clock()
        )
        assert self._acks is not None
        for received in batch:
            self._acks.done(received)
        # The turn's messages and PUBACKs leave now, in one send: left to the event
        # loop's writer, they would wait for the next turn when more messages wait.
        link.flush()
        for change in applies:
            if isinstance(change, Apply) and not change.done.done():
                change.done.set_result(None)
        for act, decided in acted:
            if not act.done.done():
                act.done.set_result(decided)
        self._arm_timer()

    def _tell_live(
        self, commands: Sequence[Command], batch: Sequence[Received], *, configured: bool
    ) -> None:
        """Tell the live streams which tenants this turn changed (once it is stored)."""
        if configured:
            # Configuration events do not all name their tenant; they are rare.
            self._live.changed_all()  # every tenant, those below included
            return
        tenants = {t for c in commands if (t := getattr(c, "tenant_id", None)) is not None}
        tenants.update(r.event.tenant_id for r in batch if r.event is not None)
        if tenants:
            self._live.changed(tenants)

    def _deadlines_held(self, now: float) -> bool:
        """Whether due deadlines wait for messages that may overtake them.

        A message the PBX sent before a deadline passed is handled before that
        deadline (an `answered` before its ring's timeout). The daemon cannot see
        when the PBX sent it, only what it has received, so deadlines wait:

        - while disconnected, and after a (re)connection until every message the
          broker kept for the session is stored: the link's sync message, queued
          behind them, says when (at most `BACKLOG_HOLD_MAX_S` after connecting);
        - while the inbox holds a message received before the first due deadline
          (at most `BACKLOG_HOLD_MAX_S` past that deadline).
        """
        link = self._link
        if link is None or not link.connected.is_set():
            return True
        if self._caught_up != link.generation:
            return now - self._connected_at < BACKLOG_HOLD_MAX_S
        due = self._engine.next_deadline()
        if due is None or due > now or now - due >= BACKLOG_HOLD_MAX_S:
            return False
        return any(lane[0].at <= due for lane in self._lanes.values())

    def _link_connected(self, generation: int) -> None:
        self._connected_at = self._clock()
        _log.info("backlog.awaited", generation=generation)
        self._arm_timer()  # for the hold's bound

    def _backlog_taken_in(self, generation: int) -> None:
        link = self._link
        if link is not None and generation == link.generation:
            self._caught_up = generation
            self._backlog_event.set()
            _log.info(
                "backlog.taken_in",
                generation=generation,
                seconds=round(self._clock() - self._connected_at, 3),
            )
            due = self._engine.next_deadline()
            if due is not None and due <= self._clock():
                self._wake()  # deadlines that waited for it
            else:
                self._arm_timer()

    def _take(self, received: Received, now: float) -> tuple[list[Command], list[OutboxMessage]]:
        """One parsed message's commands and the messages to publish for it; never raises.

        Whatever goes wrong with one message here (a bug in the engine or in
        rendering) is never the other messages' fault, nor a reason to stop serving
        every other call: it is logged with its traceback and answered with an
        internal error. Either way the message is acknowledged with its batch, so
        that the broker does not deliver it again and again. (Messages that break
        the contract never get here: `_take_in` answers them.)
        """
        message = received.message
        try:
            assert received.event is not None
            commands = self._engine.handle(received.event, now)
            return commands, self._render(commands, now)
        except Exception:
            # Should the engine have acted before failing, its state changes are
            # stored with the turn; only this message's commands are lost.
            _log.exception("inbound.failed", topic=message.topic[:200])
            answer = render_internal_error(self._prefix, message.topic, message.payload, now=now)
            return [], [answer]

    def _render(self, commands: Sequence[Command], now: float) -> list[OutboxMessage]:
        return [render(self._prefix, command, now=now) for command in commands]

    async def _store_and_send(
        self,
        store: Store,
        commands: list[Command],
        messages: list[OutboxMessage],
        now: float,
        handled: Handled = (),
    ) -> None:
        """Store the engine's changes with `messages` (`commands` rendered), then publish.

        `handled`'s history is written in the same transaction.
        """
        snapshots = self._engine.take_snapshots(now)
        commands = [*commands, *snapshots]
        messages = [*messages, *self._render(snapshots, now)]
        changes = self._engine.take_changes()
        delivered_up_to = self._outbox.unrecorded()
        history = self._history_of(handled, now)
        if not messages and not changes and delivered_up_to is None and not history:
            return
        # Shielded: once SQLite is committing, a cancelled await would leave us
        # unsure whether it landed; let it finish either way.
        fence = None if self._shard is None else self._shard.fence
        commit = asyncio.ensure_future(
            store.commit(changes, messages, delivered_up_to, history, fence=fence)
        )
        # Its outcome is this turn's to raise, unless the turn was cancelled meanwhile
        # (a shard stopped: the commit is then usually fenced): then it is only logged.
        commit.add_done_callback(_outcome_unawaited)
        seqs = await asyncio.shield(commit)
        if delivered_up_to is not None:
            self._outbox.recorded_up_to = delivered_up_to
        if history and self._queue_log is not None:
            self._queue_log.committed(now)
        for seq, message in zip(seqs, messages, strict=True):
            self._outbox.put(seq, message)
        log_decisions(commands)

    # --- history ---------------------------------------------------------------------------

    def _seed_history(self, agents: Sequence[AgentRecord]) -> None:
        """Tell the history each agent's state as last published (a login from an unpause)."""
        for record in agents:
            agent = self._engine.agent(record.extension_id)
            if agent is not None:
                self._history.seed(agent.tenant_id, agent.number, record.status)

    def _history_of(self, handled: Handled, now: float) -> list[HistoryWrite]:
        """The turn's call and agent history; a bug here costs history, never the turn."""
        writes: list[HistoryWrite] = []
        for event, commands in handled:
            try:
                writes += self._history.record(event, commands, now)
            except Exception:
                _log.exception("history.bug", event=type(event).__name__)
        return writes

    def _arm_timer(self) -> None:
        link = self._link
        deadline: float | None = None
        if link is not None and link.connected.is_set():
            hold_ends = self._connected_at + BACKLOG_HOLD_MAX_S
            if self._caught_up != link.generation and self._clock() < hold_ends:
                deadline = hold_ends
            else:
                deadline = self._engine.next_deadline()
        # While disconnected nothing is armed: the next connection wakes a turn.
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._timer_due)

    def _timer_due(self) -> None:
        self._timer = None
        self._timer_at = None
        self._wake()

    def _wake(self) -> None:
        """Have a turn run even if no message waits (a deadline, a watermark, stop)."""
        self._woken = True
        self._work.set()

    # --- publishing ---------------------------------------------------------------------

    def _start_publishing(self, link: MqttLink) -> None:
        # The outbox hands each stored message to the link as it is put there (or
        # as a PUBACK makes room), tenants in turn; the link hands it to paho at
        # once, so each tenant's messages leave in the order they were stored (QoS 1
        # keeps that order on one connection), and reports each PUBACK back here.
        link.on_published = self._outbox.published
        self._outbox.on_watermark = self._watermark_moved
        self._outbox.send = link.send
        self._outbox.pump()

    def _stop_publishing(self, link: MqttLink) -> None:
        # Nothing more is handed over; what was, the link may still send meanwhile
        # (it is unconfirmed: the store publishes it again after a restart).
        self._outbox.send = self._outbox.on_watermark = None
        link.on_published = None

    def _watermark_moved(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                WATERMARK_FLUSH_S, self._flush_due
            )

    def _flush_due(self) -> None:
        # Confirmed but not yet committed: the outbox rows are still in the store,
        # and a kill -9 now publishes them again after the restart (at least once).
        # Usually a turn has committed the watermark since; if not, wake one for it.
        self._flush_timer = None
        if self._outbox.unrecorded() is not None:
            self._wake()

    async def _drain_outbox(self, timeout_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self._outbox.join(), timeout_s)
        except TimeoutError:
            _log.warning("outbox.not_drained", left=self._outbox.unfinished)


# --- what a daemon and a cluster node share ------------------------------------------------


async def broker_endpoint(settings: Settings, stack: contextlib.AsyncExitStack) -> MqttEndpoint:
    """Where the broker is: `mqtt.url`, or a private mosquitto started until `stack` ends."""
    endpoint = settings.mqtt.endpoint()
    if endpoint is None:
        broker = EmbeddedBroker.from_settings(settings.broker)
        await stack.enter_async_context(broker)
        endpoint = MqttEndpoint(broker.host, broker.port, None, None, tls=False)
        _log.info("broker.embedded", url=broker.url)
    return endpoint


async def start_api(
    host: EngineHost,
    store: Store,
    settings: Settings,
    clock: Callable[[], float],
    registry: CollectorRegistry,
) -> ApiServer:
    """Import and build the admin API on a worker thread (turns go on), then serve it."""
    app_module = await asyncio.to_thread(importlib.import_module, "ringmaster.api.app")
    app = await asyncio.to_thread(
        functools.partial(
            app_module.create_app,
            host,
            store,
            settings.api,
            clock=clock,
            metrics=registry,
            cluster_settings=settings.cluster,
        )
    )
    app.state.queue_log_agent = settings.history.queue_log_agent
    api: ApiServer = app_module.ApiServer(app, settings.api)
    await api.start()
    return api


async def watchdog() -> None:
    """Ping systemd's watchdog (if the unit has one) until cancelled."""
    period = sdnotify.watchdog_period()
    if period is None:
        return
    # Pinged from the event loop itself: a loop stuck for longer than the
    # watchdog's timeout is exactly what systemd should restart.
    while True:
        sdnotify.notify("WATCHDOG=1")
        await asyncio.sleep(period)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """Have SIGTERM and SIGINT call `stop` (a clean stop) instead of killing the process."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Not on every loop or thread (Windows' loops, a loop outside the main
        # thread in tests): there the default handlers stay, and stop() still works.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop)
