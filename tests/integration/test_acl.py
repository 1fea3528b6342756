"""The shipped broker ACL through a real mosquitto with its password file.

Each role is refused outside its rights and the real daemon works inside its own.
mosquitto 2.0 answers a refused QoS 1 publish with PUBACK "not authorized" (0x87)
and drops it; it accepts every subscription and leaves out, message by message, what
the subscriber may not read. "Never delivered" is shown with a marker: a message
the subscriber may read, published once the broker has answered the refused one,
so that anything the broker had let through would have come before it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as paho
import pytest
import structlog
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ringmaster.daemon.broker import free_port, resolve_mosquitto
from ringmaster.daemon.service import Service
from ringmaster.settings import load_settings

from .pbx import WAIT_S, provisioned, running, write_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PREFIX = "ringmaster"  # the shipped ACL's topics carry the default prefix
PASSWORD = "s3cret"
#: The shipped ACL's example tenant, whose blocks are copied for the others.
EXAMPLE_TENANT = 7
PATTERN_FORM = "mosquitto-pattern.acl"
NOT_AUTHORIZED = 0x87
#: PUBACK reason codes from 0x80 up refuse the message (MQTT 5 section 3.4.2.1); below
#: it the broker took it (0x10: it had no matching subscriber).
REFUSED = 0x80

#: The user names the shipped ACLs document for each role.
DAEMON = "ringmaster"


def pbx_user(form: str, tenant: int) -> str:
    """Tenant `tenant`'s PBX user: named after the tenant id in the pattern form."""
    return str(tenant) if form == PATTERN_FORM else f"pbx-{tenant}"


def monitor_user(tenant: int) -> str:
    return f"mon-{tenant}"


# --- the broker, as config/mosquitto.conf and config/mosquitto.acl set it up -------


def _install_acl(path: Path, form: str, tenants: list[int]) -> None:
    """A shipped ACL, with the example tenant's blocks copied for each other tenant."""
    shipped = (REPO / "config" / form).read_text()
    blocks: list[list[str]] = []
    for line in shipped.splitlines():
        if line.startswith("user "):
            blocks.append([line])
        elif line.startswith("topic ") and blocks:
            blocks[-1].append(line)
    example = [block for block in blocks if block[0].endswith(f"-{EXAMPLE_TENANT}")]
    assert example, "the shipped ACL has no example tenant's blocks to copy"
    # "pbx-7" and "ringmaster/7/...": the tenant id as a whole name part or topic level.
    tenant_id = re.compile(rf"(?<=[-/]){EXAMPLE_TENANT}(?=/|$)")
    copies = [
        tenant_id.sub(str(tenant), line)
        for tenant in tenants
        if tenant != EXAMPLE_TENANT
        for block in example
        for line in block
    ]
    path.write_text(shipped + "\n" + "\n".join(copies) + "\n")


def _shipped_settings() -> list[str]:
    """The lines of config/mosquitto.conf that decide who connects and what they may do."""
    wanted = ("allow_anonymous", "per_listener_settings", "set_tcp_nodelay", "max_queued_messages")
    lines = (REPO / "config/mosquitto.conf").read_text().splitlines()
    return [line for line in lines if line.startswith(wanted)]


@dataclass(frozen=True)
class Broker:
    port: int
    passwd: Path
    acl: Path
    process: subprocess.Popen[bytes]
    #: The ACL file installed: config/mosquitto.acl or its pattern form.
    form: str

    def pbx(self, tenant: int) -> str:
        return pbx_user(self.form, tenant)

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{PASSWORD}@127.0.0.1:{self.port}"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=["mosquitto.acl", PATTERN_FORM])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    form: str = request.param
    tenants = [1, 7, 8]
    users = [DAEMON, *(name for t in tenants for name in (pbx_user(form, t), monitor_user(t)))]
    passwd = tmp_path / "ringmaster.passwd"
    passwd.touch()
    for user in users:
        subprocess.run(
            ["mosquitto_passwd", "-b", passwd, user, PASSWORD], check=True, capture_output=True
        )
    acl = tmp_path / "ringmaster.acl"
    _install_acl(acl, form, tenants)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                *_shipped_settings(),
                f"password_file {passwd}",
                f"acl_file {acl}",
                "log_dest stderr",
                "log_type error",
                # Started as root, mosquitto would switch to the user "mosquitto", who
                # cannot read pytest's private tmp_path (see broker.write_config).
                *(["user root"] if os.geteuid() == 0 else []),
            ]
        )
        + "\n"
    )
    stderr = tmp_path / "mosquitto.stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [resolve_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=sink
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while not _accepts(port):
            if process.poll() is not None:
                pytest.fail(f"mosquitto exited: {stderr.read_text()}", pytrace=False)
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.02)
        yield Broker(port, passwd, acl, process, form)
    finally:
        process.terminate()
        process.wait(WAIT_S)


# --- a client that sees the broker's answer to each publish -------------------------


class Party:
    """One MQTT 5 client under one user: what it received, and the PUBACK of each publish."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: list[aiomqtt.Message] = []
        self._changed = asyncio.Condition()
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}
        # aiomqtt drops PUBACK reason codes; paho's callback has them (as in mqtt.py).
        inner = client._client
        aiomqtt_on_publish = cast("paho.CallbackOnPublish_v2 | None", inner.on_publish)

        def on_publish(
            c: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties
        ) -> None:
            ack = self._acks.pop(mid, None)
            if ack is not None and not ack.done():
                ack.set_result(reason)
            if aiomqtt_on_publish is not None:
                aiomqtt_on_publish(c, userdata, mid, reason, props)

        inner.on_publish = on_publish
        #: Reads the messages; it ends with `aiomqtt.MqttError` if the broker disconnects.
        self.listening = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for message in self.client.messages:
            async with self._changed:
                self.received.append(message)
                self._changed.notify_all()

    async def subscribe(self, *filters: str) -> None:
        for topic_filter in filters:
            await self.client.subscribe(topic_filter, qos=1)

    async def publish(self, topic: str, payload: object, *, retain: bool = False) -> int:
        """Publish at QoS 1; the reason code of the broker's PUBACK (0 = accepted)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client._client.publish(topic, data, qos=1, retain=retain)
        assert info.rc == paho.MQTT_ERR_SUCCESS
        ack: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._acks[info.mid] = ack
        async with asyncio.timeout(WAIT_S):
            return (await ack).value

    async def publish_ok(self, topic: str, payload: object, *, retain: bool = False) -> None:
        """Publish at QoS 1 and check that the broker took it."""
        reason = await self.publish(topic, payload, retain=retain)
        assert reason < REFUSED, (topic, reason)

    async def until(
        self, topic_filter: str, where: Callable[[dict[str, object]], bool]
    ) -> list[str]:
        """Wait (bounded) for a message matching `topic_filter` and `where`.

        Returns:
            The topics of the messages received up to and including it.
        """
        async with asyncio.timeout(WAIT_S), self._changed:
            while True:
                for index, message in enumerate(self.received):
                    if paho.topic_matches_sub(topic_filter, str(message.topic)) and where(
                        _payload(message)
                    ):
                        return [str(m.topic) for m in self.received[: index + 1]]
                await self._changed.wait()

    def payloads(self, topic: str) -> list[dict[str, object]]:
        return [_payload(m) for m in self.received if str(m.topic) == topic]


def _payload(message: aiomqtt.Message) -> dict[str, object]:
    assert isinstance(message.payload, bytes)
    value = json.loads(message.payload) if message.payload else {}
    assert isinstance(value, dict)
    return value


@asynccontextmanager
async def party(
    broker: Broker, user: str | None, *, password: str = PASSWORD
) -> AsyncIterator[Party]:
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=f"{user}-{uuid.uuid4().hex[:8]}",
        username=user,
        password=None if user is None else password,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=WAIT_S,
    ) as client:
        side = Party(client)
        try:
            yield side
        finally:
            side.listening.cancel()


def topic(tenant: int | None, rest: str) -> str:
    return f"{PREFIX}/{rest}" if tenant is None else f"{PREFIX}/{tenant}/{rest}"


# --- each role refused outside its rights --------------------------------------------


async def test_a_pbx_cannot_forge_events_snapshots_status_or_touch_another_tenant(
    broker: Broker,
) -> None:
    async with (
        party(broker, broker.pbx(7)) as pbx,
        party(broker, monitor_user(7)) as wallboard,
        party(broker, DAEMON) as daemon,
    ):
        await wallboard.subscribe(topic(7, "event/#"), topic(7, "state/#"), f"{PREFIX}/status")
        await daemon.subscribe(topic(8, "pbx/#"), topic(7, "pbx/#"), f"{PREFIX}/sync")
        forged = {"call_id": "forged", "queue_id": 1, "extension": "101", "wait_s": 0}
        refusals = {
            topic(7, "event/call/answered"): await pbx.publish(
                topic(7, "event/call/answered"), forged
            ),
            topic(7, "state/queue/1"): await pbx.publish(
                topic(7, "state/queue/1"), {"waiting": 99}, retain=True
            ),
            topic(7, "cmd/ring"): await pbx.publish(topic(7, "cmd/ring"), forged),
            f"{PREFIX}/status": await pbx.publish(
                f"{PREFIX}/status", {"state": "offline"}, retain=True
            ),
            f"{PREFIX}/sync": await pbx.publish(f"{PREFIX}/sync", b"token"),
            topic(8, "pbx/call/arrived"): await pbx.publish(
                topic(8, "pbx/call/arrived"), {"call_id": "c8", "did": "+1"}
            ),
        }
        assert refusals == dict.fromkeys(refusals, NOT_AUTHORIZED)
        # Its own topic is open to it, and the daemon sees it after nothing else.
        await pbx.publish_ok(topic(7, "pbx/call/hangup"), {"call_id": "mark"})
        assert await daemon.until(topic(7, "pbx/call/hangup"), lambda p: True) == [
            topic(7, "pbx/call/hangup")
        ]
        marker = {"call_id": "mark", "queue_id": 1, "extension": "101", "wait_s": 0}
        await daemon.publish_ok(topic(7, "event/call/answered"), marker)
        assert await wallboard.until(topic(7, "event/call/answered"), lambda p: True) == [
            topic(7, "event/call/answered")
        ]
        assert wallboard.payloads(topic(7, "event/call/answered")) == [marker]

        # A retained snapshot forged by the PBX would reach any later subscriber.
        async with party(broker, monitor_user(7)) as late:
            await late.subscribe(topic(7, "state/#"))
            await daemon.publish_ok(topic(7, "state/mark"), {"mark": 1})
            assert await late.until(topic(7, "state/mark"), lambda p: True) == [
                topic(7, "state/mark")
            ]

        # Tenant 8's commands are not delivered to tenant 7's PBX.
        await pbx.subscribe(topic(8, "cmd/#"), topic(7, "cmd/#"))
        await daemon.publish_ok(topic(8, "cmd/ring"), {"call_id": "c8"})
        await daemon.publish_ok(topic(7, "cmd/ring"), {"call_id": "mark"})
        assert await pbx.until(topic(7, "cmd/ring"), lambda p: True) == [topic(7, "cmd/ring")]


async def test_a_monitoring_client_reads_its_tenant_and_publishes_nothing(
    broker: Broker,
) -> None:
    async with (
        party(broker, monitor_user(7)) as wallboard,
        party(broker, broker.pbx(7)) as pbx,
        party(broker, DAEMON) as daemon,
    ):
        await daemon.subscribe(topic(7, "pbx/#"))
        await wallboard.subscribe(topic(7, "cmd/#"), topic(8, "event/#"), topic(7, "event/#"))
        attempts = [
            (topic(7, "pbx/call/arrived"), {"call_id": "w1", "did": "+100"}),
            (topic(7, "pbx/agent/state"), {"extension": "101", "state": "available"}),
            (topic(7, "cmd/ring"), {"call_id": "w1", "extension": "101"}),
            (topic(7, "cmd/route"), {"call_id": "w1", "target": {"type": "hangup"}}),
            (topic(7, "event/call/queued"), {"call_id": "w1"}),
            (topic(7, "error"), {"error": "forged"}),
            # The daemon reads P/+/pbx/#: a PBX pattern must not open one under its name.
            (f"{PREFIX}/{monitor_user(7)}/pbx/call/arrived", {"call_id": "w1", "did": "+1"}),
        ]
        for name, payload in attempts:
            assert await wallboard.publish(name, payload) == NOT_AUTHORIZED, name

        # Neither tenant 7's commands nor tenant 8's events reach it; its own events do.
        await daemon.publish_ok(topic(7, "cmd/ring"), {"call_id": "c1"})
        await daemon.publish_ok(topic(8, "event/call/queued"), {"call_id": "c8"})
        await daemon.publish_ok(topic(7, "event/call/queued"), {"call_id": "mark"})
        assert await wallboard.until(topic(7, "event/call/queued"), lambda p: True) == [
            topic(7, "event/call/queued")
        ]
        # The daemon, subscribed to the PBX topics, got none of the forgeries.
        await pbx.publish_ok(topic(7, "pbx/call/hangup"), {"call_id": "mark"})
        assert await daemon.until(topic(7, "pbx/#"), lambda p: True) == [
            topic(7, "pbx/call/hangup")
        ]


async def test_the_daemon_user_cannot_publish_as_a_pbx(broker: Broker) -> None:
    async with party(broker, DAEMON) as daemon:
        for name in (topic(7, "pbx/call/arrived"), f"{PREFIX}/{DAEMON}/pbx/call/arrived"):
            reason = await daemon.publish(name, {"call_id": "d1", "did": "+100"})
            assert reason == NOT_AUTHORIZED, name


async def test_an_anonymous_client_cannot_connect(broker: Broker) -> None:
    with pytest.raises(aiomqtt.MqttCodeError, match="Not authorized"):
        async with party(broker, None):
            pass


async def test_a_password_is_rotated_through_a_second_user_without_a_disconnect(
    broker: Broker,
) -> None:
    # The procedure of docs/security.md. On a reload (SIGHUP) mosquitto 2.0 checks every
    # connected client against the new password file and disconnects those it no
    # longer lets in, so a password changed in place drops its client at once.
    async with party(broker, DAEMON) as daemon, party(broker, broker.pbx(7)) as pbx:
        await daemon.subscribe(topic(7, "pbx/#"))
        # 1. A second user for the role, with a copy of the role's ACL block.
        await _passwd("-b", broker.passwd, "pbx-7b", "rotated")
        with broker.acl.open("a") as acl:
            acl.write(f"user pbx-7b\ntopic write {topic(7, 'pbx/#')}\n")
        await _reload(broker, lambda: _connects(broker, "pbx-7b", "rotated"))
        # 2. The PBX moves to it; it was never disconnected under the old one.
        await pbx.publish_ok(topic(7, "pbx/call/hangup"), {"call_id": "old user"})
        async with party(broker, "pbx-7b", password="rotated") as moved:
            await moved.publish_ok(topic(7, "pbx/call/hangup"), {"call_id": "new user"})
            # 3. The old user goes: a connection still under it is dropped.
            await _passwd("-D", broker.passwd, broker.pbx(7))
            await _reload(broker, lambda: _refused(broker, broker.pbx(7), PASSWORD))
            with pytest.raises(aiomqtt.MqttError):
                await asyncio.wait_for(pbx.listening, WAIT_S)
            await moved.publish_ok(topic(7, "pbx/call/hangup"), {"call_id": "after"})
        await daemon.until(topic(7, "pbx/#"), lambda p: p["call_id"] == "after")
        # The daemon's connection lived through both reloads.
        assert daemon.payloads(topic(7, "pbx/call/hangup")) == [
            {"call_id": "old user"},
            {"call_id": "new user"},
            {"call_id": "after"},
        ]
        assert not daemon.listening.done()


async def _passwd(*args: str | Path) -> None:
    await asyncio.to_thread(
        subprocess.run, ["mosquitto_passwd", *args], check=True, capture_output=True
    )


async def _connects(broker: Broker, user: str, password: str) -> bool:
    try:
        async with party(broker, user, password=password):
            return True
    except aiomqtt.MqttCodeError:
        return False


async def _refused(broker: Broker, user: str, password: str) -> bool:
    return not await _connects(broker, user, password)


async def _reload(broker: Broker, done: Callable[[], Awaitable[bool]]) -> None:
    """SIGHUP the broker and wait (bounded) until `done` shows the reload took effect."""
    broker.process.send_signal(signal.SIGHUP)

    async def poll() -> None:
        while not await done():  # noqa: ASYNC110 (a reload has no event to await)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT_S)


# --- the daemon inside its own rights ------------------------------------------------


async def _logged(logs: Sequence[Mapping[str, Any]], event: str) -> None:
    """Wait (bounded) until the daemon has logged `event`: a condition, not a timing."""

    async def poll() -> None:
        while not any(entry["event"] == event for entry in logs):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT_S)


@asynccontextmanager
async def daemon_as(broker: Broker, db: Path) -> AsyncIterator[Service]:
    """The real daemon in this loop, connected as the daemon's broker user."""
    settings = load_settings(
        None,
        mqtt={"url": broker.url(DAEMON), "topic_prefix": PREFIX, "client_id": "ringmaster"},
        database={"path": db},
        api={"enabled": False},
    )
    async with running(settings) as service:
        yield service


async def test_the_daemon_works_within_its_own_rights(broker: Broker, tmp_path: Path) -> None:
    db = tmp_path / "rm.sqlite3"
    await provisioned(db, write_config(tmp_path / "c.toml", "ringall", agents=1))
    with structlog.testing.capture_logs() as logs:
        async with party(broker, broker.pbx(1)) as pbx, party(broker, monitor_user(1)) as wallboard:
            await pbx.subscribe(topic(1, "cmd/#"))
            await wallboard.subscribe(
                topic(1, "event/#"), topic(1, "state/#"), topic(1, "error"), f"{PREFIX}/status"
            )
            async with daemon_as(broker, db):
                await wallboard.until(f"{PREFIX}/status", lambda p: p["state"] == "online")
                await pbx.publish_ok(
                    topic(1, "pbx/agent/state"), {"extension": "101", "state": "available"}
                )
                await pbx.publish_ok(topic(1, "pbx/call/arrived"), {"call_id": "c1", "did": "+100"})
                await pbx.until(topic(1, "cmd/ring"), lambda p: p["call_id"] == "c1")
                await wallboard.until(topic(1, "event/call/ringing"), lambda p: True)
                await wallboard.until(topic(1, "state/queue/+"), lambda p: True)
                await pbx.publish_ok(topic(1, "pbx/call/hangup"), b"not json")
                await wallboard.until(
                    topic(1, "error"), lambda p: p["topic"] == topic(1, "pbx/call/hangup")
                )
                # Its sync message came back: the broker's backlog is known to be in.
                await _logged(logs, "backlog.taken_in")
            await wallboard.until(f"{PREFIX}/status", lambda p: p["state"] == "offline")
    refused = [e for e in logs if e["event"] in {"mqtt.publish_refused", "mqtt.subscribe_refused"}]
    assert refused == []
