"""The history module, from hand-built events and commands: every outcome, every ring's."""

from __future__ import annotations

import pytest

from ringmaster.engine import events as ev
from ringmaster.engine.commands import (
    CancelRing,
    Originate,
    PublishAgentState,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallbackRequested,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    PublishCallRejected,
    PublishCallRinging,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CancelReason,
    ExtensionId,
    QueueId,
    RingFailure,
    TenantId,
)
from ringmaster.history import (
    AgentActivity,
    Arrival,
    CallRejected,
    EnrolmentChanged,
    HistoryRecorder,
    QueueGone,
    RingEnded,
    RingStarted,
    VisitAnswered,
    VisitEnded,
    VisitOpened,
    activity_kinds,
)
from tests.engine.sim import Sim

T = TenantId(1)
C = CallId("c1")
Q1 = QueueId(1)
Q2 = QueueId(2)
NOW = 1_000.0


def queued(queue: QueueId = Q1, at: float = NOW, position: int = 1) -> PublishCallQueued:
    return PublishCallQueued(T, C, queue, "+100", "5550001", position, at)


def test_an_arrival_opens_a_visit_with_the_caller_it_named() -> None:
    arrived = ev.CallArrived(T, C, "+100", "5550001", "Ann", priority=3)
    writes = HistoryRecorder().record(arrived, [queued(position=2)], NOW)
    assert writes == [
        VisitOpened(T, C, Q1, NOW, 2, "+100", "5550001", Arrival("Ann", 3, NOW)),
    ]


def test_a_ring_starts_and_each_way_it_ends_has_its_outcome() -> None:
    recorder = HistoryRecorder()
    assert recorder.record(
        None,
        [
            Ring(T, C, "101", Q1, 15, "5550001", "1.1"),
            PublishCallRinging(T, C, Q1, "101", NOW, "1.1"),
        ],
        NOW,
    ) == [RingStarted(T, C, "1.1", "101", NOW)]
    # Cancelled by ringmaster: a timeout is the outcome `timeout` (a ring not
    # answered), any other reason is `cancelled`, with the reason.
    for reason in CancelReason:
        (ended,) = recorder.record(None, [CancelRing(T, C, "101", reason, "1.1")], NOW + 15)
        timeout = reason is CancelReason.TIMEOUT
        assert ended == RingEnded(
            T,
            C,
            "1.1",
            "101",
            NOW + 15,
            "timeout" if timeout else "cancelled",
            "" if timeout else reason.value,
            unanswered=timeout,
        )
    # Ended by the PBX: its reason is the outcome, and a ring not answered.
    for failure in RingFailure:
        failed = ev.RingFailed(T, C, "101", failure, ring_id=None)
        assert recorder.record(failed, [], NOW + 3) == [
            RingEnded(T, C, None, "101", NOW + 3, failure.value, unanswered=True)
        ]


def test_an_answer_and_a_completion() -> None:
    recorder = HistoryRecorder()
    answered = ev.RingAnswered(T, C, "101", ring_id="1.2")
    writes = recorder.record(
        answered,
        [
            CancelRing(T, C, "102", CancelReason.ANSWERED_ELSEWHERE, "1.3"),
            PublishCallAnswered(T, C, Q1, "101", wait_s=12.0, at=NOW),
        ],
        NOW,
    )
    assert writes == [
        RingEnded(T, C, "1.3", "102", NOW, "cancelled", "answered_elsewhere"),
        VisitAnswered(T, C, "101", NOW, "1.2"),
    ]
    completed = recorder.record(
        ev.CallHungUp(T, C), [PublishCallCompleted(T, C, Q1, "101", 30.0, NOW + 30)], NOW + 30
    )
    assert completed == [VisitEnded(T, C, "completed", NOW + 30, talk_s=30.0)]


def test_an_abandon() -> None:
    writes = HistoryRecorder().record(
        ev.CallHungUp(T, C),
        [
            CancelRing(T, C, "101", CancelReason.CALLER_HANGUP, "1.1"),
            PublishCallAbandoned(T, C, Q1, 9.0, NOW),
        ],
        NOW,
    )
    assert writes == [
        RingEnded(T, C, "1.1", "101", NOW, "cancelled", "caller_hangup"),
        VisitEnded(T, C, "abandoned", NOW),
    ]


def test_an_overflow_to_a_queue_ends_one_visit_and_opens_the_next() -> None:
    writes = HistoryRecorder().record(
        None,
        [
            PublishCallOverflowed(T, C, Q1, "max_wait", 30.0, NOW, to_queue=Q2),
            queued(Q2, position=1),
        ],
        NOW,
    )
    assert writes == [
        VisitEnded(T, C, "overflowed", NOW, "max_wait", queue_id=Q1, overflow_queue_id=Q2),
        # Not the arrival's turn: the caller's details are the previous visit's.
        VisitOpened(T, C, Q2, NOW, 1, "+100", "5550001", None),
    ]


def test_a_queue_that_refuses_an_overflowing_call_is_a_visit_ended_at_once() -> None:
    writes = HistoryRecorder().record(
        None,
        [
            PublishCallOverflowed(T, C, Q1, "max_wait", 30.0, NOW, to_queue=Q2),
            PublishCallOverflowed(T, C, Q2, "queue_full", 0.0, NOW, to_extension="201"),
            RouteToExtension(T, C, "201"),
        ],
        NOW,
    )
    assert writes == [
        VisitEnded(T, C, "overflowed", NOW, "max_wait", queue_id=Q1, overflow_queue_id=Q2),
        VisitOpened(T, C, Q2, NOW, None, outcome="overflowed", reason="queue_full"),
    ]


def test_an_overflow_to_a_hangup_and_a_call_hung_up_with_its_queue() -> None:
    recorder = HistoryRecorder()
    assert recorder.record(
        None,
        [
            PublishCallOverflowed(T, C, Q1, "queue_empty", 5.0, NOW),
            RouteToHangup(T, C, "queue_empty"),
        ],
        NOW,
    ) == [
        VisitEnded(T, C, "overflowed", NOW, "queue_empty", queue_id=Q1),
        # The hangup finds the visit closed already: it changes nothing.
        VisitEnded(T, C, "overflowed", NOW, "queue_empty"),
    ]
    # A removed queue hangs its calls up with no event of their own.
    assert recorder.record(
        ev.QueueRemoved(Q1),
        [
            CancelRing(T, C, "101", CancelReason.OVERFLOW, "1.1"),
            RouteToHangup(T, C, "queue_removed"),
        ],
        NOW,
    ) == [
        QueueGone(Q1, NOW),
        RingEnded(T, C, "1.1", "101", NOW, "cancelled", "overflow"),
        VisitEnded(T, C, "overflowed", NOW, "queue_removed"),
    ]


def test_a_rejected_call_is_a_visit_of_its_own() -> None:
    arrived = ev.CallArrived(T, C, "+199", "5550001", "Ann", priority=1)
    writes = HistoryRecorder().record(
        arrived,
        [RouteToHangup(T, C, "no_route"), PublishCallRejected(T, C, "+199", "no_route", NOW)],
        NOW,
    )
    assert writes == [
        VisitEnded(T, C, "overflowed", NOW, "no_route"),  # no open visit: nothing
        CallRejected(T, C, "+199", "no_route", NOW, "5550001", "Ann", 1),
    ]


def test_a_callback_ends_the_callers_visit_and_opens_the_callbacks() -> None:
    recorder = HistoryRecorder()
    assert recorder.record(
        ev.CallbackRequested(T, C, "5559999"),
        [PublishCallbackRequested(T, C, Q1, "5559999", 2, NOW)],
        NOW,
    ) == [
        VisitEnded(T, C, "callback", NOW),
        VisitOpened(T, C, Q1, NOW, 2, callback_number="5559999"),
    ]
    # Its answer is the agent's, before the PBX calls the customer back.
    assert recorder.record(
        ev.RingAnswered(T, C, "101"),
        [Originate(T, C, "101", "5559999"), PublishCallAnswered(T, C, Q1, "101", 60.0, NOW + 60)],
        NOW + 60,
    ) == [VisitAnswered(T, C, "101", NOW + 60)]


def test_enrolments_come_from_the_configuration_the_turn_applied() -> None:
    recorder = HistoryRecorder()
    assert recorder.record(ev.AgentEnrolled(Q1, ExtensionId(1)), [], NOW) == [
        EnrolmentChanged(ExtensionId(1), Q1, NOW, "enrol")
    ]
    assert recorder.record(ev.AgentUnenrolled(Q1, ExtensionId(1)), [], NOW) == [
        EnrolmentChanged(ExtensionId(1), Q1, NOW, "unenrol")
    ]


@pytest.mark.parametrize(
    ("before", "after", "kinds"),
    [
        ("logged_out", "available", ["login"]),
        ("logged_out", "paused", ["login", "pause"]),
        ("available", "paused", ["pause"]),
        ("paused", "available", ["unpause"]),
        ("paused", "logged_out", ["logout"]),
        ("available", "logged_out", ["logout"]),
        ("busy", "wrapup", ["wrapup_start"]),
        ("wrapup", "available", ["wrapup_end"]),
        ("wrapup", "paused", ["wrapup_end", "pause"]),
        ("available", "ringing", ["state"]),
        ("ringing", "busy", ["state"]),
        ("busy", "available", ["state"]),
    ],
)
def test_what_a_change_of_state_stands_for(before: str, after: str, kinds: list[str]) -> None:
    got = activity_kinds(AgentStatus(before), AgentStatus(after))
    assert [kind for kind, _ in got] == kinds


def test_agent_states_are_told_apart_by_the_one_before() -> None:
    recorder = HistoryRecorder({(T, "101"): AgentStatus.AVAILABLE})
    paused = PublishAgentState(T, "101", AgentStatus.PAUSED, NOW, "lunch")
    back = PublishAgentState(T, "101", AgentStatus.AVAILABLE, NOW + 60)
    new = PublishAgentState(T, "102", AgentStatus.AVAILABLE, NOW)  # unknown: was logged out
    assert recorder.record(None, [paused, back, new], NOW) == [
        AgentActivity(T, "101", NOW, "pause", "lunch", AgentStatus.PAUSED),
        AgentActivity(T, "101", NOW + 60, "unpause", "", AgentStatus.AVAILABLE),
        AgentActivity(T, "102", NOW, "login", "", AgentStatus.AVAILABLE),
    ]


def test_a_supervisors_move_ends_the_visit_overflowed_and_opens_the_next() -> None:
    # The engine's own commands for a move of a ringing call (tests/engine/test_supervisor.py).
    sim = Sim("ringall", agents=1)
    sim.add_queue(2, "ringall")
    sim.arrive("c1")
    move = ev.MoveCall(T, C, Q2)
    commands = [c for c in sim.send(move) if not isinstance(c, PublishAgentState)]
    writes = HistoryRecorder().record(move, commands, sim.now)
    assert writes == [
        RingEnded(T, C, "1.1", "101", sim.now, "cancelled", "overflow"),
        VisitEnded(T, C, "overflowed", sim.now, "supervisor", queue_id=Q1, overflow_queue_id=Q2),
        VisitOpened(T, C, Q2, sim.now, 1, "+100", "5550001", None),
    ]
