"""Ring ids on the wire (an addition to contract v1, issue 9 item 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ringmaster.contract import ContractError, parse_inbound, render
from ringmaster.engine.commands import CancelRing, PublishCallRinging, RejectInput, Ring
from ringmaster.engine.events import PbxEvent, RingAnswered, RingFailed
from ringmaster.engine.model import CallId, CancelReason, QueueId, RingFailure, TenantId

P = "rm"
T = TenantId(7)
C = CallId("c-1")
NOW = 1_795_000_000.0


def parse(kind: str, payload: Any) -> PbxEvent:
    return parse_inbound(P, f"{P}/7/pbx/{kind}", json.dumps(payload).encode())


def test_ring_cancel_and_ringing_event_carry_the_ring_id() -> None:
    ring = json.loads(render(P, Ring(T, C, "101", QueueId(3), 15, "555", "4.2"), now=NOW).payload)
    assert ring["ring_id"] == "4.2"
    cancel = json.loads(
        render(P, CancelRing(T, C, "101", CancelReason.TIMEOUT, "4.2"), now=NOW).payload
    )
    assert cancel["ring_id"] == "4.2"
    ringing = json.loads(render(P, PublishCallRinging(T, C, QueueId(3), "101", NOW, "4.2")).payload)
    assert ringing["ring_id"] == "4.2"


def test_the_pbx_may_echo_the_ring_id_in_answered_and_ring_failed() -> None:
    assert parse("call/answered", {"call_id": "c-1", "extension": "101", "ring_id": "4.2"}) == (
        RingAnswered(T, C, "101", ring_id="4.2")
    )
    failed = {"call_id": "c-1", "extension": "101", "reason": "busy", "ring_id": "4.2"}
    assert parse("call/ring_failed", failed) == RingFailed(
        T, C, "101", RingFailure.BUSY, ring_id="4.2"
    )
    # without it, v1's meaning
    assert parse("call/answered", {"call_id": "c-1", "extension": "101"}) == RingAnswered(
        T, C, "101"
    )
    assert parse("call/answered", {"call_id": "c-1", "extension": "101", "ring_id": None}) == (
        RingAnswered(T, C, "101")
    )


@pytest.mark.parametrize("ring_id", ["", 42, "x" * 65, ["4.2"]])
def test_a_ring_id_that_is_not_a_short_string_is_refused(ring_id: Any) -> None:
    with pytest.raises(ContractError) as info:
        parse("call/answered", {"call_id": "c-1", "extension": "101", "ring_id": ring_id})
    assert "ring_id" in info.value.error


def test_an_error_echoes_the_ring_id_as_it_came() -> None:
    event = RingFailed(T, C, "101", RingFailure.NO_ANSWER, ring_id="4.2")
    echoed = json.loads(render(P, RejectInput(event, "nope", NOW)).payload)["payload"]
    assert echoed == {"call_id": "c-1", "extension": "101", "reason": "no_answer", "ring_id": "4.2"}
    assert parse("call/ring_failed", echoed) == event
