"""The MQTT adapter: one broker connection, kept alive across failures.

`MqttLink` is thin on purpose: it moves bytes. What the bytes mean is
`ringmaster.contract`; what to do about them is the engine's and the service's.

Delivery guarantees, both ways at least once (contract: QoS 1, idempotent inputs):

- Inbound messages are acknowledged by the service, with `MqttLink.ack`, only
  after their effect is stored. A message not acknowledged when the connection
  drops is sent again by the broker on the next connection (MQTT 5 section 4.4:
  the session is resumed since we connect with Clean Start 0 and a Session
  Expiry Interval). A message may therefore be yielded twice across a reconnect.
- `MqttLink.publish` returns once the broker has sent PUBACK; if the connection
  drops first, it waits for the next one and publishes again.

Publishing is the hot path (about ten messages per call), so the daemon's
outbox does not await it: `MqttLink.send` hands a stored message to paho at once
and paho's PUBACK callback reports its seq to `on_published`, with no task,
future or timeout per message. One timer per connection sends again what is
overdue, and a new connection sends again, in seq order, everything not yet
confirmed. `publish` (awaiting one future that the PUBACK callback resolves) is
for the few messages that are not stored (the error replies).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

import aiomqtt
import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ringmaster.contract import (
    inbound_filters,
    is_monitoring,
    status_message,
    status_topic,
    will_payload,
)
from ringmaster.daemon.mqtt_connection import (
    Connection,
    as_bytes,
    backoff_delay,
    buffer_reads,
    coalesce_writes,
    lean_pubacks,
    lean_publishes,
    paho_client,
    skip_mids_in_flight,
    write_queued,
)

if TYPE_CHECKING:
    from ringmaster.contract import OutboxMessage
    from ringmaster.settings import MqttEndpoint, MqttSettings

__all__ = ["InboundMessage", "LinkClosedError", "MqttLink", "backoff_delay"]

_log = structlog.get_logger()

#: How long a clean shutdown waits for the broker to confirm `P/status` offline.
_SHUTDOWN_PUBLISH_TIMEOUT_S: Final = 5.0
_QOS: Final = 1
#: The Receive Maximum the link asks for (MQTT 5 section 3.1.2.11.3): how many QoS 1
#: messages the broker may send before the first PUBACK. The daemon acknowledges a
#: message only once a turn has stored its effect, so with mosquitto's default of 20
#: a backlog (after a restart, or behind one tenant's flood) came in windows of 20
#: per turn, and one tenant's flood queued in the broker ahead of everyone else's
#: messages. The widest window (the protocol's maximum) moves the backlog into the
#: daemon, which reads far faster than it handles, and where tenants take turns.
RECEIVE_MAXIMUM: Final = 65535


class LinkClosedError(Exception):
    """The link was closed: nothing more will be published or received."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message the broker delivered on one of the link's subscriptions.

    Attributes:
        topic: The topic it was published on.
        payload: The raw payload.
        qos: The delivery QoS (1 for the daemon's subscriptions).
        mid: The packet identifier, meaningful only on the connection it came on.
        generation: Which connection it came on (1 for the first, then counting).
        retain: Whether the broker delivered it as a retained message.
        caught_up: The link's own sync message for this connection (see `MqttLink`):
            every message the broker had queued for the session before it came first.
    """

    topic: str
    payload: bytes
    qos: int
    mid: int
    generation: int
    retain: bool = False
    caught_up: bool = False


class MqttLink:
    """One MQTT 5 connection to the broker, re-established for as long as the link runs.

    Use as an async context manager (or `start` / `close`). While it runs, it
    connects, subscribes (QoS 1) to its filters, publishes `P/status` online
    (retained; the last will publishes offline), and reconnects with capped
    exponential backoff whenever the connection is lost. Connection errors are
    logged, never raised.

    Args:
        host: Broker host.
        port: Broker port.
        username: User name, or None for anonymous.
        password: Password, or None.
        tls: Use TLS with the system's default certificate verification.
        client_id: The fixed MQTT client identifier; the broker keeps this client's
            session (subscriptions and unacknowledged messages) under it.
        prefix: The topic prefix `P`.
        session_expiry_s: How long the broker keeps the session after a disconnect.
        keepalive_s: MQTT keepalive.
        reconnect_min_s: First reconnect delay.
        reconnect_max_s: Longest reconnect delay.
        subscriptions: Topic filters to subscribe to; None means the daemon's
            (`contract.inbound_filters(prefix)`).
        connect_timeout_s: How long to wait for CONNACK and SUBACK.
        publish_timeout_s: How long one publication waits for PUBACK before it is
            sent again.
        rng: The randomness for the backoff jitter (seed it in tests).
        sync: After each connection is up, publish a sync message to `P/sync` (an
            addition to the contract, subscribed to by the link itself) and yield it
            with `caught_up` set when it comes back: mosquitto delivers a session's
            queued messages in order, so every message queued while the link was
            away comes before it.
        shard: A cluster shard's session (docs/cluster.md): its status and last will
            go to `P/status/shard/<n>` (and `P/status` is published online, without a
            will: one shard's holder dying does not take the others offline), its
            sync message to `P/sync/shard/<n>`.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        client_id: str,
        prefix: str,
        session_expiry_s: int = 86400,
        keepalive_s: int = 30,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        subscriptions: Sequence[str] | None = None,
        connect_timeout_s: float = 10.0,
        publish_timeout_s: float = 10.0,
        rng: random.Random | None = None,
        sync: bool = False,
        shard: int | None = None,
        monitoring_qos: int = 1,
    ) -> None:
        self.host = host
        self._monitoring_qos = monitoring_qos
        self.port = port
        self.client_id = client_id
        self.prefix = prefix
        self._username = username
        self._password = password
        self._tls = tls
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._subscriptions = (
            list(subscriptions) if subscriptions is not None else inbound_filters(prefix)
        )
        self._connect_timeout_s = connect_timeout_s
        self._publish_timeout_s = publish_timeout_s
        self._rng = rng if rng is not None else random.Random()
        self._shard = shard
        sync_topic = f"{prefix}/sync" if shard is None else f"{prefix}/sync/shard/{shard}"
        self._sync_topic = sync_topic if sync else None
        if self._sync_topic is not None:
            self._subscriptions.append(self._sync_topic)
        self.on_connected: Callable[[int], None] | None = None
        """Called with the connection's generation each time a connection is up."""
        self.on_message: Callable[[InboundMessage], None] | None = None
        """Called with each inbound message as it is read; None queues them for `messages`."""
        self.on_published: Callable[[int], None] | None = None
        """Called with the seq of a message given to `send` once the broker confirmed it."""

        self.connected = asyncio.Event()
        """Set while a connection is up, subscribed, and `P/status` online is published."""
        self._closing = asyncio.Event()
        self._connection: Connection | None = None
        self._generation = 0
        self._inbox: asyncio.Queue[InboundMessage | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: `send`'s messages not yet confirmed (or, at QoS 0, not yet handed to a
        #: connection), by seq: what a new connection sends again.
        self._unconfirmed: dict[int, OutboxMessage] = {}
        self._log = _log.bind(mqtt_host=host, mqtt_port=port, client_id=client_id)

    @classmethod
    def from_settings(
        cls,
        settings: MqttSettings,
        *,
        endpoint: MqttEndpoint | None = None,
        subscriptions: Sequence[str] | None = None,
        rng: random.Random | None = None,
        sync: bool = False,
        shard: int | None = None,
    ) -> Self:
        """A link configured from the `[mqtt]` settings.

        Args:
            settings: The MQTT settings.
            endpoint: Where to connect; None uses `settings.url`. The service passes
                the embedded broker's endpoint when `mqtt.url` is not set.
            subscriptions: As for the constructor.
            rng: As for the constructor.
            sync: As for the constructor.
            shard: As for the constructor; its client id is `mqtt.client_id` with
                ``-shard-<n>`` appended, the same on every node.

        Raises:
            ValueError: Neither `endpoint` nor `settings.url` says where to connect.
        """
        if endpoint is None:
            endpoint = settings.endpoint()
        if endpoint is None:
            raise ValueError("mqtt.url is not set and no broker endpoint was given")
        return cls(
            host=endpoint.host,
            port=endpoint.port,
            username=endpoint.username,
            password=endpoint.password,
            tls=endpoint.tls,
            client_id=(
                settings.client_id if shard is None else f"{settings.client_id}-shard-{shard}"
            ),
            prefix=settings.topic_prefix,
            session_expiry_s=settings.session_expiry_s,
            keepalive_s=settings.keepalive_s,
            reconnect_min_s=settings.reconnect_min_s,
            reconnect_max_s=settings.reconnect_max_s,
            monitoring_qos=settings.monitoring_qos,
            subscriptions=subscriptions,
            rng=rng,
            sync=sync,
            shard=shard,
        )

    # --- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting in the background; returns at once (see `wait_connected`)."""
        if self._task is not None:
            raise RuntimeError("MqttLink.start() called twice")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-link")

    async def close(self) -> None:
        """Publish `P/status` offline, disconnect cleanly and stop reconnecting.

        The broker keeps the session: messages for the daemon's subscriptions queue
        up until it connects again with the same client id. A connection attempt in
        progress is let finish first (at most `connect_timeout_s`).
        """
        self._closing.set()
        if self._task is not None:
            # The caller cancelled while it waits (a shard stopped as it connected, then
            # the node leaving) must not tear the connection down mid-handshake, which
            # leaves errors only asyncio's handler sees: the link ends by itself, closing
            # being set; the caller only stops waiting for it.
            await asyncio.shield(self._task)
        self._inbox.put_nowait(None)

    async def wait_connected(self) -> None:
        """Wait until a connection is up (subscribed, online published)."""
        await self.connected.wait()

    async def subscribe(self, filters: Sequence[str]) -> None:
        """Add topic filters, now if connected and on every later connection.

        A failure on the current connection is logged: the next connection subscribes
        again (the broker keeps a session's subscriptions anyway).
        """
        new = [topic for topic in filters if topic not in self._subscriptions]
        if not new:
            return
        self._subscriptions.extend(new)
        connection = self._connection
        if connection is not None and self.connected.is_set():
            try:
                await connection.client.subscribe(
                    [(topic, _QOS) for topic in new], timeout=self._connect_timeout_s
                )
            except aiomqtt.MqttError as exc:
                self._log.warning("mqtt.subscribe_failed", topics=new, error=str(exc))

    async def unsubscribe(self, filters: Sequence[str]) -> None:
        """Remove topic filters from the session, now if connected (else at the next one)."""
        gone = [topic for topic in filters if topic in self._subscriptions]
        if not gone:
            return
        self._subscriptions = [t for t in self._subscriptions if t not in gone]
        connection = self._connection
        if connection is not None and self.connected.is_set():
            try:
                await connection.client.unsubscribe(gone, timeout=self._connect_timeout_s)
            except aiomqtt.MqttError as exc:
                self._log.warning("mqtt.unsubscribe_failed", topics=gone, error=str(exc))

    @property
    def generation(self) -> int:
        """The number of the current (or last) connection; 0 before the first."""
        return self._generation

    # --- inbound --------------------------------------------------------------------

    async def messages(self) -> AsyncIterator[InboundMessage]:
        """Yield inbound messages, across reconnects, until the link is closed.

        Each must be passed to `ack` once its effect is stored. Only one consumer
        may iterate, and only while `on_message` is None.
        """
        while True:
            message = await self._inbox.get()
            if message is None:
                return
            yield message

    def ack(self, message: InboundMessage) -> bool:
        """Acknowledge (PUBACK) an inbound message.

        The PUBACK is queued for sending, not confirmed: should the connection drop
        before it reaches the broker, the broker delivers the message again.

        Returns:
            True when the acknowledgement was queued (or none is due, QoS 0). False
            when the message came on an earlier connection: packet identifiers
            belong to one connection, and the broker sends such a message again
            on the current one anyway.
        """
        if message.qos == 0:
            return True
        connection = self._connection
        if connection is None or connection.generation != message.generation:
            self._log.debug(
                "mqtt.stale_ack_dropped",
                topic=message.topic,
                message_generation=message.generation,
                generation=self._generation,
            )
            return False
        rc = paho_client(connection.client).ack(message.mid, message.qos)
        return rc == paho.MQTT_ERR_SUCCESS

    # --- outbound -------------------------------------------------------------------

    def send(self, seq: int, message: OutboxMessage) -> bool:
        """Hand stored message `seq` to the broker, at least once, without waiting.

        `on_published` is called with `seq` once the broker confirmed it (PUBACK),
        or refused it (logged, not sent again: sending it again changes nothing).
        Meanwhile the link keeps it: sent again when its PUBACK is overdue
        (`publish_timeout_s`), and on the next connection when this one is lost
        (or now, while none is up). The caller bounds how many are unconfirmed.

        Returns:
            True when it is done already: a monitoring message with `monitoring_qos`
            0 handed to a live connection (at most once; `on_published` is not called).
        """
        connection = self._connection
        if connection is None or not self.connected.is_set():
            self._unconfirmed[seq] = message
            return False
        if self._monitoring_qos == 0 and is_monitoring(self.prefix, message.topic):
            self._publish_at_most_once(connection, message)
            return True
        self._unconfirmed[seq] = message
        self._send_on(connection, seq, message)
        return False

    def flush(self) -> None:
        """Write what `send`, `ack` and the rest have queued now; never raises.

        Otherwise paho writes it once the event loop polls its socket, after whatever
        else is ready to run first (the service's next turn). Nothing happens while no
        connection is up (nor while one is connecting: paho's connect runs on another
        thread), and what cannot be written now is left for the event loop to write.
        """
        connection = self._connection
        if connection is None or not self.connected.is_set():
            return
        try:
            write_queued(paho_client(connection.client))
        except Exception:  # a bug in a callback of paho's: the loop's writer goes on
            self._log.exception("mqtt.flush_failed")

    def _publish_at_most_once(self, connection: Connection, message: OutboxMessage) -> None:
        client = paho_client(connection.client)
        skip_mids_in_flight(client)
        info = client.publish(message.topic, message.payload, qos=0, retain=message.retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            # At most once: not sent again (docs/mqtt.md, mqtt.monitoring_qos).
            self._log.warning(
                "mqtt.publish_failed", topic=message.topic, error=paho.error_string(info.rc)
            )

    def _send_on(self, connection: Connection, seq: int, message: OutboxMessage) -> None:
        info = paho_client(connection.client).publish(
            message.topic, message.payload, qos=_QOS, retain=message.retain
        )
        now = asyncio.get_running_loop().time()
        if info.rc == paho.MQTT_ERR_SUCCESS:
            due = now + self._publish_timeout_s
            connection.sent[info.mid] = (seq, due)
        else:
            self._log.warning(
                "mqtt.publish_failed", topic=message.topic, error=paho.error_string(info.rc)
            )
            # Tried again by the sweep, soon and without spinning; under a key that
            # is no packet identifier (those are 1 to 65535; seqs are positive).
            due = now + self._reconnect_min_s
            connection.sent[-seq] = (seq, due)
        self._arm_sweep(connection, due)

    def _arm_sweep(self, connection: Connection, due: float) -> None:
        """Have the connection's one timer go off at `due`, unless it does sooner."""
        sweep = connection.sweep
        if sweep is not None:
            if sweep.when() <= due:
                return
            sweep.cancel()
        connection.sweep = asyncio.get_running_loop().call_at(due, self._sweep, connection)

    def _sweep(self, connection: Connection) -> None:
        """Send again, on the same connection, the messages whose PUBACK is overdue."""
        connection.sweep = None
        if connection.lost.is_set():
            return
        now = asyncio.get_running_loop().time()
        overdue = [(key, seq) for key, (seq, due) in connection.sent.items() if due <= now]
        for key, seq in sorted(overdue, key=lambda item: item[1]):
            del connection.sent[key]  # a late PUBACK for it is no longer ours
            message = self._unconfirmed.get(seq)
            if message is None:
                continue
            if key > 0:
                self._log.warning("mqtt.publish_failed", topic=message.topic, error="no PUBACK")
            self._send_on(connection, seq, message)
        if connection.sent:
            # The ones sent again above are due last: what was not yet due comes first.
            self._arm_sweep(connection, min(due for _, due in connection.sent.values()))

    def _confirmed(self, seq: int, reason: ReasonCode) -> None:
        """The PUBACK callback of paho for a message of `send`."""
        message = self._unconfirmed.pop(seq, None)
        if message is None:
            return
        if reason.is_failure:
            # MQTT 5 section 3.4.2.1: the broker took it and will not deliver it
            # (say, its ACL refuses the topic); sending it again changes nothing.
            self._log.error("mqtt.publish_refused", topic=message.topic, reason=str(reason))
        self._report_published(seq)

    def _report_published(self, seq: int) -> None:
        sink = self.on_published
        if sink is None:
            return
        try:
            sink(seq)
        except Exception:  # a consumer's bug must not stop paho reading the socket
            self._log.exception("mqtt.consumer_failed", seq=seq)

    def _send_unconfirmed(self, connection: Connection) -> None:
        """A connection is up: send again what no earlier one confirmed, in seq order."""
        done: list[int] = []
        for seq in sorted(self._unconfirmed):
            message = self._unconfirmed[seq]
            if self._monitoring_qos == 0 and is_monitoring(self.prefix, message.topic):
                del self._unconfirmed[seq]
                self._publish_at_most_once(connection, message)
                done.append(seq)
            else:
                self._send_on(connection, seq, message)
        # Only now: the outbox hands over newer messages as these are reported, and
        # each tenant's must leave after its older ones sent again above.
        for seq in done:
            self._report_published(seq)

    async def publish(self, message: OutboxMessage) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK.

        While the connection is down this waits for it to come back, and a message
        whose PUBACK was lost with the connection is published again: at least once.
        A monitoring message with `monitoring_qos` 0 is done once handed to a live
        connection: at most once.

        Raises:
            LinkClosedError: The link was closed before the broker confirmed.
        """
        if self._monitoring_qos == 0 and is_monitoring(self.prefix, message.topic):
            self._publish_at_most_once(await self._wait_connection(), message)
            return
        while True:
            connection = await self._wait_connection()
            reason = await self._publish_on(connection, message)
            if reason is not None:
                if reason.is_failure:
                    # MQTT 5 section 3.4.2.1: the broker took it and will not deliver
                    # it (say, its ACL refuses the topic); sending it again changes nothing.
                    self._log.error("mqtt.publish_refused", topic=message.topic, reason=str(reason))
                return
            if not connection.lost.is_set():
                # Refused or unconfirmed on a live connection: try again, without spinning.
                await asyncio.sleep(self._reconnect_min_s)

    async def _publish_on(
        self, connection: Connection, message: OutboxMessage
    ) -> ReasonCode | None:
        """Publish once on `connection`: the PUBACK's reason code, None if none came."""
        info = paho_client(connection.client).publish(
            message.topic, message.payload, qos=_QOS, retain=message.retain
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._log.warning(
                "mqtt.publish_failed", topic=message.topic, error=paho.error_string(info.rc)
            )
            return None
        ack: asyncio.Future[ReasonCode | None] = asyncio.get_running_loop().create_future()
        connection.pubacks[info.mid] = ack
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                return await ack
        except TimeoutError:
            connection.pubacks.pop(info.mid, None)
            self._log.warning("mqtt.publish_failed", topic=message.topic, error="no PUBACK")
            return None

    async def _wait_connection(self) -> Connection:
        while True:
            if self._closing.is_set():
                raise LinkClosedError("the MQTT link is closed")
            connection = self._connection
            if connection is not None and self.connected.is_set():
                return connection
            connected = asyncio.ensure_future(self.connected.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({connected, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                connected.cancel()
                closing.cancel()

    # --- the connection loop --------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing.is_set():
            try:
                was_up = await self._connect_once()
            except (aiomqtt.MqttError, OSError) as exc:
                self._log.warning("mqtt.connect_failed", error=str(exc) or type(exc).__name__)
                was_up = False
            if self._closing.is_set():
                break
            attempt = 0 if was_up else attempt + 1
            delay = backoff_delay(attempt, self._reconnect_min_s, self._reconnect_max_s, self._rng)
            self._log.info("mqtt.reconnect_scheduled", delay_s=round(delay, 3), attempt=attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)
        self._log.info("mqtt.closed")

    async def _connect_once(self) -> bool:
        """Run one connection until it is lost or the link closes; True if it came up."""
        client = self._new_client()
        self._generation += 1
        connection = Connection(client, self._generation)
        connection.watch_pubacks(self._confirmed)
        # Before connecting: a resumed session's messages come right after CONNACK.
        paho_client(client).on_message = lambda _client, _userdata, message: self._deliver(
            connection, message
        )
        self._connection = connection
        try:
            return await self._run_connection(client, connection)
        finally:
            self._connection = None

    async def _run_connection(self, client: aiomqtt.Client, connection: Connection) -> bool:
        async with client:
            try:
                await self._on_connected(connection)
                reason = await self._serve(connection)
            finally:
                self.connected.clear()
                connection.lost.set()
                connection.drop_pubacks()
                self._connection = None
            if reason is not None:
                self._log.warning(
                    "mqtt.disconnected", generation=connection.generation, error=reason
                )
                return True
            # Closing: say so while the connection is still up, then leave the `async
            # with`, which sends DISCONNECT (reason 0: the broker keeps the will to itself).
            offline = status_message(self.prefix, online=False, shard=self._shard)
            try:
                await client.publish(
                    offline.topic,
                    offline.payload,
                    qos=_QOS,
                    retain=True,
                    timeout=_SHUTDOWN_PUBLISH_TIMEOUT_S,
                )
            except aiomqtt.MqttError as exc:
                self._log.warning("mqtt.offline_status_failed", error=str(exc))
            return True

    async def _on_connected(self, connection: Connection) -> None:
        client = connection.client
        granted = await client.subscribe(
            [(topic, _QOS) for topic in self._subscriptions], timeout=self._connect_timeout_s
        )
        codes: Sequence[int | ReasonCode] = granted
        for topic, code in zip(self._subscriptions, codes, strict=True):
            # MQTT 5 section 3.9.3: reason codes 0x80 and above refuse the subscription
            # (e.g. the broker's ACL); mosquitto then drops our messages silently.
            refused = code.is_failure if isinstance(code, ReasonCode) else code >= 0x80  # noqa: PLR2004
            if refused:
                self._log.error("mqtt.subscribe_refused", topic=topic, reason=str(code))
        statuses = [status_message(self.prefix, online=True, shard=self._shard)]
        if self._shard is not None:
            statuses.append(status_message(self.prefix, online=True))
        for online in statuses:
            await client.publish(
                online.topic,
                online.payload,
                qos=_QOS,
                retain=True,
                timeout=self._connect_timeout_s,
            )
        if self._sync_topic is not None:
            # Queued behind whatever the broker kept for the session while we were away.
            connection.sync_token = secrets.token_hex(8).encode()
            info = paho_client(client).publish(self._sync_topic, connection.sync_token, qos=_QOS)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                self._log.warning("mqtt.sync_failed", error=paho.error_string(info.rc))
        self.connected.set()
        self._send_unconfirmed(connection)
        self._log.info(
            "mqtt.connected", generation=connection.generation, subscriptions=self._subscriptions
        )
        if self.on_connected is not None:
            self.on_connected(connection.generation)

    async def _serve(self, connection: Connection) -> str | None:
        """Pump messages into the inbox; the reason the connection ended, None if closing."""
        pump = asyncio.ensure_future(self._pump(connection))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({pump, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not pump.done():
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
        lost = pump.done() and not pump.cancelled() and pump.exception() is not None
        if self._closing.is_set() and not lost:
            return None
        # Lost, even if closing too (a takeover of the session as this link closes it):
        # nothing more is written on it, and its error is retrieved here.
        error = pump.exception()
        if error is None:
            return "message stream ended"
        if not isinstance(error, aiomqtt.MqttError | OSError):
            raise error
        cause = error.__cause__
        return f"{error}: {cause}" if cause is not None else str(error)

    async def _pump(self, connection: Connection) -> None:
        # Messages come through `_deliver` (paho's callback); aiomqtt's iterator
        # yields none, and ends with an MqttError when the connection is lost.
        async for _ in connection.client.messages:
            pass

    def _deliver(self, connection: Connection, message: paho.MQTTMessage) -> None:
        """The on_message callback of paho: hand the message on as soon as it is read.

        aiomqtt's own path costs a task and an `asyncio.wait` per message and
        several hops of the event loop before a consumer sees it; under a flood
        that was most of the daemon's time per rejected message.
        """
        topic = message.topic
        payload = as_bytes(message.payload)
        caught_up = False
        if topic == self._sync_topic:
            if payload != connection.sync_token:
                # An earlier connection's (or a forged) sync message: it marks nothing.
                paho_client(connection.client).ack(message.mid, message.qos)
                return
            caught_up = True
        inbound = InboundMessage(
            topic=topic,
            payload=payload,
            qos=message.qos,
            mid=message.mid,
            generation=connection.generation,
            retain=bool(message.retain),
            caught_up=caught_up,
        )
        sink = self.on_message
        if sink is None:
            self._inbox.put_nowait(inbound)
            return
        try:
            sink(inbound)
        except Exception:  # a consumer's bug must not stop paho reading the socket
            self._log.exception("mqtt.consumer_failed", topic=topic[:200])

    def _new_client(self) -> aiomqtt.Client:
        # A fresh aiomqtt client per connection: its incoming queue and paho's packet
        # identifiers belong to that connection, so a message can never be
        # acknowledged with a mid of another connection.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # Without it an MQTT 5 session ends with the connection (MQTT 5 section 3.1.2.11.2)
        # and mosquitto forgets our subscriptions and unacknowledged messages.
        properties.SessionExpiryInterval = self._session_expiry_s
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            # Never "first only": a restarted daemon must resume the session the
            # previous process left (waiting calls' messages are in it).
            clean_start=False,
            properties=properties,
            keepalive=self._keepalive_s,
            timeout=self._connect_timeout_s,
            will=aiomqtt.Will(
                topic=status_topic(self.prefix, self._shard),
                payload=will_payload(),
                qos=_QOS,
                retain=True,
            ),
            tls_context=ssl.create_default_context() if self._tls else None,
            # Nagle plus delayed ACKs: ~67 ms per QoS 1 round trip instead of ~0.5 ms.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # Before connecting: a resumed session's messages arrive right after CONNACK.
        paho_client(client).manual_ack_set(True)
        coalesce_writes(paho_client(client))
        lean_pubacks(paho_client(client))
        lean_publishes(paho_client(client))
        buffer_reads(paho_client(client))
        # aiomqtt logs a warning on every publish while more than this many are
        # in flight; the service deliberately keeps a whole batch in flight, and
        # the warning (one log line per publish) cost more than the publishing.
        client.pending_calls_threshold = 100_000
        return client
