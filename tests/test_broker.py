import asyncio
import socket
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ringmaster.broker import BrokerError, EmbeddedBroker, MosquittoProcess, start_mosquitto

pytestmark = pytest.mark.integration


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _client(
    port: int, identifier: str, *, persistent: bool = False, host: str = "127.0.0.1"
) -> aiomqtt.Client:
    properties = None
    if persistent:
        # MQTT 5: the session (subscriptions and queued QoS 1 messages) outlives the
        # connection only with a session expiry interval; 0, the default, ends it.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
    return aiomqtt.Client(
        host,
        port,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=not persistent,
        properties=properties,
        timeout=5,
    )


async def _round_trip(port: int, topic: str) -> bytes | bytearray:
    async with _client(port, f"rt-{topic}") as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"hello", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
    assert message.qos == 1
    assert isinstance(message.payload, bytes | bytearray)
    return message.payload


async def test_embedded_broker_round_trip_and_stop(tmp_path: Path) -> None:
    async with EmbeddedBroker(data_dir=tmp_path / "data", port=0) as broker:
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert await _round_trip(broker.port, "rm/test") == b"hello"
        port = broker.port
    assert broker.returncode is not None
    assert not _accepts("127.0.0.1", port)


async def test_embedded_broker_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = EmbeddedBroker(data_dir=tmp_path, port=port)
        with pytest.raises(BrokerError, match="in use"):
            await broker.start()


async def test_embedded_broker_reports_mosquitto_errors(tmp_path: Path) -> None:
    # An address this host does not have: mosquitto exits, and its reason is in the error.
    broker = EmbeddedBroker(data_dir=tmp_path, host="192.0.2.1", port=1)
    with pytest.raises(BrokerError, match="exited with status"):
        await broker.start()


async def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    broker = EmbeddedBroker(data_dir=tmp_path, mosquitto="no-such-mosquitto")
    with pytest.raises(BrokerError, match="not found"):
        await broker.start()


async def test_session_fixture_broker(mosquitto: MosquittoProcess) -> None:
    assert mosquitto.running
    assert await _round_trip(mosquitto.port, "rm/session") == b"hello"


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_restart_keeps_a_persistent_session(tmp_path: Path, how: str) -> None:
    """The daemon relies on this: commands queued for it survive a broker restart."""
    broker = start_mosquitto(tmp_path / "data")
    try:
        async with _client(broker.port, "daemon", persistent=True) as daemon:
            await daemon.subscribe("rm/7/cmd/#", qos=1)

        # The daemon is away; the PBX side publishes a command for it.
        async with _client(broker.port, "pbx") as pbx:
            await pbx.publish("rm/7/cmd/ring", b'{"call_id": "c1"}', qos=1)

        if how == "stop":
            broker.restart()
        else:
            # A crash loses what changed since the last save, so make it saved first:
            # a graceful stop writes the persistence file, then kill the next run.
            broker.restart()
            broker.restart(kill=True)
        assert broker.running

        async with _client(broker.port, "daemon", persistent=True) as daemon:
            async with asyncio.timeout(5):
                message = await anext(aiter(daemon.messages))
        assert message.topic.value == "rm/7/cmd/ring"
        assert message.payload == b'{"call_id": "c1"}'
    finally:
        broker.close()
    assert not broker.running
