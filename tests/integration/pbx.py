"""A pretend PBX on a real broker, and a daemon to talk to (in-process or as a process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiomqtt

from ringmaster.api.provisioning import provision
from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.daemon.service import Service
from ringmaster.settings import Settings, load_settings
from ringmaster.store import Store

WAIT_S = 10.0  # an upper bound on any wait, never a measured duration


async def ringmaster_command(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``ringmaster ARGS`` as a process of its own, as an operator would in a terminal.

    Returns:
        Its exit status, standard output and standard error.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ringmaster",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(WAIT_S):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@dataclass(frozen=True)
class Seen:
    topic: str  # without the prefix and tenant, e.g. "cmd/ring"
    payload: dict[str, Any]
    retained: bool


class Pbx:
    """Publishes what a PBX would, and records everything ringmaster publishes."""

    def __init__(self, client: aiomqtt.Client, prefix: str, tenant: int = 1) -> None:
        self.client = client
        self.prefix = prefix
        self.tenant = tenant
        self.seen: list[Seen] = []
        self._changed = asyncio.Condition()

    async def collect(self) -> None:
        async for message in self.client.messages:
            topic = str(message.topic)
            assert isinstance(message.payload, bytes)
            payload = json.loads(message.payload) if message.payload else {}
            short = topic.removeprefix(f"{self.prefix}/{self.tenant}/").removeprefix(
                f"{self.prefix}/"
            )
            async with self._changed:
                self.seen.append(Seen(short, payload, bool(message.retain)))
                self._changed.notify_all()

    async def send(self, kind: str, **payload: Any) -> None:
        """Publish `P/T/pbx/<kind>` at QoS 1."""
        topic = f"{self.prefix}/{self.tenant}/pbx/{kind}"
        await self.client.publish(topic, json.dumps(payload), qos=1)

    async def send_raw(self, kind: str, payload: bytes) -> None:
        await self.client.publish(f"{self.prefix}/{self.tenant}/pbx/{kind}", payload, qos=1)

    async def expect(
        self,
        topic: str,
        where: Callable[[dict[str, Any]], bool] = lambda p: True,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        """Wait (bounded) for a message on `topic` matching `where`, seen at index >= after."""
        async with asyncio.timeout(WAIT_S), self._changed:
            while True:
                for item in self.seen[after:]:
                    if item.topic == topic and where(item.payload):
                        return item.payload
                await self._changed.wait()

    def count(self, topic: str, where: Callable[[dict[str, Any]], bool] = lambda p: True) -> int:
        return sum(1 for s in self.seen if s.topic == topic and where(s.payload))

    def mark(self) -> int:
        return len(self.seen)


class Listener(Protocol):
    """Records what it hears on its client, for as long as `collect` runs."""

    def collect(self) -> Coroutine[Any, Any, None]:
        """Record every message, until cancelled."""
        ...


ListenerT = TypeVar("ListenerT", bound=Listener)


@asynccontextmanager
async def listening(
    broker: MosquittoProcess,
    listener: Callable[[aiomqtt.Client], ListenerT],
    topics: Iterable[str],
    **client_options: Any,
) -> AsyncIterator[ListenerT]:
    """A client of the broker subscribed to `topics` (QoS 1), its `listener` recording."""
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"pbx-{uuid.uuid4().hex[:8]}", **client_options
    ) as client:
        heard = listener(client)
        for topic in topics:
            await client.subscribe(topic, qos=1)
        task = asyncio.create_task(heard.collect())
        try:
            yield heard
        finally:
            task.cancel()


def pbx_on(broker: MosquittoProcess, prefix: str) -> AbstractAsyncContextManager[Pbx]:
    """A PBX on the broker, under `prefix`."""
    return listening(
        broker,
        lambda client: Pbx(client, prefix),
        (
            f"{prefix}/{pattern}"
            for pattern in ("+/cmd/#", "+/event/#", "+/error", "+/state/#", "status", "error")
        ),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


DEMO = """
[[tenant]]
id = 1
name = "Test"

{extensions}

[[queue]]
tenant_id = 1
queue_number = "600"
name = "Q"
strategy = "{strategy}"
timeout = {timeout}
retry = {retry}
agents = [{agents}]

[[did_route]]
tenant_id = 1
did = "+100"
queue = "600"
"""


def write_config(
    path: Path, strategy: str, *, agents: int = 2, timeout: int = 15, retry: int = 5
) -> Path:
    numbers = [str(101 + i) for i in range(agents)]
    extensions = "\n".join(
        f'[[extension]]\ntenant_id = 1\nnumber = "{n}"\nname = "Agent {n}"\n' for n in numbers
    )
    path.write_text(
        DEMO.format(
            extensions=extensions,
            strategy=strategy,
            timeout=timeout,
            retry=retry,
            agents=", ".join(f'"{n}"' for n in numbers),
        )
    )
    return path


async def provisioned(db: Path, config: Path) -> None:
    async with await Store.open(db) as store:
        await provision(config, store)


def new_prefix() -> str:
    """A topic prefix of a test's own: tests share the broker."""
    return f"rm{uuid.uuid4().hex[:10]}"


async def new_store(tmp_path: Path, strategy: str, **queue: int) -> tuple[str, Path]:
    """A prefix of its own, and a database provisioned with `write_config(strategy, **queue)`."""
    prefix, db = new_prefix(), tmp_path / "rm.sqlite3"
    await provisioned(db, write_config(tmp_path / "c.toml", strategy, **queue))
    return prefix, db


@asynccontextmanager
async def pbx_and_daemon(
    broker: MosquittoProcess, tmp_path: Path, strategy: str, **queue: int
) -> AsyncIterator[Pbx]:
    """A PBX, and the daemon in this process on a new store (see `new_store`)."""
    prefix, db = await new_store(tmp_path, strategy, **queue)
    async with pbx_on(broker, prefix) as pbx, daemon_in_process(broker, prefix, db):
        yield pbx


@asynccontextmanager
async def pbx_and_daemon_process(
    broker: MosquittoProcess, tmp_path: Path, strategy: str, **queue: int
) -> AsyncIterator[tuple[Pbx, DaemonProcess]]:
    """A PBX, and the daemon as a child process on a new store, started and online.

    The daemon logs to ``daemon.log`` in `tmp_path`; it is killed on the way out.
    """
    prefix, db = await new_store(tmp_path, strategy, **queue)
    daemon = DaemonProcess(daemon_env(broker, prefix, db), tmp_path / "daemon.log")
    async with pbx_on(broker, prefix) as pbx, daemon:
        daemon.start()
        await pbx.expect("status", lambda p: p["state"] == "online" and "at" in p)
        yield pbx, daemon


def daemon_env(broker: MosquittoProcess, prefix: str, db: Path) -> dict[str, str]:
    return {
        "RINGMASTER_MQTT__URL": broker.url,
        "RINGMASTER_MQTT__TOPIC_PREFIX": prefix,
        "RINGMASTER_MQTT__CLIENT_ID": f"ringmaster-{prefix}",
        "RINGMASTER_DATABASE__PATH": str(db),
        "RINGMASTER_LOG__FORMAT": "json",
        "RINGMASTER_API__ENABLED": "false",
    }


@asynccontextmanager
async def daemon_in_process(
    broker: MosquittoProcess, prefix: str, db: Path, *, api_port: int | None = None
) -> AsyncIterator[Service]:
    """The daemon in this event loop; with `api_port`, its admin API listens there."""
    api = {"enabled": False} if api_port is None else {"enabled": True, "port": api_port}
    settings = load_settings(
        None,
        mqtt={"url": broker.url, "topic_prefix": prefix, "client_id": f"ringmaster-{prefix}"},
        database={"path": db},
        api=api,
    )
    async with running(settings) as service:
        yield service


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Service]:
    """A daemon with these settings in this event loop, ready (loaded and subscribed)."""
    service = Service(settings)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(WAIT_S):
            ready = asyncio.create_task(service.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # raise what stopped it
        yield service
    finally:
        service.stop()
        async with asyncio.timeout(WAIT_S):
            await task


class DaemonProcess:
    """`python -m ringmaster run` as a child process, to be killed with SIGKILL."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = {**os.environ, **env}
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ringmaster", "run"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(WAIT_S)

    async def __aenter__(self) -> DaemonProcess:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Whatever happened in the test, leave no daemon behind.
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(WAIT_S)
