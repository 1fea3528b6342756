"""When `MqttLink.send` tries again: the one timer per connection is due at the earliest."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import aiomqtt
import paho.mqtt.client as paho
import pytest

from ringmaster.contract import OutboxMessage
from ringmaster.daemon.mqtt import MqttLink
from ringmaster.daemon.mqtt_connection import Connection

TIMEOUT_S = 10.0
RETRY_S = 0.5
RING = OutboxMessage("rm/1/cmd/ring", b"{}")


class FakePaho:
    """Takes every publish (or refuses, while `failing`), numbering them 1, 2, ..."""

    def __init__(self) -> None:
        self.failing = False
        self.mids = 0

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> Any:
        if self.failing:
            return SimpleNamespace(rc=paho.MQTT_ERR_QUEUE_SIZE, mid=0)
        self.mids += 1
        return SimpleNamespace(rc=paho.MQTT_ERR_SUCCESS, mid=self.mids)


def connected_link() -> tuple[MqttLink, Connection, FakePaho]:
    link = MqttLink(
        host="127.0.0.1",
        client_id="t",
        prefix="rm",
        publish_timeout_s=TIMEOUT_S,
        reconnect_min_s=RETRY_S,
    )
    fake = FakePaho()
    connection = Connection(cast("aiomqtt.Client", SimpleNamespace(_client=fake)), 1)
    link._connection = connection
    link.connected.set()
    return link, connection, fake


def armed_at(connection: Connection) -> float:
    assert connection.sweep is not None
    return connection.sweep.when()


async def test_a_message_sent_again_does_not_put_off_one_due_sooner() -> None:
    link, connection, _ = connected_link()
    link.send(1, RING)
    link.send(2, RING)
    now = asyncio.get_running_loop().time()
    connection.sent[1] = (1, now - 1.0)  # overdue
    connection.sent[2] = (2, now + 1.0)  # due in a second
    link._sweep(connection)  # sends 1 again, due in TIMEOUT_S
    assert armed_at(connection) == pytest.approx(now + 1.0, abs=0.1)
    if connection.sweep is not None:
        connection.sweep.cancel()


async def test_a_refused_publish_is_tried_again_soon_though_a_later_one_is_armed() -> None:
    link, connection, fake = connected_link()
    link.send(1, RING)  # armed for its PUBACK, TIMEOUT_S from now
    fake.failing = True
    link.send(2, RING)
    now = asyncio.get_running_loop().time()
    assert armed_at(connection) == pytest.approx(now + RETRY_S, abs=0.1)
    if connection.sweep is not None:
        connection.sweep.cancel()
