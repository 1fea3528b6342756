"""A received PUBLISH read leanly gives what paho's own handler gives, byte for byte."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import paho.mqtt.client as paho
import pytest
from paho.mqtt import _packet as paho_packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ringmaster.daemon.mqtt_connection import lean_publishes


class FakeSocket:
    """Keeps what paho writes."""

    def __init__(self) -> None:
        self.wire = bytearray()

    def send(self, buffer: bytes | bytearray) -> int:
        self.wire += buffer
        return len(buffer)

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def recv(self, buffer_size: int) -> bytes:
        raise BlockingIOError


@dataclass
class Receiver:
    client: paho.Client
    sock: FakeSocket
    heard: list[paho.MQTTMessage] = field(default_factory=list)

    def read(self, command: int, packet: bytes) -> MQTTErrorCode:
        """Hand paho one packet as `_packet_read` would, then write what it queued."""
        self.client._in_packet["command"] = command
        self.client._in_packet["packet"] = bytearray(packet)
        try:
            return self.client._packet_handle()
        finally:
            self.client.loop_write()


def receiver(*, lean: bool, manual_ack: bool = False) -> Receiver:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    sock = FakeSocket()
    client._sock = sock  # type: ignore[assignment]
    client.on_socket_register_write = lambda _c, _u, _s: None
    client.manual_ack_set(manual_ack)
    # As under aiomqtt: a logger that does not hear debug lines.
    logger = logging.getLogger("test.paho")
    logger.setLevel(logging.INFO)
    client.enable_logger(logger)
    it = Receiver(client, sock)
    client.on_message = lambda _c, _u, message: it.heard.append(message)
    if lean:
        lean_publishes(client)
    return it


def publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 1,
    mid: int = 0x12A,
    retain: bool = False,
    dup: bool = False,
    properties: bytes = b"\x00",
) -> tuple[int, bytes]:
    """An MQTT 5 PUBLISH's command byte and the rest after its remaining length."""
    command = 0x30 | dup << 3 | qos << 1 | retain
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name
    if qos:
        body += mid.to_bytes(2, "big")
    return command, body + properties + payload


def seen(message: paho.MQTTMessage) -> dict[str, object]:
    properties = message.properties
    assert isinstance(properties, Properties)
    return {
        "topic": message._topic,
        "type": (type(message._topic), type(message.payload), type(message.info)),
        "mid": message.mid,
        "qos": message.qos,
        "dup": message.dup,
        "retain": message.retain,
        "payload": message.payload,
        "state": message.state,
        "info": (message.info.mid, message.info.rc, message.info.is_published()),
        "properties": (
            properties.packetType,
            properties.pack(),  # type: ignore[no-untyped-call]
            properties.json(),  # type: ignore[no-untyped-call]
        ),
    }


#: User property ("k", "v") and message expiry 60 s: paho's path decodes them.
WITH_PROPERTIES = b"\x0c\x26\x00\x01k\x00\x01v\x02\x00\x00\x00\x3c"

CASES = {
    "qos 1": publish("rm/1/pbx/call/arrived", b'{"call": "c-1"}'),
    "qos 0": publish("rm/1/pbx/call/arrived", b"{}", qos=0),
    "retained": publish("rm/1/cfg/queue/sales", b"{}", retain=True),
    "dup": publish("rm/1/pbx/call/hangup", b"{}", dup=True, mid=65535),
    "retained dup qos 0": publish("rm/x", b"x", qos=0, retain=True, dup=True),
    "empty payload": publish("rm/1/cfg/queue/sales", b"", retain=True),
    "empty payload qos 0": publish("rm/1/cfg/queue/sales", b"", qos=0),
    "utf-8 topic": publish("rm/1/agent/Zoë/名前", "naïve".encode()),
    "long payload": publish("rm/1/pbx/call/arrived", bytes(range(256)) * 40),
    "properties": publish("rm/1/pbx/call/arrived", b"{}", properties=WITH_PROPERTIES),
    "properties qos 0": publish("rm/1/x", b"{}", qos=0, properties=WITH_PROPERTIES),
}


@pytest.mark.parametrize("manual_ack", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_the_same_packet_gives_the_same_message_and_the_same_puback(
    case: str, *, manual_ack: bool
) -> None:
    command, packet = CASES[case]
    theirs, ours = (
        receiver(lean=False, manual_ack=manual_ack),
        receiver(lean=True, manual_ack=manual_ack),
    )
    assert theirs.read(command, packet) == ours.read(command, packet) == paho.MQTT_ERR_SUCCESS
    assert [seen(m) for m in ours.heard] == [seen(m) for m in theirs.heard]
    assert len(ours.heard) == 1
    assert ours.heard[0].timestamp > 0.0
    assert ours.sock.wire == theirs.sock.wire
    if command & 0x06 and not manual_ack:
        assert ours.sock.wire == b"\x40\x02" + packet[2 + packet[1] : 4 + packet[1]]
    else:
        assert ours.sock.wire == b""


def test_a_plain_publish_is_not_decoded_by_paho(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[object] = []
    decode = paho_packet.decode_publish

    def counted(*args: object) -> object:
        decoded.append(args)
        return decode(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(paho_packet, "decode_publish", counted)
    ours = receiver(lean=True)
    ours.read(*CASES["qos 1"])
    ours.read(*CASES["qos 0"])
    assert decoded == []
    ours.read(*CASES["properties"])
    assert len(decoded) == 1
    assert ours.heard[-1].properties.UserProperty == [("k", "v")]  # type: ignore[union-attr]


def test_each_message_has_properties_of_its_own() -> None:
    ours = receiver(lean=True)
    ours.read(*CASES["qos 1"])
    ours.read(*CASES["qos 1"])
    first, second = (m.properties for m in ours.heard)
    assert first is not second
    assert first is not None
    assert second is not None
    first.ContentType = "application/json"
    assert second.isEmpty()  # type: ignore[no-untyped-call]
    assert Properties(PacketTypes.PUBLISH).isEmpty()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("suppress", [False, True])
def test_a_failing_on_message_is_handled_as_paho_handles_it(*, suppress: bool) -> None:
    """paho sends no PUBACK when on_message raises, unless it suppresses exceptions."""

    def failing(_client: paho.Client, _userdata: object, _message: paho.MQTTMessage) -> None:
        raise RuntimeError("consumer bug")

    outcomes = []
    for lean in (False, True):
        it = receiver(lean=lean)
        it.client.on_message = failing
        it.client.suppress_exceptions = suppress
        try:
            outcome: object = it.read(*CASES["qos 1"])
        except RuntimeError as error:
            outcome = str(error)
        outcomes.append((outcome, bytes(it.sock.wire)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][1] == (b"\x40\x02\x01\x2a" if suppress else b"")


def test_a_filtered_callback_gets_its_messages_as_from_paho() -> None:
    for lean in (False, True):
        it = receiver(lean=lean)
        filtered: list[paho.MQTTMessage] = []
        it.client.message_callback_add("rm/+/pbx/#", lambda _c, _u, m: filtered.append(m))  # noqa: B023 (used in its own iteration only)
        it.read(*CASES["qos 1"])
        it.read(*CASES["retained"])
        assert [m.payload for m in filtered] == [b'{"call": "c-1"}']
        assert [m.payload for m in it.heard] == [b"{}"]


def test_qos_2_takes_paho_s_path() -> None:
    theirs, ours = receiver(lean=False), receiver(lean=True)
    packet = publish("rm/1/x", b"{}", qos=2, mid=9)
    assert theirs.read(*packet) == ours.read(*packet) == paho.MQTT_ERR_SUCCESS
    assert ours.sock.wire == theirs.sock.wire == b"\x50\x02\x00\x09"  # PUBREC
    assert ours.heard == theirs.heard == []  # until PUBREL


def test_a_truncated_publish_fails_as_in_paho() -> None:
    for packet in (b"\x00", b"\x00\x05ab", b"\x00\x02ab\x00"):
        errors = []
        for lean in (False, True):
            with pytest.raises(MalformedPacket) as error:
                receiver(lean=lean).read(0x32, packet)
            errors.append(str(error.value))
        assert errors[0] == errors[1]


def test_paho_s_debug_line_is_logged_when_heard(caplog: pytest.LogCaptureFixture) -> None:
    ours = receiver(lean=True)
    with caplog.at_level(logging.DEBUG, logger="test.paho"):
        ours.read(*CASES["qos 1"])
    assert "Received PUBLISH (d0, q1, r0, m298), 'rm/1/pbx/call/arrived'" in caplog.text
    assert len(ours.heard) == 1
