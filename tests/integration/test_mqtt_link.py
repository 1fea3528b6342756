"""MqttLink against a real mosquitto: sessions, manual acks, last will, reconnects.

Connections are cut with a small TCP proxy between the link and the broker, so that
the broker sees an unclean end (no DISCONNECT) exactly as after a network failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import structlog.testing

from ringmaster.contract import OutboxMessage, will_payload
from ringmaster.daemon.broker import MosquittoProcess, free_port, start_mosquitto
from ringmaster.daemon.mqtt import InboundMessage, LinkClosedError, MqttLink, backoff_delay

pytestmark = pytest.mark.integration

TIMEOUT_S = 10.0
_ids = itertools.count(1)


def unique(name: str) -> str:
    # The session broker is shared: own topics and client ids per test.
    return f"{name}{next(_ids)}-{random.randrange(1 << 30)}"


class Proxy:
    """A TCP forwarder whose connections the test can cut (both sides reset)."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepting = True
        self.port = 0
        #: Cleared, what the broker sends is held back (never dropped: the stream stays
        #: whole) until it is set again: PUBACKs that come late.
        self.open = asyncio.Event()
        self.open.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers += [writer, up_writer]
        for src, dst, gate in ((reader, up_writer, None), (up_reader, writer, self.open)):
            task = asyncio.ensure_future(self._pipe(src, dst, gate))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                if gate is not None:
                    await gate.wait()
                dst.write(data)
                await dst.drain()
        dst.transport.abort()

    def sever(self) -> None:
        """Reset every open connection, as a network failure would."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.sever()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Observer:
    """A plain MQTT client standing in for the PBX and for monitoring."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

    async def subscribe(self, topic: str) -> None:
        await self.client.subscribe(topic, qos=1)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self.client.publish(topic, json.dumps(payload).encode(), qos=1)

    async def next(self, topic: str | None = None) -> aiomqtt.Message:
        async def wait() -> aiomqtt.Message:
            while True:
                message = await self.received.get()
                if topic is None or message.topic.value == topic:
                    return message

        return await asyncio.wait_for(wait(), TIMEOUT_S)


@contextlib.asynccontextmanager
async def observer(port: int) -> AsyncIterator[Observer]:
    client = aiomqtt.Client(
        "127.0.0.1", port, identifier=unique("obs"), protocol=aiomqtt.ProtocolVersion.V5
    )
    async with client:
        obs = Observer(client)

        async def pump() -> None:
            async for message in client.messages:
                obs.received.put_nowait(message)

        task = asyncio.ensure_future(pump())
        try:
            yield obs
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


def make_link(port: int, client_id: str, prefix: str) -> MqttLink:
    return MqttLink(
        host="127.0.0.1",
        port=port,
        client_id=client_id,
        prefix=prefix,
        session_expiry_s=300,
        keepalive_s=5,
        reconnect_min_s=0.02,
        reconnect_max_s=0.2,
        # aiomqtt notices a connection reset before CONNACK only by this timeout.
        connect_timeout_s=1,
        publish_timeout_s=5,
        rng=random.Random(1),
    )


async def next_message(link: MqttLink) -> InboundMessage:
    async def first() -> InboundMessage:
        async for message in link.messages():
            return message
        raise AssertionError("link closed")

    return await asyncio.wait_for(first(), TIMEOUT_S)


async def until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, until `condition` holds (a condition, not a timing assertion)."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 (polls state that has no event)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT_S)


async def reconnected(link: MqttLink, generation: int) -> None:
    await until(lambda: link.generation >= generation and link.connected.is_set())


@pytest.fixture
async def proxy(mosquitto: MosquittoProcess) -> AsyncIterator[Proxy]:
    proxy = Proxy(mosquitto.host, mosquitto.port)
    await proxy.start()
    yield proxy
    await proxy.close()


# --- tests --------------------------------------------------------------------------


async def test_round_trip(mosquitto: MosquittoProcess) -> None:
    prefix = unique("rt")
    async with observer(mosquitto.port) as pbx:
        await pbx.subscribe(f"{prefix}/+/cmd/#")
        await pbx.subscribe(f"{prefix}/status")
        async with make_link(mosquitto.port, unique("link"), prefix) as link:
            await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
            status = await pbx.next(f"{prefix}/status")
            assert json.loads(status.payload)["state"] == "online"

            await pbx.publish(f"{prefix}/7/pbx/call/hangup", {"call_id": "c-1"})
            inbound = await next_message(link)
            assert inbound.topic == f"{prefix}/7/pbx/call/hangup"
            assert json.loads(inbound.payload) == {"call_id": "c-1"}
            assert (inbound.qos, inbound.generation) == (1, 1)
            assert link.ack(inbound)

            await link.publish(OutboxMessage(f"{prefix}/7/cmd/ring", b'{"call_id":"c-1"}'))
            command = await pbx.next(f"{prefix}/7/cmd/ring")
            assert command.payload == b'{"call_id":"c-1"}'
            assert command.qos == 1

        # A clean close publishes offline; the will is not sent.
        status = await pbx.next(f"{prefix}/status")
        assert json.loads(status.payload)["state"] == "offline"
        assert "at" in json.loads(status.payload)
    with pytest.raises(LinkClosedError):
        await link.publish(OutboxMessage(f"{prefix}/7/cmd/ring", b"{}"))


async def test_unacked_message_is_redelivered_after_reconnect_and_acked_one_is_not(
    mosquitto: MosquittoProcess, proxy: Proxy
) -> None:
    prefix = unique("ack")
    async with (
        observer(mosquitto.port) as pbx,
        make_link(proxy.port, unique("link"), prefix) as link,
    ):
        await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
        await pbx.publish(f"{prefix}/1/pbx/call/hangup", {"call_id": "c-1"})
        first = await next_message(link)
        assert first.generation == 1  # received, not acknowledged

        proxy.sever()
        again = await next_message(link)
        assert (again.topic, again.payload) == (first.topic, first.payload)
        assert again.generation == 2
        # The first delivery's mid belonged to the dead connection.
        assert not link.ack(first)
        assert link.ack(again)

        # Acknowledged now: after another reconnect the broker sends it no more. The
        # PUBACK is only queued by ack(); a publish confirmed after it on the same
        # (ordered) connection proves the broker has processed it.
        await link.publish(OutboxMessage(f"{prefix}/1/cmd/ring", b"{}"))
        proxy.sever()
        await reconnected(link, 3)
        await pbx.publish(f"{prefix}/1/pbx/call/hangup", {"call_id": "c-2"})
        following = await next_message(link)
        assert json.loads(following.payload) == {"call_id": "c-2"}
        assert following.generation == 3
        assert link.ack(following)


async def test_session_kept_across_link_restart(mosquitto: MosquittoProcess) -> None:
    prefix = unique("sess")
    client_id = unique("link")
    async with make_link(mosquitto.port, client_id, prefix) as link:
        await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
    async with observer(mosquitto.port) as pbx:
        # Published while the daemon is down: the broker queues it in the session.
        await pbx.publish(f"{prefix}/3/pbx/agent/state", {"extension": "101", "state": "paused"})
    async with make_link(mosquitto.port, client_id, prefix) as link:
        inbound = await next_message(link)
        assert inbound.topic == f"{prefix}/3/pbx/agent/state"
        assert link.ack(inbound)


async def test_last_will_on_unclean_disconnect(mosquitto: MosquittoProcess, proxy: Proxy) -> None:
    prefix = unique("will")
    async with observer(mosquitto.port) as monitor:
        await monitor.subscribe(f"{prefix}/status")
        async with make_link(proxy.port, unique("link"), prefix) as link:
            await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)
            online = await monitor.next()
            assert json.loads(online.payload)["state"] == "online"

            proxy.accepting = False
            proxy.sever()
            will = await monitor.next()
            assert will.payload == will_payload()
            await until(lambda: not link.connected.is_set())

            # While the link is down a publication waits, then goes out once it is back.
            await monitor.subscribe(f"{prefix}/9/cmd/#")
            publishing = asyncio.ensure_future(
                link.publish(OutboxMessage(f"{prefix}/9/cmd/cancel_ring", b"{}"))
            )
            proxy.accepting = True
            await asyncio.wait_for(publishing, TIMEOUT_S)
            assert link.connected.is_set()
            seen = [await monitor.next(), await monitor.next()]
            assert {m.topic.value for m in seen} == {
                f"{prefix}/status",
                f"{prefix}/9/cmd/cancel_ring",
            }


@pytest.mark.parametrize("persistence", ["kept", "lost"])
async def test_reconnects_and_resubscribes_after_broker_restart(
    tmp_path: Path, persistence: str
) -> None:
    broker = await asyncio.to_thread(start_mosquitto, tmp_path / "data")
    try:
        prefix = unique("restart")
        async with make_link(broker.port, unique("link"), prefix) as link:
            await asyncio.wait_for(link.wait_connected(), TIMEOUT_S)

            await asyncio.to_thread(broker.stop)
            if persistence == "lost":
                # A broker without our session: only a fresh SUBSCRIBE brings messages.
                for db in (tmp_path / "data").glob("*.db"):
                    db.unlink()
            await until(lambda: not link.connected.is_set())
            await asyncio.to_thread(broker.start)
            await reconnected(link, 2)

            async with observer(broker.port) as pbx:
                await pbx.subscribe(f"{prefix}/status")
                status = await pbx.next()  # retained, republished on connect
                assert json.loads(status.payload)["state"] == "online"
                assert status.retain
                await pbx.publish(f"{prefix}/5/pbx/call/hangup", {"call_id": "after"})
                inbound = await next_message(link)
                assert json.loads(inbound.payload) == {"call_id": "after"}
                assert link.ack(inbound)
    finally:
        await asyncio.to_thread(broker.close)


async def test_connect_failures_are_retried_not_raised() -> None:
    with structlog.testing.capture_logs() as logs:
        # Nothing listens there: every attempt is refused at once.
        async with make_link(free_port(), unique("link"), unique("down")) as link:
            await until(lambda: sum(e["event"] == "mqtt.connect_failed" for e in logs) >= 3)
            assert not link.connected.is_set()
    attempts = [e["attempt"] for e in logs if e["event"] == "mqtt.reconnect_scheduled"]
    assert attempts[:3] == [1, 2, 3]


def test_backoff_is_capped_with_full_jitter() -> None:
    rng = random.Random(3)
    delays = [backoff_delay(attempt, 0.5, 30.0, rng) for attempt in range(20)]
    assert delays[0] == 0.5
    assert all(0.5 <= d <= min(30.0, 0.5 * 2**i) for i, d in enumerate(delays))
    assert max(delays[10:]) <= 30.0
    assert len(set(delays[6:])) > 1


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 5, 8, 13])
async def test_a_close_cancelled_mid_connection_leaves_nothing_for_asyncio_to_report(
    mosquitto: MosquittoProcess, steps: int
) -> None:
    # A shard stopped (cancelled) while its link was still connecting, whose close is
    # then cancelled too (the node leaving, a new start of the shard): the link must end
    # cleanly, not be torn down mid-connection with errors only asyncio's handler sees.
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    link = make_link(mosquitto.port, unique("torn"), unique("torn"))
    link.start()
    for _ in range(steps):
        await asyncio.sleep(0)  # somewhere in the connection's handshake
    closing = asyncio.create_task(link.close())
    await asyncio.sleep(0)
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    await link.close()  # the owner's last word: returns once the link has ended
    gc.collect()
    await asyncio.sleep(0)
    assert [context.get("message") for context in reported] == []


class _LostConnection:
    """A connection whose stream ends at once with an error (a takeover, a reset)."""

    class _Client:
        @property
        def messages(self) -> AsyncIterator[None]:
            async def lost() -> AsyncIterator[None]:
                for _ in ():  # an async generator that ends at once, with the error
                    yield
                raise aiomqtt.MqttError("Disconnected during message iteration")

            return lost()

    client = _Client()


async def test_a_connection_lost_as_the_link_closes_is_lost_not_left_to_asyncio() -> None:
    # Another node took the shard's session over (the broker drops this connection) just
    # as this one closes it: both ends come in the same turn of the loop.
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    link = make_link(1, unique("lost"), unique("lost"))
    link._closing.set()
    reason = await link._serve(_LostConnection())  # type: ignore[arg-type]
    # Lost: no "offline" is published on it (the write would go to a closed socket).
    assert reason is not None
    gc.collect()
    await asyncio.sleep(0)
    assert [context.get("message") for context in reported] == []
