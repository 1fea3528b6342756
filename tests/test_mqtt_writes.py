"""paho's queued packets leave in one send, as paho would write them one by one."""

from __future__ import annotations

import itertools

import paho.mqtt.client as paho
import pytest
from paho.mqtt import _packet as paho_packet
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ringmaster.daemon.mqtt_connection import (
    buffer_reads,
    coalesce_writes,
    lean_pubacks,
    write_queued,
)


class FakeSocket:
    """Takes at most `budget` bytes per send (None: all), nothing once `full`."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.full = False
        self.sends = 0
        self.wire = bytearray()
        self.closed = False

    def send(self, buffer: bytes | bytearray) -> int:
        if self.full:
            raise BlockingIOError
        self.sends += 1
        taken = len(buffer) if self.budget is None else min(self.budget, len(buffer))
        self.wire += buffer[:taken]
        return taken

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        return -1

    def recv(self, buffer_size: int) -> bytes:
        raise BlockingIOError


def client_on(sock: FakeSocket, *, coalesced: bool) -> tuple[paho.Client, list[int]]:
    """A paho client whose packets queue up until `loop_write`, and its QoS 0 mids written."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client._sock = sock  # type: ignore[assignment]
    # As under aiomqtt: packets wait for the event loop's writer, not written at once.
    client.on_socket_register_write = lambda _c, _u, _s: None
    written: list[int] = []

    def on_publish(
        _client: paho.Client, _userdata: object, mid: int, reason: ReasonCode, _p: Properties
    ) -> None:
        assert not reason.is_failure
        written.append(mid)

    client.on_publish = on_publish
    if coalesced:
        coalesce_writes(client)
    return client, written


def queue_burst(client: paho.Client) -> list[int]:
    mids = [client.publish(f"rm/1/cmd/ring/{n}", b"x" * n, qos=1).mid for n in range(3)]
    mids.append(client.publish("rm/1/event/call/queued", b"{}", qos=0).mid)
    mids.append(client.publish("rm/2/cmd/ring", b"y" * 300, qos=1).mid)
    return mids


def paho_wire() -> bytes:
    sock = FakeSocket()
    client, _ = client_on(sock, coalesced=False)
    queue_burst(client)
    client.loop_write()
    assert sock.sends == 5  # one per packet: what the coalescing saves
    return bytes(sock.wire)


def test_a_burst_leaves_in_one_send_byte_for_byte_as_paho_writes_it() -> None:
    sock = FakeSocket()
    client, written = client_on(sock, coalesced=True)
    mids = queue_burst(client)
    assert client.loop_write() == paho.MQTT_ERR_SUCCESS
    assert sock.sends == 1
    assert bytes(sock.wire) == paho_wire()
    assert written == [mids[3]]  # the QoS 0 message, once written
    assert not client.want_write()


def test_partial_writes_resume_where_they_stopped() -> None:
    sock = FakeSocket(budget=7)
    client, written = client_on(sock, coalesced=True)
    mids = queue_burst(client)
    expected = paho_wire()
    sock.full = True
    assert client.loop_write() == paho.MQTT_ERR_SUCCESS  # would block: nothing lost
    assert client.want_write()
    sock.full = False
    # 7 bytes at a time: the QoS 0 message is reported only once all of it is out.
    while client.want_write():
        client.loop_write()
        qos0_end = expected.index(b"rm/1/event/call/queued") + len("rm/1/event/call/queued{}") + 1
        assert (mids[3] in written) == (len(sock.wire) >= qos0_end)
    assert bytes(sock.wire) == expected
    assert written == [mids[3]]


def test_a_blocked_socket_keeps_the_packets_queued() -> None:
    sock = FakeSocket()
    sock.full = True
    client, written = client_on(sock, coalesced=True)
    queue_burst(client)
    client.loop_write()
    assert (sock.sends, written, len(client._out_packet)) == (0, [], 5)


def test_a_disconnect_written_closes_the_socket_and_says_so() -> None:
    sock = FakeSocket(budget=1)
    client, _ = client_on(sock, coalesced=True)
    disconnected: list[bool] = []
    client.on_disconnect = lambda *_args: disconnected.append(True)
    client.publish("rm/1/cmd/ring", b"{}", qos=1)
    client.disconnect()
    while client.want_write() and not sock.closed:
        client.loop_write()
    assert sock.closed
    assert disconnected == [True]
    assert sock.wire.endswith(b"\xe0\x00")  # DISCONNECT, reason 0, after the PUBLISH


def test_nothing_queued_after_a_disconnect_is_written() -> None:
    # paho never writes past DISCONNECT: the joined send stops at it too.
    sock = FakeSocket()
    client, _ = client_on(sock, coalesced=True)
    client.publish("rm/1/cmd/ring", b"{}", qos=1)
    client.disconnect()
    client.publish("rm/1/cmd/ring", b"late", qos=1)
    client.loop_write()
    assert sock.closed
    assert sock.wire.endswith(b"\xe0\x00")
    assert b"late" not in sock.wire


def test_a_send_that_takes_nothing_waits_for_the_socket() -> None:
    # As paho: a send of 0 bytes is "try again later", not a reason to spin.
    sock = FakeSocket(budget=0)
    client, _ = client_on(sock, coalesced=True)
    client.publish("rm/1/cmd/ring", b"{}", qos=1)
    assert client.loop_write() == paho.MQTT_ERR_SUCCESS  # loop_write maps AGAIN to success
    assert sock.sends == 1
    assert client.want_write()


def test_what_is_written_counts_as_traffic_for_the_keepalive() -> None:
    # paho sends PINGREQ only when nothing went out for a keepalive: a busy link has no
    # need of one, which paho knows from `_last_msg_out`, updated on every write.
    sock = FakeSocket()
    client, _ = client_on(sock, coalesced=True)
    client._last_msg_out = 0.0
    client.publish("rm/1/cmd/ring", b"{}", qos=1)
    client.loop_write()
    assert client._last_msg_out > 0.0


class BrokenSocket(FakeSocket):
    def send(self, buffer: bytes | bytearray) -> int:
        raise ConnectionResetError


def test_write_queued_writes_the_queue_at_once_and_leaves_the_writer_registered() -> None:
    sock = FakeSocket()
    client, _ = client_on(sock, coalesced=True)
    queue_burst(client)
    assert client._registered_write
    write_queued(client)
    assert (sock.sends, bytes(sock.wire)) == (1, paho_wire())
    # The writer registered with the event loop stays: it finds nothing, paho removes it.
    assert client._registered_write
    write_queued(client)  # nothing queued: no send
    assert sock.sends == 1


def test_write_queued_leaves_a_broken_connection_to_the_writer() -> None:
    sock = BrokenSocket()
    client, written = client_on(sock, coalesced=True)
    queue_burst(client)
    write_queued(client)
    # Nothing lost, nothing closed: the writer's `loop_write` meets the error again and
    # closes the connection as paho does.
    assert (len(client._out_packet), written, sock.closed) == (5, [], False)
    client.loop_write()
    assert sock.closed


def awaiting_puback(mid: int) -> tuple[paho.Client, list[tuple[int, ReasonCode]]]:
    """A paho client with QoS 1 message `mid` awaiting its PUBACK, reading PUBACKs leanly."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client._last_mid = mid - 1
    client._sock = FakeSocket()  # type: ignore[assignment]
    client.on_socket_register_write = lambda _c, _u, _s: None
    assert client.publish("rm/1/cmd/ring", b"{}", qos=1).mid == mid
    confirmed: list[tuple[int, ReasonCode]] = []

    def on_publish(
        _client: paho.Client, _userdata: object, mid: int, reason: ReasonCode, _p: Properties
    ) -> None:
        confirmed.append((mid, reason))

    client.on_publish = on_publish
    lean_pubacks(client)
    return client, confirmed


def read_puback(client: paho.Client, packet: bytes) -> None:
    client._in_packet["command"] = 0x40
    client._in_packet["packet"] = bytearray(packet)
    assert client._packet_handle() == paho.MQTT_ERR_SUCCESS


def test_a_plain_puback_confirms_its_message_with_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, confirmed = awaiting_puback(0x12A)

    def decoded(*_args: object) -> None:
        raise AssertionError("a plain PUBACK is not decoded")

    monkeypatch.setattr(paho_packet, "decode_puback", decoded)
    read_puback(client, b"\x01\x2a")
    assert [(mid, reason.value) for mid, reason in confirmed] == [(0x12A, 0)]
    assert (client._out_messages, client._inflight_messages) == ({}, 0)
    read_puback(client, b"\x01\x2a")  # a second one is no one's
    assert len(confirmed) == 1


def test_a_refusing_puback_still_takes_paho_s_path() -> None:
    client, confirmed = awaiting_puback(7)
    read_puback(client, b"\x00\x07\x87\x00")  # Not authorized, no properties
    assert [(mid, reason.value, reason.is_failure) for mid, reason in confirmed] == [
        (7, 0x87, True)
    ]


class FakeReadSocket(FakeSocket):
    """Gives its `chunks` one per receive (as much as asked of each), then would block."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self.chunks = chunks
        self.recvs = 0

    def recv(self, buffer_size: int) -> bytes:
        self.recvs += 1
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        if len(chunk) > buffer_size:
            self.chunks.insert(0, chunk[buffer_size:])
        return chunk[:buffer_size]


def publish_packet(topic: str, payload: bytes) -> bytes:
    """An MQTT 5 PUBLISH at QoS 0, no properties."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + b"\x00" + payload
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


def reading_client(sock: FakeReadSocket) -> tuple[paho.Client, list[bytes]]:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client._sock = sock  # type: ignore[assignment]
    heard: list[bytes] = []
    client.on_message = lambda _c, _u, message: heard.append(bytes(message.payload))
    buffer_reads(client)
    return client, heard


def test_packets_read_together_are_all_handled_in_one_readable_event() -> None:
    wire = b"".join(publish_packet("rm/1/pbx/call/arrived", bytes([n])) for n in range(5))
    sock = FakeReadSocket([wire])
    client, heard = reading_client(sock)
    # aiomqtt calls loop_read() once per readable event; nothing may wait in the buffer.
    assert client.loop_read() == paho.MQTT_ERR_SUCCESS
    assert heard == [bytes([n]) for n in range(5)]
    assert sock.recvs == 1  # paho alone: 3 per packet, and "would block" once


def test_a_packet_split_across_receives_is_read_whole() -> None:
    wire = publish_packet("rm/1/pbx/call/hangup", b"first") + publish_packet("rm/x", b"second")
    cuts = [1, 2, 9, len(wire) - 3, len(wire)]
    sock = FakeReadSocket([wire[a:b] for a, b in itertools.pairwise([0, *cuts])])
    client, heard = reading_client(sock)
    while sock.chunks:
        client.loop_read()
    assert heard == [b"first", b"second"]


def test_a_closed_connection_is_seen_as_lost() -> None:
    sock = FakeReadSocket([publish_packet("rm/1/x", b"last"), b""])
    client, heard = reading_client(sock)
    client.loop_read()
    assert heard == [b"last"]
    assert client.loop_read() != paho.MQTT_ERR_SUCCESS
