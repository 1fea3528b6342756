"""What the MQTT link needs below aiomqtt: paho's PUBACKs per connection, and backoff.

aiomqtt 2.x has no manual acknowledgement and resolves PUBACKs for its own
`publish` only; `MqttLink` (in `ringmaster.daemon.mqtt`) reaches the paho client under
it, here and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MessageType, MQTTErrorCode, _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

#: How many bytes `buffer_reads` asks the socket for at once.
READ_CHUNK = 65536
#: The most bytes `coalesce_writes` joins for one send: a burst's worth of packets,
#: and little to join again after a partial write.
WRITE_CHUNK = 65536


@dataclass(slots=True)
class Connection:
    """One connection of the link: its aiomqtt client, and its PUBACKs awaited."""

    client: aiomqtt.Client
    generation: int
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    #: The payload of this connection's sync message, once published.
    sync_token: bytes | None = None
    #: `publish`'s messages awaiting PUBACK, by packet identifier: resolved with
    #: the PUBACK's reason code, or with None when the connection is lost first.
    pubacks: dict[int, asyncio.Future[ReasonCode | None]] = field(default_factory=dict)
    #: `MqttLink.send`'s messages awaiting PUBACK on this connection, by packet
    #: identifier: their seq, and when they are overdue (the event loop's clock).
    sent: dict[int, tuple[int, float]] = field(default_factory=dict)
    #: The one timer that sends overdue messages of `sent` again, while one is armed.
    sweep: asyncio.TimerHandle | None = None

    def watch_pubacks(self, confirmed: Callable[[int, ReasonCode], None]) -> None:
        """Route paho's PUBACK callback, before the connection is used.

        A message of `sent` is passed to `confirmed` with its seq; one of `pubacks`
        resolves its future. aiomqtt keeps the callback for its own `publish` (the
        status messages), so a packet identifier that is neither is passed on to it.
        """
        client = paho_client(self.client)
        # aiomqtt creates its paho client with callback API version 2.
        aiomqtt_on_publish = cast("paho.CallbackOnPublish_v2 | None", client.on_publish)
        pubacks = self.pubacks
        sent = self.sent

        def on_publish(
            client: paho.Client,
            userdata: object,
            mid: int,
            reason_code: ReasonCode,
            properties: Properties,
        ) -> None:
            entry = sent.pop(mid, None)
            if entry is not None:
                confirmed(entry[0], reason_code)
                return
            ack = pubacks.pop(mid, None)
            if ack is None:
                if aiomqtt_on_publish is not None:
                    aiomqtt_on_publish(client, userdata, mid, reason_code, properties)
            elif not ack.done():
                ack.set_result(reason_code)

        client.on_publish = on_publish

    def drop_pubacks(self) -> None:
        """The connection is gone: wake every `publish` still waiting, to send again.

        `sent` is forgotten: the link sends its messages again on the next connection.
        """
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None
        self.sent.clear()
        for ack in self.pubacks.values():
            if not ack.done():
                ack.set_result(None)
        self.pubacks.clear()


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt number `attempt` (0 for the first).

    Exponential backoff capped at `max_s`, with full jitter: a uniform draw between
    `min_s` and the cap, so that many daemons restarting with their broker do not
    reconnect in lockstep.
    """
    cap = min(max_s, min_s * 2.0 ** min(attempt, 60))
    return rng.uniform(min_s, max(cap, min_s))


def paho_client(client: aiomqtt.Client) -> paho.Client:
    """The paho client under an aiomqtt client."""
    # aiomqtt 2.x acknowledges every QoS 1 message on receipt and exposes no manual
    # acknowledgement; its paho client (`_client`) has one. This function is the only
    # place that touches aiomqtt's private attribute, to be dropped when aiomqtt
    # grows manual acks.
    return client._client


def skip_mids_in_flight(client: paho.Client) -> None:
    """Before a QoS 0 publish: make sure its packet identifier is no QoS 1 message's in flight.

    paho reports a QoS 0 message written with the same `on_publish` callback, and the
    same success reason code, as a QoS 1 message's PUBACK, under the identifier it
    drew, which it never checks against the QoS 1 messages awaiting PUBACK (it does
    for QoS 1). After 65,535 publishes with one still unconfirmed, that would confirm
    it by mistake and lose it on a broken connection. So the counter skips those.
    """
    # paho's own `_mid_generate` (under its lock) draws the identifier to skip.
    while client._last_mid % 65535 + 1 in client._out_messages:
        client._mid_generate()


def as_bytes(payload: bytes | bytearray | str | int | float | None) -> bytes:
    """A received payload as bytes."""
    # aiomqtt types Message.payload broadly; paho always delivers bytes.
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode("utf-8")


def coalesce_writes(client: paho.Client) -> None:
    """Have paho write all its queued packets with one send, not one system call each.

    paho's `_packet_write` sends each queued packet (a PUBLISH, a PUBACK: tens of
    bytes) by itself; a turn queues tens of them, and the sends were paho's largest
    cost. Replaced on this instance only, by `_write_coalesced`, which does what it
    does (partial writes, QoS 0 `on_publish`, DISCONNECT) for several packets at once.
    """
    # paho calls `self._packet_write()` (from `loop_write` only): an instance
    # attribute takes precedence over the method.
    client._packet_write = functools.partial(_write_coalesced, client)  # type: ignore[method-assign]


def _write_coalesced(client: paho.Client) -> MQTTErrorCode:
    out = client._out_packet
    while out:
        chunks: list[bytes | bytearray] = []
        size = 0
        for packet in out:
            data, pos = packet["packet"], packet["pos"]
            chunks.append(data[pos:] if pos else data)
            size += packet["to_process"]
            # paho writes nothing after a DISCONNECT (the socket closes with it).
            if size >= WRITE_CHUNK or packet["command"] & 0xF0 == MessageType.DISCONNECT:
                break
        try:
            written = client._sock_send(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except (AttributeError, ValueError):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            client._easy_log(paho.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if written <= 0:
            return MQTTErrorCode.MQTT_ERR_AGAIN  # as paho: the socket's next writable event
        # As paho after each write: what keeps the keepalive's PINGREQ from going out
        # while messages do.
        with client._msgtime_mutex:
            client._last_msg_out = paho.time_func()
        while written > 0 and out:
            packet = out[0]
            step = min(written, packet["to_process"])
            packet["to_process"] -= step
            packet["pos"] += step
            written -= step
            if packet["to_process"]:
                break  # a partial write: the rest of this packet goes first next time
            out.popleft()
            if _packet_written(client, packet):
                return MQTTErrorCode.MQTT_ERR_SUCCESS
    return MQTTErrorCode.MQTT_ERR_SUCCESS


def write_queued(client: paho.Client) -> None:
    """Write paho's queued packets now, rather than from the event loop's writer callback.

    Under aiomqtt, paho queues each packet and registers a writer with the loop, which
    writes them when it next polls: after whatever else is ready to run first. This
    writes them at once, on the loop's thread, and leaves paho's writer registration as
    it is. Not paho's `loop_write`: that removes the writer at once, while aiomqtt adds
    it one pass of the loop later (`call_soon_threadsafe`), so the writer would stay,
    unknown to paho, called on every pass of the loop. Left registered, it finds nothing
    to write and paho removes it, as after any write of its own.

    What is not written now (the socket's buffer full, the connection broken) stays
    queued for that writer: a broken connection is then lost the usual way, with the
    socket closed from the writer callback (closed from here, aiomqtt would add the
    writer after the socket is gone).
    """
    if client._out_packet and client._sock is not None:
        client._packet_write()


#: What paho passes `on_publish` for a QoS 0 message written, or a plain PUBACK:
#: the same (success, no properties) for every one, so built once, not per message.
_WRITTEN_REASON = ReasonCode(PacketTypes.PUBACK)
_WRITTEN_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]


def _packet_written(client: paho.Client, packet: paho._OutPacket) -> bool:
    """What paho's `_packet_write` does once a packet is out; True if it was DISCONNECT."""
    command = packet["command"] & 0xF0
    if command == MessageType.PUBLISH and packet["qos"] == 0:
        with client._callback_mutex:
            on_publish = client.on_publish
        if on_publish:
            with client._in_callback_mutex:
                try:
                    if client._callback_api_version == CallbackAPIVersion.VERSION1:
                        cast("paho.CallbackOnPublish_v1", on_publish)(
                            client, client._userdata, packet["mid"]
                        )
                    else:
                        cast("paho.CallbackOnPublish_v2", on_publish)(
                            client,
                            client._userdata,
                            packet["mid"],
                            _WRITTEN_REASON,
                            _WRITTEN_PROPERTIES,
                        )
                except Exception as err:
                    client._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_publish: %s", err)
                    if not client.suppress_exceptions:
                        raise
        info = packet["info"]
        if info is not None:
            info._set_as_published()
    if command == MessageType.DISCONNECT:
        with client._msgtime_mutex:
            client._last_msg_out = paho.time_func()
        client._do_on_disconnect(packet_from_broker=False, v1_rc=MQTTErrorCode.MQTT_ERR_SUCCESS)
        client._sock_close()
        # As paho: disconnected only if the client asked to be (else it may reconnect).
        if client._state == _ConnectionState.MQTT_CS_DISCONNECTING:
            client._state = _ConnectionState.MQTT_CS_DISCONNECTED
        return True
    return False


def lean_pubacks(client: paho.Client) -> None:
    """Have paho read a plain PUBACK (2 bytes: success, no properties) without decoding.

    paho builds a ReasonCode and a Properties object for every PUBACK, and mosquitto's
    are nearly all the 2-byte kind (MQTT 5 section 3.4.2.1: the reason code and the
    properties are left out when the reason is success and there are none): those
    go to `on_publish` with one shared success reason and empty properties, as
    paho's `_handle_pubackcomp` would pass them, built once. Any other PUBACK, and
    PUBCOMP, take paho's own path (as does its debug log line, left out here).
    """
    handle = client._handle_pubackcomp

    def handle_pubackcomp(cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        packet = client._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2:  # noqa: PLR2004 (the packet identifier alone)
            return handle(cmd)
        mid = packet[0] << 8 | packet[1]
        with client._out_message_mutex:
            if mid in client._out_messages:
                return client._do_on_publish(mid, _WRITTEN_REASON, _WRITTEN_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # paho calls `self._handle_pubackcomp(...)`: the instance attribute comes first.
    client._handle_pubackcomp = handle_pubackcomp  # type: ignore[method-assign]


def buffer_reads(client: paho.Client) -> None:
    """Have paho read the socket in chunks, not one system call per header byte.

    paho's `_packet_read` asks its socket for the command byte, then each byte of
    the remaining length, then the rest: three receives for a PUBACK. Here its
    `_sock_recv` takes what the socket has (up to `READ_CHUNK`) and hands paho the
    bytes it asks for from that. Bytes read ahead are invisible to the event loop's
    selector, so `loop_read` (what aiomqtt calls when the socket is readable) goes on
    until paho has taken them all: none waits for the socket's next bytes.
    """
    ahead = bytearray()  # read from the socket, not yet taken by paho
    sock_recv = client._sock_recv
    loop_read = client.loop_read

    def recv(bufsize: int) -> bytes:
        if ahead:
            taken = bytes(ahead[:bufsize])
            del ahead[:bufsize]
            return taken
        data = sock_recv(max(bufsize, READ_CHUNK))
        if len(data) <= bufsize:
            return data
        ahead.extend(memoryview(data)[bufsize:])
        return data[:bufsize]

    def read(max_packets: int = 1) -> MQTTErrorCode:
        rc = loop_read(max_packets)
        # Each call takes at least one byte of `ahead` (a receive from it never blocks).
        while ahead and rc == MQTTErrorCode.MQTT_ERR_SUCCESS and client._sock is not None:
            rc = loop_read(max_packets)
        return rc

    # paho calls `self._sock_recv(...)` and aiomqtt `client.loop_read()`: instance
    # attributes come first.
    client._sock_recv = recv  # type: ignore[method-assign]
    client.loop_read = read  # type: ignore[method-assign]


#: An empty PUBLISH `Properties`, whose lookup tables each received message's shares:
#: paho builds them anew per message (tens of microseconds), and never changes them.
_NO_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]


def _no_publish_properties() -> Properties:
    """A fresh empty PUBLISH `Properties`, as paho decodes a property length of 0."""
    # Setting a property stores it on the instance (paho's `__setattr__`): one
    # message's never shows in another's.
    properties = object.__new__(Properties)
    properties.__dict__.update(_NO_PUBLISH_PROPERTIES.__dict__)
    return properties


def lean_publishes(client: paho.Client) -> None:
    """Have paho read a plain PUBLISH (QoS 0 or 1, no properties) without its decoder.

    paho's `_handle_publish` builds an empty `Properties` for every MQTT 5 PUBLISH
    (its tables and a clearing pass cost more than the rest of the message), and
    slices the packet over again with `struct`. A PUBLISH at QoS 0 or 1 whose
    property length is 0 is decoded here into the same `MQTTMessage`, passed to
    paho's own `_handle_on_message`, and acknowledged as paho does (unless manual
    acknowledgement is on). Any other PUBLISH (QoS 2, properties, MQTT 3, too
    short), and every one while paho's debug log is heard, take paho's own path.
    """
    handle = client._handle_publish

    def handle_publish() -> MQTTErrorCode:
        command = client._in_packet["command"]
        packet = client._in_packet["packet"]
        qos = (command & 0x06) >> 1
        size = len(packet)
        if qos > 1 or size < 3 or client._protocol != paho.MQTTv5 or _logs_debug(client):  # noqa: PLR2004 (the topic's length and one byte)
            return handle()
        start = 2 + (packet[0] << 8 | packet[1])  # after the topic
        at = start + 2 if qos else start  # the property length
        if at >= size or packet[at]:
            return handle()
        message = paho.MQTTMessage(
            packet[start] << 8 | packet[start + 1] if qos else 0, bytes(packet[2:start])
        )
        message.dup = bool(command & 0x08)
        message.qos = qos
        message.retain = bool(command & 0x01)
        message.properties = _no_publish_properties()
        message.payload = bytes(packet[at + 1 :])
        message.timestamp = paho.time_func()
        client._handle_on_message(message)
        if qos == 0 or client._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return client._send_puback(message.mid)

    # paho calls `self._handle_publish()`: the instance attribute comes first.
    client._handle_publish = handle_publish  # type: ignore[method-assign]


def _logs_debug(client: paho.Client) -> bool:
    """Whether paho's "Received PUBLISH" debug line would be heard: then paho logs it."""
    logger = client._logger
    return client.on_log is not None or (logger is not None and logger.isEnabledFor(logging.DEBUG))
