"""The MQTT contract v1: inbound payloads -> engine events, commands -> messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ringmaster.contract import (
    INTERNAL_ERROR,
    ContractError,
    OutboxMessage,
    format_time,
    inbound_filters,
    internal_error,
    is_monitoring,
    parse_inbound,
    render,
    render_error,
    render_internal_error,
    status_message,
    will_payload,
)
from ringmaster.engine import commands as cmd
from ringmaster.engine import events as ev
from ringmaster.engine.model import (
    AgentStatus,
    CallId,
    CancelReason,
    DeviceState,
    Presence,
    QueueId,
    RingFailure,
    TenantId,
)

P = "rm"
T = TenantId(7)
C = CallId("c-1")
Q = QueueId(3)
NOW = datetime(2026, 11, 25, 9, 31, 17, 123000, tzinfo=UTC).timestamp()
AT = "2026-11-25T09:31:17.123Z"


def parse(kind: str, payload: Any, tenant: str = "7") -> ev.PbxEvent:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_inbound(P, f"{P}/{tenant}/pbx/{kind}", raw)


def bad_arrival(error: str, **fields: Any) -> tuple[str, dict[str, Any], str]:
    """A `call/arrived` case: call "c" on DID "1" with `fields`, and the error it gets."""
    return "call/arrived", {"call_id": "c", "did": "1", **fields}, error


def rejected(kind: str, payload: Any, tenant: str = "7") -> ContractError:
    with pytest.raises(ContractError) as info:
        parse(kind, payload, tenant)
    return info.value


def body(message: OutboxMessage) -> Any:
    return json.loads(message.payload)


def strict(payload: bytes) -> Any:
    """Read JSON as a strict reader would: UTF-8, no NaN, no lone surrogate escapes."""

    def no_constant(name: str) -> Any:
        raise ValueError(name)

    text = payload.decode("utf-8")
    value = json.loads(text, parse_constant=no_constant)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


# --- inbound: valid ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "payload", "event"),
    [
        (
            "call/arrived",
            {"call_id": "c-1", "did": "+4930123"},
            ev.CallArrived(T, C, "+4930123"),
        ),
        (
            "call/arrived",
            {
                "call_id": "c-1",
                "did": "030123",
                "caller_id": "+4917",
                "caller_name": "Ada",
                "priority": 9,
            },
            ev.CallArrived(T, C, "030123", caller_id="+4917", caller_name="Ada", priority=9),
        ),
        (
            "call/arrived",
            {"call_id": "c-1", "did": "1", "caller_id": None, "caller_name": None},
            ev.CallArrived(T, C, "1"),
        ),
        (
            "call/arrived",
            {"call_id": "c-1", "did": "1", "skills": {"spanish": 5, "billing.2nd-line_x": 10}},
            ev.CallArrived(T, C, "1", skills={"spanish": 5, "billing.2nd-line_x": 10}),
        ),
        (
            "call/arrived",
            {"call_id": "c-1", "did": "1", "skills": {"9" + "z" * 31: 1}},
            ev.CallArrived(T, C, "1", skills={"9" + "z" * 31: 1}),
        ),
        ("call/arrived", {"call_id": "c-1", "did": "1", "skills": {}}, ev.CallArrived(T, C, "1")),
        ("call/answered", {"call_id": "c-1", "extension": "101"}, ev.RingAnswered(T, C, "101")),
        (
            "call/callback_requested",
            {"call_id": "c-1", "number": "+4930123"},
            ev.CallbackRequested(T, C, "+4930123"),
        ),
        (
            "call/callback_requested",
            {"call_id": "c-1", "number": "0" * 32},
            ev.CallbackRequested(T, C, "0" * 32),
        ),
        (
            "call/callback_requested",
            {"call_id": "c-1", "number": "+" + "1" * 31},
            ev.CallbackRequested(T, C, "+" + "1" * 31),
        ),
        (
            "call/ring_failed",
            {"call_id": "c-1", "extension": "101", "reason": "no_answer"},
            ev.RingFailed(T, C, "101", RingFailure.NO_ANSWER),
        ),
        ("call/hangup", {"call_id": "c-1"}, ev.CallHungUp(T, C)),
        ("call/hangup", {"call_id": "c-1", "cause": "normal"}, ev.CallHungUp(T, C, "normal")),
        (
            "agent/state",
            {"extension": "101", "state": "paused", "reason": "lunch"},
            ev.AgentPresenceChanged(T, "101", Presence.PAUSED, "lunch"),
        ),
        (
            "agent/state",
            {"extension": "101", "state": "logged_out"},
            ev.AgentPresenceChanged(T, "101", Presence.LOGGED_OUT),
        ),
        (
            "extension/state",
            {"extension": "101", "state": "in_use"},
            ev.DeviceStateChanged(T, "101", DeviceState.IN_USE),
        ),
    ],
)
def test_valid_inbound_becomes_engine_event(kind: str, payload: Any, event: ev.PbxEvent) -> None:
    assert parse(kind, payload) == event


def test_extra_fields_are_ignored() -> None:
    payload = {"call_id": "c-1", "extension": "101", "channel": "SIP/101-0001", "x": [1]}
    assert parse("call/answered", payload) == ev.RingAnswered(T, C, "101")


def test_limits_are_inclusive() -> None:
    event = parse("call/answered", {"call_id": "c" * 64, "extension": "1" * 20})
    assert event == ev.RingAnswered(T, CallId("c" * 64), "1" * 20)
    assert parse("call/arrived", {"call_id": "c", "did": "+" + "1" * 31, "priority": 0})


def test_overlong_caller_name_is_cut_not_rejected() -> None:
    event = parse("call/arrived", {"call_id": "c-1", "did": "1", "caller_name": "x" * 1000})
    assert isinstance(event, ev.CallArrived)
    assert event.caller_name == "x" * 256


def test_prefix_with_levels() -> None:
    event = parse_inbound(
        "acme/rm", "acme/rm/12/pbx/call/hangup", json.dumps({"call_id": "c-1"}).encode()
    )
    assert event == ev.CallHungUp(TenantId(12), C)


# --- inbound: invalid -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("call/arrived", {"did": "1"}, "call_id: Field required"),
        ("call/arrived", {"call_id": "", "did": "1"}, "call_id: String should have at least 1"),
        ("call/arrived", {"call_id": "c" * 65, "did": "1"}, "call_id: String should have at most"),
        ("call/arrived", {"call_id": 5, "did": "1"}, "call_id: Input should be a valid string"),
        ("call/arrived", {"call_id": "c"}, "did: Field required"),
        ("call/arrived", {"call_id": "c", "did": 4930}, "did: Input should be a valid string"),
        ("call/arrived", {"call_id": "c", "did": "+"}, "did: String should match pattern"),
        ("call/arrived", {"call_id": "c", "did": ""}, "did: String should match pattern"),
        ("call/arrived", {"call_id": "c", "did": "12a"}, "did: String should match pattern"),
        ("call/arrived", {"call_id": "c", "did": "1+2"}, "did: String should match pattern"),
        ("call/arrived", {"call_id": "c", "did": "١٢"}, "did: String should match pattern"),
        ("call/arrived", {"call_id": "c", "did": "1" * 33}, "did: String should have at most 32"),
        bad_arrival("priority: Input should be less than or equal to 9", priority=10),
        bad_arrival("priority: Input should be greater than or equal to 0", priority=-1),
        bad_arrival("priority: Input should be a valid integer", priority=True),
        bad_arrival("priority: Input should be a valid integer", priority=1.5),
        bad_arrival("priority: Input should be a valid integer", priority="1"),
        bad_arrival("caller_id: Input should be a valid string", caller_id=4917),
        bad_arrival("skills: Input should be a valid dictionary", skills=["spanish"]),
        bad_arrival("skills: Input should be a valid dictionary", skills=None),
        bad_arrival("skills.Spanish.[key]: String should match pattern", skills={"Spanish": 5}),
        bad_arrival("skills._x.[key]: String should match pattern", skills={"_x": 5}),
        bad_arrival("skills..[key]: String should match pattern", skills={"": 5}),
        bad_arrival(f"skills.{'s' * 33}.[key]: String should match pattern", skills={"s" * 33: 5}),
        bad_arrival(
            "skills.spanish: Input should be greater than or equal to 1", skills={"spanish": 0}
        ),
        bad_arrival(
            "skills.spanish: Input should be less than or equal to 10", skills={"spanish": 11}
        ),
        bad_arrival("skills.spanish: Input should be a valid integer", skills={"spanish": "5"}),
        bad_arrival("skills.spanish: Input should be a valid integer", skills={"spanish": True}),
        bad_arrival("skills.spanish: Input should be a valid integer", skills={"spanish": 5.0}),
        bad_arrival(
            "skills: Dictionary should have at most 50 items",
            skills={f"s{i}": 1 for i in range(51)},
        ),
        ("call/answered", {"call_id": "c"}, "extension: Field required"),
        ("call/answered", {"call_id": "c", "extension": ""}, "extension: String should have"),
        (
            "call/answered",
            {"call_id": "c", "extension": "1" * 21},
            "extension: String should have at most 20",
        ),
        ("call/answered", {"call_id": "c", "extension": 101}, "extension: Input should be"),
        (
            "call/ring_failed",
            {"call_id": "c", "extension": "101", "reason": "declined"},
            "reason: Input should be 'busy', 'rejected', 'unreachable' or 'no_answer'",
        ),
        ("call/ring_failed", {"call_id": "c", "extension": "101"}, "reason: Field required"),
        ("call/callback_requested", {"number": "+4930"}, "call_id: Field required"),
        (
            "call/callback_requested",
            {"call_id": "c" * 65, "number": "+4930"},
            "call_id: String should have at most 64",
        ),
        ("call/callback_requested", {"call_id": "c"}, "number: Field required"),
        (
            "call/callback_requested",
            {"call_id": "c", "number": 4930},
            "number: Input should be a valid string",
        ),
        (
            "call/callback_requested",
            {"call_id": "c", "number": ""},
            "number: String should match pattern",
        ),
        (
            "call/callback_requested",
            {"call_id": "c", "number": "+"},
            "number: String should match pattern",
        ),
        (
            "call/callback_requested",
            {"call_id": "c", "number": "030 123"},
            "number: String should match pattern",
        ),
        (
            "call/callback_requested",
            {"call_id": "c", "number": "1" * 33},
            "number: String should have at most 32",
        ),
        ("call/hangup", {}, "call_id: Field required"),
        ("call/hangup", {"call_id": "c", "cause": 16}, "cause: Input should be a valid string"),
        (
            "agent/state",
            {"extension": "101", "state": "ringing"},
            "state: Input should be 'available', 'paused' or 'logged_out'",
        ),
        ("agent/state", {"extension": "101"}, "state: Field required"),
        (
            "extension/state",
            {"extension": "101", "state": "available"},
            "state: Input should be 'idle', 'in_use', 'ringing' or 'unavailable'",
        ),
    ],
)
def test_invalid_field_is_rejected_naming_the_field(kind: str, payload: Any, message: str) -> None:
    error = rejected(kind, payload)
    assert error.tenant_id == 7
    assert error.topic == f"{P}/7/pbx/{kind}"
    assert error.error.startswith(message), error.error
    assert error.payload == payload


def test_every_invalid_field_is_named() -> None:
    error = rejected("call/ring_failed", {"call_id": "", "extension": "101", "reason": "x"})
    assert error.error.startswith("call_id: String should have at least 1 character; reason: ")


@pytest.mark.parametrize(
    ("payload", "message", "echo"),
    [
        (b"{not json", "payload: not valid JSON (Expecting property name", "{not json"),
        (b"", "payload: not valid JSON (Expecting value", ""),
        (b"\xff\xfe{}", "payload: not valid UTF-8", repr(b"\xff\xfe{}")),
        (b"[1, 2]", "payload: expected a JSON object, got an array", [1, 2]),
        (b'"c-1"', "payload: expected a JSON object, got a string", "c-1"),
        (b"null", "payload: expected a JSON object, got null", None),
        (b"[" * 50_000, "payload: not valid JSON (nested too deeply)", "[" * 1024 + "..."),
    ],
)
def test_payload_that_is_not_a_json_object(payload: bytes, message: str, echo: Any) -> None:
    error = rejected("call/hangup", payload)
    assert error.error.startswith(message), error.error
    assert error.payload == echo


def test_oversized_payload_is_rejected_unread() -> None:
    error = rejected("call/hangup", b"{" + b" " * 70_000 + b"}")
    assert error.error == "payload: larger than 65536 bytes"
    assert isinstance(error.payload, str)
    assert len(error.payload) <= 1024 + 3


def test_large_json_object_is_echoed_truncated() -> None:
    payload = {"call_id": "", "pad": "x" * 2000}
    error = rejected("call/hangup", payload)
    assert error.payload == json.dumps(payload, separators=(",", ":"))[:1024] + "..."


# --- inbound: text and JSON that SQLite, UTF-8 or a strict JSON reader cannot take ----


def raw(text: str) -> bytes:
    """JSON text as the PBX would send it: ASCII, lone surrogates as \\uXXXX escapes."""
    return text.encode("ascii")


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        (
            "call/hangup",
            raw(r'{"call_id": "fz\udfffp2"}'),
            r"call_id: not valid Unicode text (a lone surrogate, \udfff)",
        ),
        (
            "call/answered",
            raw(r'{"call_id": "\ud800", "extension": "101"}'),
            r"call_id: not valid Unicode text (a lone surrogate, \ud800)",
        ),
        (
            "call/arrived",
            raw(r'{"call_id": "c", "did": "1", "caller_name": "A\uDC00"}'),
            r"caller_name: not valid Unicode text (a lone surrogate, \udc00)",
        ),
        (
            "agent/state",
            raw(r'{"extension": "101", "state": "paused", "reason": "\udfff"}'),
            r"reason: not valid Unicode text (a lone surrogate, \udfff)",
        ),
        (
            "call/arrived",
            raw(r'{"call_id": "c", "did": "1", "skills": {"\udfff": 1}}'),
            r'skills: key "\udfff" is not valid Unicode text (a lone surrogate, \udfff)',
        ),
        # Ignored fields too, at any depth: they would be echoed on the error topic.
        (
            "call/hangup",
            raw(r'{"call_id": "c", "x": {"y": [1, "\udfff"]}}'),
            r"x.y.1: not valid Unicode text (a lone surrogate, \udfff)",
        ),
        (
            "call/hangup",
            raw(r'{"call_id": "c", "\ud800\u0000": 1}'),
            r'payload: key "\ud800\u0000" is not valid Unicode text (a lone surrogate, \ud800)',
        ),
        (
            "call/arrived",
            raw(r'{"call_id": "a\u0000b", "did": "1"}'),
            r"call_id: must not contain control characters (found \u0000 at position 1)",
        ),
        (
            "agent/state",
            raw(r'{"extension": "10\u009b1", "state": "available"}'),
            r"extension: must not contain control characters (found \u009b at position 2)",
        ),
        (
            "call/hangup",
            raw('{"call_id": "c", "call_id": "d"}'),
            'payload: duplicate key "call_id"',
        ),
        (
            "call/hangup",
            raw('{"call_id": "c", "x": {"a": 1, "a": 2}}'),
            'payload: duplicate key "a"',
        ),
        (
            "call/arrived",
            raw('{"call_id": "c", "did": "1", "priority": NaN}'),
            "payload: not valid JSON (NaN is not a JSON number)",
        ),
        (
            "call/arrived",
            raw('{"call_id": "c", "did": "1", "priority": -Infinity}'),
            "payload: not valid JSON (-Infinity is not a JSON number)",
        ),
        (
            "call/arrived",
            raw('{"call_id": "c", "did": "1", "priority": 1e400}'),
            "payload: not valid JSON (number 1e400 is out of range)",
        ),
    ],
)
def test_text_and_numbers_nothing_downstream_could_take_are_rejected(
    kind: str, payload: bytes, message: str
) -> None:
    error = rejected(kind, payload)
    assert error.error == message
    # The answer is always valid UTF-8 and strict JSON, the offending text escaped.
    answer = strict(render_error(P, error, now=NOW).payload)
    assert answer["error"] == message


def test_a_valid_surrogate_pair_is_text() -> None:
    event = parse(
        "call/arrived", raw(r'{"call_id": "c-1", "did": "1", "caller_name": "\ud83d\udcde"}')
    )
    assert isinstance(event, ev.CallArrived)
    assert event.caller_name == "\U0001f4de"


def test_control_characters_in_display_text_become_spaces() -> None:
    event = parse(
        "call/arrived",
        {"call_id": "c-1", "did": "1", "caller_id": "555\x00", "caller_name": "Ada\nLovelace\x7f"},
    )
    assert isinstance(event, ev.CallArrived)
    assert (event.caller_id, event.caller_name) == ("555 ", "Ada Lovelace ")


def test_a_lone_surrogate_is_echoed_as_the_text_of_its_escape() -> None:
    error = rejected("call/hangup", raw(r'{"call_id": "fz\udfffp2", "cause": "\u00e9"}'))
    message = render_error(P, error, now=NOW)
    message.payload.decode("utf-8")
    assert strict(message.payload)["payload"] == {"call_id": "fz\\udfffp2", "cause": "\u00e9"}


def test_render_never_raises_on_text_utf8_cannot_carry() -> None:
    # The engine's commands carry only validated text; should one ever not, its message
    # is still published, the character written as the text of its escape.
    message = render(P, cmd.PublishCallQueued(T, CallId("c\udfff"), Q, "1", "5\ud800", 1, NOW))
    assert strict(message.payload)["call_id"] == "c\\udfff"
    error = ContractError(7, "rm/7/pbx/call/hangup", "x\udfff", {"\udfff": ["\udfff"]})
    assert strict(render_error(P, error, now=NOW).payload)["payload"] == {"\\udfff": ["\\udfff"]}


def test_an_echo_that_cannot_be_written_does_not_cost_the_answer() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    error = ContractError(7, "rm/7/pbx/call/hangup", "bad", deep)
    assert strict(render_error(P, error, now=NOW).payload)["payload"] == "(not echoed)"


def test_internal_error_answer() -> None:
    message = render_internal_error(P, "rm/7/pbx/call/hangup", b'{"call_id": "c-1"}', now=NOW)
    assert message.topic == "rm/7/error"
    assert strict(message.payload) == {
        "topic": "rm/7/pbx/call/hangup",
        "error": INTERNAL_ERROR,
        "payload": {"call_id": "c-1"},
        "at": AT,
    }
    without_tenant = render_internal_error(P, "rm/x/pbx/call/hangup", b"\xff", now=NOW)
    assert without_tenant.topic == "rm/error"


@pytest.mark.parametrize(
    ("topic", "tenant"),
    [
        ("rm/0/pbx/call/hangup", None),
        ("rm/-1/pbx/call/hangup", None),
        ("rm/07/pbx/call/hangup", None),
        ("rm/ 7/pbx/call/hangup", None),
        ("rm/seven/pbx/call/hangup", None),
        ("rm//pbx/call/hangup", None),
        ("rm/1234567890123456789/pbx/call/hangup", None),
        ("other/7/pbx/call/hangup", None),
        ("rm", None),
        ("rm/7/pbx/call/parked", 7),
        ("rm/7/pbx/call", 7),
        ("rm/7/pbx/call/hangup/extra", 7),
        ("rm/7/cmd/ring", 7),
        ("rm/7", 7),
    ],
)
def test_bad_topic_is_rejected(topic: str, tenant: int | None) -> None:
    with pytest.raises(ContractError) as info:
        parse_inbound(P, topic, b'{"call_id": "c-1"}')
    assert info.value.tenant_id == tenant
    assert info.value.error.startswith("topic: ")
    assert info.value.payload == {"call_id": "c-1"}


def test_subscription_filter() -> None:
    assert inbound_filters("rm") == ["rm/+/pbx/#"]


# --- outbound ----------------------------------------------------------------------


def test_time_format() -> None:
    assert format_time(NOW) == AT
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
    assert format_time(NOW + 0.0009) == AT  # truncated to the millisecond


#: The queue the snapshots are of.
SALES: dict[str, Any] = {
    "queue_id": Q,
    "name": "Sales",
    "queue_number": "600",
    "strategy": "ringall",
    "status": "active",
}

SNAPSHOT = cmd.QueueSnapshot(
    **SALES,
    waiting=2,
    longest_wait_s=12.34567,
    agents={"available": 1, "busy": 2},
    offered=10,
    answered=7,
    abandoned=1,
    completed=6,
    overflowed=2,
    service_level_s=30,
    answered_within=5,
    abandoned_within=1,
    service_level_pct=100 * 5 / 7,
    callbacks=1,
)

RENDERED: list[tuple[cmd.Command, str, dict[str, Any], bool]] = [
    (
        cmd.Ring(T, C, "101", Q, 15, "+4917"),
        "rm/7/cmd/ring",
        {
            "call_id": "c-1",
            "extension": "101",
            "queue_id": 3,
            "timeout": 15,
            "caller_id": "+4917",
            "at": AT,
        },
        False,
    ),
    (
        cmd.CancelRing(T, C, "101", CancelReason.ANSWERED_ELSEWHERE),
        "rm/7/cmd/cancel_ring",
        {"call_id": "c-1", "extension": "101", "reason": "answered_elsewhere", "at": AT},
        False,
    ),
    (
        cmd.RouteToExtension(T, C, "200"),
        "rm/7/cmd/route",
        {"call_id": "c-1", "target": {"type": "extension", "extension": "200"}, "at": AT},
        False,
    ),
    (
        cmd.RouteToHangup(T, C, "no_route"),
        "rm/7/cmd/route",
        {"call_id": "c-1", "target": {"type": "hangup", "reason": "no_route"}, "at": AT},
        False,
    ),
    (
        cmd.Announce(T, C, Q, 4, 95),
        "rm/7/cmd/announce",
        {"call_id": "c-1", "queue_id": 3, "position": 4, "estimated_wait_s": 95, "at": AT},
        False,
    ),
    (
        cmd.Announce(T, C, Q, 1, None),
        "rm/7/cmd/announce",
        {"call_id": "c-1", "queue_id": 3, "position": 1, "estimated_wait_s": None, "at": AT},
        False,
    ),
    (
        cmd.Originate(T, C, "101", "+4930123"),
        "rm/7/cmd/originate",
        {"call_id": "c-1", "extension": "101", "number": "+4930123", "at": AT},
        False,
    ),
    (
        cmd.SetAgentState(T, "101", Presence.PAUSED, "lunch"),
        "rm/7/cmd/agent_state",
        {"extension": "101", "state": "paused", "reason": "lunch", "at": AT},
        False,
    ),
    (
        cmd.SetAgentState(T, "101", Presence.AVAILABLE),
        "rm/7/cmd/agent_state",
        {"extension": "101", "state": "available", "reason": "", "at": AT},
        False,
    ),
    (
        cmd.PublishCallQueued(T, C, Q, "+4930", "+4917", 2, NOW),
        "rm/7/event/call/queued",
        {
            "call_id": "c-1",
            "queue_id": 3,
            "did": "+4930",
            "caller_id": "+4917",
            "position": 2,
            "at": AT,
        },
        False,
    ),
    (
        cmd.PublishCallRinging(T, C, Q, "101", NOW),
        "rm/7/event/call/ringing",
        {"call_id": "c-1", "queue_id": 3, "extension": "101", "at": AT},
        False,
    ),
    (
        cmd.PublishCallAnswered(T, C, Q, "101", 4.56789, NOW),
        "rm/7/event/call/answered",
        {"call_id": "c-1", "queue_id": 3, "extension": "101", "wait_s": 4.568, "at": AT},
        False,
    ),
    (
        cmd.PublishCallAbandoned(T, C, Q, 30.0004, NOW),
        "rm/7/event/call/abandoned",
        {"call_id": "c-1", "queue_id": 3, "wait_s": 30.0, "at": AT},
        False,
    ),
    (
        cmd.PublishCallCompleted(T, C, Q, "101", 61.2345, NOW),
        "rm/7/event/call/completed",
        {"call_id": "c-1", "queue_id": 3, "extension": "101", "talk_s": 61.234, "at": AT},
        False,
    ),
    (
        cmd.PublishCallRejected(T, C, "+4930", "queue_inactive", NOW),
        "rm/7/event/call/rejected",
        {"call_id": "c-1", "did": "+4930", "reason": "queue_inactive", "at": AT},
        False,
    ),
    (
        cmd.PublishCallRejected(T, C, "+4930", "queue_empty", NOW),
        "rm/7/event/call/rejected",
        {"call_id": "c-1", "did": "+4930", "reason": "queue_empty", "at": AT},
        False,
    ),
    (
        cmd.PublishCallOverflowed(T, C, Q, "max_wait", 120.00049, NOW, to_queue=QueueId(4)),
        "rm/7/event/call/overflowed",
        {
            "call_id": "c-1",
            "queue_id": 3,
            "reason": "max_wait",
            "wait_s": 120.0,
            "target": {"type": "queue", "queue_id": 4},
            "at": AT,
        },
        False,
    ),
    (
        cmd.PublishCallOverflowed(T, C, Q, "queue_full", 0.0, NOW, to_extension="200"),
        "rm/7/event/call/overflowed",
        {
            "call_id": "c-1",
            "queue_id": 3,
            "reason": "queue_full",
            "wait_s": 0.0,
            "target": {"type": "extension", "extension": "200"},
            "at": AT,
        },
        False,
    ),
    (
        cmd.PublishCallOverflowed(T, C, Q, "queue_empty", 7.25, NOW),
        "rm/7/event/call/overflowed",
        {
            "call_id": "c-1",
            "queue_id": 3,
            "reason": "queue_empty",
            "wait_s": 7.25,
            "target": {"type": "hangup"},
            "at": AT,
        },
        False,
    ),
    (
        cmd.PublishCallbackRequested(T, C, Q, "+4930123", 3, NOW),
        "rm/7/event/call/callback_requested",
        {"call_id": "c-1", "queue_id": 3, "number": "+4930123", "position": 3, "at": AT},
        False,
    ),
    (
        cmd.PublishAgentState(T, "101", AgentStatus.WRAPUP, NOW),
        "rm/7/event/agent/state",
        {"extension": "101", "state": "wrapup", "reason": "", "at": AT},
        False,
    ),
    (
        cmd.PublishQueueSnapshot(T, SNAPSHOT, NOW),
        "rm/7/state/queue/3",
        {
            "queue_id": 3,
            "name": "Sales",
            "queue_number": "600",
            "strategy": "ringall",
            "status": "active",
            "waiting": 2,
            "longest_wait_s": 12.346,
            "agents": {"available": 1, "busy": 2},
            "offered": 10,
            "answered": 7,
            "abandoned": 1,
            "completed": 6,
            "overflowed": 2,
            "service_level_s": 30,
            "answered_within": 5,
            "abandoned_within": 1,
            "service_level_pct": 71.4,
            "callbacks": 1,
            "at": AT,
        },
        True,
    ),
    (
        cmd.RouteToHangup(T, C, "too_many_hops"),
        "rm/7/cmd/route",
        {"call_id": "c-1", "target": {"type": "hangup", "reason": "too_many_hops"}, "at": AT},
        False,
    ),
    (
        cmd.RejectInput(ev.RingAnswered(T, C, "102"), "102 is not ringing for c-1", NOW),
        "rm/7/error",
        {
            "topic": "rm/7/pbx/call/answered",
            "error": "102 is not ringing for c-1",
            "payload": {"call_id": "c-1", "extension": "102"},
            "at": AT,
        },
        False,
    ),
]


@pytest.mark.parametrize(
    ("command", "topic", "payload", "retain"),
    RENDERED,
    ids=[type(case[0]).__name__ + "-" + case[1] for case in RENDERED],
)
def test_render(command: cmd.Command, topic: str, payload: dict[str, Any], retain: bool) -> None:
    message = render(P, command, now=NOW)
    assert message.topic == topic
    assert body(message) == payload
    assert message.retain is retain
    # Compact JSON, UTF-8.
    assert message.payload == json.dumps(payload, separators=(",", ":")).encode()


def test_every_command_class_is_rendered() -> None:
    classes = {type(case[0]) for case in RENDERED} | {cmd.ClearQueueSnapshot}
    assert classes == set(cmd.Command.__args__)


def test_snapshot_before_the_first_answer_has_no_service_level() -> None:
    fresh = cmd.QueueSnapshot(
        **SALES,
        waiting=0,
        longest_wait_s=0.0,
        agents={},
        offered=0,
        answered=0,
        abandoned=0,
        completed=0,
    )
    payload = body(render(P, cmd.PublishQueueSnapshot(T, fresh, NOW)))
    assert payload["service_level_pct"] is None
    assert payload["service_level_s"] == 20
    assert (payload["overflowed"], payload["callbacks"]) == (0, 0)
    assert (payload["answered_within"], payload["abandoned_within"]) == (0, 0)


def test_clear_queue_snapshot_is_an_empty_retained_message() -> None:
    message = render(P, cmd.ClearQueueSnapshot(T, Q))
    assert message == OutboxMessage(topic="rm/7/state/queue/3", payload=b"", retain=True)


@pytest.mark.parametrize(
    ("event", "topic", "payload"),
    [
        (
            ev.CallArrived(T, C, "+4930", "+4917", "Ada", 5),
            "rm/7/pbx/call/arrived",
            {
                "call_id": "c-1",
                "did": "+4930",
                "caller_id": "+4917",
                "caller_name": "Ada",
                "priority": 5,
                "skills": {},
            },
        ),
        (
            ev.CallArrived(T, C, "1", skills={"spanish": 5}),
            "rm/7/pbx/call/arrived",
            {
                "call_id": "c-1",
                "did": "1",
                "caller_id": "",
                "caller_name": "",
                "priority": 0,
                "skills": {"spanish": 5},
            },
        ),
        (
            ev.CallbackRequested(T, C, "+4930123"),
            "rm/7/pbx/call/callback_requested",
            {"call_id": "c-1", "number": "+4930123"},
        ),
        (
            ev.RingFailed(T, C, "101", RingFailure.BUSY),
            "rm/7/pbx/call/ring_failed",
            {"call_id": "c-1", "extension": "101", "reason": "busy"},
        ),
        (ev.CallHungUp(T, C, "16"), "rm/7/pbx/call/hangup", {"call_id": "c-1", "cause": "16"}),
        (
            ev.AgentPresenceChanged(T, "101", Presence.AVAILABLE),
            "rm/7/pbx/agent/state",
            {"extension": "101", "state": "available", "reason": ""},
        ),
        (
            ev.DeviceStateChanged(T, "101", DeviceState.UNAVAILABLE),
            "rm/7/pbx/extension/state",
            {"extension": "101", "state": "unavailable"},
        ),
    ],
)
def test_reject_input_echoes_the_event_as_it_came(
    event: ev.PbxEvent, topic: str, payload: dict[str, Any]
) -> None:
    message = render(P, cmd.RejectInput(event, "nope", NOW))
    assert body(message) == {"topic": topic, "error": "nope", "payload": payload, "at": AT}
    # The echo is itself a valid inbound message for that topic.
    assert parse_inbound(P, topic, json.dumps(payload).encode()) == event


def test_render_error_on_the_tenant_topic() -> None:
    error = rejected("call/arrived", {"call_id": "c-1", "did": "1", "priority": 10})
    message = render_error(P, error, now=NOW)
    assert message.topic == "rm/7/error"
    assert not message.retain
    assert body(message) == {
        "topic": "rm/7/pbx/call/arrived",
        "error": "priority: Input should be less than or equal to 9",
        "payload": {"call_id": "c-1", "did": "1", "priority": 10},
        "at": AT,
    }


def test_render_error_without_tenant_goes_to_prefix_error() -> None:
    with pytest.raises(ContractError) as info:
        parse_inbound(P, "rm/x/pbx/call/hangup", b"\x00\xff")
    message = render_error(P, info.value, now=NOW)
    assert message.topic == "rm/error"
    assert body(message)["payload"] == repr(b"\x00\xff")


def test_status() -> None:
    online = status_message(P, online=True, now=NOW)
    assert online.topic == "rm/status"
    assert online.retain
    assert body(online) == {"state": "online", "at": AT}
    assert body(status_message(P, online=False, now=NOW)) == {"state": "offline", "at": AT}
    assert json.loads(will_payload()) == {"state": "offline"}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("rm/x/pbx/call/hangup", b'{"call_id": "c-1"}', "topic"),
        ("rm/7/pbx/call/parked", b'{"call_id": "c-1"}', "topic"),
        ("rm/7/pbx/call/hangup", b"{" + b" " * 70_000 + b"}", "too_large"),
        ("rm/7/pbx/call/hangup", b"\xff", "malformed"),
        ("rm/7/pbx/call/hangup", b"{not json", "malformed"),
        ("rm/7/pbx/call/hangup", b'{"a": 1, "a": 2}', "malformed"),
        ("rm/7/pbx/call/hangup", b"[1]", "malformed"),
        ("rm/7/pbx/call/hangup", b'{"call_id": "\\udfff"}', "malformed"),
        ("rm/7/pbx/call/hangup", b'{"call_id": ""}', "invalid"),
    ],
)
def test_a_rejection_says_which_kind_it_is(topic: str, payload: bytes, reason: str) -> None:
    # A bounded word for the metrics (`ringmaster_inbound_rejected_total{reason}`).
    with pytest.raises(ContractError) as info:
        parse_inbound(P, topic, payload)
    assert info.value.reason == reason


def test_an_internal_error_says_so() -> None:
    assert internal_error(P, "rm/7/pbx/call/hangup", b"{}").reason == "internal"


def test_only_events_and_snapshots_are_monitoring_messages() -> None:
    assert is_monitoring("P", "P/1/event/call/queued")
    assert is_monitoring("P", "P/12/state/queue/3")
    assert not is_monitoring("P", "P/1/cmd/ring")
    assert not is_monitoring("P", "P/1/error")
    assert not is_monitoring("P", "P/status")
    assert not is_monitoring("P", "P/error")
    assert not is_monitoring("P", "Q/1/event/call/queued")
    assert not is_monitoring("P", "P/x/event/call/queued")
