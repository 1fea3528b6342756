"""Provisioning from TOML: the demo file, idempotency, and errors that say where."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ringmaster.engine.events import (
    AgentEnrolled,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
    TenantSaved,
)
from ringmaster.engine.model import ExtensionTarget, QueueTarget
from ringmaster.engine.strategies import strategy_names
from ringmaster.provision import ProvisionError, ProvisionReport, Tally, provision
from ringmaster.store import Store

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"

BASE = """
[[tenant]]
id = 1
name = "Acme"

[[extension]]
tenant_id = 1
number = "101"

[[extension]]
tenant_id = 1
number = "102"
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "ringmaster.db") as store:
        yield store


def write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_demo_file_loads(store: Store) -> None:
    report = await provision(DEMO, store)
    assert report == ProvisionReport(
        tenants=Tally(created=1),
        extensions=Tally(created=6),
        queues=Tally(created=3),
        enrolments=Tally(created=3),
        did_routes=Tally(created=4),
    )
    config = await store.load_config()
    assert [e.tenant.name for e in config if isinstance(e, TenantSaved)] == ["Demo Co"]
    numbers = {
        e.extension.extension_id: e.extension.number
        for e in config
        if isinstance(e, ExtensionSaved)
    }
    assert sorted(numbers.values()) == ["101", "102", "103", "104", "105", "106"]
    queues = {e.queue.queue_id: e.queue for e in config if isinstance(e, QueueSaved)}
    assert {(q.queue_number, q.name, q.strategy, q.timeout) for q in queues.values()} == {
        ("600", "Sales", "ringall", 15),
        ("601", "Support", "leastrecent", 15),
        ("602", "Billing", "roundrobin", 15),
    }
    enrolled: dict[str, list[str]] = {}
    for e in config:
        if isinstance(e, AgentEnrolled):
            enrolled.setdefault(queues[e.queue_id].queue_number, []).append(numbers[e.extension_id])
    assert all(2 <= len(agents) <= 3 for agents in enrolled.values())
    shared = (
        set(enrolled["600"]) & set(enrolled["601"])
        | set(enrolled["601"]) & set(enrolled["602"])
        | set(enrolled["600"]) & set(enrolled["602"])
    )
    assert shared, "one agent answers for two queues"
    routes = {}
    for e in config:
        if isinstance(e, DidRouteSaved):
            target = e.route.target
            routes[e.route.did] = (
                queues[target.queue_id].queue_number
                if isinstance(target, QueueTarget)
                else numbers[target.extension_id]
            )
    assert routes == {
        "+15550100": "600",
        "+15550101": "601",
        "+15550102": "602",
        "+15550199": "101",
    }
    (to_extension,) = [
        e for e in config if isinstance(e, DidRouteSaved) and e.route.did == "+15550199"
    ]
    assert isinstance(to_extension.route.target, ExtensionTarget)


async def test_second_run_changes_nothing(store: Store) -> None:
    await provision(DEMO, store)
    before = await store.load_config()
    report = await provision(DEMO, store)
    assert not report.changed
    assert report == ProvisionReport(
        tenants=Tally(unchanged=1),
        extensions=Tally(unchanged=6),
        queues=Tally(unchanged=3),
        enrolments=Tally(unchanged=3),
        did_routes=Tally(unchanged=4),
    )
    assert await store.load_config() == before
    assert "queues: 0 created, 0 updated, 3 unchanged" in str(report)


async def test_edits_are_updates_and_the_agents_list_replaces_enrolments(
    tmp_path: Path, store: Store
) -> None:
    queue = '[[queue]]\ntenant_id = 1\nqueue_number = "600"\nname = "Q"\nstrategy = "ringall"\n'
    await provision(write(tmp_path, BASE + queue + 'timeout = 15\nagents = ["101", "102"]'), store)
    report = await provision(
        write(tmp_path, BASE + queue + 'timeout = 20\nagents = ["102"]'), store
    )
    assert report.queues == Tally(updated=1)
    assert report.enrolments == Tally(updated=1)
    assert report.extensions == Tally(unchanged=2)
    enrolled = [e for e in await store.load_config() if isinstance(e, AgentEnrolled)]
    assert len(enrolled) == 1

    # Leaving `agents` out leaves the enrolments alone; an empty list clears them.
    report = await provision(write(tmp_path, BASE + queue + "timeout = 20"), store)
    assert report.enrolments == Tally()
    assert [e for e in await store.load_config() if isinstance(e, AgentEnrolled)] == enrolled
    await provision(write(tmp_path, BASE + queue + "timeout = 20\nagents = []"), store)
    assert not [e for e in await store.load_config() if isinstance(e, AgentEnrolled)]


async def test_references_may_point_into_the_store(tmp_path: Path, store: Store) -> None:
    await provision(DEMO, store)
    more = """
[[queue]]
tenant_id = 1
queue_number = "700"
name = "Overflow"
strategy = "leastrecent"
timeout = 10
agents = ["104", "101"]

[[did_route]]
tenant_id = 1
did = "+15550700"
queue = "700"
"""
    report = await provision(write(tmp_path, more), store)
    assert report.queues == Tally(created=1)
    assert report.did_routes == Tally(created=1)
    assert report.tenants == Tally()  # not in the file: left alone, not counted


QUEUE_600 = """
[[queue]]
tenant_id = 1
queue_number = "600"
name = "Sales"
strategy = "ringall"
timeout = 15
agents = ["101"]
"""

BAD_FILES = {
    "timeout below 1": (
        QUEUE_600.replace('"600"', '"601"') + QUEUE_600.replace("timeout = 15", "timeout = 0"),
        "queue[2].timeout: Input should be greater than or equal to 1"
        ' (entry: tenant 1, queue_number "600")',
    ),
    "unknown strategy": (
        QUEUE_600.replace("ringall", "fifo"),
        'queue[1].strategy: Unknown strategy "fifo"; expected one of: '
        + ", ".join(sorted(strategy_names())),
    ),
    "unknown field": (
        QUEUE_600 + 'colour = "red"\n',
        "queue[1].colour: Extra inputs are not permitted",
    ),
    "unknown table": (
        '[[queues]]\nname = "x"\n',
        "x.toml: queues: Extra inputs are not permitted",
    ),
    "integer where a number string belongs": (
        "[[extension]]\ntenant_id = 1\nnumber = 103\n",
        "extension[3].number: Input should be a valid string (entry: tenant 1, number 103)",
    ),
    "number too long": (
        '[[extension]]\ntenant_id = 1\nnumber = "123456789012345678901"\n',
        "extension[3].number: String should have at most 20 characters",
    ),
    "bad status": (
        QUEUE_600 + 'status = "paused"\n',
        "queue[1].status: Input should be 'active' or 'inactive'",
    ),
    "duplicate agent": (
        QUEUE_600.replace('["101"]', '["101", "102", "101"]'),
        'queue[1].agents: An agent is listed more than once: "101"',
    ),
    "missing agent": (
        QUEUE_600.replace('["101"]', '["101", "999"]'),
        'queue[1].agents[2]: No extension "999" in tenant 1; references stay within a tenant',
    ),
    "unknown tenant": (
        '[[extension]]\ntenant_id = 7\nnumber = "101"\n',
        "extension[3].tenant_id: No tenant 7 in the file or the store (entry: tenant 7,",
    ),
    "duplicate queue number": (
        QUEUE_600 + QUEUE_600,
        'queue[2].queue_number: duplicate of queue[1] (entry: tenant 1, queue_number "600")',
    ),
    "duplicate extension": (
        '[[extension]]\ntenant_id = 1\nnumber = "101"\n',
        "extension[3].number: duplicate of extension[1]",
    ),
    "missing field": (
        '[[queue]]\ntenant_id = 1\nqueue_number = "600"\nname = "Q"\nstrategy = "ringall"\n',
        'queue[1].timeout: Field required (entry: tenant 1, queue_number "600")',
    ),
    "bad did": (
        '[[did_route]]\ntenant_id = 1\ndid = "555-0100"\nextension = "101"\n',
        "did_route[1].did: String should match pattern",
    ),
    "route with two targets": (
        QUEUE_600 + '[[did_route]]\ntenant_id = 1\ndid = "100"\nqueue = "600"\nextension = "101"\n',
        'did_route[1]: Give exactly one of `queue` and `extension` (entry: tenant 1, did "100")',
    ),
    "route to a missing queue": (
        '[[did_route]]\ntenant_id = 1\ndid = "100"\nqueue = "999"\n',
        'did_route[1].queue: No queue "999" in tenant 1',
    ),
    "not TOML": ("[[queue]\n", "x.toml: not valid TOML: "),
}


@pytest.mark.parametrize(("extra", "expected"), BAD_FILES.values(), ids=BAD_FILES.keys())
async def test_errors_name_file_entry_and_field_and_write_nothing(
    tmp_path: Path, store: Store, extra: str, expected: str
) -> None:
    await provision(DEMO, store)  # something to leave untouched
    before = await store.load_config()
    path = write(tmp_path, BASE + extra)
    with pytest.raises(ProvisionError) as caught:
        await provision(path, store)
    assert any(line.startswith(f"{path}: ") for line in caught.value.errors)
    assert expected in str(caught.value)
    assert await store.load_config() == before


async def test_every_problem_is_reported_at_once(tmp_path: Path, store: Store) -> None:
    text = BASE + QUEUE_600.replace("15", "0").replace("ringall", "fifo")
    with pytest.raises(ProvisionError) as caught:
        await provision(write(tmp_path, text), store)
    assert [line.split(": ")[1] for line in caught.value.errors] == [
        "queue[1].strategy",
        "queue[1].timeout",
    ]


async def test_agent_of_another_tenant_is_refused(tmp_path: Path, store: Store) -> None:
    text = """
[[tenant]]
id = 1
name = "Acme"

[[tenant]]
id = 2
name = "Globex"

[[extension]]
tenant_id = 2
number = "201"

[[queue]]
tenant_id = 1
queue_number = "600"
name = "Sales"
strategy = "ringall"
timeout = 15
agents = ["201"]

[[did_route]]
tenant_id = 2
did = "+15550200"
queue = "600"
"""
    path = write(tmp_path, text)
    with pytest.raises(ProvisionError) as caught:
        await provision(path, store)
    assert caught.value.errors == (
        f'{path}: queue[1].agents[1]: No extension "201" in tenant 1 (only tenant 2 has one);'
        ' references stay within a tenant (entry: tenant 1, queue_number "600")',
        f'{path}: did_route[1].queue: No queue "600" in tenant 2 (only tenant 1 has one);'
        ' references stay within a tenant (entry: tenant 2, did "+15550200")',
    )
    assert await store.load_config() == []


async def test_missing_file(tmp_path: Path, store: Store) -> None:
    with pytest.raises(ProvisionError, match=r"nope\.toml: cannot read: No such file"):
        await provision(tmp_path / "nope.toml", store)
