"""The MQTT wire contract, version 1: payloads <-> engine events and commands.

This module is pure: no I/O and no broker. It turns an inbound MQTT message
(topic and payload bytes) into one of the engine's `PbxEvent`s, and renders each
engine `Command` as the `OutboxMessage` the contract prescribes
(`/work/shared/contract/mqtt-v1.md`; the project's own words are in docs/).

Topics are built from the prefix `P` (setting `mqtt.topic_prefix`) and the
tenant id `T`: the PBX publishes on `P/T/pbx/...`, ringmaster on `P/T/cmd/...`,
`P/T/event/...`, `P/T/state/queue/Q`, `P/T/error` and `P/status`.

Time format: every payload ringmaster publishes carries `at`, the moment it
happened, as ISO 8601 in UTC with milliseconds and a `Z` suffix, e.g.
`2026-11-25T09:31:17.123Z` (sub-millisecond digits are truncated).

Additions to the contract (it may be extended by adding, never by changing):

- Commands (`cmd/*`) carry `at` too, the time ringmaster decided them.
- `event/agent/state` carries `reason` (the PBX's pause reason, or "").
- `P/T/error` carries `at`; the offending payload is echoed under `payload`.
- `P/error` (no tenant) reports a message whose topic has no readable tenant
  id, since such a message cannot be attributed to a `P/T/error` topic.
- The MQTT last will on `P/status` is `{"state": "offline"}` without `at`: the
  broker sends it at a time ringmaster cannot know when it registers it.
- `pbx/call/arrived` takes optional `skills` the call requires; the PBX may
  publish `pbx/call/callback_requested`.
- Commands `cmd/announce` and `cmd/originate`; events `event/call/overflowed`
  and `event/call/callback_requested`; the queue snapshot's service-level,
  overflow and callback figures.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ringmaster.engine.commands import (
    Announce,
    CancelRing,
    ClearQueueSnapshot,
    Command,
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
    PublishQueueSnapshot,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.events import (
    AgentPresenceChanged,
    CallArrived,
    CallbackRequested,
    CallHungUp,
    DeviceStateChanged,
    PbxEvent,
    RingAnswered,
    RingFailed,
)
from ringmaster.engine.model import (
    CallId,
    DeviceState,
    Presence,
    RingFailure,
    TenantId,
)
from ringmaster.fields import SkillMap
from ringmaster.store import OutboxMessage

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ContractError",
    "format_time",
    "inbound_filters",
    "parse_inbound",
    "parse_tenant",
    "render",
    "render_error",
    "status_message",
    "will_payload",
]

#: Inbound payloads larger than this are rejected unread (a PBX message is a
#: few hundred bytes; this guards the JSON parser, not the contract).
MAX_PAYLOAD_BYTES: Final = 64 * 1024
#: A JSON payload echoed on an error topic is kept whole below this size.
ECHO_MAX_CHARS: Final = 1024
#: Optional display fields (caller name, hangup cause, ...) are cut to this length
#: rather than rejected: a long caller name must not cost the caller their call.
_FREE_TEXT_MAX: Final = 256
_TOPIC_ECHO_MAX: Final = 256

_JSON_SEPARATORS: Final = (",", ":")
# A tenant id is a positive decimal integer without sign, spaces or leading zeros.
# ASCII only: int() would also accept " 7" or Arabic-Indic digits. 18 digits keep
# it inside SQLite's signed 64-bit INTEGER.
_TENANT_RE: Final = re.compile(r"[1-9][0-9]{0,17}")


class ContractError(Exception):
    """An inbound message does not follow the contract; nothing in the engine changes.

    Attributes:
        tenant_id: The tenant read from the topic, or None when the topic has none.
        topic: The topic the message came on.
        error: A readable reason that names the field, e.g.
            ``priority: Input should be less than or equal to 9``.
        payload: What may safely be echoed of the payload: the JSON value itself when
            it is small, else a truncated string.
    """

    def __init__(self, tenant_id: int | None, topic: str, error: str, payload: Any) -> None:
        super().__init__(f"{topic}: {error}")
        self.tenant_id = tenant_id
        self.topic = topic
        self.error = error
        self.payload = payload


# --- inbound payload models ---------------------------------------------------


def _free_text(value: Any) -> Any:
    # Optional text fields: a missing or null value means "", and an overlong one is
    # cut rather than rejected. Non-strings still fail the str check afterwards.
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:_FREE_TEXT_MAX]
    return value


CallIdField = Annotated[str, Field(strict=True, min_length=1, max_length=64)]
ExtensionField = Annotated[str, Field(strict=True, min_length=1, max_length=20)]
#: A ring's id as `cmd/ring` gave it (addition): opaque to the PBX, echoed back.
RingIdField = Annotated[str, Field(strict=True, min_length=1, max_length=64)]
DidField = Annotated[str, Field(strict=True, max_length=32, pattern=r"^\+?[0-9]+$")]
#: A number to call back: written like a DID.
NumberField = DidField
# strict: JSON true, 1.5 and "1" are not priorities (pydantic would coerce them).
PriorityField = Annotated[int, Field(strict=True, ge=0, le=9)]
FreeText = Annotated[str, BeforeValidator(_free_text), Field(strict=True)]


class _Inbound(BaseModel):
    # Contract: "Unknown extra fields are ignored."
    model_config = ConfigDict(extra="ignore", frozen=True)


class CallArrivedPayload(_Inbound):
    """`P/T/pbx/call/arrived`."""

    # strict for `skills` (the other fields are strict already): the admin API and
    # provisioning take skill levels strictly, and the same map must not mean more
    # here, e.g. "5" or true as a level.
    model_config = ConfigDict(strict=True)

    call_id: CallIdField
    did: DidField
    caller_id: FreeText = ""
    caller_name: FreeText = ""
    priority: PriorityField = 0
    skills: SkillMap = Field(default_factory=dict)


class CallAnsweredPayload(_Inbound):
    """`P/T/pbx/call/answered`."""

    call_id: CallIdField
    extension: ExtensionField
    ring_id: RingIdField | None = None  # addition


class RingFailedPayload(_Inbound):
    """`P/T/pbx/call/ring_failed`."""

    call_id: CallIdField
    extension: ExtensionField
    reason: RingFailure
    ring_id: RingIdField | None = None  # addition


class CallHangupPayload(_Inbound):
    """`P/T/pbx/call/hangup`."""

    call_id: CallIdField
    cause: FreeText = ""


class CallbackRequestedPayload(_Inbound):
    """`P/T/pbx/call/callback_requested` (addition)."""

    call_id: CallIdField
    number: NumberField


class AgentStatePayload(_Inbound):
    """`P/T/pbx/agent/state`."""

    extension: ExtensionField
    state: Presence
    reason: FreeText = ""


class ExtensionStatePayload(_Inbound):
    """`P/T/pbx/extension/state`."""

    extension: ExtensionField
    state: DeviceState


def _call_arrived(tenant: TenantId, p: CallArrivedPayload) -> PbxEvent:
    return CallArrived(
        tenant_id=tenant,
        call_id=CallId(p.call_id),
        did=p.did,
        caller_id=p.caller_id,
        caller_name=p.caller_name,
        priority=p.priority,
        skills=dict(p.skills),
    )


def _ring_answered(tenant: TenantId, p: CallAnsweredPayload) -> PbxEvent:
    return RingAnswered(
        tenant_id=tenant, call_id=CallId(p.call_id), extension=p.extension, ring_id=p.ring_id
    )


def _ring_failed(tenant: TenantId, p: RingFailedPayload) -> PbxEvent:
    return RingFailed(
        tenant_id=tenant,
        call_id=CallId(p.call_id),
        extension=p.extension,
        reason=p.reason,
        ring_id=p.ring_id,
    )


def _call_hung_up(tenant: TenantId, p: CallHangupPayload) -> PbxEvent:
    return CallHungUp(tenant_id=tenant, call_id=CallId(p.call_id), cause=p.cause)


def _callback_requested(tenant: TenantId, p: CallbackRequestedPayload) -> PbxEvent:
    return CallbackRequested(tenant_id=tenant, call_id=CallId(p.call_id), number=p.number)


def _agent_state(tenant: TenantId, p: AgentStatePayload) -> PbxEvent:
    return AgentPresenceChanged(
        tenant_id=tenant, extension=p.extension, presence=p.state, reason=p.reason
    )


def _extension_state(tenant: TenantId, p: ExtensionStatePayload) -> PbxEvent:
    return DeviceStateChanged(tenant_id=tenant, extension=p.extension, state=p.state)


_Converter: TypeAlias = tuple[type[_Inbound], Callable[[TenantId, Any], PbxEvent]]

#: The inbound topics, after `P/T/pbx/`, with their payload model and engine event.
INBOUND: Final[Mapping[str, _Converter]] = {
    "call/arrived": (CallArrivedPayload, _call_arrived),
    "call/answered": (CallAnsweredPayload, _ring_answered),
    "call/ring_failed": (RingFailedPayload, _ring_failed),
    "call/hangup": (CallHangupPayload, _call_hung_up),
    "call/callback_requested": (CallbackRequestedPayload, _callback_requested),
    "agent/state": (AgentStatePayload, _agent_state),
    "extension/state": (ExtensionStatePayload, _extension_state),
}


def inbound_filters(prefix: str) -> list[str]:
    """The topic filters the daemon subscribes to (QoS 1): every tenant's PBX topics."""
    return [f"{prefix}/+/pbx/#"]


def parse_tenant(prefix: str, topic: str) -> int | None:
    """The tenant id `T` of a topic `P/T/...`, or None when it has no valid one."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    segment = topic[len(head) :].split("/", 1)[0]
    return int(segment) if _TENANT_RE.fullmatch(segment) else None


def parse_inbound(prefix: str, topic: str, payload: bytes) -> PbxEvent:
    """Turn an inbound message on `P/T/pbx/...` into the engine's event.

    Args:
        prefix: The topic prefix `P`.
        topic: The topic the message came on.
        payload: The raw payload.

    Returns:
        The engine event, with `tenant_id` taken from the topic.

    Raises:
        ContractError: The topic or the payload does not follow the contract.
    """
    tenant_id = parse_tenant(prefix, topic)
    if tenant_id is None:
        raise ContractError(
            None,
            topic,
            f"topic: expected {prefix}/T/pbx/... with T a positive integer tenant id",
            _echo(payload),
        )
    rest = topic[len(prefix) + 1 :].split("/", 2)
    kind = rest[2] if len(rest) == 3 and rest[1] == "pbx" else None  # noqa: PLR2004
    converter = INBOUND.get(kind) if kind is not None else None
    if converter is None:
        raise ContractError(
            tenant_id,
            topic,
            "topic: unknown inbound topic; expected one of "
            + ", ".join(f"pbx/{name}" for name in INBOUND),
            _echo(payload),
        )
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            tenant_id,
            topic,
            f"payload: larger than {MAX_PAYLOAD_BYTES} bytes",
            _echo(payload),
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(tenant_id, topic, "payload: not valid UTF-8", _echo(payload)) from None
    try:
        data = json.loads(text)
    # RecursionError: deeply nested arrays; ValueError also covers over-long integers.
    except (ValueError, RecursionError) as exc:
        raise ContractError(
            tenant_id, topic, f"payload: not valid JSON ({_json_reason(exc)})", _echo(payload)
        ) from None
    if not isinstance(data, dict):
        raise ContractError(
            tenant_id,
            topic,
            f"payload: expected a JSON object, got {_json_type(data)}",
            _echo_json(data),
        )
    model, convert = converter
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise ContractError(tenant_id, topic, _describe(exc), _echo_json(data)) from None
    return convert(TenantId(tenant_id), parsed)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "payload"
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _echo_json(value: Any) -> Any:
    """A parsed JSON value as it may be echoed: whole when small, else truncated text."""
    text = _dumps(value)
    if len(text) <= ECHO_MAX_CHARS:
        return value
    return text[:ECHO_MAX_CHARS] + "..."


def _echo(payload: bytes) -> Any:
    """Raw bytes as they may be echoed: parsed JSON if it is, else a truncated string."""
    head = payload[: MAX_PAYLOAD_BYTES + 1]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: the repr shows the bytes without sending invalid UTF-8 onwards.
        return _truncate(repr(head[:ECHO_MAX_CHARS]))
    try:
        return _echo_json(json.loads(text))
    except (ValueError, RecursionError):
        return _truncate(text)


def _truncate(text: str) -> str:
    return text if len(text) <= ECHO_MAX_CHARS else text[:ECHO_MAX_CHARS] + "..."


# --- outbound -------------------------------------------------------------------


def format_time(at: float) -> str:
    """Seconds since the Unix epoch as the contract's `at`: `2026-11-25T09:31:17.123Z`."""
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.removesuffix("+00:00") + "Z"


def _dumps(value: Any) -> str:
    # ensure_ascii=False: payloads are UTF-8 (contract), so names stay readable.
    return json.dumps(value, separators=_JSON_SEPARATORS, ensure_ascii=False)


def _message(topic: str, payload: Mapping[str, Any], *, retain: bool = False) -> OutboxMessage:
    return OutboxMessage(topic=topic, payload=_dumps(payload).encode("utf-8"), retain=retain)


def _seconds(value: float) -> float:
    return round(value, 3)


# One case per inbound event class, as `render` below; mypy checks it is exhaustive.
def _event_topic_payload(  # noqa: PLR0911
    prefix: str, event: PbxEvent
) -> tuple[str, dict[str, Any]]:
    """The inbound topic and payload an engine event came from (for error echoes)."""
    base = f"{prefix}/{event.tenant_id}/pbx"
    match event:
        case CallArrived():
            return f"{base}/call/arrived", {
                "call_id": event.call_id,
                "did": event.did,
                "caller_id": event.caller_id,
                "caller_name": event.caller_name,
                "priority": event.priority,
                "skills": dict(event.skills),
            }
        case RingAnswered():
            return f"{base}/call/answered", {
                "call_id": event.call_id,
                "extension": event.extension,
                **_ring_id(event.ring_id),
            }
        case RingFailed():
            return f"{base}/call/ring_failed", {
                "call_id": event.call_id,
                "extension": event.extension,
                "reason": event.reason.value,
                **_ring_id(event.ring_id),
            }
        case CallHungUp():
            return f"{base}/call/hangup", {"call_id": event.call_id, "cause": event.cause}
        case CallbackRequested():
            return f"{base}/call/callback_requested", {
                "call_id": event.call_id,
                "number": event.number,
            }
        case AgentPresenceChanged():
            return f"{base}/agent/state", {
                "extension": event.extension,
                "state": event.presence.value,
                "reason": event.reason,
            }
        case DeviceStateChanged():
            return f"{base}/extension/state", {
                "extension": event.extension,
                "state": event.state.value,
            }


def _ring_id(ring_id: str | None) -> dict[str, str]:
    """The optional `ring_id` field (addition): absent when there is none."""
    return {"ring_id": ring_id} if ring_id else {}


# One case per command class, read as a table; mypy checks the match is exhaustive
# (a command class without a case is a "missing return" error).
def render(  # noqa: PLR0911, PLR0912
    prefix: str, command: Command, *, now: float | None = None
) -> OutboxMessage:
    """Render an engine command as the message the contract prescribes.

    Args:
        prefix: The topic prefix `P`.
        command: Any engine command.
        now: The time for the `at` of commands that carry none of their own (the PBX
            commands `Ring`, `CancelRing`, `RouteTo*`, `Announce`, `Originate`); None
            reads the wall clock.
            Monitoring events use their own `at`.

    Returns:
        The topic, compact JSON payload and retain flag to publish at QoS 1.
    """
    tenant = f"{prefix}/{command.tenant_id}" if not isinstance(command, RejectInput) else ""
    match command:
        case Ring():
            return _message(
                f"{tenant}/cmd/ring",
                {
                    "call_id": command.call_id,
                    "extension": command.extension,
                    "queue_id": command.queue_id,
                    "timeout": command.timeout,
                    "caller_id": command.caller_id,
                    **_ring_id(command.ring_id),
                    "at": _now(now),
                },
            )
        case CancelRing():
            return _message(
                f"{tenant}/cmd/cancel_ring",
                {
                    "call_id": command.call_id,
                    "extension": command.extension,
                    "reason": command.reason.value,
                    **_ring_id(command.ring_id),
                    "at": _now(now),
                },
            )
        case RouteToExtension():
            return _message(
                f"{tenant}/cmd/route",
                {
                    "call_id": command.call_id,
                    "target": {"type": "extension", "extension": command.extension},
                    "at": _now(now),
                },
            )
        case RouteToHangup():
            return _message(
                f"{tenant}/cmd/route",
                {
                    "call_id": command.call_id,
                    "target": {"type": "hangup", "reason": command.reason},
                    "at": _now(now),
                },
            )
        case Announce():
            return _message(
                f"{tenant}/cmd/announce",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "position": command.position,
                    "estimated_wait_s": command.estimated_wait_s,
                    "at": _now(now),
                },
            )
        case Originate():
            return _message(
                f"{tenant}/cmd/originate",
                {
                    "call_id": command.call_id,
                    "extension": command.extension,
                    "number": command.number,
                    "at": _now(now),
                },
            )
        case PublishCallQueued():
            return _message(
                f"{tenant}/event/call/queued",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "did": command.did,
                    "caller_id": command.caller_id,
                    "position": command.position,
                    "at": format_time(command.at),
                },
            )
        case PublishCallRinging():
            return _message(
                f"{tenant}/event/call/ringing",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "extension": command.extension,
                    **_ring_id(command.ring_id),
                    "at": format_time(command.at),
                },
            )
        case PublishCallAnswered():
            return _message(
                f"{tenant}/event/call/answered",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "extension": command.extension,
                    "wait_s": _seconds(command.wait_s),
                    "at": format_time(command.at),
                },
            )
        case PublishCallAbandoned():
            return _message(
                f"{tenant}/event/call/abandoned",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "wait_s": _seconds(command.wait_s),
                    "at": format_time(command.at),
                },
            )
        case PublishCallCompleted():
            return _message(
                f"{tenant}/event/call/completed",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "extension": command.extension,
                    "talk_s": _seconds(command.talk_s),
                    "at": format_time(command.at),
                },
            )
        case PublishCallRejected():
            return _message(
                f"{tenant}/event/call/rejected",
                {
                    "call_id": command.call_id,
                    "did": command.did,
                    "reason": command.reason,
                    "at": format_time(command.at),
                },
            )
        case PublishCallOverflowed():
            return _message(
                f"{tenant}/event/call/overflowed",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "reason": command.reason,
                    "wait_s": _seconds(command.wait_s),
                    "target": _overflow_target(command),
                    "at": format_time(command.at),
                },
            )
        case PublishCallbackRequested():
            return _message(
                f"{tenant}/event/call/callback_requested",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "number": command.number,
                    "position": command.position,
                    "at": format_time(command.at),
                },
            )
        case PublishAgentState():
            return _message(
                f"{tenant}/event/agent/state",
                {
                    "extension": command.extension,
                    "state": command.state.value,
                    "reason": command.reason,
                    "at": format_time(command.at),
                },
            )
        case PublishQueueSnapshot():
            snapshot = dataclasses.asdict(command.snapshot)
            snapshot["longest_wait_s"] = _seconds(command.snapshot.longest_wait_s)
            if command.snapshot.service_level_pct is not None:
                snapshot["service_level_pct"] = round(command.snapshot.service_level_pct, 1)
            snapshot["at"] = format_time(command.at)
            return _message(
                f"{tenant}/state/queue/{command.snapshot.queue_id}", snapshot, retain=True
            )
        case ClearQueueSnapshot():
            # An empty retained payload deletes the retained message (MQTT 3.3.1.3).
            return OutboxMessage(
                topic=f"{tenant}/state/queue/{command.queue_id}", payload=b"", retain=True
            )
        case RejectInput():
            topic, payload = _event_topic_payload(prefix, command.event)
            return _message(
                f"{prefix}/{command.event.tenant_id}/error",
                {
                    "topic": topic,
                    "error": command.error,
                    "payload": payload,
                    "at": format_time(command.at),
                },
            )


def _overflow_target(command: PublishCallOverflowed) -> dict[str, Any]:
    # Shaped like cmd/route's target, plus the queue type that cmd/route never needs.
    if command.to_queue is not None:
        return {"type": "queue", "queue_id": command.to_queue}
    if command.to_extension is not None:
        return {"type": "extension", "extension": command.to_extension}
    return {"type": "hangup"}


def _now(now: float | None) -> str:
    return format_time(time.time() if now is None else now)


def render_error(prefix: str, error: ContractError, *, now: float | None = None) -> OutboxMessage:
    """Render a rejected inbound message on `P/T/error`.

    When the topic carries no readable tenant id the error goes to `P/error`, an
    addition to the contract: it cannot be attributed to any tenant's topic.

    Args:
        prefix: The topic prefix `P`.
        error: The rejection.
        now: The time of the rejection; None reads the wall clock.

    Returns:
        The message to publish (QoS 1, not retained).
    """
    topic = f"{prefix}/error" if error.tenant_id is None else f"{prefix}/{error.tenant_id}/error"
    return _message(
        topic,
        {
            "topic": _truncate(error.topic) if len(error.topic) > _TOPIC_ECHO_MAX else error.topic,
            "error": error.error,
            "payload": error.payload,
            "at": _now(now),
        },
    )


def status_message(prefix: str, online: bool, *, now: float | None = None) -> OutboxMessage:
    """The retained `P/status` message: `{"state": "online"|"offline", "at": ...}`."""
    return _message(
        f"{prefix}/status",
        {"state": "online" if online else "offline", "at": _now(now)},
        retain=True,
    )


def will_payload() -> bytes:
    """The MQTT last will's payload for `P/status` (retained, QoS 1).

    It has no `at`: the broker sends it when the connection dies, a time unknown
    when the will is registered.
    """
    return _dumps({"state": "offline"}).encode("utf-8")
