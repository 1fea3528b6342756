"""`mqtt.monitoring_qos = 0`: events and snapshots at QoS 0, commands still at QoS 1."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiomqtt
import pytest

from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.settings import load_settings

from .pbx import WAIT_S, listening, new_store, pbx_on, running

pytestmark = pytest.mark.integration


class QosHeard:
    """Each message's topic (after `P/`) and the QoS it was delivered at."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.heard: dict[str, set[int]] = {}

    async def collect(self) -> None:
        """Record every message, until cancelled."""
        async for message in self.client.messages:
            topic = str(message.topic).removeprefix(f"{self.prefix}/")
            self.heard.setdefault(topic, set()).add(message.qos)


@pytest.mark.parametrize("monitoring_qos", [0, 1])
async def test_monitoring_messages_go_at_the_qos_set_and_still_leave_the_outbox(
    mosquitto: MosquittoProcess, tmp_path: Path, monitoring_qos: int
) -> None:
    prefix, db = await new_store(tmp_path, "ringall")
    settings = load_settings(
        None,
        mqtt={
            "url": mosquitto.url,
            "topic_prefix": prefix,
            "client_id": f"ringmaster-{prefix}",
            "monitoring_qos": monitoring_qos,
        },
        database={"path": db},
        api={"enabled": False},
    )

    def left_in_outbox() -> int:
        with sqlite3.connect(db) as reader:
            ((count,),) = reader.execute("SELECT count(*) FROM outbox").fetchall()
        return int(count)

    async def drained() -> None:
        while await asyncio.to_thread(left_in_outbox):  # noqa: ASYNC110 (a file, no event)
            await asyncio.sleep(0.01)

    async with (
        listening(mosquitto, lambda c: QosHeard(c, prefix), [f"{prefix}/#"]) as monitor,
        pbx_on(mosquitto, prefix) as pbx,
        running(settings),
    ):
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "101")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("cmd/ring")
        await pbx.expect("state/queue/1")
        # The watermark counts QoS 0 rows as delivered once handed to the connection.
        await asyncio.wait_for(drained(), WAIT_S)
    # A subscriber at QoS 1 gets a message at the lower of the two QoS.
    assert monitor.heard["1/event/agent/state"] == {monitoring_qos}
    assert monitor.heard["1/state/queue/1"] == {monitoring_qos}
    assert monitor.heard["1/cmd/ring"] == {1}
    assert monitor.heard["status"] == {1}
