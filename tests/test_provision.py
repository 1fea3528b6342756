"""Provisioning from TOML: the demo file, idempotency, and errors that say where."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ringmaster.api.provisioning import provision
from ringmaster.engine.events import (
    AgentEnrolled,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
    TenantSaved,
)
from ringmaster.engine.model import (
    AgentCondition,
    DidRoute,
    EnrolmentOptions,
    ExtensionTarget,
    PenaltyRule,
    QueueConfig,
    QueueStatus,
    QueueTarget,
    SkillRule,
    Tenant,
    TenantId,
)
from ringmaster.engine.strategies import strategy_names
from ringmaster.provision import ProvisionError, ProvisionReport, Tally, check_file
from ringmaster.store import Store
from tests.store_backends import Databases

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
async def store(database: Databases) -> AsyncIterator[Store]:
    async with await Store.open(database("ringmaster.db")) as store:
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
        did_routes=Tally(created=5),
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
        "+15550111": "601",
        "+15550199": "101",
    }
    spanish = {e.route.did: e.route.skills for e in config if isinstance(e, DidRouteSaved)}
    assert spanish["+15550111"] == {"spanish": 5}
    skilled = {
        e.extension.number: e.extension.skills for e in config if isinstance(e, ExtensionSaved)
    }
    assert [n for n, skills in skilled.items() if skills.get("spanish", 0) >= 5] == ["103", "105"]
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
        did_routes=Tally(unchanged=5),
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


async def test_a_tenant_time_zone_is_provisioned_and_left_out_is_utc(
    tmp_path: Path, store: Store
) -> None:
    zoned = BASE.replace('name = "Acme"', 'name = "Acme"\ntimezone = "America/New_York"')
    assert (await provision(write(tmp_path, zoned), store)).tenants == Tally(created=1)
    tenants = [e.tenant for e in await store.load_config() if isinstance(e, TenantSaved)]
    assert tenants == [Tenant(TenantId(1), "Acme", "America/New_York")]
    assert (await provision(write(tmp_path, BASE), store)).tenants == Tally(updated=1)
    tenants = [e.tenant for e in await store.load_config() if isinstance(e, TenantSaved)]
    assert tenants == [Tenant(TenantId(1), "Acme", "UTC")]


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


# --- the call-centre options (issue 4) ----------------------------------------------------

OPTIONS = """
[[tenant]]
id = 1
name = "Acme"

[[extension]]
tenant_id = 1
number = "101"
name = "Ana"
skills = {spanish = 8, billing = 5}

[[extension]]
tenant_id = 1
number = "102"

[[queue]]
tenant_id = 1
queue_number = "600"
name = "Sales"
strategy = "linear"
timeout = 20
status = "inactive"
retry = 3
wrapup_time = 12
max_len = 40
max_wait = 300
overflow = {type = "queue", queue_number = "601"}   # further down the file
join_empty = ["paused", "logged_out"]
leave_when_empty = ["wrapup", "busy", "unavailable", "paused", "logged_out"]
weight = 7
service_level = 30
announce_frequency = 45
ring_progressive_delay = 4
ring_in_use = true
penalty_rules = [{after = 30, max_penalty = 2}, {after = 60, max_penalty = 5}]
skill_rules = [{after = 20, lower_by = 1}]
agents = [
    AGENT_102,
    "101",
]

[[queue]]
tenant_id = 1
queue_number = "601"
name = "Overflow"
strategy = "ringall"
timeout = 15
overflow = {type = "extension", extension = "101"}

[[queue]]
tenant_id = 1
queue_number = "602"
name = "Loop"
strategy = "ringall"
timeout = 15
overflow = {type = "queue", queue_number = "602"}   # itself: the engine cuts the loop

[[did_route]]
tenant_id = 1
did = "+15550100"
queue = "600"
skills = {spanish = 5}
""".replace(
    # TOML keeps an inline table on one line; this one is longer than ours.
    "AGENT_102",
    '{extension = "102", penalty = 1, wrapup_time = 10, max_no_answer = 3, busy_delay = 5,'
    " reject_delay = 6, no_answer_delay = 7}",
)


async def test_every_option_is_provisioned_and_a_second_run_changes_nothing(
    tmp_path: Path, store: Store
) -> None:
    path = write(tmp_path, OPTIONS)
    report = await provision(path, store)
    assert report == ProvisionReport(
        tenants=Tally(created=1),
        extensions=Tally(created=2),
        queues=Tally(created=3),  # not "updated" for the overflow set once all exist
        enrolments=Tally(created=1),
        did_routes=Tally(created=1),
    )
    config = await store.load_config()
    ana, bob = (e.extension for e in config if isinstance(e, ExtensionSaved))
    assert (ana.number, ana.skills, bob.skills) == ("101", {"spanish": 8, "billing": 5}, {})
    sales, overflow, loop = (e.queue for e in config if isinstance(e, QueueSaved))
    assert sales == QueueConfig(
        sales.queue_id,
        TenantId(1),
        "Sales",
        "600",
        "linear",
        20,
        status=QueueStatus.INACTIVE,
        retry=3,
        wrapup_time=12,
        max_len=40,
        max_wait=300,
        overflow=QueueTarget(overflow.queue_id),
        join_empty=frozenset({AgentCondition.PAUSED, AgentCondition.LOGGED_OUT}),
        leave_when_empty=frozenset(AgentCondition),
        weight=7,
        service_level=30,
        announce_frequency=45,
        ring_progressive_delay=4,
        ring_in_use=True,
        penalty_rules=(PenaltyRule(30, 2), PenaltyRule(60, 5)),
        skill_rules=(SkillRule(20, 1),),
    )
    assert overflow.overflow == ExtensionTarget(ana.extension_id)
    assert loop.overflow == QueueTarget(loop.queue_id)
    assert [e for e in config if isinstance(e, AgentEnrolled)] == [
        AgentEnrolled(
            sales.queue_id,
            bob.extension_id,
            EnrolmentOptions(
                penalty=1,
                position=0,
                wrapup_time=10,
                max_no_answer=3,
                busy_delay=5,
                reject_delay=6,
                no_answer_delay=7,
            ),
        ),
        AgentEnrolled(sales.queue_id, ana.extension_id, EnrolmentOptions(position=1)),
    ]
    assert [e.route for e in config if isinstance(e, DidRouteSaved)] == [
        DidRoute(TenantId(1), "+15550100", QueueTarget(sales.queue_id), {"spanish": 5})
    ]

    again = await provision(path, store)
    assert not again.changed
    assert again.queues == Tally(unchanged=3)
    assert again.enrolments == Tally(unchanged=1)
    assert await store.load_config() == config


async def test_option_edits_are_updates_and_left_out_options_go_back_to_defaults(
    tmp_path: Path, store: Store
) -> None:
    await provision(write(tmp_path, OPTIONS), store)
    edited = (
        OPTIONS.replace("max_len = 40", "max_len = 41")
        .replace("penalty = 1,", "penalty = 2,")
        .replace("skills = {spanish = 5}", "skills = {spanish = 6}")
        .replace("skills = {spanish = 8, billing = 5}", "")
    )
    report = await provision(write(tmp_path, edited), store)
    assert report.queues == Tally(updated=1, unchanged=2)
    assert report.enrolments == Tally(updated=1)
    assert report.did_routes == Tally(updated=1)
    assert report.extensions == Tally(updated=1, unchanged=1)

    # A queue entry cut down to its required keys: every option back to its default.
    bare = BASE + QUEUE_600.replace("ringall", "linear")
    await provision(write(tmp_path, bare), store)
    config = await store.load_config()
    (sales,) = (e.queue for e in config if isinstance(e, QueueSaved) and e.queue.name == "Sales")
    assert sales == QueueConfig(sales.queue_id, TenantId(1), "Sales", "600", "linear", 15)
    enrolled = [e for e in config if isinstance(e, AgentEnrolled)]
    assert [e.options for e in enrolled] == [EnrolmentOptions(position=0)]


async def test_overflow_into_a_queue_created_later_in_the_same_file(
    tmp_path: Path, store: Store
) -> None:
    # Queues stored by a first run, then pointed at a queue the second file creates.
    await provision(write(tmp_path, OPTIONS), store)
    more = OPTIONS.replace(
        'overflow = {type = "extension", extension = "101"}',
        'overflow = {type = "queue", queue_number = "603"}',
    ) + (
        '[[queue]]\ntenant_id = 1\nqueue_number = "603"\nname = "Late"\nstrategy = "ringall"\n'
        'timeout = 15\noverflow = {type = "queue", queue_number = "601"}\n'
    )
    report = await provision(write(tmp_path, more), store)
    assert report.queues == Tally(created=1, updated=1, unchanged=2)
    queues = {
        e.queue.queue_number: e.queue
        for e in await store.load_config()
        if isinstance(e, QueueSaved)
    }
    assert queues["601"].overflow == QueueTarget(queues["603"].queue_id)
    assert queues["603"].overflow == QueueTarget(queues["601"].queue_id)
    assert not (await provision(write(tmp_path, more), store)).changed


async def test_overflow_may_point_into_the_store(tmp_path: Path, store: Store) -> None:
    await provision(DEMO, store)
    text = QUEUE_600.replace('"600"', '"700"') + 'overflow = {type = "queue", queue_number = "601"}'
    report = await provision(write(tmp_path, text), store)
    assert report.queues == Tally(created=1)
    queues = {
        e.queue.queue_number: e.queue
        for e in await store.load_config()
        if isinstance(e, QueueSaved)
    }
    assert queues["700"].overflow == QueueTarget(queues["601"].queue_id)


def test_a_stand_alone_file_resolves_overflow_within_itself(tmp_path: Path) -> None:
    spec = check_file(write(tmp_path, OPTIONS))
    assert [q.overflow.queue_number for q in spec.queue] == ["601", None, "602"]
    assert [a.extension for a in spec.queue[0].agents or ()] == ["102", "101"]
    with pytest.raises(ProvisionError, match=r'overflow.queue_number: No queue "609"'):
        check_file(
            write(tmp_path, OPTIONS.replace('queue_number = "601"}', 'queue_number = "609"}'))
        )


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
    "unknown time zone": (
        '[[tenant]]\nid = 2\nname = "B"\ntimezone = "Europe/Pariss"\n',
        'tenant[2].timezone: Unknown time zone "Europe/Pariss"',
    ),
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
    # --- the call-centre options
    "unknown overflow type": (
        QUEUE_600 + 'overflow = {type = "voicemail"}\n',
        "queue[1].overflow.type: Input should be 'hangup', 'extension' or 'queue'",
    ),
    "overflow to a queue without its number": (
        QUEUE_600 + 'overflow = {type = "queue", extension = "101"}\n',
        'queue[1].overflow: An overflow of type "queue" takes `queue_number` and no other'
        ' target (entry: tenant 1, queue_number "600")',
    ),
    "hangup overflow with a target": (
        QUEUE_600 + 'overflow = {type = "hangup", queue_number = "601"}\n',
        'queue[1].overflow: An overflow of type "hangup" takes no target',
    ),
    "overflow to a missing queue": (
        QUEUE_600 + 'overflow = {type = "queue", queue_number = "999"}\n',
        'queue[1].overflow.queue_number: No queue "999" in tenant 1; references stay within'
        ' a tenant (entry: tenant 1, queue_number "600")',
    ),
    "overflow to another tenant's extension": (
        '[[tenant]]\nid = 2\nname = "Globex"\n[[extension]]\ntenant_id = 2\nnumber = "201"\n'
        + QUEUE_600
        + 'overflow = {type = "extension", extension = "201"}\n',
        'queue[1].overflow.extension: No extension "201" in tenant 1 (only tenant 2 has one)',
    ),
    "overflow with an unknown key": (
        QUEUE_600 + 'overflow = {type = "queue", queue = "601"}\n',
        "queue[1].overflow.queue: Extra inputs are not permitted",
    ),
    "unknown condition": (
        QUEUE_600 + 'join_empty = ["paused", "asleep"]\n',
        "queue[1].join_empty[2]: Input should be 'paused', 'unavailable', 'logged_out',"
        " 'busy' or 'wrapup'",
    ),
    "repeated condition": (
        QUEUE_600 + 'leave_when_empty = ["busy", "busy"]\n',
        "queue[1].leave_when_empty: names a condition twice",
    ),
    "conditions as a string": (
        QUEUE_600 + 'join_empty = "paused"\n',
        "queue[1].join_empty: Input should be a valid list",
    ),
    "penalty rules out of order": (
        QUEUE_600
        + "penalty_rules = [{after = 60, max_penalty = 2}, {after = 30, max_penalty = 1}]\n",
        "queue[1].penalty_rules: rules must be in increasing order of `after`, each once",
    ),
    "penalty rule with an unknown key": (
        QUEUE_600 + "penalty_rules = [{after = 60, penalty = 2}]\n",
        "queue[1].penalty_rules[1].penalty: Extra inputs are not permitted",
    ),
    "skill rule lowering by nothing": (
        QUEUE_600 + "skill_rules = [{after = 60, lower_by = 0}]\n",
        "queue[1].skill_rules[1].lower_by: Input should be greater than or equal to 1",
    ),
    "timeout over an hour": (
        QUEUE_600.replace("timeout = 15", "timeout = 3601"),
        "queue[1].timeout: Input should be less than or equal to 3600",
    ),
    "max_wait over a day": (
        QUEUE_600 + "max_wait = 86401\n",
        "queue[1].max_wait: Input should be less than or equal to 86400",
    ),
    "service level of zero": (
        QUEUE_600 + "service_level = 0\n",
        "queue[1].service_level: Input should be greater than or equal to 1",
    ),
    "negative weight": (
        QUEUE_600 + "weight = -1\n",
        "queue[1].weight: Input should be greater than or equal to 0",
    ),
    "max_len as a string": (
        QUEUE_600 + 'max_len = "10"\n',
        "queue[1].max_len: Input should be a valid integer",
    ),
    "agent with a negative penalty": (
        QUEUE_600.replace('["101"]', '["101", {extension = "102", penalty = -1}]'),
        "queue[1].agents[2].penalty: Input should be greater than or equal to 0",
    ),
    "agent with a position": (
        QUEUE_600.replace('["101"]', '[{extension = "101", position = 3}]'),
        "queue[1].agents[1].position: Extra inputs are not permitted",
    ),
    "agent table without its extension": (
        QUEUE_600.replace('["101"]', "[{penalty = 1}]"),
        "queue[1].agents[1].extension: Field required",
    ),
    "agent as an integer": (
        QUEUE_600.replace('["101"]', "[101]"),
        "queue[1].agents[1]: An agent is an extension number (a string) or an inline table",
    ),
    "agent listed twice, in both forms": (
        QUEUE_600.replace('["101"]', '["101", {extension = "101", penalty = 2}]'),
        'queue[1].agents: An agent is listed more than once: "101"',
    ),
    "missing agent in a table": (
        QUEUE_600.replace('["101"]', '["101", {extension = "999"}]'),
        'queue[1].agents[2]: No extension "999" in tenant 1',
    ),
    "skill level over 10": (
        '[[extension]]\ntenant_id = 1\nnumber = "103"\nskills = {spanish = 11}\n',
        "extension[3].skills.spanish: Input should be less than or equal to 10"
        ' (entry: tenant 1, number "103")',
    ),
    "skill name in capitals": (
        '[[extension]]\ntenant_id = 1\nnumber = "103"\nskills = {Spanish = 5}\n',
        "extension[3].skills.Spanish: String should match pattern",
    ),
    "skill level as a string": (
        '[[extension]]\ntenant_id = 1\nnumber = "103"\nskills = {spanish = "5"}\n',
        "extension[3].skills.spanish: Input should be a valid integer",
    ),
    "skills on a route to an extension": (
        '[[did_route]]\ntenant_id = 1\ndid = "100"\nextension = "101"\nskills = {spanish = 5}\n',
        'did_route[1]: `skills` apply to a route to a queue only (entry: tenant 1, did "100")',
    ),
    "route skill level of zero": (
        '[[did_route]]\ntenant_id = 1\ndid = "100"\nqueue = "600"\nskills = {spanish = 0}\n',
        "did_route[1].skills.spanish: Input should be greater than or equal to 1",
    ),
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
