"""Fuzzed inbound messages down the daemon's whole path, on a fixed seed.

Each message goes where the service sends it: `parse_inbound`, then either
`render_error`, or `Engine.handle` and `render` of its commands; then
`Store.commit` into a real SQLite file. Nothing may escape but `ContractError`,
and whatever is published must be UTF-8 JSON that a strict reader accepts.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ringmaster.api.provisioning import provision
from ringmaster.contract import (
    INBOUND,
    ContractError,
    OutboxMessage,
    parse_inbound,
    render,
    render_error,
)
from ringmaster.engine.commands import Ring
from ringmaster.engine.core import Engine
from ringmaster.store import Store

pytestmark = pytest.mark.integration

SEED = 20261202
MESSAGES = 12_000
P = "rm"
START = 1_800_000_000.0

CONFIG = """
[[tenant]]
id = 1
name = "Fuzz"

[[extension]]
tenant_id = 1
number = "101"
skills = { spanish = 5 }

[[extension]]
tenant_id = 1
number = "102"

[[extension]]
tenant_id = 1
number = "103"

[[queue]]
tenant_id = 1
queue_number = "600"
name = "Q"
strategy = "ringall"
timeout = 5
retry = 1
wrapup_time = 1
agents = ["101", "102", "103"]

[[did_route]]
tenant_id = 1
did = "+100"
queue = "600"
"""

CALLS = ["c1", "c2", "c3", "c4", "c5", "c6"]
EXTENSIONS = ["101", "102", "103", "999"]

#: Text nothing downstream of the contract could take, or that is merely odd.
ODD_TEXT = [
    "\udfff",
    "\ud800",
    "fz\udfffp2",
    "\udc00\ud800",
    "a\ud83d",
    "\x00",
    "a\x00b",
    "\x07\x1b[31m",
    "\r\n",
    "\x7f\x85\x9f",
    "\u202eevil",
    "\ufeff\ufffe\uffff",
    "\U0001f4de",
    "Zo\u00eb",
    "",
    " ",
    "x" * 65,
    "x" * 257,
    "x" * 5_000,
    "1" * 33,
    "%s%n{}",
    "\\u0000",
]
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    10,
    2**63,
    -(2**63) - 1,
    10**30,
    1.5,
    1e308,
    -0.0,
    [],
    {},
    ["101"],
    {"a": 1},
    {"\udfff": 1},
    {"spanish": 5},
    {"spanish": "5"},
    {"spanish": 11},
    {"x" * 40: 1},
]


def valid(rng: random.Random, kind: str) -> dict[str, Any]:  # noqa: PLR0911 - one per topic
    call, extension = rng.choice(CALLS), rng.choice(EXTENSIONS)
    match kind:
        case "call/arrived":
            return {
                "call_id": call,
                "did": rng.choice(["+100", "+100", "+200"]),
                "caller_id": "5551234",
                "caller_name": "Ada",
                "priority": rng.randrange(10),
            }
        case "call/answered":
            return {"call_id": call, "extension": extension}
        case "call/ring_failed":
            reason = rng.choice(["busy", "rejected", "unreachable", "no_answer"])
            return {"call_id": call, "extension": extension, "reason": reason}
        case "call/hangup":
            return {"call_id": call, "cause": "normal"}
        case "call/callback_requested":
            return {"call_id": call, "number": "+4930123"}
        case "agent/state":
            state = rng.choice(["available", "available", "paused", "logged_out"])
            return {"extension": extension, "state": state, "reason": "lunch"}
        case _:
            state = rng.choice(["idle", "idle", "in_use", "ringing", "unavailable"])
            return {"extension": extension, "state": state}


KINDS = list(INBOUND)


def deep(depth: int) -> Any:
    value: Any = "leaf"
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


def odd(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(ODD_TEXT)
    if roll < 0.9:
        return rng.choice(ODD_VALUES)
    return deep(rng.choice([3, 50, 400, 3_000]))


def to_json(value: Any) -> bytes:
    # ensure_ascii: lone surrogates become \udXXX escapes, as a PBX would write them;
    # nesting beyond what json.dumps takes is written by hand.
    try:
        return json.dumps(value, ensure_ascii=True).encode("ascii")
    except RecursionError:
        return b'{"call_id": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"


def mutate_fields(rng: random.Random, payload: dict[str, Any]) -> bytes:
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.6 and payload:
            payload[rng.choice(list(payload))] = odd(rng)
        elif roll < 0.8:
            payload[rng.choice([*ODD_TEXT, "skills", "extra"])] = odd(rng)
        elif payload:
            del payload[rng.choice(list(payload))]
    return to_json(payload)


def mutate_text(rng: random.Random, payload: dict[str, Any]) -> bytes:  # noqa: PLR0911
    text = to_json(payload)
    roll = rng.random()
    if roll < 0.2:
        key = rng.choice(list(payload) or ["call_id"])
        return text[:-1] + b', "' + key.encode() + b'": "dup"}'
    if roll < 0.35:
        constant = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b"1" * 5000])
        return text[:-1] + b', "priority": ' + constant + b"}"
    if roll < 0.5:
        return text[: rng.randrange(len(text) + 1)]
    if roll < 0.65:
        # Raw surrogates (CESU-8) and other bytes that are not UTF-8.
        junk = rng.choice(["\udfff".encode("utf-8", "surrogatepass"), b"\xff", b"\xc3", b"\x80"])
        at = rng.randrange(len(text) + 1)
        return text[:at] + junk + text[at:]
    if roll < 0.75:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if roll < 0.85:
        return rng.choice([b"", b"null", b"[]", b'"c1"', b"1", b"[" * 50_000, b" " * 70_000])
    # Valid JSON whose strings carry escapes: NUL, C1 controls, lone surrogates.
    escape = rng.choice([rb"\u0000", rb"\u009b", rb"\udfff", rb"\ud800", rb"\ud83d\udcde"])
    return text.replace(b'"', b'"' + escape, rng.randrange(1, 6))


def topic_for(rng: random.Random, kind: str) -> str:
    roll = rng.random()
    if roll < 0.9:
        return f"{P}/1/pbx/{kind}"
    tenant = rng.choice(["2", "0", "01", "-1", "", " 1", "\u0661", "1" * 19, "x", "1.0"])
    if roll < 0.96:
        return f"{P}/{tenant}/pbx/{kind}"
    suffix = rng.choice(
        ["call", "call/hangup/x", "ca ll/hangup", "\u00fcn\u00efc\u00f8d\u00e9", ""]
    )
    return f"{P}/1/pbx/{suffix}"


def message(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(KINDS)
    payload = valid(rng, kind)
    roll = rng.random()
    if roll < 0.35:
        body = to_json(payload)  # valid: keeps calls and agents moving
    elif roll < 0.75:
        body = mutate_fields(rng, payload)
    else:
        body = mutate_text(rng, payload)
    return topic_for(rng, kind), body


def strict_json(payload: bytes) -> Any:
    """What a strict reader does: UTF-8, RFC 8259 numbers, no lone surrogate escapes."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    value = json.loads(payload.decode("utf-8"), parse_constant=no_constant)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


def check(messages: list[OutboxMessage], is_error: Callable[[str], bool]) -> None:
    for outbound in messages:
        if outbound.payload:  # an empty retained payload clears a snapshot
            body = strict_json(outbound.payload)
            if is_error(outbound.topic):
                assert isinstance(body["error"], str)
                assert body["error"]


async def test_fuzzed_inbound_messages_never_escape_the_contract(tmp_path: Path) -> None:
    config = tmp_path / "fuzz.toml"
    config.write_text(CONFIG)
    db = tmp_path / "fuzz.sqlite3"
    rng = random.Random(SEED)
    now = START
    seen: Counter[str] = Counter()
    async with await Store.open(db) as store:
        await provision(config, store)
        engine = Engine(rng=random.Random(SEED))
        for config_event in await store.load_config():
            engine.handle(config_event, now)
        engine.take_changes()
        for _ in range(MESSAGES):
            topic, payload = message(rng)
            messages: list[OutboxMessage]
            try:
                event = parse_inbound(P, topic, payload)
            except ContractError as error:
                seen["rejected"] += 1
                messages = [render_error(P, error, now=now)]
            else:
                seen["accepted"] += 1
                commands = engine.handle(event, now)
                messages = [render(P, command, now=now) for command in commands]
                seen["rings"] += sum(isinstance(c, Ring) for c in commands)
            now += rng.choice([0.0, 0.01, 0.5, 2.0])
            commands = [*engine.handle_timer(now), *engine.take_snapshots(now)]
            messages += [render(P, command, now=now) for command in commands]
            seen["rings"] += sum(isinstance(c, Ring) for c in commands)
            check(messages, lambda t: t.endswith("/error"))
            await store.commit(engine.take_changes(), messages)
        # What was stored reads back into a fresh engine.
        restored = Engine(rng=random.Random(SEED))
        for config_event in await store.load_config():
            restored.handle(config_event, now)
        restored.restore(await store.load_live(), now)
    # The corpus exercised both sides (a fuzzer that only ever fails to parse tests
    # nothing downstream of the contract).
    assert seen["accepted"] > MESSAGES // 5, seen
    assert seen["rejected"] > MESSAGES // 3, seen
    assert seen["rings"] > 100, seen
