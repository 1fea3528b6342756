import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ringmaster.daemon.broker import (
    BrokerError,
    EmbeddedBroker,
    MosquittoProcess,
    free_port,
    resolve_mosquitto,
    start_mosquitto,
)

pytestmark = pytest.mark.integration


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _client(
    port: int,
    identifier: str,
    *,
    persistent: bool = False,
    host: str = "127.0.0.1",
    username: str | None = None,
    password: str | None = None,
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
        username=username,
        password=password,
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


# --- the production example, config/mosquitto.conf, as its header says to install it ---

REPO = Path(__file__).resolve().parent.parent

#: Debian 12's /etc/mosquitto/mosquitto.conf, as the package installs it.
_DEBIAN_MAIN_CONF = """\
pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""


@pytest.fixture
def debian_layout() -> Iterator[Path]:
    """A root for /etc/mosquitto, /var/lib/mosquitto, ... that the mosquitto user can read.

    pytest's tmp_path is private to its owner; a broker started as root drops to the
    user "mosquitto" as Debian's does, so the tree must be traversable by that user.
    """
    root = Path(tempfile.mkdtemp(prefix="rm-debian-mosquitto-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _install_example(root: Path, local_port: int, tls_port: int) -> Path:
    etc = root / "etc/mosquitto"
    for folder in (
        "etc/mosquitto/conf.d",
        "etc/mosquitto/certs",
        "var/lib/mosquitto",
        "var/log/mosquitto",
        "run/mosquitto",
    ):
        (root / folder).mkdir(parents=True, mode=0o755)
    main = etc / "mosquitto.conf"
    main.write_text(_DEBIAN_MAIN_CONF.replace(" /", f" {root}/"))
    example = (REPO / "config/mosquitto.conf").read_text()
    example = example.replace("/etc/mosquitto/", f"{etc}/").replace(
        "/var/lib/mosquitto/", f"{root}/var/lib/mosquitto/"
    )
    example = example.replace("listener 1883 127.0.0.1", f"listener {local_port} 127.0.0.1")
    example = example.replace("listener 8883\n", f"listener {tls_port} 127.0.0.1\n")
    (etc / "conf.d/ringmaster.conf").write_text(example)
    shutil.copy(REPO / "config/mosquitto.acl", etc / "ringmaster.acl")
    certs = etc / "certs"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            certs / "broker.key",
            "-out",
            certs / "broker.crt",
        ],
        check=True,
        capture_output=True,
    )
    shutil.copy(certs / "broker.crt", certs / "ca.crt")
    (etc / "ringmaster.passwd").touch(mode=0o600)
    for name in ("ringmaster", "pbx-7"):  # the daemon, and tenant 7's PBX in the example ACL
        subprocess.run(
            ["mosquitto_passwd", "-b", etc / "ringmaster.passwd", name, "secret"],
            check=True,
            capture_output=True,
        )
    if os.geteuid() == 0:
        # As Debian's package leaves them: the broker's own folders are the broker's.
        user = pwd.getpwnam("mosquitto")
        for path in [*root.rglob("*"), root]:
            os.chown(path, user.pw_uid, user.pw_gid)
    return main


def _start(main: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [resolve_mosquitto(), "-c", str(main)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not _accepts("127.0.0.1", port):
        if process.poll() is not None:
            _, stderr_bytes = process.communicate()
            stderr = stderr_bytes.decode()
            pytest.fail(f"mosquitto exited {process.returncode}: {stderr}", pytrace=False)
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.02)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)  # a clean stop writes the persistence file
    process.communicate(timeout=10)


async def test_the_production_example_starts_on_stock_debian_and_keeps_sessions(
    debian_layout: Path,
) -> None:
    local_port, tls_port = free_port(), free_port()
    main = _install_example(debian_layout, local_port, tls_port)
    broker = _start(main, local_port)
    try:
        async with _client(
            local_port, "ringmaster", persistent=True, username="ringmaster", password="secret"
        ) as daemon:
            await daemon.subscribe("ringmaster/+/pbx/#", qos=1)
        async with _client(local_port, "pbx-side", username="pbx-7", password="secret") as pbx:
            await pbx.publish("ringmaster/7/pbx/call/hangup", b'{"call_id": "c1"}', qos=1)
        _stop(broker)
        # Restarted as root, the broker runs as "mosquitto" and must have written and
        # read back its persistence file: the daemon's session and queued message.
        broker = _start(main, local_port)
        async with _client(
            local_port, "ringmaster", persistent=True, username="ringmaster", password="secret"
        ) as daemon:
            async with asyncio.timeout(5):
                message = await anext(aiter(daemon.messages))
        assert message.topic.value == "ringmaster/7/pbx/call/hangup"
        with pytest.raises(aiomqtt.MqttError):
            async with _client(local_port, "anonymous"):
                pass
    finally:
        if broker.poll() is None:
            _stop(broker)
