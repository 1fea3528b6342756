"""Poison messages through a real mosquitto and the real daemon process.

No inbound message stops the daemon: each one it cannot take is answered on
`P/T/error` (or `P/error`) and acknowledged, so a restart does not see it again.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from ringmaster import contract
from ringmaster.contract import OutboxMessage
from ringmaster.daemon import service as service_module
from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.engine.commands import Command
from ringmaster.engine.core import Engine
from ringmaster.engine.events import Event, PbxEvent

from .pbx import (
    WAIT_S,
    DaemonProcess,
    daemon_env,
    daemon_in_process,
    listening,
    new_store,
)

pytestmark = pytest.mark.integration

SURROGATE = "fz\udfffp2"

#: A valid payload per inbound topic: each poison below spoils one thing in one of them.
VALID: dict[str, dict[str, Any]] = {
    "call/arrived": {"call_id": "p1", "did": "+100", "caller_id": "555", "caller_name": "Ada"},
    "call/answered": {"call_id": "p1", "extension": "101"},
    "call/ring_failed": {"call_id": "p1", "extension": "101", "reason": "busy"},
    "call/hangup": {"call_id": "p1", "cause": "normal"},
    "call/callback_requested": {"call_id": "p1", "number": "+4930"},
    "agent/state": {"extension": "101", "state": "paused", "reason": "lunch"},
    "extension/state": {"extension": "101", "state": "idle"},
}


def dumps(value: Any) -> bytes:
    # ensure_ascii: a lone surrogate becomes the JSON escape \udfff, valid UTF-8 ASCII bytes
    # on the wire, as a PBX's JSON library would write it.
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def poisons() -> list[tuple[str, bytes]]:
    """(topic after `P/`, payload): every one must get exactly one error."""
    cases: list[tuple[str, bytes]] = []
    for kind, valid in VALID.items():
        for name in valid:
            cases.append((f"1/pbx/{kind}", dumps({**valid, name: SURROGATE})))
        cases.append((f"1/pbx/{kind}", dumps({**valid, "extra": {"deep": [SURROGATE]}})))
        cases.append((f"1/pbx/{kind}", dumps({**valid, "\ud800": 1})))
    cases += [
        ("1/pbx/call/arrived", dumps({**VALID["call/arrived"], "skills": {SURROGATE: 5}})),
        # NUL and other control characters in identifiers
        ("1/pbx/call/arrived", dumps({"call_id": "a\x00b", "did": "+100"})),
        ("1/pbx/call/hangup", dumps({"call_id": "a\nb"})),
        ("1/pbx/agent/state", dumps({"extension": "10\x071", "state": "available"})),
        # sizes
        ("1/pbx/call/hangup", dumps({"call_id": "x" * 60_000})),
        ("1/pbx/call/hangup", dumps({"call_id": "c", "cause": "x" * 70_000})),
        ("1/pbx/call/hangup", b"[" * 8_000_000),
        ("1/pbx/call/arrived", b"[" * 20_000 + b"]" * 20_000),
        ("1/pbx/call/arrived", b'{"call_id": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
        (
            "1/pbx/call/arrived",
            b'{"call_id": "c", "did": "+1", "caller_name": ' + b"[" * 300 + b"]" * 300 + b"}",
        ),
        # numbers JSON cannot carry, or the store cannot
        ("1/pbx/call/arrived", b'{"call_id": "c", "did": "+100", "priority": NaN}'),
        ("1/pbx/call/arrived", b'{"call_id": "c", "did": "+100", "priority": -Infinity}'),
        ("1/pbx/call/arrived", b'{"call_id": "c", "did": "+100", "priority": 1e400}'),
        ("1/pbx/call/arrived", b'{"call_id": "c", "did": "+100", "priority": 1' + b"0" * 40 + b"}"),
        (
            "1/pbx/call/arrived",
            b'{"call_id": "c", "did": "+100", "priority": 1' + b"0" * 5000 + b"}",
        ),
        ("1/pbx/call/arrived", dumps({"call_id": "c", "did": "+100", "skills": {"a": 10**30}})),
        # duplicate keys: which one would count?
        ("1/pbx/call/arrived", b'{"call_id": "c1", "call_id": "c2", "did": "+100"}'),
        # wrong types and shapes
        ("1/pbx/call/arrived", dumps({"call_id": 5, "did": "+100"})),
        ("1/pbx/call/arrived", dumps({"call_id": "c", "did": None})),
        ("1/pbx/call/arrived", dumps({"call_id": "c", "did": "+100", "priority": "1"})),
        ("1/pbx/call/arrived", dumps({"call_id": "c", "did": "+100", "skills": ["a"]})),
        ("1/pbx/agent/state", dumps({"extension": ["101"], "state": {"a": 1}})),
        ("1/pbx/call/hangup", b'"c1"'),
        ("1/pbx/call/hangup", b"[]"),
        ("1/pbx/call/hangup", b"null"),
        ("1/pbx/call/hangup", b""),
        ("1/pbx/call/hangup", b"{not json"),
        # not UTF-8
        ("1/pbx/call/hangup", b'{"call_id": "\xff\xfe"}'),
        ("1/pbx/call/hangup", b'{"call_id": "\xed\xa0\x80"}'),
        ("1/pbx/call/hangup", b"\x00\x01\x02"),
        # bad tenant segments (answered on P/error)
        ("0/pbx/call/hangup", dumps({"call_id": "c"})),
        ("01/pbx/call/hangup", dumps({"call_id": "c"})),
        ("-1/pbx/call/hangup", dumps({"call_id": "c"})),
        ("1.0/pbx/call/hangup", dumps({"call_id": "c"})),
        ("\u0661/pbx/call/hangup", dumps({"call_id": "c"})),
        (" 1/pbx/call/hangup", dumps({"call_id": "c"})),
        ("/pbx/call/hangup", dumps({"call_id": "c"})),
        ("1" * 30 + "/pbx/call/hangup", dumps({"call_id": "c"})),
        (f"{SURROGATE.encode('utf-8', 'backslashreplace').decode()}/pbx/call/hangup", b"{}"),
        # topics with odd characters
        ("1/pbx/call/hang up", dumps({"call_id": "c"})),
        ("1/pbx/call/hangup/more", dumps({"call_id": "c"})),
        ("1/pbx/\u00fcn\u00efc\u00f8d\u00e9/\u2713/\U0001f4de", dumps({"call_id": "c"})),
        ("1/pbx/", dumps({"call_id": "c"})),
        ("1/pbx/call/" + "x" * 5_000, dumps({"call_id": "c"})),
        # valid, but about a tenant that does not exist: the engine answers
        ("2/pbx/call/hangup", dumps({"call_id": "c"})),
    ]
    return cases


def strict_json(payload: bytes) -> Any:
    """The payload as JSON, refusing what a strict parser (RFC 8259, UTF-8) would refuse."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    value = json.loads(payload.decode("utf-8"), parse_constant=no_constant)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += list(item.keys()) + list(item.values())
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            item.encode("utf-8")  # no lone surrogates escaped as \udXXX
    return value


@dataclass
class Wire:
    """Everything published under the prefix, raw."""

    client: aiomqtt.Client
    prefix: str
    seen: list[tuple[str, bytes]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def collect(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            async with self.changed:
                self.seen.append((str(message.topic), message.payload))
                self.changed.notify_all()

    async def publish(self, topic: str, payload: bytes) -> None:
        await self.client.publish(f"{self.prefix}/{topic}", payload, qos=1)

    async def expect(self, topic: str, after: int, contains: bytes = b"") -> tuple[str, bytes]:
        """The first message on `P/<topic>` seen at index >= after (bounded wait)."""
        async with asyncio.timeout(WAIT_S), self.changed:
            while True:
                for seen in self.seen[after:]:
                    if seen[0] == f"{self.prefix}/{topic}" and contains in seen[1]:
                        return seen
                await self.changed.wait()

    async def expect_error(self, after: int) -> dict[str, Any]:
        """The first error (on `P/T/error` or `P/error`) seen at index >= after."""
        async with asyncio.timeout(WAIT_S), self.changed:
            while True:
                for topic, payload in self.seen[after:]:
                    if topic.endswith("/error"):
                        error: dict[str, Any] = strict_json(payload)
                        return error
                await self.changed.wait()

    def errors(self) -> list[tuple[str, dict[str, Any]]]:
        return [(t, strict_json(p)) for t, p in self.seen if t.endswith("/error")]

    def mark(self) -> int:
        return len(self.seen)


def wire_on(broker: MosquittoProcess, prefix: str) -> AbstractAsyncContextManager[Wire]:
    """Everything the broker carries under `prefix`, raw."""
    return listening(broker, lambda client: Wire(client, prefix), [f"{prefix}/#"])


async def test_poison_messages_are_answered_acknowledged_and_never_stop_the_daemon(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall")
    log = tmp_path / "daemon.log"
    daemon = DaemonProcess(daemon_env(mosquitto, prefix, db), log)
    cases = poisons()
    async with wire_on(mosquitto, prefix) as wire, daemon:
        daemon.start()
        await wire.expect("status", 0, b'"online"')
        assert daemon.process is not None
        for topic, payload in cases:
            mark = wire.mark()
            await wire.publish(topic, payload)
            try:
                error = await wire.expect_error(mark)
            except TimeoutError:
                pytest.fail(
                    f"no error for {topic!r} {payload[:80]!r}; daemon exit code "
                    f"{daemon.process.poll()}; log ends:\n{log.read_text()[-3000:]}"
                )
            full = f"{prefix}/{topic}"
            assert error["topic"] == (full if len(full) <= 1024 else full[:1024] + "...")
            assert daemon.process.poll() is None, topic
        # Odd text the daemon takes: control characters in display text are blanked.
        mark = wire.mark()
        await wire.publish(
            "1/pbx/call/arrived",
            dumps({"call_id": "odd", "did": "+100", "caller_id": "5\x00", "caller_name": "A\nB"}),
        )
        _, queued = await wire.expect("1/event/call/queued", mark)
        assert strict_json(queued)["caller_id"] == "5 "
        await wire.publish("1/pbx/call/hangup", dumps({"call_id": "odd"}))
        answered = len(wire.errors())
        assert answered == len(cases)

        # Everything was acknowledged: a restarted daemon is not handed any of it again.
        assert daemon.terminate() == 0
        mark = wire.mark()
        daemon.start()
        await wire.expect("status", mark, b'"online"')
        await wire.publish("1/pbx/call/hangup", dumps({"call_id": SURROGATE}))
        last = await wire.expect_error(mark)
        assert last["error"].startswith("call_id: ")
        assert len(wire.errors()) == answered + 1

        # And calls are still served.
        mark = wire.mark()
        await wire.publish("1/pbx/agent/state", dumps({"extension": "101", "state": "available"}))
        await wire.publish("1/pbx/call/arrived", dumps({"call_id": "ok", "did": "+100"}))
        _, ring = await wire.expect("1/cmd/ring", mark)
        assert strict_json(ring)["call_id"] == "ok"
        assert daemon.terminate() == 0


BOOM = {"extension": "102", "state": "paused", "reason": "boom"}


@pytest.mark.parametrize("stage", ["parse", "handle", "render"])
async def test_a_failure_inside_the_daemon_costs_one_message_only(
    mosquitto: MosquittoProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # A bug, not bad input: one message's parsing, handling or rendering raises.
    def is_boom(value: object) -> bool:
        return bool(getattr(value, "reason", None) == "boom")

    if stage == "parse":
        real_parse = contract.parse_inbound

        def parse(prefix: str, topic: str, payload: bytes) -> PbxEvent:
            if b"boom" in payload:
                raise RuntimeError("a bug in parsing")
            return real_parse(prefix, topic, payload)

        monkeypatch.setattr(service_module, "parse_inbound", parse)
    elif stage == "handle":
        real_handle = Engine.handle

        def handle(self: Engine, event: Event, now: float) -> list[Command]:
            if is_boom(event):
                raise RuntimeError("a bug in the engine")
            return real_handle(self, event, now)

        monkeypatch.setattr(Engine, "handle", handle)
    else:
        real_render = contract.render

        def render(prefix: str, command: Command, *, now: float | None = None) -> OutboxMessage:
            if is_boom(command):
                raise RuntimeError("a bug in rendering")
            return real_render(prefix, command, now=now)

        monkeypatch.setattr(service_module, "render", render)

    prefix, db = await new_store(tmp_path, "ringall")

    async with wire_on(mosquitto, prefix) as wire:
        async with daemon_in_process(mosquitto, prefix, db):
            await wire.publish(
                "1/pbx/agent/state", dumps({"extension": "101", "state": "available"})
            )
            await wire.expect("1/event/agent/state", 0)
            mark = wire.mark()
            # Published back to back, so that they are usually handled in one batch.
            await wire.publish("1/pbx/agent/state", dumps(BOOM))
            await wire.publish("1/pbx/call/arrived", dumps({"call_id": "ok", "did": "+100"}))
            error = await wire.expect_error(mark)
            assert error["topic"] == f"{prefix}/1/pbx/agent/state"
            assert error["error"] == contract.INTERNAL_ERROR
            assert error["payload"] == BOOM
            _, ring = await wire.expect("1/cmd/ring", mark)
            assert strict_json(ring)["call_id"] == "ok"
        # Acknowledged: the next daemon is not handed the message again.
        mark = wire.mark()
        async with daemon_in_process(mosquitto, prefix, db):
            await wire.publish("1/pbx/call/hangup", dumps({"call_id": "unknown"}))
            last = await wire.expect_error(mark)
            assert last["error"] == "unknown call unknown"
        assert [e["error"] for _, e in wire.errors()].count(contract.INTERNAL_ERROR) == 1
