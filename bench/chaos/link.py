"""MQTT clients for the harness: paho in its own thread, with a session that survives.

The PBX model must not lose a command because the broker restarted, nor send
its own messages out of order: paho with `clean_start=False`, a session expiry
and its network thread keeps unacknowledged QoS 1 messages and resends them in
order after a reconnect, and queues publications while disconnected.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

Handler = Callable[[str, bytes | bytearray, float], None]


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    return host, int(port)


class Link:
    """A paho client whose messages are handed, in order, to `handler` on the event loop.

    Args:
        url: `mqtt://host:port`.
        name: A readable part of the client id.
        subscriptions: Topic filters, subscribed at QoS 1 on every connect.
        loop: The event loop `handler` runs on.
        handler: Called with (topic, payload, receive time) for each message.
        inflight: How many QoS 1 publications may await PUBACK at once.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        subscriptions: tuple[str, ...] = (),
        loop: asyncio.AbstractEventLoop | None = None,
        handler: Handler | None = None,
        inflight: int = 200,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port = _host_port(url)
        self.client_id = client_id or f"chaos-{name}-{uuid.uuid4().hex[:8]}"
        self.subscriptions = subscriptions
        self.connected = threading.Event()
        self.connects = 0
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5)
        c.max_inflight_messages_set(inflight)
        c.max_queued_messages_set(0)  # no limit: nothing is dropped while disconnected
        # paho sleeps these seconds; fractions work, its annotation says int.
        c.reconnect_delay_set(0.1, 1.0)  # type: ignore[arg-type]
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_socket_open = self._on_socket_open
        if handler is not None and loop is not None:
            call_soon = loop.call_soon_threadsafe

            def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
                call_soon(handler, message.topic, message.payload, time.time())

            c.on_message = on_message
        self.client = c

    @staticmethod
    def _on_socket_open(client: paho.Client, userdata: Any, sock: Any) -> None:
        # As the daemon does: without it a QoS 1 round trip costs tens of milliseconds.
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            return
        self.connects += 1
        if self.subscriptions:
            client.subscribe([(s, 1) for s in self.subscriptions])
        self.connected.set()

    def _on_disconnect(self, client: paho.Client, *args: Any) -> None:
        self.connected.clear()

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (with a session kept for an hour) and wait until connected."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect_async(
            self.host, self.port, keepalive=10, clean_start=False, properties=props
        )
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            raise RuntimeError(f"{self.client_id} could not connect to {self.host}:{self.port}")

    def publish(self, topic: str, payload: bytes | str) -> paho.MQTTMessageInfo:
        """Publish at QoS 1; queued by paho while disconnected, sent again after a reconnect."""
        return self.client.publish(topic, payload, qos=1)

    def pending(self) -> int:
        """Publications not yet acknowledged by the broker."""
        return len(self.client._out_messages)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def probe_session(url: str, topic: str, restart: Callable[[], None]) -> str | None:
    """Check that the broker keeps a session and its queued message across `restart`.

    A persistent session subscribes to `topic` and goes away; a message is
    published to it, the broker is restarted, the session comes back: the
    message must be delivered. This is what the daemon relies on when the
    broker restarts while it is away.

    Returns:
        None when it held, else what went wrong.
    """
    got = threading.Event()
    client_id = f"chaos-probe-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex.encode()

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.payload == marker:
            got.set()

    probe = Link(url, "probe", subscriptions=(topic,), client_id=client_id)
    probe.start()
    time.sleep(0.2)  # the SUBACK
    probe.close()
    sender = Link(url, "probe-sender")
    sender.start()
    sender.publish(topic, marker).wait_for_publish(5)
    sender.close()
    restart()
    again = Link(url, "probe", client_id=client_id)
    again.client.on_message = on_message
    try:
        again.start()
        if not got.wait(5.0):
            return "the broker lost a persistent session's queued message across a restart"
    except RuntimeError as exc:
        return str(exc)
    finally:
        again.close()
    return None
