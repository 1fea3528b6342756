"""The issue-4 options end to end: callbacks, announcements, overflow and skills.

Each test provisions its own tenant, runs the daemon in this event loop against the
session's real mosquitto, and plays the PBX. Nothing sleeps: every wait is on a
message, bounded by `pbx.WAIT_S` or by a tighter `asyncio.wait_for` where the
test is about timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ringmaster.daemon.broker import MosquittoProcess
from ringmaster.engine.events import QueueSaved
from ringmaster.store import Store

from .pbx import Pbx, daemon_in_process, new_prefix, pbx_on, provisioned

pytestmark = pytest.mark.integration

#: The longest a timed option (max_wait 1 s, announce_frequency 1 s) may take to show,
#: with room for a loaded CI machine: long enough never to flake, short enough that a
#: timer that never fires fails the test in seconds, not at `WAIT_S`.
TIMED_WAIT_S = 3.0

TENANT = """
[[tenant]]
id = 1
name = "Options"
"""


def extension(number: str, skills: str = "{}") -> str:
    return f'[[extension]]\ntenant_id = 1\nnumber = "{number}"\nskills = {skills}\n'


def queue(number: str, agents: str, options: str = "") -> str:
    return (
        f'[[queue]]\ntenant_id = 1\nqueue_number = "{number}"\nname = "Q{number}"\n'
        f'strategy = "ringall"\ntimeout = 30\nagents = [{agents}]\n{options}\n'
    )


def did_route(did: str, queue_number: str) -> str:
    return f'[[did_route]]\ntenant_id = 1\ndid = "{did}"\nqueue = "{queue_number}"\n'


def for_call(call_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda payload: payload.get("call_id") == call_id


@dataclass(frozen=True)
class Provisioned:
    prefix: str
    db: Path
    queue_ids: dict[str, int]  # queue_number -> the id the database gave it


async def start(tmp_path: Path, *entries: str) -> Provisioned:
    """Provision a fresh database with `entries`, for a daemon on a prefix of its own."""
    config = tmp_path / "options.toml"
    config.write_text("\n".join([TENANT, *entries]))
    db = tmp_path / "rm.sqlite3"
    await provisioned(db, config)
    async with await Store.open(db) as store:
        saved = [e.queue for e in await store.load_config() if isinstance(e, QueueSaved)]
    return Provisioned(new_prefix(), db, {q.queue_number: q.queue_id for q in saved})


async def start_one_queue(tmp_path: Path, options: str = "") -> Provisioned:
    """`start` with one queue, 600 (DID +100, these options), of one agent, 101."""
    return await start(
        tmp_path, extension("101"), queue("600", '"101"', options), did_route("+100", "600")
    )


@asynccontextmanager
async def running(broker: MosquittoProcess, setup: Provisioned) -> AsyncIterator[Pbx]:
    """The daemon on `setup`'s database, and the PBX watching it (subscribed first)."""
    async with (
        pbx_on(broker, setup.prefix) as pbx,
        daemon_in_process(broker, setup.prefix, setup.db),
    ):
        yield pbx


def available(extension: str) -> Callable[[dict[str, Any]], bool]:
    return lambda payload: payload["extension"] == extension and payload["state"] == "available"


async def log_in(pbx: Pbx, *extensions: str) -> None:
    """Make the agents available, and wait until ringmaster says they are."""
    for number in extensions:
        await pbx.send("agent/state", extension=number, state="available")
        await pbx.expect("event/agent/state", available(number))


def at(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payload["at"])


def sent(pbx: Pbx, topic: str, call_id: str, field: str) -> list[Any]:
    """`field` of every message on `topic` for the call, in the order seen."""
    return [s.payload[field] for s in pbx.seen if s.topic == topic and for_call(call_id)(s.payload)]


async def test_a_callback_keeps_its_place_and_is_originated_by_the_agent_who_answers(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    setup = await start_one_queue(tmp_path)
    number = "+4930111222"
    async with running(mosquitto, setup) as pbx:
        # Nobody is logged in: the call waits.
        await pbx.send("call/arrived", call_id="c1", did="+100", caller_id="+4930999")
        queued = await pbx.expect("event/call/queued", for_call("c1"))
        assert queued["position"] == 1

        await pbx.send("call/callback_requested", call_id="c1", number=number)
        requested = await pbx.expect("event/call/callback_requested")
        assert {k: requested[k] for k in ("call_id", "queue_id", "number", "position")} == {
            "call_id": "c1",
            "queue_id": queued["queue_id"],
            "number": number,
            "position": 1,
        }
        snapshot_topic = f"state/queue/{queued['queue_id']}"
        snapshot = await pbx.expect(snapshot_topic, lambda p: p["callbacks"] == 1)
        assert snapshot["waiting"] == 1
        # Retained: a wallboard that connects now is told at once.
        async with pbx_on(mosquitto, setup.prefix) as wallboard:
            retained = await wallboard.expect(snapshot_topic)
            assert wallboard.seen[0].retained
            assert (retained["callbacks"], retained["waiting"]) == (1, 1)

        # The caller's leg goes, as it does for a callback: the call waits on. Were it
        # abandoned, nobody would be rung for it below.
        await pbx.send("call/hangup", call_id="c1", cause="callback")
        await log_in(pbx, "101")
        ring = await pbx.expect("cmd/ring", for_call("c1"))
        assert (ring["extension"], ring["caller_id"]) == ("101", number)

        await pbx.send("call/answered", call_id="c1", extension="101")
        originate = await pbx.expect("cmd/originate", for_call("c1"))
        assert {k: originate[k] for k in ("call_id", "extension", "number")} == {
            "call_id": "c1",
            "extension": "101",
            "number": number,
        }
        await pbx.expect("event/call/answered", for_call("c1"))
        snapshot = await pbx.expect(snapshot_topic, lambda p: p["answered"] == 1)
        assert (snapshot["callbacks"], snapshot["waiting"]) == (0, 0)

        # Now connected, the next hangup completes it.
        await pbx.send("call/hangup", call_id="c1")
        completed = await pbx.expect("event/call/completed", for_call("c1"))
        assert completed["extension"] == "101"
        snapshot = await pbx.expect(snapshot_topic, lambda p: p["completed"] == 1)
        assert snapshot["abandoned"] == 0
    assert pbx.count("event/call/abandoned") == 0
    assert pbx.count("cmd/originate") == 1
    assert pbx.count("error") == 0


async def test_a_callback_is_not_moved_on_by_max_wait(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    setup = await start_one_queue(tmp_path, "max_wait = 1")
    number = "+4930111222"
    async with running(mosquitto, setup) as pbx:
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.send("call/callback_requested", call_id="c1", number=number)
        await pbx.expect("event/call/callback_requested", for_call("c1"))
        # c2 joins after c1, so its max_wait ends after c1's would: once c2 has gone,
        # c1 would have gone too, were callbacks not exempt.
        await pbx.send("call/arrived", call_id="c2", did="+100")
        overflowed = await asyncio.wait_for(
            pbx.expect("event/call/overflowed", for_call("c2")), TIMED_WAIT_S
        )
        assert (overflowed["reason"], overflowed["target"]) == ("max_wait", {"type": "hangup"})
        route = await pbx.expect("cmd/route", for_call("c2"))
        assert route["target"] == {"type": "hangup", "reason": "max_wait"}
        assert pbx.count("event/call/overflowed", for_call("c1")) == 0
        await log_in(pbx, "101")
        ring = await pbx.expect("cmd/ring", for_call("c1"))
        assert ring["caller_id"] == number
    assert pbx.count("cmd/route", for_call("c1")) == 0


@pytest.mark.parametrize("first_call_leaves_by", ["answer", "hangup"])
async def test_callers_are_announced_their_place_on_joining_and_when_it_changes(
    mosquitto: MosquittoProcess, tmp_path: Path, first_call_leaves_by: str
) -> None:
    # A long period, so that every announcement this test sees is a change of place.
    setup = await start_one_queue(tmp_path, "announce_frequency = 600")
    async with running(mosquitto, setup) as pbx:
        queue_id = setup.queue_ids["600"]
        if first_call_leaves_by == "answer":
            await log_in(pbx, "101")  # rings for c1; c2 waits behind it
        await pbx.send("call/arrived", call_id="c1", did="+100")
        first = await pbx.expect("cmd/announce", for_call("c1"))
        assert (first["queue_id"], first["position"]) == (queue_id, 1)
        assert first["estimated_wait_s"] is None  # no answers yet to estimate from
        await pbx.send("call/arrived", call_id="c2", did="+100")
        second = await pbx.expect("cmd/announce", for_call("c2"))
        assert (second["queue_id"], second["position"]) == (queue_id, 2)

        if first_call_leaves_by == "answer":
            await pbx.expect("cmd/ring", for_call("c1"))
            await pbx.send("call/answered", call_id="c1", extension="101")
        else:
            await pbx.send("call/hangup", call_id="c1")
        moved_up = await pbx.expect(
            "cmd/announce", lambda p: p["call_id"] == "c2" and p["position"] == 1
        )
        assert moved_up["queue_id"] == queue_id
        # c2's arrival put nobody behind c1, and c1 left: c1 was told once.
        assert sent(pbx, "cmd/announce", "c1", "position") == [1]
        assert sent(pbx, "cmd/announce", "c2", "position") == [2, 1]


async def test_a_waiting_caller_is_announced_again_every_announce_frequency(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    setup = await start_one_queue(tmp_path, "announce_frequency = 1")
    async with running(mosquitto, setup) as pbx:
        await pbx.send("call/arrived", call_id="c1", did="+100")
        joined = await pbx.expect("cmd/announce", for_call("c1"))
        mark = pbx.mark()
        again = await asyncio.wait_for(
            pbx.expect("cmd/announce", for_call("c1"), after=mark), TIMED_WAIT_S
        )
        assert again["position"] == 1
        # A period later, not a second announcement of the joining (`at` has milliseconds).
        assert at(again) - at(joined) >= timedelta(seconds=0.999)
        assert sent(pbx, "cmd/announce", "c1", "position") == [1, 1]


async def test_a_call_that_waits_max_wait_overflows_to_another_queue_and_rings_there(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    # Queue 600 has nobody logged in and gives up after a second; 601 has agent 102.
    setup = await start(
        tmp_path,
        extension("101"),
        extension("102"),
        queue("600", '"101"', 'max_wait = 1\noverflow = {type = "queue", queue_number = "601"}'),
        queue("601", '"102"'),
        did_route("+100", "600"),
    )
    async with running(mosquitto, setup) as pbx:
        first_queue = setup.queue_ids["600"]
        overflow_queue = setup.queue_ids["601"]
        await log_in(pbx, "102")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        queued = await pbx.expect("event/call/queued", for_call("c1"))
        assert queued["queue_id"] == first_queue

        overflowed = await asyncio.wait_for(
            pbx.expect("event/call/overflowed", for_call("c1")), TIMED_WAIT_S
        )
        assert {k: overflowed[k] for k in ("queue_id", "reason", "target")} == {
            "queue_id": first_queue,
            "reason": "max_wait",
            "target": {"type": "queue", "queue_id": overflow_queue},
        }
        assert overflowed["wait_s"] >= 1.0  # not before its max_wait
        requeued = await pbx.expect(
            "event/call/queued", lambda p: p["call_id"] == "c1" and p["queue_id"] == overflow_queue
        )
        assert requeued["position"] == 1
        ring = await pbx.expect("cmd/ring", for_call("c1"))
        assert (ring["extension"], ring["queue_id"]) == ("102", overflow_queue)
        snapshot = await pbx.expect(f"state/queue/{first_queue}", lambda p: p["overflowed"] == 1)
        assert (snapshot["waiting"], snapshot["abandoned"]) == (0, 0)
    assert pbx.count("cmd/route") == 0
    assert pbx.count("event/call/overflowed") == 1


async def test_a_call_requiring_a_skill_rings_only_the_agent_who_has_it(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    # Both agents are free under ringall; only 102 speaks Spanish well enough.
    setup = await start(
        tmp_path,
        extension("101", "{spanish = 4, billing = 9}"),
        extension("102", "{spanish = 5}"),
        queue("600", '"101", "102"'),
        did_route("+100", "600"),
    )
    async with running(mosquitto, setup) as pbx:
        await log_in(pbx, "101", "102")
        await pbx.send("call/arrived", call_id="c1", did="+100", skills={"spanish": 5})
        ring = await pbx.expect("cmd/ring", for_call("c1"))
        assert ring["extension"] == "102"
        # A call with no requirement now goes to 101: it was free all along, so the
        # first call passed it over for its skill, not for being busy.
        await pbx.send("call/arrived", call_id="c2", did="+100")
        other = await pbx.expect("cmd/ring", for_call("c2"))
        assert other["extension"] == "101"
    assert sent(pbx, "cmd/ring", "c1", "extension") == ["102"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"call_id": "c1"}, "number"),
        ({"call_id": "c1", "number": "call me"}, "number"),
        ({"number": "+4930111222"}, "call_id"),
    ],
)
async def test_a_malformed_callback_request_is_reported_and_changes_nothing(
    mosquitto: MosquittoProcess, tmp_path: Path, payload: dict[str, Any], field: str
) -> None:
    setup = await start_one_queue(tmp_path)
    async with running(mosquitto, setup) as pbx:
        await pbx.send("call/arrived", call_id="c1", did="+100")
        queued = await pbx.expect("event/call/queued", for_call("c1"))
        await pbx.send("call/callback_requested", **payload)
        error = await pbx.expect("error")
        assert error["topic"] == f"{setup.prefix}/1/pbx/call/callback_requested"
        assert error["error"].startswith(f"{field}: "), error["error"]
        assert error["payload"] == payload

        # Still an ordinary waiting call: the caller's hangup abandons it.
        await pbx.send("call/hangup", call_id="c1")
        abandoned = await pbx.expect("event/call/abandoned", for_call("c1"))
        assert abandoned["queue_id"] == queued["queue_id"]
    assert pbx.count("event/call/callback_requested") == 0
    assert all(s.payload["callbacks"] == 0 for s in pbx.seen if s.topic.startswith("state/queue/"))
    assert pbx.count("error") == 1
