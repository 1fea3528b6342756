"""History in the store: the migration, the writes in the turn's transaction, and real call
lives (the engine on its virtual clock, each turn's commands through `HistoryRecorder`
into SQLite), read back as the API reads them."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ringmaster.contract import OutboxMessage
from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    QueueId,
    QueueTarget,
    RingFailure,
)
from ringmaster.engine.records import StateChanges
from ringmaster.history import AgentActivity, HistoryRecorder
from ringmaster.store import Store
from ringmaster.store.history import VisitFilter, VisitRow
from tests.engine.sim import Sim, T, rings
from tests.store_backends import INTEGRITY_ERRORS, Databases

Turn = tuple[float, ev.Event | None, list[Command]]


class Recorded(Sim):
    """A `Sim` that keeps each turn: the time, what the engine handled, what it decided."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.turns: list[Turn] = []
        super().__init__(*args, **kwargs)

    def send(self, event: ev.Event) -> list[Command]:
        out = super().send(event)
        self.turns.append((self.now, event, out))
        return out

    def advance(self, seconds: float) -> list[Command]:
        target = self.now + seconds
        out: list[Command] = []
        while (deadline := self.engine.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            due = self.engine.handle_timer(self.now)
            self.turns.append((self.now, None, due))
            out += due
            self.store.apply(self.engine.take_changes())
        self.now = target
        self.log += out
        return out


async def store_config(store: Store, sim: Sim) -> None:
    """The sim's configuration in the store, with the same ids (the history names queues
    and agents from it)."""
    async with store.transaction() as tx:
        for event in sim.store.config:
            match event:
                case ev.TenantSaved():
                    if await tx.tenant(event.tenant.tenant_id) is None:
                        await tx.insert_tenant(event.tenant.tenant_id, event.tenant.name)
                case ev.ExtensionSaved():
                    extension = event.extension
                    if await tx.extension(extension.extension_id) is None:
                        stored = await tx.insert_extension(
                            extension.tenant_id, extension.number, ""
                        )
                        assert stored.extension_id == extension.extension_id
                case ev.QueueSaved():
                    if await tx.queue(event.queue.queue_id) is None:
                        # Its overflow may name a queue not stored yet.
                        queue = replace(event.queue, overflow=HangupTarget())
                        assert (await tx.insert_queue(queue)).queue_id == queue.queue_id
                case ev.DidRouteSaved():
                    route = event.route
                    if await tx.route_by_did(route.tenant_id, route.did) is None:
                        await tx.insert_route(route)
                case _:
                    pass


async def play(store: Store, turns: list[Turn], recorder: HistoryRecorder | None = None) -> None:
    """Each turn's history written as the service writes it: in the turn's commit."""
    recorder = recorder or HistoryRecorder()
    for now, event, commands in turns:
        writes = recorder.record(event, commands, now)
        await store.commit(StateChanges(), [], None, writes)


@pytest.fixture
async def store(database: Databases) -> Any:
    async with await Store.open(database("history.sqlite3")) as opened:
        yield opened


async def history_of(store: Store, call_id: str) -> list[VisitRow]:
    async with store.history() as reader:
        return await reader.call(T, CallId(call_id))


def brief(visit: VisitRow) -> tuple[Any, ...]:
    """The figures a test checks, in a line: queue, entry, answer, end, outcome, wait, talk."""
    return (
        visit.visit,
        visit.queue_id,
        visit.queue_number,
        visit.entered_at,
        visit.position,
        visit.answered_at,
        visit.agent_number,
        visit.ended_at,
        visit.outcome,
        visit.reason,
        visit.wait_s,
        visit.talk_s,
    )


def ring_brief(visit: VisitRow) -> list[tuple[Any, ...]]:
    return [
        (r.extension, r.started_at, r.ended_at, r.outcome, r.cancel_reason) for r in visit.rings
    ]


# --- the schema and the transaction ---------------------------------------------------


async def test_the_migration_makes_the_history_tables(tmp_path: Path) -> None:
    # SQLite only: reads sqlite_master (test_postgres_store.py compares the two schemas).
    async with await Store.open(tmp_path / "s.sqlite3"):
        pass
    with sqlite3.connect(tmp_path / "s.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"call_visits", "call_rings", "agent_activity"} <= tables
    assert {
        "call_visits_ended",
        "call_visits_entered",
        "call_rings_visit",
        "agent_activity_at",
    } <= tables


async def test_history_is_written_in_the_turns_own_transaction(store: Store) -> None:
    sim = Recorded("linear", agents=1)
    await store_config(store, sim)
    sim.arrive("c1")
    message = OutboxMessage("t", b"x", retain=False)
    # A history write SQLite refuses (a kind the schema does not know) takes the
    # turn's outbox message down with it: one transaction.
    bad = AgentActivity(T, "101", 1.0, "nonsense", state=AgentStatus.AVAILABLE)  # type: ignore[arg-type]
    with pytest.raises(INTEGRITY_ERRORS):
        await store.commit(StateChanges(), [message], None, [bad])
    assert await store.pending_outbox() == []
    now, event, commands = sim.turns[-1]
    writes = HistoryRecorder().record(event, commands, now)
    (seq,) = await store.commit(StateChanges(), [message], None, writes)
    assert await store.pending_outbox() == [(seq, message)]
    assert [v.outcome for v in await history_of(store, "c1")] == [None]  # open


# --- call lives, from the engine ------------------------------------------------------


async def test_a_call_rung_twice_timed_out_then_answered_and_completed(store: Store) -> None:
    sim = Recorded("linear", agents=2, timeout=15, retry=5)
    await store_config(store, sim)
    start = sim.now
    sim.send(ev.CallArrived(T, CallId("c1"), "+100", "5550001", "Ann", priority=2))
    sim.advance(15)  # 101 times out; 102, untried, rings at once
    sim.advance(5)  # 102 rings
    sim.answer("c1", "102")
    sim.advance(30)
    sim.hangup("c1")
    await play(store, sim.turns)
    (visit,) = await history_of(store, "c1")
    assert (visit.did, visit.caller_id, visit.caller_name, visit.priority) == (
        "+100",
        "5550001",
        "Ann",
        2,
    )
    assert (visit.queue_name, visit.agent_extension_id, visit.arrived_at) == ("Queue 1", 2, start)
    assert brief(visit) == (
        1,
        1,
        "601",
        start,
        1,
        start + 20,
        "102",
        start + 50,
        "completed",
        "",
        20.0,
        30.0,
    )
    assert ring_brief(visit) == [
        ("101", start, start + 15, "timeout", ""),
        ("102", start + 15, start + 20, "answered", ""),
    ]
    async with store.history() as reader:
        activity = await reader.activity(T)
    assert [(a.extension, a.at, a.kind, a.reason) for a in activity if a.kind != "state"] == [
        ("101", start, "enrol", ""),
        ("102", start, "enrol", ""),
        ("101", start, "login", ""),
        ("102", start, "login", ""),
        ("101", start + 15, "ring_unanswered", "timeout"),
    ]


async def test_an_abandoned_call(store: Store) -> None:
    sim = Recorded("ringall", agents=2)
    await store_config(store, sim)
    start = sim.now
    sim.arrive("c1")
    sim.advance(9)
    sim.hangup("c1")
    await play(store, sim.turns)
    (visit,) = await history_of(store, "c1")
    assert brief(visit) == (
        1,
        1,
        "601",
        start,
        1,
        None,
        None,
        start + 9,
        "abandoned",
        "",
        9.0,
        None,
    )
    assert ring_brief(visit) == [
        ("101", start, start + 9, "cancelled", "caller_hangup"),
        ("102", start, start + 9, "cancelled", "caller_hangup"),
    ]


async def test_overflowed_to_a_second_queue_and_answered_there(store: Store) -> None:
    sim = Recorded("ringall", agents=1, max_wait=30, overflow=QueueTarget(QueueId(2)))
    sim.add_extension(2)
    sim.add_queue(2, "ringall", enrolled=[2])
    sim.login("102")
    await store_config(store, sim)
    start = sim.now
    ((_, rung),) = rings(sim.arrive("c1"))
    assert rung == "101"
    sim.fail("c1", "101", RingFailure.BUSY)
    sim.advance(30)  # max_wait: over to queue 2, where 102 rings
    sim.answer("c1", "102")
    sim.advance(40)
    sim.hangup("c1")
    await play(store, sim.turns)
    first, second = await history_of(store, "c1")
    assert brief(first) == (
        1,
        1,
        "601",
        start,
        1,
        None,
        None,
        start + 30,
        "overflowed",
        "max_wait",
        30.0,
        None,
    )
    assert first.overflow_queue_id == 2
    assert ring_brief(first)[0] == ("101", start, start, "busy", "")
    assert brief(second) == (
        2,
        2,
        "602",
        start + 30,
        1,
        start + 30,
        "102",
        start + 70,
        "completed",
        "",
        0.0,
        40.0,
    )
    assert (second.arrived_at, second.caller_id) == (start, "5550001")
    assert ring_brief(second) == [("102", start + 30, start + 30, "answered", "")]


async def test_a_call_to_a_did_without_a_route_is_rejected(store: Store) -> None:
    sim = Recorded("ringall", agents=1)
    await store_config(store, sim)
    sim.arrive("c1", "+199")
    await play(store, sim.turns)
    (visit,) = await history_of(store, "c1")
    assert (visit.queue_id, visit.outcome, visit.reason, visit.did, visit.ended_at) == (
        None,
        "rejected",
        "no_route",
        "+199",
        sim.now,
    )


async def test_a_call_refused_by_a_full_queue_is_rejected_in_that_queue(store: Store) -> None:
    sim = Recorded("ringall", agents=0, max_len=1)
    await store_config(store, sim)
    sim.arrive("c1")
    sim.arrive("c2")
    await play(store, sim.turns)
    (visit,) = await history_of(store, "c2")
    assert (visit.queue_id, visit.queue_name, visit.outcome, visit.reason) == (
        1,
        "Queue 1",
        "rejected",
        "queue_full",
    )


async def test_a_callback_waits_on_as_a_visit_of_its_own(store: Store) -> None:
    sim = Recorded("ringall", agents=1, logged_in=False)
    await store_config(store, sim)
    start = sim.now
    sim.arrive("c1")
    sim.advance(10)
    sim.callback("c1", "5559999")
    sim.hangup("c1")  # the caller's leg goes; the callback waits on
    sim.advance(50)
    sim.login("101")
    sim.answer("c1", "101")
    sim.advance(20)
    sim.hangup("c1")
    await play(store, sim.turns)
    caller, callback = await history_of(store, "c1")
    assert brief(caller) == (
        1,
        1,
        "601",
        start,
        1,
        None,
        None,
        start + 10,
        "callback",
        "",
        10.0,
        None,
    )
    assert callback.callback_number == "5559999"
    assert brief(callback) == (
        2,
        1,
        "601",
        start + 10,
        1,
        start + 60,
        "101",
        start + 80,
        "completed",
        "",
        50.0,
        20.0,
    )
    assert ring_brief(callback) == [("101", start + 60, start + 60, "answered", "")]


async def test_a_call_hung_up_with_its_removed_queue_ends_overflowed(store: Store) -> None:
    sim = Recorded("ringall", agents=1)
    await store_config(store, sim)
    start = sim.now
    sim.arrive("c1")
    sim.advance(5)
    sim.configure(ev.QueueRemoved(QueueId(1)))
    await play(store, sim.turns)
    (visit,) = await history_of(store, "c1")
    assert (visit.outcome, visit.reason, visit.ended_at) == (
        "overflowed",
        "queue_removed",
        start + 5,
    )
    assert ring_brief(visit) == [("101", start, start + 5, "cancelled", "overflow")]


async def test_a_list_of_visits_by_queue_time_and_outcome(store: Store) -> None:
    sim = Recorded("ringall", agents=1)
    await store_config(store, sim)
    start = sim.now
    sim.arrive("c1")
    sim.answer("c1", "101")
    sim.advance(10)
    sim.hangup("c1")
    sim.arrive("c2")
    sim.hangup("c2")
    await play(store, sim.turns)
    async with store.history() as reader:
        everything = await reader.visits(VisitFilter(tenant_id=T))
        abandoned = await reader.visits(VisitFilter(tenant_id=T, outcome="abandoned"))
        later = await reader.visits(VisitFilter(since=start + 1))
        other = await reader.visits(VisitFilter(queue_id=QueueId(2)))
    assert [v.call_id for v in everything.items] == ["c1", "c2"]
    assert everything.total == 2
    assert [v.call_id for v in abandoned.items] == ["c2"]
    assert [v.call_id for v in later.items] == ["c2"]
    assert other.items == []


async def test_an_overflow_to_an_extension_names_it(store: Store) -> None:
    sim = Recorded("ringall", agents=1, max_wait=20, overflow=ExtensionTarget(ExtensionId(1)))
    await store_config(store, sim)
    sim.arrive("c1")
    sim.advance(20)
    await play(store, sim.turns)
    (visit,) = await history_of(store, "c1")
    assert (visit.outcome, visit.reason, visit.overflow_extension) == (
        "overflowed",
        "max_wait",
        "101",
    )


async def test_pruning_deletes_ended_history_before_the_cutoff_a_batch_at_a_time(
    store: Store,
) -> None:
    sim = Recorded("ringall", agents=1)
    await store_config(store, sim)
    for n in range(5):
        sim.arrive(f"old{n}")
        sim.hangup(f"old{n}")
    sim.advance(100)
    cutoff = sim.now
    sim.arrive("waiting")  # open: kept whatever its age
    sim.advance(100)
    sim.arrive("new")
    sim.hangup("new")
    await play(store, sim.turns)
    # Before the cutoff: 5 ended visits, and 12 activities of 101 (its enrolment, its
    # login, and each call's ringing and available again); each batch takes up to 3 of each.
    batches = [await store.prune_history(cutoff, batch=3) for _ in range(5)]
    assert batches == [3 + 3, 2 + 3, 3, 3, 0]
    async with store.history() as reader:
        left = await reader.visits(VisitFilter(tenant_id=T))
        activity = await reader.activity(T)
        rings_left = [await reader.call(T, CallId(c)) for c in ("old0", "waiting")]
    assert [v.call_id for v in left.items] == ["waiting", "new"]
    assert min(a.at for a in activity) >= cutoff
    assert rings_left[0] == []
    # Rung every 20 s (15 s of ring, 5 of retry) for 100 s: its rings are all kept.
    assert [r.outcome for r in rings_left[1][0].rings] == [*["timeout"] * 5, None]


async def test_enrolments_are_recorded_when_they_change_and_a_removed_queue_unenrols(
    store: Store,
) -> None:
    sim = Recorded("ringall", agents=2, logged_in=False)
    sim.enrol(1, 1, penalty=2)  # a change of options: no second enrolment
    sim.configure(ev.AgentUnenrolled(QueueId(1), ExtensionId(2)))
    sim.configure(ev.AgentUnenrolled(QueueId(1), ExtensionId(2)))  # a duplicate
    sim.configure(ev.QueueRemoved(QueueId(1)))
    await store_config(store, sim)
    await play(store, sim.turns)
    async with store.history() as reader:
        activity = await reader.activity(T)
    assert [(a.extension, a.kind, a.queue_id) for a in activity] == [
        ("101", "enrol", 1),
        ("102", "enrol", 1),
        ("102", "unenrol", 1),
        ("101", "unenrol", 1),
    ]


async def test_a_restart_goes_on_with_the_rows_its_predecessor_opened(store: Store) -> None:
    sim = Recorded("ringall", agents=1, timeout=15)
    await store_config(store, sim)
    start = sim.now
    sim.arrive("c1")
    sim.arrive("c2")
    await play(store, sim.turns)
    sim.turns.clear()
    # Down for 20 s, during which queue 1 is deleted: c1 and c2 were waiting in it.
    sim.store.config = [
        e
        for e in sim.store.config
        if not isinstance(e, ev.QueueSaved | ev.AgentEnrolled | ev.DidRouteSaved)
    ]
    out = sim.restart(down_for=20)
    # As the service does: the restore's commands are a turn of their own.
    await play(store, [(sim.now, None, out)], HistoryRecorder({(T, "101"): AgentStatus.RINGING}))
    first, second = [await history_of(store, c) for c in ("c1", "c2")]
    assert [(v.outcome, v.reason, v.ended_at) for v in (*first, *second)] == [
        ("overflowed", "queue_removed", start + 20),
        ("overflowed", "queue_removed", start + 20),
    ]
    assert ring_brief(first[0]) == [("101", start, start + 20, "cancelled", "overflow")]
