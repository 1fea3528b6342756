"""MqttLink.send: stored messages handed to paho at once, confirmed by PUBACK, sent again.

At least once: an overdue PUBACK sends the message again on the same connection, and
a lost connection sends every unconfirmed message again, in seq order, on the next.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import structlog.testing

from ringmaster.contract import OutboxMessage
from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.daemon.mqtt import MqttLink

from .test_mqtt_link import TIMEOUT_S, Proxy, observer, reconnected, unique, until

pytestmark = pytest.mark.integration


@pytest.fixture
async def muting(mosquitto: MosquittoProcess) -> AsyncIterator[Proxy]:
    proxy = Proxy(mosquitto.host, mosquitto.port)
    await proxy.start()
    yield proxy
    await proxy.close()


def sending_link(port: int, prefix: str, *, publish_timeout_s: float = 5.0) -> MqttLink:
    return MqttLink(
        host="127.0.0.1",
        port=port,
        client_id=unique("link"),
        prefix=prefix,
        session_expiry_s=300,
        keepalive_s=5,
        reconnect_min_s=0.02,
        reconnect_max_s=0.2,
        connect_timeout_s=1,
        publish_timeout_s=publish_timeout_s,
        rng=random.Random(1),
    )


def ring(prefix: str, tenant: int, n: int) -> OutboxMessage:
    return OutboxMessage(f"{prefix}/{tenant}/cmd/ring", str(n).encode())


async def test_messages_sent_are_confirmed_once_each_in_order(
    mosquitto: MosquittoProcess,
) -> None:
    prefix = unique("send")
    published: list[int] = []
    async with observer(mosquitto.port) as pbx:
        await pbx.subscribe(f"{prefix}/+/cmd/#")
        async with sending_link(mosquitto.port, prefix) as link:
            link.on_published = published.append
            await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
            for seq in range(1, 101):
                assert not link.send(seq, ring(prefix, seq % 2, seq))
            await until(lambda: len(published) == 100)
            assert sorted(published) == list(range(1, 101))
            heard = [int((await pbx.next()).payload) for _ in range(100)]
    for tenant in (0, 1):
        mine = [n for n in heard if n % 2 == tenant]
        assert mine == sorted(mine)


async def test_an_overdue_puback_sends_the_message_again_and_it_is_confirmed_once(
    mosquitto: MosquittoProcess, muting: Proxy
) -> None:
    prefix = unique("overdue")
    published: list[int] = []
    async with observer(mosquitto.port) as pbx:
        await pbx.subscribe(f"{prefix}/+/cmd/#")
        async with sending_link(muting.port, prefix, publish_timeout_s=0.2) as link:
            link.on_published = published.append
            await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
            generation = link.generation
            with structlog.testing.capture_logs() as logs:
                muting.open.clear()  # the broker's PUBACKs are held back
                link.send(7, ring(prefix, 1, 7))
                first = await pbx.next()
                again = await pbx.next()  # sent again once overdue, on the same connection
                assert first.payload == again.payload == b"7"
                assert published == []
                muting.open.set()
                await until(lambda: published == [7])
            assert link.generation == generation
            assert any(
                e["event"] == "mqtt.publish_failed" and e["error"] == "no PUBACK" for e in logs
            )
            # Both PUBACKs came (the first's too): still reported once.
            link.send(8, ring(prefix, 1, 8))
            await until(lambda: published == [7, 8])


async def test_a_lost_connection_sends_what_was_unconfirmed_again_in_seq_order(
    mosquitto: MosquittoProcess, muting: Proxy
) -> None:
    prefix = unique("lost")
    published: list[int] = []
    async with observer(mosquitto.port) as pbx:
        await pbx.subscribe(f"{prefix}/+/cmd/#")
        async with sending_link(muting.port, prefix) as link:
            link.on_published = published.append
            await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
            muting.open.clear()
            # Handed over out of seq order (tenants take turns), none confirmed.
            for seq in (3, 1, 4, 2):
                link.send(seq, ring(prefix, seq, seq))
            first = [int((await pbx.next()).payload) for _ in range(4)]
            assert sorted(first) == [1, 2, 3, 4]
            muting.accepting = False
            muting.sever()
            muting.open.set()
            await until(lambda: not link.connected.is_set())
            link.send(5, ring(prefix, 5, 5))  # while down: held for the next connection
            muting.accepting = True
            await reconnected(link, 2)
            await until(lambda: sorted(published) == [1, 2, 3, 4, 5])
            again = [int((await pbx.next()).payload) for _ in range(5)]
            assert again == [1, 2, 3, 4, 5]
