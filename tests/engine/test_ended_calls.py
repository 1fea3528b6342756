"""Ended calls are remembered compactly (`engine/ended.py`), and read back as they ended."""

from __future__ import annotations

import gc

from ringmaster.engine import events as ev
from ringmaster.engine.model import CallId, CallPhase
from ringmaster.engine.records import CallRecord

from .sim import Sim, T, serve


def _stored(sim: Sim, call_id: str) -> CallRecord:
    record: CallRecord = sim.store.calls[(T, CallId(call_id))]
    return record


def test_an_ended_call_reads_back_as_it_was_stored_when_it_ended() -> None:
    sim = Sim("leastrecent", agents=2)
    serve(sim, "done", talk_s=30)  # completed, by an agent, with rings behind it
    sim.arrive("gone", skills={"spanish": 5})  # abandoned while ringing
    sim.hangup("gone")
    sim.hangup("early")  # a hangup before its call arrived
    sim.route("+200", extension=1)
    sim.arrive("routed", did="+200")
    ended = {c: _stored(sim, c) for c in ("done", "gone", "early", "routed")}
    assert {c: r.phase for c, r in ended.items()} == {
        "done": CallPhase.COMPLETED,
        "gone": CallPhase.ABANDONED,
        "early": CallPhase.ABANDONED,
        "routed": CallPhase.ROUTED,
    }
    sim.advance(1)  # each kept compact since the end of the event that ended it
    for call_id, record in ended.items():
        assert sim.call(call_id).to_record() == record
    # ...and a restart reads them from the store the same way.
    sim.restart()
    for call_id, record in ended.items():
        assert sim.call(call_id).to_record() == record


def test_a_late_event_for_a_compact_ended_call_is_still_recognised() -> None:
    sim = Sim("ringall", agents=1)
    serve(sim, "c1", talk_s=5)
    sim.advance(60)
    assert sim.hangup("c1") == []  # a duplicate hangup: known, nothing to do
    assert sim.fail("c1", "101") == []  # the failure of a ring long over
    sim.advance(120)
    sim.login("101")  # the first event past ended_call_ttl forgets it
    assert sim.engine.call(T, CallId("c1")) is None


def test_remembered_ended_calls_are_not_walked_by_the_garbage_collector() -> None:
    # Tens of thousands of ended calls are remembered at a busy centre's rate; kept
    # as objects, each full collection walked them all (pauses of 55 ms at 500/s).
    sim = Sim("ringall", agents=0)
    engine, now = sim.engine, sim.now

    def abandon(first: int, n: int) -> None:
        for i in range(first, first + n):
            engine.handle(ev.CallArrived(T, CallId(f"x{i}"), "+100", "5550001", "", 0, {}), now)
            engine.handle(ev.CallHungUp(T, CallId(f"x{i}")), now)
            engine.take_changes()

    abandon(0, 10)  # every structure the engine grows has grown once
    gc.collect()
    before = len(gc.get_objects())
    abandon(10, 2_000)
    gc.collect()
    gc.collect()  # a tuple of tuples is untracked inner tuples first: two looks at most
    assert len(engine._ended) == 2_010  # all remembered
    assert len(gc.get_objects()) - before < 100  # but not one tracked object each
