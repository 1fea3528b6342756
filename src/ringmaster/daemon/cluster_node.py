"""A cluster node: the lease loop around `NodeLeases`, and one `Service` per shard it holds.

`ringmaster run` runs this instead of the one `Service` when ``cluster.shards > 0``
(docs/cluster.md). The node:

- drives `ringmaster.cluster.leases.NodeLeases` through the store's `ClusterStore`: it
  reads the lease and heartbeat tables at the machine's deadlines (or at once when a
  lease is released: ``LISTEN ringmaster_leases``), carries out its statements one by one
  and hands back their outcomes, and keeps one timer on the first held lease's lapse, so
  that a shard stops on this node's clock even while the database does not answer;
- on `StartShard`, runs a `Service` for the shard's tenants (`Service.run_shard`: their
  stored state, the shard's own MQTT session, turns fenced with the lease's epoch); on
  `StopShard`, cancels it at once;
- re-reads the configuration on every notice (``LISTEN ringmaster_config``, sent by any
  node's write, or by hand-written SQL) and gives each shard the difference for its
  tenants, subscribing to a tenant new to the shard first;
- serves the admin API for every tenant: configuration through any node, the live
  engine of the tenants it holds (others answer 421: `ringmaster.api.served.NotServedHere`).

Leaving (SIGTERM) stops every shard and releases its lease with a notice, so the
nodes placement now prefers take them over within milliseconds instead of a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from ringmaster.api import check_exposure
from ringmaster.api.feed import LiveFeed
from ringmaster.api.served import NotServedHere
from ringmaster.cluster.configuration import configuration_for, tenant_ids
from ringmaster.cluster.leases import (
    Acquire,
    Action,
    Beat,
    LeaseTiming,
    NodeLeases,
    Release,
    Renew,
    StartShard,
    StopShard,
)
from ringmaster.cluster.shards import shard_of
from ringmaster.daemon import sdnotify
from ringmaster.daemon.metrics import NodeMetrics
from ringmaster.daemon.service import (
    Service,
    ShardRole,
    broker_endpoint,
    prune_history,
    start_api,
    stop_on_signals,
    watchdog,
)
from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command
from ringmaster.engine.config_diff import config_changes
from ringmaster.engine.core import Engine
from ringmaster.engine.model import TenantId
from ringmaster.settings import MqttEndpoint, Settings
from ringmaster.store import Store
from ringmaster.store.records import FencedError

if TYPE_CHECKING:
    from ringmaster.api.app import ApiServer
    from ringmaster.store.postgres.cluster import ClusterStore, Listener

_log = structlog.get_logger("ringmaster.cluster")

#: After a failed read of the lease tables, the least wait before the next: the
#: database is likely away, and the lapse timer stops the shards meanwhile.
RETRY_S = 0.1
#: The connections that LISTEN: configuration notices and lease releases.
LISTENERS = 2


@dataclass
class _Shard:
    """A shard this node runs: its service, the task running it, what its engine was given."""

    service: Service
    task: asyncio.Task[None]
    tenants: frozenset[TenantId]
    configuration: list[ev.ConfigEvent]


class ClusterNode:
    """One node of a cluster: run it with `await ClusterNode(settings).run()`.

    Args:
        settings: The loaded settings (``cluster.shards > 0``, a PostgreSQL database).
        clock: Wall-clock time, the engines' notion of now.
        monotonic: The leases' clock (never compared with another machine's).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        cluster = settings.cluster
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self.node = cluster.node
        self.shards = cluster.shards
        self._timing = LeaseTiming.from_settings(cluster)
        self._machine = NodeLeases(self.node, self.shards, self._timing)
        #: How long a read or a statement may take before its outcome counts as unknown:
        #: half a lease. Safety does not rest on it (the lapse timer stops a shard on this
        #: node's clock); a slow database under load should not cost a live node its leases.
        self._statement_timeout_s = self._timing.lease_ttl_s / 2
        self._running: dict[int, _Shard] = {}
        #: Shards stopped whose service is still closing: a new start of one waits for it.
        self._closing: dict[int, asyncio.Task[None]] = {}
        self._configuration: list[ev.ConfigEvent] = []
        self._assignments: dict[int, int] = {}
        self._reconciling = asyncio.Lock()
        self._config_noticed = asyncio.Event()
        self._lease_noticed = asyncio.Event()
        self._lapse_timer: asyncio.TimerHandle | None = None
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._cluster: ClusterStore | None = None
        self._listeners: list[Listener] = []
        self._store: Store | None = None
        self._endpoint: MqttEndpoint | None = None
        self._live = LiveFeed()
        self.metrics = NodeMetrics(
            lambda: [(shard, running.service.metrics) for shard, running in self._running.items()]
        )
        """The node's Prometheus metrics (its API's ``GET /metrics``), every shard's labelled."""
        self.ready = asyncio.Event()
        """Set once the node has joined (read the tables once) and its API is up."""

    # --- what the admin API asks (`ringmaster.api.context.EngineHost`) -------------------

    @property
    def live(self) -> LiveFeed:
        """Every held shard's changes, for the wallboard's streams."""
        return self._live

    def engine_for(self, tenant_id: TenantId) -> Engine | None:
        """The live engine of the tenant's shard, if this node runs it."""
        service = self._service_for(tenant_id)
        return None if service is None else service.engine

    async def apply(self, events: list[ev.ConfigEvent]) -> None:
        """A write through this node's API is stored: apply it to the shards held here.

        The notice the write sent reaches every other node (and this one again, to no
        effect): each re-reads the configuration and applies its own tenants' share.
        """
        await self._reconcile()

    async def act(self, event: ev.SupervisorEvent) -> list[Command]:
        """A supervisor's request, for the shard of its tenant.

        Raises:
            NotServedHere: This node does not run that shard (now).
        """
        service = self._service_for(event.tenant_id)
        if service is None:
            raise NotServedHere(event.tenant_id)
        return await service.act(event)

    def not_ready(self) -> list[str]:
        """Why this node does not serve its shards now (``/readyz``); empty when it does."""
        reasons = [] if self.ready.is_set() else ["cluster: not joined yet"]
        for shard, running in sorted(self._running.items()):
            reasons += [f"shard {shard}: {why}" for why in running.service.not_ready()]
        if self._stopping.is_set():
            reasons.append("stopping")
        return reasons

    def stop(self) -> None:
        """Leave the cluster cleanly (what SIGTERM does)."""
        self._stopping.set()

    @property
    def held(self) -> dict[int, int]:
        """The shards this node runs, with their epochs."""
        return self._machine.held

    def _service_for(self, tenant_id: TenantId) -> Service | None:
        shard = shard_of(tenant_id, self.shards, self._assignments)
        running = self._running.get(shard)
        if running is None or tenant_id not in running.tenants:
            return None
        return running.service

    # --- the node's life ---------------------------------------------------------------

    async def run(self) -> None:
        """Join the cluster, serve until `stop` (or SIGTERM), then leave it.

        Raises:
            SettingsError: The admin API would listen beyond loopback without a token.
            Exception: A shard's service failed with anything but a fence: the node
                stops (its leases lapse or are released), for systemd to restart it.
        """
        _log.info("node.starting", node=self.node, shards=self.shards)
        if self._settings.api.enabled:
            check_exposure(self._settings.api)
        async with contextlib.AsyncExitStack() as stack:
            # Without mqtt.url (one machine's lone node): a broker of its own, as one daemon.
            self._endpoint = await broker_endpoint(self._settings, stack)
            store = await Store.open(self._settings.database.target)
            stack.push_async_callback(store.close)
            self._store = store
            cluster = await self._open_cluster(store)
            stack.push_async_callback(self._close_cluster)
            await cluster.ensure_shards(self.shards)
            await self._listen(store)
            stack.push_async_callback(self._stop_listening)
            # After listening: a write committed in between is read now or noticed later.
            await self._read_configuration(store, cluster)
            stop_on_signals(self.stop)
            try:
                await self._serve(store, stack)
            finally:
                await self._leave()
        if self._failure is not None:
            raise self._failure

    async def _serve(self, store: Store, stack: contextlib.AsyncExitStack) -> None:
        background = [
            asyncio.create_task(self._notices(), name="configuration-notices"),
            asyncio.create_task(
                prune_history(store, self._settings.history.retention_days, self._clock),
                name="history-pruning",
            ),
            asyncio.create_task(watchdog(), name="watchdog"),
            asyncio.create_task(self.metrics.watch_loop_lag(), name="loop-lag"),
        ]
        try:
            api: ApiServer | None = None
            if self._settings.api.enabled:
                api = await start_api(
                    self, store, self._settings, self._clock, self.metrics.registry
                )
                stack.push_async_callback(api.stop)
            # Only now, warm (the API's import was most of a start): a node that takes its
            # shards back while still importing leaves their calls waiting meanwhile.
            background.append(asyncio.create_task(self._lease_loop(), name="leases"))
            self.ready.set()
            sdnotify.notify("READY=1")
            _log.info("node.ready", node=self.node)
            await self._stopping.wait()
            sdnotify.notify("STOPPING=1")
            _log.info("node.stopping", node=self.node)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _leave(self) -> None:
        """Stop every shard, then release its lease (the next holders hear it at once)."""
        if self._lapse_timer is not None:
            self._lapse_timer.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._carry_out(self._machine.shutdown()), 5.0)
        closing = [running.task for running in self._running.values()]
        closing += self._closing.values()
        self._running.clear()
        await asyncio.gather(*closing, return_exceptions=True)
        _log.info("node.left", node=self.node)

    # --- the leases ---------------------------------------------------------------------

    async def _open_cluster(self, store: Store) -> ClusterStore:
        if self._cluster is None:
            self._cluster = await store.open_cluster(
                self.node, self._timing.lease_ttl_s, api_url=self._api_url()
            )
        return self._cluster

    async def _close_cluster(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close()

    def _api_url(self) -> str:
        """Where the other nodes and clients reach this node's API (written with the heartbeat)."""
        api = self._settings.api
        if not api.enabled:
            return ""
        host = api.host
        if host in ("0.0.0.0", "::", ""):  # listening everywhere: name the machine
            host = socket.getfqdn()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{api.port}"

    async def _listen(self, store: Store) -> None:
        # One at a time into the list: a failure half-way leaves nothing unclosed.
        self._listeners.append(
            await store.listen_config(lambda _tenant: self._config_noticed.set())
        )
        self._listeners.append(await store.listen_leases(lambda _shard: self._lease_noticed.set()))

    async def _stop_listening(self) -> None:
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            with contextlib.suppress(Exception):
                await listener.close()

    async def _keep_listening(self, store: Store) -> None:
        """Listen again if a listening connection is gone, and re-read what it missed."""
        listening = len(self._listeners) == LISTENERS  # else a failed attempt: again
        if listening and not any(listener.is_closed() for listener in self._listeners):
            return
        _log.warning("notices.lost")
        await self._stop_listening()
        await self._listen(store)
        self._config_noticed.set()  # the notices sent while it was gone are lost
        self._lease_noticed.set()

    async def _lease_loop(self) -> None:
        """Read the tables at the machine's deadlines and carry out what it says."""
        assert self._store is not None
        while True:
            try:
                await self._keep_listening(self._store)
            except Exception as error:  # the database away: again at the next pass
                _log.warning("notices.listen_failed", error=str(error) or type(error).__name__)
            self._lease_noticed.clear()
            failed = False
            try:
                cluster = await self._open_cluster(self._store)
                read_at = self._monotonic()
                async with asyncio.timeout(self._statement_timeout_s):
                    view = await cluster.read()
                leases, heartbeats = view.for_machine(read_at)
                actions = self._machine.observe(self._monotonic(), leases, heartbeats)
            except Exception as error:  # the database away: the lapse timer guards the shards
                _log.warning("leases.read_failed", error=str(error) or type(error).__name__)
                await self._close_cluster()  # a fresh connection next time
                actions = self._machine.handle_timer(self._monotonic())
                failed = True
            await self._carry_out(actions)
            delay = self._machine.next_deadline() - self._monotonic()
            if failed:
                delay = max(delay, RETRY_S)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._lease_noticed.wait()

    async def _carry_out(self, actions: Sequence[Action]) -> None:
        """Carry out the machine's actions in order, feeding back each statement's outcome."""
        for action in actions:
            match action:
                case StopShard(shard):
                    self._stop_shard(shard)
                case StartShard(shard, epoch):
                    self._start_shard(shard, epoch)
                case Beat() | Acquire() | Renew() | Release():
                    succeeded = await self._statement(action)
                    await self._carry_out(
                        self._machine.outcome(action, succeeded, self._monotonic())
                    )
            self._arm_lapse()

    async def _statement(self, statement: Beat | Acquire | Renew | Release) -> bool | None:
        try:
            assert self._store is not None
            cluster = await self._open_cluster(self._store)
            async with asyncio.timeout(self._statement_timeout_s):
                return await cluster.run(statement)
        except Exception as error:  # unknown: the machine keeps what it had, retries
            _log.warning(
                "leases.statement_failed",
                statement=type(statement).__name__,
                error=str(error) or type(error).__name__,
            )
            await self._close_cluster()
            return None

    def _arm_lapse(self) -> None:
        """One timer on the first held lease's lapse, whatever the loop is waiting for."""
        if self._lapse_timer is not None:
            self._lapse_timer.cancel()
            self._lapse_timer = None
        lapse = self._machine.next_lapse()
        if lapse is not None:
            delay = max(0.0, lapse - self._monotonic())
            self._lapse_timer = asyncio.get_running_loop().call_later(delay, self._lapse_due)

    def _lapse_due(self) -> None:
        self._lapse_timer = None
        for action in self._machine.handle_timer(self._monotonic()):
            if isinstance(action, StopShard):
                _log.warning("shard.lapsed", shard=action.shard)
                self._stop_shard(action.shard)
        self._arm_lapse()

    # --- the shards ----------------------------------------------------------------------

    def _tenants_of(self, shard: int) -> frozenset[TenantId]:
        return frozenset(
            tenant
            for tenant in tenant_ids(self._configuration)
            if shard_of(tenant, self.shards, self._assignments) == shard
        )

    def _start_shard(self, shard: int, epoch: int) -> None:
        assert self._store is not None
        assert self._endpoint is not None
        tenants = self._tenants_of(shard)
        configuration = configuration_for(self._configuration, tenants)
        role = ShardRole(shard, epoch, self.node)
        service = Service(self._settings, clock=self._clock, shard=role, live=self._live)
        previous = self._closing.pop(shard, None)
        task = asyncio.create_task(
            self._run_shard(service, role, previous, tenants, configuration), name=f"shard-{shard}"
        )
        self._running[shard] = _Shard(service, task, tenants, configuration)
        _log.info("shard.started", shard=shard, epoch=epoch, tenants=sorted(tenants))

    def _stop_shard(self, shard: int) -> None:
        running = self._running.pop(shard, None)
        if running is None:
            return
        running.task.cancel()  # at once: no further turn, nothing more published
        self._closing[shard] = running.task
        self._live.changed(running.tenants)
        _log.info("shard.stopped", shard=shard)

    async def _run_shard(
        self,
        service: Service,
        role: ShardRole,
        previous: asyncio.Task[None] | None,
        tenants: frozenset[TenantId],
        configuration: list[ev.ConfigEvent],
    ) -> None:
        assert self._store is not None
        assert self._endpoint is not None
        if previous is not None:
            # Its session must be closed before this one takes it over; `wait`, unlike
            # `gather`, does not cancel it should this start be cancelled meanwhile.
            await asyncio.wait({previous})
        try:
            await service.run_shard(self._store, self._endpoint, tenants, configuration)
        except FencedError:
            # Deposed while it ran: the lease loop learns it at its next read.
            _log.warning("shard.fenced", shard=role.shard, epoch=role.epoch)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _log.exception("shard.failed", shard=role.shard)
            self._failure = error
            self.stop()
        finally:
            running = self._running.get(role.shard)
            if running is not None and running.service is service:
                del self._running[role.shard]  # ended by itself: the lease loop decides next
            self._live.changed(tenants)

    # --- configuration --------------------------------------------------------------------

    async def _read_configuration(self, store: Store, cluster: ClusterStore) -> None:
        self._configuration = await store.load_config()
        self._assignments = {int(t): s for t, s in (await cluster.assignments()).items()}

    async def _notices(self) -> None:
        while True:
            await self._config_noticed.wait()
            self._config_noticed.clear()
            try:
                await self._reconcile()
            except Exception:  # the next notice (or a restart) reads it again
                _log.exception("configuration.reload_failed")

    async def _reconcile(self) -> None:
        """Re-read the configuration and give each shard held here its own difference."""
        assert self._store is not None
        async with self._reconciling:
            cluster = await self._open_cluster(self._store)
            await self._read_configuration(self._store, cluster)
            for shard, running in list(self._running.items()):
                tenants = self._tenants_of(shard)
                configuration = configuration_for(self._configuration, tenants)
                changes = config_changes(running.configuration, configuration)
                if tenants != running.tenants:
                    await running.service.set_tenants(tenants)
                    self._live.changed(tenants ^ running.tenants)  # its turns tell the rest
                    running.tenants = tenants
                if changes:
                    with contextlib.suppress(NotServedHere):  # stopped meanwhile
                        await running.service.apply(changes)
                running.configuration = configuration
