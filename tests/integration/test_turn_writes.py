"""A turn's packets are on the socket when the turn ends, not at the loop's next writer callback.

paho queues what is published or acknowledged and writes it from the event loop's writer
callback; when more inbound messages wait, the next turn would run first and the ring
wait for it. These tests look at paho's queue right after a turn (or a flush) returns:
nothing else has run on the loop in between.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import MQTTErrorCode

from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.daemon.inbox import Act, Apply, Received
from ringmaster.daemon.mqtt import MqttLink
from ringmaster.daemon.mqtt_connection import paho_client
from ringmaster.daemon.service import Service
from ringmaster.store import Store

from .pbx import daemon_in_process, new_store, pbx_on
from .test_mqtt_link import TIMEOUT_S, unique, until
from .test_mqtt_send import ring, sending_link

pytestmark = pytest.mark.integration


def queued(client: paho.Client) -> list[int]:
    """The packet types paho has queued and not yet written (0x30 PUBLISH, 0x40 PUBACK)."""
    return [packet["command"] & 0xF0 for packet in client._out_packet]


def current_client(service: Service) -> paho.Client:
    link = service._link
    assert link is not None
    connection = link._connection
    assert connection is not None
    return paho_client(connection.client)


async def test_a_turn_that_rang_has_written_its_ring_and_its_puback_when_it_ends(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    # What paho still had queued right after each turn, by the PBX messages it took.
    left: list[tuple[list[str], list[int]]] = []
    async with pbx_on(mosquitto, prefix) as pbx, daemon_in_process(mosquitto, prefix, db) as daemon:
        turn = daemon._turn

        async def watched(
            store: Store, link: MqttLink, batch: list[Received], applies: list[Apply | Act]
        ) -> None:
            await turn(store, link, batch, applies)
            if link.connected.is_set():  # a turn before the connection has nothing to write
                topics = [r.message.topic.rsplit("/pbx/", 1)[-1] for r in batch]
                left.append((topics, queued(current_client(daemon))))

        daemon._turn = watched  # type: ignore[method-assign]
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "101")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("cmd/ring")
    rang = [packets for topics, packets in left if "call/arrived" in topics]
    # Its ring (and the call's events) and the PUBACK of call/arrived were written.
    assert rang == [[]]
    assert all(packets == [] for _, packets in left)


async def test_a_flush_writes_what_paho_queued_and_leaves_paho_its_writer_to_remove(
    mosquitto: MosquittoProcess,
) -> None:
    prefix = unique("flush")
    published: list[int] = []
    async with sending_link(mosquitto.port, prefix) as link:
        link.on_published = published.append
        await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
        assert link._connection is not None
        client = paho_client(link._connection.client)
        # aiomqtt's writer callback calls `client.loop_write()`: count its calls.
        loop_write = client.loop_write
        writer_calls: list[int] = []

        def counted() -> MQTTErrorCode:
            writer_calls.append(len(client._out_packet))
            return loop_write()

        client.loop_write = counted  # type: ignore[method-assign]
        assert not link.send(1, ring(prefix, 1, 1))
        assert queued(client) == [0x30]  # for the loop's writer callback, registered with it
        link.flush()
        assert queued(client) == []
        await until(lambda: published == [1] and not client._registered_write)
        # The writer registered for the PUBLISH found nothing left, and paho removed it:
        # none is left behind to be called on every pass of the loop while nothing is queued.
        assert writer_calls == [0]
        for _ in range(10):
            await asyncio.sleep(0)  # passes of the loop, not a duration
        assert writer_calls == [0]


def test_a_flush_without_a_connection_does_nothing() -> None:
    sending_link(1, unique("flush")).flush()
