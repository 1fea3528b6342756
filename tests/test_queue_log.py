"""Asterisk's queue_log from real call lives: the engine on its virtual clock, each turn
through `HistoryRecorder` into SQLite, read back and rendered as the API renders it.

Each expected line is checked field by field against Asterisk's documentation of the
event (docs.asterisk.org, Operation/Logging/Queue-Logs; apps/app_queue.c's
`ast_queue_log` calls where they add to it), quoted next to it.
"""

from __future__ import annotations

from typing import Any

import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.commands import Ring
from ringmaster.engine.model import (
    AgentCondition,
    CallId,
    ExtensionId,
    Presence,
    QueueId,
    QueueTarget,
    RingFailure,
)
from ringmaster.queue_log import Line, Membership, render
from ringmaster.store import Store
from tests.engine.sim import T, of_type
from tests.store_backends import Databases
from tests.test_history_store import Recorded, play, store_config


@pytest.fixture
async def store(database: Databases) -> Any:
    async with await Store.open(database("queue_log.sqlite3")) as opened:
        yield opened


async def queue_log(
    store: Store,
    sim: Recorded,
    *,
    events: tuple[str, ...] = (),
    agent_format: str = "Local/{number}",
    configure: bool = True,
) -> list[list[str]]:
    """The sim's turns through the history into `store`, rendered: each line's fields.

    `configure`: store the sim's configuration first (what is not stored yet).
    """
    if configure:
        await store_config(store, sim)
    await play(store, sim.turns)
    sim.turns.clear()
    async with store.queue_log() as reader:
        rows = await reader.rows(None, 0.0, 1e12)
    lines: list[Line] = render(
        rows.visits,
        rows.activity,
        Membership(rows.enrolment_records, rows.enrolments),
        rows.queue_numbers,
        agent_format=agent_format,
    )
    return [line.fields for line in lines if not events or line.event in events]


CALL_EVENTS = (
    "ENTERQUEUE",
    "RINGNOANSWER",
    "CONNECT",
    "COMPLETECALLER",
    "COMPLETEAGENT",
    "ABANDON",
    "EXITWITHTIMEOUT",
    "EXITEMPTY",
    "EXITWITHKEY",
    "WITHDRAW",
    "FULL",
    "JOINEMPTY",
)


async def test_a_call_not_answered_by_one_agent_then_answered_and_completed(
    store: Store,
) -> None:
    sim = Recorded("linear", agents=2, timeout=15, retry=5)
    sim.arrive("c1", caller_id="5550001")  # 1000: rings 101
    sim.advance(15)  # 1015: 101's ring times out; 102 rings
    (ring,) = of_type(sim.log, Ring)[1:]
    assert ring.extension == "102"
    sim.advance(4.5)
    sim.answer("c1", "102")  # 1019.5
    sim.advance(60)
    sim.hangup("c1")  # 1079.5
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    assert lines == [
        # ENTERQUEUE(url|callerid): "A caller entered the queue"; app_queue.c adds the
        # caller's original position (qe.opos).
        ["1000", "c1", "601", "NONE", "ENTERQUEUE", "", "5550001", "1"],
        # RINGNOANSWER(ringtime): "after trying for ringtime ms to connect to the
        # available queue member, the attempt ended without the member picking up".
        ["1015", "c1", "601", "Local/101", "RINGNOANSWER", "15000"],
        # CONNECT(holdtime|bridgedchanneluniqueid|ringtime): seconds waited, the
        # member's channel, seconds the member's phone rang.
        ["1019", "c1", "601", "Local/102", "CONNECT", "19", ring.ring_id, "4"],
        # COMPLETECALLER(holdtime|calltime|origposition).
        ["1079", "c1", "601", "Local/102", "COMPLETECALLER", "19", "60", "1"],
    ]


async def test_abandons_give_the_place_left_and_the_place_taken(store: Store) -> None:
    sim = Recorded("ringall", agents=1, logged_in=False)
    for call in ("c1", "c2", "c3"):
        sim.arrive(call)
        sim.advance(1)
    sim.advance(7)  # 1010
    sim.hangup("c1")  # c2 and c3 move up one place
    sim.advance(10)
    sim.hangup("c3")  # 1020: second in line (entered third)
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    assert [line[4:] for line in lines if line[1] == "c3"] == [
        ["ENTERQUEUE", "", "5550001", "3"],
        # ABANDON(position|origposition|waittime): "the caller's position in the queue
        # when they hungup", "when they first entered the queue", seconds waited.
        ["ABANDON", "2", "3", "18"],
    ]
    assert lines[3] == ["1010", "c1", "601", "NONE", "ABANDON", "1", "1", "10"]


async def test_a_ring_failure_is_a_ringnoanswer_with_its_ring_time(store: Store) -> None:
    sim = Recorded("linear", agents=2)
    sim.arrive("c1")
    sim.advance(2.25)
    sim.fail("c1", "101", RingFailure.BUSY)
    lines = await queue_log(store, sim, events=("RINGNOANSWER",))
    assert lines == [["1002", "c1", "601", "Local/101", "RINGNOANSWER", "2250"]]


async def test_a_caller_past_max_wait_exits_with_timeout(store: Store) -> None:
    sim = Recorded("ringall", agents=1, logged_in=False, max_wait=30)
    sim.arrive("c1")
    sim.advance(31)
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    # EXITWITHTIMEOUT(position|origposition|waittime): "the caller was in the queue
    # for too long and the timeout expired".
    assert lines[1] == ["1030", "c1", "601", "NONE", "EXITWITHTIMEOUT", "1", "1", "30"]


async def test_callers_left_alone_exit_empty(store: Store) -> None:
    sim = Recorded("ringall", agents=1, leave_when_empty=frozenset({AgentCondition.PAUSED}))
    sim.arrive("c0")  # rings 101
    sim.advance(4)
    sim.arrive("c1")
    sim.advance(6)
    sim.presence(Presence.PAUSED, "101", reason="lunch")  # 1010: nobody left to answer
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    # EXITEMPTY(position|origposition|waittime): "the queue was empty"; c0 leaves
    # first, so c1 is first in line when it leaves.
    assert lines[2:] == [
        ["1010", "c0", "601", "NONE", "EXITEMPTY", "1", "1", "10"],
        ["1010", "c1", "601", "NONE", "EXITEMPTY", "1", "2", "6"],
    ]


async def test_a_caller_a_supervisor_takes_out_is_withdrawn(store: Store) -> None:
    sim = Recorded("ringall", agents=0)
    sim.add_queue(2, "ringall")
    sim.arrive("c0")
    sim.arrive("c1")
    sim.advance(7)
    sim.send(ev.MoveCall(T, CallId("c1"), QueueId(2)))
    sim.advance(3)
    sim.send(ev.HangUpCall(T, CallId("c0")))
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    # WITHDRAW(position|origposition|waittime|info): Asterisk's caller withdrawn from
    # the queue (AMI `QueueWithdrawCaller`), the nearest to a supervisor's action.
    assert lines[2:] == [
        ["1007", "c1", "601", "NONE", "WITHDRAW", "2", "2", "7", "supervisor"],
        ["1007", "c1", "602", "NONE", "ENTERQUEUE", "", "5550001", "1"],
        ["1010", "c0", "601", "NONE", "WITHDRAW", "1", "1", "10", "supervisor"],
    ]


async def test_a_full_queue_and_an_empty_one_refuse_a_caller(store: Store) -> None:
    sim = Recorded("ringall", agents=0, max_len=1)
    sim.add_queue(2, "ringall", join_empty=frozenset({AgentCondition.PAUSED}))
    sim.arrive("c1")
    sim.arrive("c2")  # queue 601 is full
    sim.arrive("c3", "+101")  # queue 602 has nobody to take it
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    # FULL and JOINEMPTY: the caller could not join; no data (Asterisk writes the
    # event's `|` and nothing after it).
    assert lines[1:] == [
        ["1000", "c2", "601", "NONE", "FULL", ""],
        ["1000", "c3", "602", "NONE", "JOINEMPTY", ""],
    ]


async def test_an_agents_login_pause_and_enrolments_in_each_queue(store: Store) -> None:
    sim = Recorded("ringall", agents=1, logged_in=False)
    sim.add_queue(2, "ringall", enrolled=[1])
    sim.advance(5)
    sim.login("101")
    sim.advance(5)
    sim.presence(Presence.PAUSED, "101", reason="lunch")
    sim.advance(5)
    sim.login("101")  # back from lunch
    sim.advance(5)
    sim.configure(ev.AgentUnenrolled(QueueId(2), ExtensionId(1)))
    sim.advance(5)
    sim.presence(Presence.LOGGED_OUT, "101")
    lines = await queue_log(store, sim, agent_format="PJSIP/{number}")
    assert lines == [
        # ADDMEMBER: "a member was added to the queue" (one empty field, or PAUSED).
        ["1000", "NONE", "601", "PJSIP/101", "ADDMEMBER", ""],
        ["1000", "NONE", "602", "PJSIP/101", "ADDMEMBER", ""],
        ["1005", "NONE", "601", "PJSIP/101", "ADDMEMBER", ""],
        ["1005", "NONE", "602", "PJSIP/101", "ADDMEMBER", ""],
        # PAUSE(reason) / UNPAUSE(reason): in each of the member's queues.
        ["1010", "NONE", "601", "PJSIP/101", "PAUSE", "lunch"],
        ["1010", "NONE", "602", "PJSIP/101", "PAUSE", "lunch"],
        ["1015", "NONE", "601", "PJSIP/101", "UNPAUSE", ""],
        ["1015", "NONE", "602", "PJSIP/101", "UNPAUSE", ""],
        # REMOVEMEMBER: "a queue member was removed from the queue".
        ["1020", "NONE", "602", "PJSIP/101", "REMOVEMEMBER", ""],
        ["1025", "NONE", "601", "PJSIP/101", "REMOVEMEMBER", ""],
    ]


async def test_a_caller_of_higher_priority_goes_ahead_of_those_waiting(store: Store) -> None:
    sim = Recorded("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.arrive("c2")
    sim.advance(2)
    sim.arrive("c3", priority=5)  # first in line
    sim.advance(3)
    sim.hangup("c2")  # 1005: behind c3 and c1
    sim.advance(1)
    sim.hangup("c3")  # 1006: still first
    lines = await queue_log(store, sim, events=("ENTERQUEUE", "ABANDON"))
    assert [line[1] + ":" + "|".join(line[4:]) for line in lines] == [
        "c1:ENTERQUEUE||5550001|1",
        "c2:ENTERQUEUE||5550001|2",
        "c3:ENTERQUEUE||5550001|1",
        "c2:ABANDON|3|2|5",
        "c3:ABANDON|1|1|4",
    ]


async def test_a_removed_queue_is_named_by_the_number_its_calls_kept(store: Store) -> None:
    sim = Recorded("ringall", agents=1)
    sim.add_queue(2, "ringall", enrolled=[1])
    sim.arrive("c1", "+101")  # a call in 602: the history keeps its number
    sim.advance(5)
    sim.hangup("c1")
    await queue_log(store, sim)
    sim.configure(ev.QueueRemoved(QueueId(2)))
    async with store.transaction() as tx:
        for route in (await tx.routes(T)).items:
            if route.route.did == "+101":
                await tx.delete_route(route.id)
        await tx.delete_queue(QueueId(2))
    lines = await queue_log(store, sim, events=("REMOVEMEMBER",), configure=False)
    assert lines == [["1005", "NONE", "602", "Local/101", "REMOVEMEMBER", ""]]


async def test_an_overflow_leaves_one_queue_with_timeout_and_enters_the_next(
    store: Store,
) -> None:
    sim = Recorded("ringall", agents=0, max_wait=30, overflow=QueueTarget(QueueId(2)))
    sim.add_extension(1)
    sim.add_queue(2, "ringall", enrolled=[1])
    sim.login("101")
    sim.arrive("c1")
    sim.advance(30)  # max_wait: over to 602, where 101 rings
    sim.advance(2)
    sim.answer("c1", "101")
    sim.advance(10)
    sim.hangup("c1")
    (ring,) = of_type(sim.log, Ring)
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    assert lines == [
        ["1000", "c1", "601", "NONE", "ENTERQUEUE", "", "5550001", "1"],
        # EXITWITHTIMEOUT(position|origposition|waittime); the same callid enters 602.
        ["1030", "c1", "601", "NONE", "EXITWITHTIMEOUT", "1", "1", "30"],
        ["1030", "c1", "602", "NONE", "ENTERQUEUE", "", "5550001", "1"],
        ["1032", "c1", "602", "Local/101", "CONNECT", "2", ring.ring_id, "2"],
        ["1042", "c1", "602", "Local/101", "COMPLETECALLER", "2", "10", "1"],
    ]


async def test_a_caller_asking_for_a_callback_exits_with_a_key_and_the_callback_enters(
    store: Store,
) -> None:
    sim = Recorded("ringall", agents=1, logged_in=False)
    sim.arrive("c1")
    sim.advance(10)
    sim.callback("c1", "5559999")
    sim.hangup("c1")  # the caller's leg goes; the callback waits on
    sim.advance(50)
    sim.login("101")
    sim.answer("c1", "101")
    sim.advance(20)
    sim.hangup("c1")
    (ring,) = of_type(sim.log, Ring)
    lines = await queue_log(store, sim, events=CALL_EVENTS)
    assert [line[4:] for line in lines] == [
        ["ENTERQUEUE", "", "5550001", "1"],
        # EXITWITHKEY(key|position|origposition|waittime): the key is not known.
        ["EXITWITHKEY", "", "1", "1", "10"],
        ["ENTERQUEUE", "", "5559999", "1"],  # the number to call back
        ["CONNECT", "50", ring.ring_id, "0"],
        ["COMPLETECALLER", "50", "20", "1"],
    ]
